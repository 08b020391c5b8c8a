"""``servewise estimate``: one fixed configuration -> memory breakdown and performance."""

from __future__ import annotations

import argparse

from servewise.estimator import estimate
from servewise.estimator.api import default_memory_fraction
from servewise.estimator.context import build_context
from servewise.estimator.engine_defaults import batch_defaults
from servewise.estimator.perf_estimate import kv_limited_batch
from servewise.estimator.results import Estimate, MemoryEstimate, PerfEstimate, RolePerf
from servewise.perfdata.errors import located
from servewise.profiles import load_profile
from servewise.wizard import flags
from servewise.wizard.exitcodes import ExitCode
from servewise.wizard.output import gib, print_json, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estimate", help="memory and performance of one fixed configuration",
                       description="Estimate per-GPU memory (and performance) of one fixed configuration.")
    p.add_argument("--profile", type=flags.path, help="estimate the plan pinned in this profile instead of flags")
    flags.add_model_hardware_flags(p)
    flags.add_detect_flags(p)
    flags.add_workload_flags(p)
    flags.add_parallel_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=run)


def build_profile(a: argparse.Namespace):
    """The profile to estimate. Batch limits and the memory fraction that are not given take the
    engine's own defaults for this GPU and version (they size the activation term)."""
    if a.profile:
        return load_profile(a.profile)
    user_seqs = a.max_num_seqs
    ctx = build_context(flags.profile_from_args(a))
    a = argparse.Namespace(**vars(a))
    if a.mode == "agg":
        hw = ctx.hardware
        d = batch_defaults(ctx.engine_name, ctx.engine.version, hw.gpu, hw.gpu.memory_bytes, a.tp, ctx.max_model_len)
        a.max_num_seqs = a.max_num_seqs or d.max_num_seqs
        a.max_num_batched_tokens = a.max_num_batched_tokens or d.max_num_batched_tokens
    fraction = default_memory_fraction(ctx, a.tp, a.pp)
    if a.max_throughput and not user_seqs:
        # offline: the batch is what the KV cache holds (the decode workers' in disagg)
        disagg = a.mode == "disagg"
        tp = (a.decode_tp or a.tp) if disagg else a.tp
        a.max_num_seqs = kv_limited_batch(ctx, tp, a.pp, 1 if disagg else a.dp, a.ep,
                                          a.max_num_batched_tokens or 8192, a.gpu_memory_utilization or fraction)
    return flags.profile_from_args(a, with_plan=True, default_fraction=fraction)


def run(a: argparse.Namespace) -> int:
    flags.refuse_request_flags_with_profile(a)
    with located(path=a.profile):
        est = estimate(build_profile(a))
    if a.json:
        print_json(est)
    else:
        print(format_estimate(est))
    return ExitCode.OK if est.feasible and est.meets_sla is not False else ExitCode.INFEASIBLE


def memory_rows(m: MemoryEstimate) -> list[list[str]]:
    """The per-GPU breakdown in GiB, each term with what it holds."""
    graphs = "in budget" if m.cuda_graph_in_budget else "outside budget"
    return [
        ["weights", gib(m.weights_bytes), ", ".join(f"{k} {gib(v)}" for k, v in m.weights_by_module.items()
                                                    if v >= 0.005 * 1024**3)],
        ["KV cache", gib(m.kv_cache_bytes), f"{m.kv_cache_tokens:,} tokens in {m.kv_cache_blocks:,} blocks"],
        ["activation peak", gib(m.activation_bytes),
         f"forward {gib(m.activation_forward_bytes)} / sampler {gib(m.activation_sampler_bytes)} at "
         f"{m.max_num_seqs} seqs, {m.max_num_batched_tokens} tokens"],
        ["CUDA graphs", gib(m.cuda_graph_bytes), graphs],
        ["non-torch (context, NCCL)", gib(m.other_bytes), ""],
        ["total held", gib(m.total_bytes), ""],
        [f"budget ({m.memory_fraction:g} of total)" if m.memory_fraction_of == "total" else
         f"budget (fixed terms + {m.memory_fraction:g} of the rest)", gib(m.budget_bytes), ""],
        ["GPU memory", gib(m.gpu_memory_bytes), f"headroom {gib(m.headroom_bytes)}"],
    ]


def format_memory(m: MemoryEstimate, title: str) -> str:
    lines = [title, table(["per GPU", "GiB", "detail"], memory_rows(m), "lrl"), m.budget_rule]
    layers = ", ".join(f"{v} {k}" for k, v in m.kv_layers.items() if v)
    window = f", window {m.sliding_window}" if m.sliding_window else ""
    if m.state_bytes_per_seq:
        window += f"; {m.state_bytes_per_seq / 1024**2:.2f} MiB state per sequence"
    lines.append(f"KV cache: {m.kv_bytes_per_token / 1024:.1f} KiB/token ({layers} layers{window}), "
                 f"blocks of {m.block_size_tokens}; max concurrency at max length {m.max_concurrency:g}x; "
                 f"longest single request {m.max_context_tokens:,} tokens")
    if m.estimated_max_model_len is not None:
        lines.append(f"estimated maximum model length: {m.estimated_max_model_len:,}")
    if m.overflow:
        lines.append(f"does not fit ({m.overflow.term}): {m.overflow.message}")
    return "\n".join(lines)


def _rng(b, fmt: str) -> str:
    return f"{b[0]:{fmt}}-{b[1]:{fmt}}"


def format_perf(p: PerfEstimate) -> str:
    rows = [["TTFT ms", f"{p.ttft_ms:.1f}", _rng(p.ttft_ms_range, ".1f")],
            ["TPOT ms", f"{p.tpot_ms:.2f}", _rng(p.tpot_ms_range, ".2f")],
            ["output tokens/s", f"{p.output_tokens_per_s:.0f}", _rng(p.output_tokens_per_s_range, ".0f")],
            ["tokens/s/GPU", f"{p.output_tokens_per_s_per_gpu:.0f}", _rng(p.output_tokens_per_s_per_gpu_range, ".0f")],
            ["tokens/s/user", f"{p.tokens_per_s_per_user:.1f}", _rng(p.tokens_per_s_per_user_range, ".1f")],
            ["requests/s", f"{p.requests_per_s:.2f}", _rng(p.requests_per_s_range, ".2f")]]
    if p.kv_transfer_ms is not None:
        rows.append(["KV transfer ms", f"{p.kv_transfer_ms:.2f}", ""])
    lines = [table(["metric", "estimate", "range"], rows, "lrr"), f"concurrency {p.concurrency:g}"]
    if p.dominant_terms:
        lines.append("dominant: " + "; ".join(p.dominant_terms))
    lines.append(f"from: {p.provenance}")
    return "\n".join(lines)


def format_role(r: RolePerf) -> str:
    if r.role == "prefill":
        head = (f"prompt time {r.ttft_ms:.1f} ms (queueing + prefill), KV transfer {r.kv_transfer_ms:.2f} ms, "
                f"step {r.step_ms:.1f} ms")
    else:
        head = f"TPOT {r.tpot_ms:.2f} ms at batch {r.batch:g} per rank"
    return (f"{head}; {r.requests_per_s:.2f} of {r.capacity_requests_per_s:.2f} requests/s "
            f"({100 * r.utilization:.0f}% busy)")


def format_sla(e: Estimate) -> str:
    """``SLA (p90): TTFT 281 ms <= 300: met; TPOT 12.1 ms > 10: missed`` for the targets set."""
    sla = e.sla
    assert sla is not None
    checks = []
    for name, value, target in (("TTFT", e.ttft_ms_at_percentile, sla.ttft_ms), ("TPOT", e.tpot_ms_at_percentile,
                                                                                   sla.tpot_ms)):
        if target is not None and value is not None:
            ok = value <= target
            checks.append(f"{name} {value:,.4g} ms {'<=' if ok else '>'} {target:g}: {'met' if ok else 'missed'}")
    return f"SLA ({sla.percentile}): " + "; ".join(checks)


def format_estimate(e: Estimate) -> str:
    where = f"{e.gpus} x {e.gpu}"
    if e.roles and any(r.gpu != e.gpu for r in e.roles.values()):  # heterogeneous pools: say which is where
        where = " + ".join(f"{e.plan.replicas * r.worker.gpus} x {r.gpu} ({role})" for role, r in e.roles.items())
    head = f"{e.model} on {where}, {e.engine} {e.engine_version}, {e.mode}, max_model_len {e.max_model_len}"
    parts = [head, ""]
    if e.memory:
        parts.append(format_memory(e.memory, "Memory"))
    for role, r in (e.roles or {}).items():
        parts += [format_memory(r.memory, f"Memory ({role}, TP{r.worker.tp})"), ""]
    if e.perf:
        parts += ["", "Performance" + (" (system)" if e.roles else ""), format_perf(e.perf)]
    for role, r in (e.roles or {}).items():
        if r.perf:
            parts += [f"{role} pool: " + format_role(r.perf)]
    if e.meets_sla is not None and e.sla is not None:
        parts += ["", format_sla(e)]
    if e.cost_per_million_tokens_usd is not None:
        parts += [f"cost: ${e.cost_per_million_tokens_usd:,.4g} per million output tokens over {e.gpus} GPUs"]
    if e.assumptions:
        parts += ["", "assumptions:", *(f"- {a}" for a in e.assumptions)]
    verdict = f"NOT feasible: {e.reason}" if not e.feasible else \
        "feasible, but the SLA is missed" if e.meets_sla is False else "feasible"
    parts += ["", verdict]
    return "\n".join(parts)
