"""``servewise gpus``: the GPU catalog."""

from __future__ import annotations

import argparse

from servewise.perfdata import all_gpus
from servewise.wizard.exitcodes import ExitCode
from servewise.wizard.output import print_json, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpus", help="the GPU catalog", description="Search the GPU catalog.")
    p.add_argument("query", nargs="?", help="substring of the id or name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run_gpus)


def _match(q: str | None, *fields: str) -> bool:
    return not q or any(q.lower() in f.lower() for f in fields)


def run_gpus(a: argparse.Namespace) -> int:
    gpus = [g for g in all_gpus().values() if _match(a.query, g.id, g.name, g.architecture)]
    if a.json:
        print_json([g.model_dump(mode="json") for g in gpus])
        return ExitCode.OK
    rows = [[g.id, g.name, f"{g.memory_bytes / 1024**3:.1f}", f"{g.memory_bandwidth_bytes_per_s / 1e12:.2f}",
             f"{g.flops.get('bf16', 0) / 1e12:.0f}", f"{g.interconnect.kind}"] for g in gpus]
    print(table(["id", "name", "GiB", "TB/s", "BF16 TFLOP/s", "link"], rows, "llrrrl"))
    return ExitCode.OK
