"""``servewise models [QUERY] [--describe ID] [--json]``: search the catalog, describe a model."""

from __future__ import annotations

import argparse
from dataclasses import replace

from servewise.estimator.arch import ModelArch
from servewise.estimator.describe import ModelDescription, describe
from servewise.estimator.resolve import resolve_config, resolve_model
from servewise.perfdata import find_model
from servewise.perfdata.errors import ServewiseError, UsageError
from servewise.perfdata.models import ModelEntry, search_models
from servewise.profiles.checkpoint import is_local_path, read_non_catalog
from servewise.profiles.schema import Model
from servewise.wizard.exitcodes import ExitCode
from servewise.wizard.output import GIB, info, print_json, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="search the model catalog, describe a model",
                       description="Search the model catalog by words of the id, family or tags and by size "
                                   "(`70b`, `0.6b`, `1t`); --describe shows a model's architecture, parameter "
                                   "counts, weight bytes per format and KV-cache bytes per token.")
    p.add_argument("query", nargs="*", help="words that must all match (substring of id/family/tag, or a size)")
    p.add_argument("--describe", metavar="ID", help="a catalog id, Hugging Face id or local checkpoint folder")
    p.add_argument("--revision", help="Hugging Face revision (branch, tag or commit) for --describe of a Hub id")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=run_models)


def _summary(m: ModelEntry) -> dict:
    a = ModelArch.from_hf_config(m.config)
    return {"id": m.id, "family": m.family, "params": m.params, "active_params": a.active_params() if a.moe else None,
            "dtype": m.dtype, "max_position_embeddings": a.max_position_embeddings, "gated": m.gated,
            "license": m.license, "tags": m.tags}


def _b(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e12:.3g}T" if n >= 1e12 else f"{n / 1e9:.4g}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def run_models(a: argparse.Namespace) -> int:
    if a.describe:
        if a.query:
            raise UsageError("models: give either QUERY or --describe ID, not both")
        return _run_describe(a.describe, a.json, a.revision)
    rows = [_summary(m) for m in search_models(" ".join(a.query))]
    if a.json:
        print_json(rows)
        return ExitCode.OK
    if not rows:
        info(f"no model in the catalog matches {' '.join(a.query)!r} (run `servewise models` for the full list; "
             "`servewise models --describe ORG/NAME` reads a model from the Hub or a local folder)")
        return ExitCode.OK
    print(table(["id", "family", "params", "active", "dtype", "context", "gated"],
                [[r["id"], r["family"], _b(r["params"]), _b(r["active_params"]), r["dtype"],
                  f"{r['max_position_embeddings']:,}", "yes" if r["gated"] else "no"] for r in rows], "llrrlrl"))
    return ExitCode.OK


def _run_describe(model_id: str, as_json: bool, revision: str | None = None) -> int:
    entry = None if is_local_path(model_id) else find_model(model_id)
    if entry is not None:
        rm = resolve_model(Model(id=model_id))
    else:
        try:
            facts = read_non_catalog(model_id, revision)
        except ServewiseError as e:  # the reader names --model, the flag of plan and estimate
            if e.message.startswith("--model "):
                e.message = "--describe " + e.message.removeprefix("--model ")
            raise
        rm = replace(resolve_config(model_id, facts.architecture_record(), source=facts.source),
                     revision=facts.revision, config_hash=facts.config_hash)
    doc = describe(rm, params_source=entry.params_source if entry else None,
                   params_note=entry.params_note if entry else None)
    if as_json:
        print_json(doc)
    else:
        print(render_description(doc))
    return ExitCode.OK


def _gib(n: float) -> str:
    return f"{n / GIB:,.2f} GiB"


def render_description(d: ModelDescription) -> str:
    a, p, c = d.architecture, d.params, d.checkpoint
    origin = d.source + (f" @ {d.revision}" if d.revision else "")
    out = [f"{d.id}  ({origin})", "",
           f"architecture   {a.model_type} ({', '.join(a.architectures) or '-'})",
           f"layers         {a.num_layers}: " + ", ".join(f"{n} {k}" for k, n in a.layers_by_kind.items())
           + (f" (window {a.sliding_window:,})" if a.sliding_window else ""),
           f"attention      {a.attention}, head_dim {a.head_dim}",
           f"hidden         {a.hidden_size:,}" + (f", intermediate {a.intermediate_size:,}" if a.intermediate_size else "")
           + f", vocab {a.vocab_size:,}"
           + (", tied embeddings" if a.tie_word_embeddings else ""),
           f"max positions  {a.max_position_embeddings:,}"]
    if a.moe:
        m = a.moe
        out.append(f"MoE            {m.experts} experts, top-{m.top_k}, expert width {m.expert_intermediate_size:,}"
                   + (f", {m.shared_experts} shared ({m.shared_intermediate_size:,})" if m.shared_experts else "")
                   + (f", {m.dense_layers} dense layers" if m.dense_layers else ""))
    if a.mla:
        out.append("MLA            " + ", ".join(f"{k} {v}" for k, v in a.mla.items()))
    if a.linear_attention:
        out.append("linear attn    " + ", ".join(f"{k} {v}" for k, v in a.linear_attention.items()))
    if a.sparse_indexer:
        out.append("DSA indexer    " + ", ".join(f"{k} {v}" for k, v in a.sparse_indexer.items()))
    out += ["", f"parameters     {_b(p.total)} total" + (f" ({_b(p.language_model)} language model + {_b(p.vision)} vision)"
                                                        if p.vision else "")
            + (f", {_b(p.active)} active per token" if p.active else "")]
    if p.published:
        out.append(f"published      {_b(p.published)} ({p.published_source})")
    if p.note:
        out.append(f"note           {p.note}")
    if a.mtp_layers:
        out.append(f"MTP layers     {a.mtp_layers} (not counted: a draft model, not the served one)")
    out += ["", f"checkpoint     {c.dtype}" + (f" ({c.quantization_method}: {c.quantization})" if c.quantization else "")
            + f"; weights {_gib(c.weight_bytes)} ({c.weight_bytes_source})"]
    if c.quantized_roles:
        out.append(f"quantized      {', '.join(c.quantized_roles)}; 16-bit: embeddings, LM head, norms, routers"
                   + (" and the excluded modules" if c.excluded_modules else ""))
    if c.kv_cache_dtype:
        out.append(f"ships KV       {c.kv_cache_dtype}")
    out += ["", "weight bytes by format (every decoder linear layer in that format, the rest 16-bit):",
            table(["format", "weights"], [[k, _gib(v)] for k, v in d.weight_bytes.items()], "lr"), "",
            "KV-cache bytes per token (whole model; sliding layers stop growing at the window):"]
    kinds = sorted({k for v in d.kv_bytes_per_token.values() for k in v})
    out.append(table(["KV dtype", *kinds], [[dt, *(f"{v.get(k, 0):,.0f}" for k in kinds)]
                                             for dt, v in d.kv_bytes_per_token.items()], "l" + "r" * len(kinds)))
    if d.indexer_bytes_per_token:
        out.append(f"(includes {d.indexer_bytes_per_token:,} B of DSA indexer keys per token, fp8 whatever the KV dtype)")
    if d.linear_state_bytes_per_sequence:
        s = d.linear_state_bytes_per_sequence
        out.append(f"linear-attention state per sequence (16-bit): conv {s['conv'] / 2**20:,.1f} MiB, "
                   f"recurrent {s['recurrent'] / 2**20:,.1f} MiB, whatever its length")
    return "\n".join(out)
