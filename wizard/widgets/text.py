"""Short human descriptions of plans and figures, shared by the screens (plain strings)."""

from __future__ import annotations

from servewise.estimator.results import PerfEstimate
from servewise.profiles.schema import AggPlan, DisaggPlan, Worker

GIB = 1024**3
MODE_TITLES = {"agg": "Aggregated", "disagg": "Disaggregated"}


def gib(n: float | None, digits: int = 1) -> str:
    return "—" if n is None else f"{n / GIB:.{digits}f}"


def parallel(w: Worker) -> str:
    out = f"TP{w.tp}"
    for name, v in (("PP", w.pp), ("DP", w.dp), ("EP", w.ep)):
        if v > 1:
            out += f" {name}{v}"
    return out


def layout(plan: AggPlan | DisaggPlan) -> str:
    """``4 × TP2`` or ``P 1 × TP4 / D 2 × TP2``."""
    if isinstance(plan, AggPlan):
        n = plan.replicas * plan.worker.workers
        return f"{n} × {parallel(plan.worker)}"
    rep = f"{plan.replicas} × (" if plan.replicas > 1 else ""
    end = ")" if plan.replicas > 1 else ""
    return (f"{rep}P {plan.prefill.workers} × {parallel(plan.prefill)} / "
            f"D {plan.decode.workers} × {parallel(plan.decode)}{end}")


def batch(plan: AggPlan | DisaggPlan) -> str:
    if isinstance(plan, AggPlan):
        return str(plan.worker.max_num_seqs)
    return f"{plan.prefill.max_num_seqs}/{plan.decode.max_num_seqs}"


def describe(plan: AggPlan | DisaggPlan) -> str:
    """One line: mode, layout, GPUs, batch limit."""
    mode = "aggregated" if isinstance(plan, AggPlan) else "disaggregated"
    return f"{mode} {layout(plan)} on {plan.gpus} GPUs, max_num_seqs {batch(plan)}"


def num(v: float | None) -> str:
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def band(b: tuple[float, float] | list[float] | None) -> str:
    return "" if not b else f"{num(b[0])}–{num(b[1])}"


PERF_ROWS = (
    ("TTFT", "ttft_ms", "ms"),
    ("TPOT", "tpot_ms", "ms"),
    ("tok/s/GPU", "output_tokens_per_s_per_gpu", ""),
    ("tok/s/user", "tokens_per_s_per_user", ""),
    ("tok/s", "output_tokens_per_s", ""),
)


def perf_rows(perf: PerfEstimate | None) -> list[tuple[str, str, str]]:
    """(label, value with unit, band) for each headline figure; empty without a perf estimate."""
    if perf is None:
        return []
    out = []
    for label, key, unit in PERF_ROWS:
        v = getattr(perf, key)
        out.append((label, f"{num(v)} {unit}".rstrip(), band(getattr(perf, f"{key}_range", None))))
    return out
