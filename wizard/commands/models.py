"""``servewise models``: the model catalog."""

from __future__ import annotations

import argparse

from servewise.estimator.arch import ModelArch
from servewise.perfdata import all_models
from servewise.wizard.exitcodes import ExitCode
from servewise.wizard.output import print_json, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="the model catalog", description="Search the model catalog.")
    p.add_argument("query", nargs="?", help="substring of the id or family")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run_models)


def _match(q: str | None, *fields: str) -> bool:
    return not q or any(q.lower() in f.lower() for f in fields)


def run_models(a: argparse.Namespace) -> int:
    models = [m for m in all_models().values() if _match(a.query, m.id, m.family, *m.tags)]
    if a.json:
        print_json([{"id": m.id, "family": m.family, "params": m.params, "dtype": m.dtype,
                     "max_position_embeddings": ModelArch.from_hf_config(m.config).max_position_embeddings,
                     "gated": m.gated, "license": m.license} for m in models])
        return ExitCode.OK
    rows = [[m.id, m.family, f"{m.params / 1e9:.1f}B", m.dtype] for m in models]
    print(table(["id", "family", "params", "dtype"], rows, "llrl"))
    return ExitCode.OK
