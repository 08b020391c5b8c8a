"""``servewise estimate``: one fixed configuration -> memory breakdown and performance."""

from __future__ import annotations

import argparse

from servewise.estimator import estimate
from servewise.estimator.api import default_memory_fraction
from servewise.estimator.context import build_context
from servewise.estimator.perf_estimate import kv_limited_batch
from servewise.estimator.results import Estimate, MemoryEstimate, PerfEstimate, RolePerf
from servewise.profiles import load_profile
from servewise.wizard import flags
from servewise.wizard.exitcodes import ExitCode
from servewise.wizard.output import gib, print_json, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estimate", help="memory and performance of one fixed configuration",
                       description="Estimate per-GPU memory (and performance) of one fixed configuration.")
    p.add_argument("--profile", help="estimate the plan pinned in this profile instead of flags")
    flags.add_model_hardware_flags(p)
    flags.add_workload_flags(p)
    flags.add_parallel_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=run)


def build_profile(a: argparse.Namespace):
    if a.profile:
        return load_profile(a.profile)
    draft = flags.profile_from_args(a)
    ctx = build_context(draft)
    fraction = default_memory_fraction(ctx)
    if a.max_throughput and not a.max_num_seqs:
        # offline: the batch is what the KV cache holds (decode workers in disagg)
        disagg = a.mode == "disagg"
        tp = (a.decode_tp or a.tp) if disagg else a.tp
        batch = kv_limited_batch(ctx, tp, a.pp, 1 if disagg else a.dp, a.ep, a.max_num_batched_tokens or 8192,
                                 a.gpu_memory_utilization or fraction)
        a = argparse.Namespace(**{**vars(a), "max_num_seqs": batch})
    return flags.profile_from_args(a, with_plan=True, default_fraction=fraction)


def run(a: argparse.Namespace) -> int:
    est = estimate(build_profile(a))
    if a.json:
        print_json(est)
    else:
        print(format_estimate(est))
    return ExitCode.OK if est.feasible else ExitCode.INFEASIBLE


def memory_rows(m: MemoryEstimate) -> list[list[str]]:
    return [
        ["weights", gib(m.weights_bytes)],
        ["KV cache", gib(m.kv_cache_bytes)],
        ["activation peak", gib(m.activation_bytes)],
        ["CUDA graphs", gib(m.cuda_graph_bytes)],
        ["non-torch (context, NCCL)", gib(m.other_bytes)],
        ["total", gib(m.total_bytes)],
        [f"budget ({m.memory_fraction} of {m.memory_fraction_of.replace('_', ' ')})", gib(m.budget_bytes)],
        ["GPU memory", gib(m.gpu_memory_bytes)],
    ]


def format_memory(m: MemoryEstimate, title: str) -> str:
    lines = [title, table(["per GPU", "GiB"], memory_rows(m), "lr")]
    lines.append(f"KV cache: {m.kv_cache_tokens:,} tokens ({m.kv_bytes_per_token / 1024:.1f} KiB/token, "
                 f"blocks of {m.block_size_tokens}); max concurrency at max length {m.max_concurrency:g}x")
    if m.overflow:
        lines.append(f"does not fit: {m.overflow.message}")
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


def format_estimate(e: Estimate) -> str:
    head = (f"{e.model} on {e.gpus} x {e.gpu}, {e.engine} {e.engine_version}, {e.mode}, "
            f"max_model_len {e.max_model_len}")
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
    parts += ["", "feasible" if e.feasible else f"NOT feasible: {e.reason}"]
    return "\n".join(parts)
