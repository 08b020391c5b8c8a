"""Human output of a bench run: the measured table, measured vs predicted, and a terminal chart."""

from __future__ import annotations

from servewise.wizard.bench.failures import summary
from servewise.wizard.bench.results import BenchReport, LevelComparison, Stat
from servewise.wizard.output import table

CHART_WIDTH = 48
OFF_CHART = 3.0  # an SLA target more than 3x the largest figure is named, not drawn
LEGEND = "# measured mean   | predicted   [--] prediction band   : SLA target"


def _stat(s: Stat | None, digits: int) -> str:
    return "-" if s is None else "/".join(f"{getattr(s, k):.{digits}f}" for k in ("mean", "p50", "p90", "p99"))


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def measured_table(r: BenchReport) -> str:
    rows = []
    for lv in r.levels:
        errs = summary(lv.errors) or "0"
        if lv.stopped:
            errs += " (stopped)"
        rows.append([lv.label, f"{lv.completed}/{lv.requests}", errs, _stat(lv.ttft_ms, 1), _stat(lv.tpot_ms, 2),
                     _num(lv.itl_ms.p99 if lv.itl_ms else None, ".2f"), _num(lv.output_tokens_per_s, ".1f"),
                     _num(lv.output_tokens_per_s_per_gpu, ".1f"), _num(lv.mean_in_flight, ".2f")])
    return table(["load", "ok", "errors", "TTFT ms mean/p50/p90/p99", "TPOT ms mean/p50/p90/p99", "ITL p99 ms",
                  "out tok/s", "tok/s/GPU", "in flight"], rows, "lrlrrrrrr")


def _vs(c: LevelComparison, metric: str, fmt: str) -> list[str]:
    m = c.get(metric)  # type: ignore[arg-type]
    band = "" if m.low is None or m.high is None else f" [{format(m.low, fmt)}-{format(m.high, fmt)}]"
    pred = "-" if m.predicted is None else format(m.predicted, fmt) + band
    err = "-" if m.error_pct is None else f"{m.error_pct:+.1f}%" + ("" if m.within_band in (None, True) else " !")
    return [_num(m.measured, fmt), pred, err]


def comparison_table(r: BenchReport) -> str:
    rows = [[c.label, *_vs(c, "ttft", ".1f"), *_vs(c, "tpot", ".2f"), *_vs(c, "output_tokens_per_s", ".0f")]
            for c in r.comparison]
    heads = ["load", "TTFT ms", "predicted [band]", "error", "TPOT ms", "predicted [band]", "error", "out tok/s",
             "predicted [band]", "error"]
    return table(heads, rows, "lrrrrrrrrr")


def _col(v: float, scale: float) -> int:
    return max(0, min(CHART_WIDTH - 1, round(v / scale * (CHART_WIDTH - 1))))


def chart_row(scale: float, measured: float | None, predicted: float | None, band: tuple[float, float] | None,
              target: float | None) -> str:
    """One bar: '#' up to the measured value, the prediction '|' inside its band '[--]', SLA ':'."""
    cells = [" "] * CHART_WIDTH
    if target is not None:
        cells[_col(target, scale)] = ":"
    if measured is not None and measured > 0:
        for i in range(_col(measured, scale) + 1):
            cells[i] = "#"
    if band is not None:
        lo, hi = _col(band[0], scale), _col(band[1], scale)
        for i in range(lo, hi + 1):
            if cells[i] in " :":
                cells[i] = "-"
        cells[lo], cells[hi] = "[", "]"
    if predicted is not None:
        cells[_col(predicted, scale)] = "|"
    return "".join(cells)


def chart(r: BenchReport, metric: str, title: str, target: float | None) -> str | None:
    comps = [c for c in r.comparison if c.get(metric).measured is not None]  # type: ignore[arg-type]
    if not comps:
        return None
    values = []
    for c in comps:
        m = c.get(metric)  # type: ignore[arg-type]
        values += [m.measured or 0.0, m.predicted or 0.0, m.high or 0.0]
    beyond = ""
    if target is not None and target > OFF_CHART * max(values):
        beyond, target = f", SLA target {target:g} far beyond", None  # keep the bars readable
    scale = max([*values, target or 0.0]) * 1.05 or 1.0
    width = max(len(c.label) for c in comps)
    lines = [f"{title} (0 to {scale:.3g}{beyond})"]
    for c in comps:
        m = c.get(metric)  # type: ignore[arg-type]
        band = (m.low, m.high) if m.low is not None and m.high is not None else None
        lines.append(f"  {c.label.ljust(width)} {chart_row(scale, m.measured, m.predicted, band, target)}"
                     f" {m.measured:.4g}")
    return "\n".join(lines)


def format_report(r: BenchReport, ttft_target: float | None, tpot_target: float | None) -> str:
    head = (f"{r.model} at {r.url}: {r.api} API, {r.prompt.replace('_', '-')} prompts, ISL {r.isl} / OSL {r.osl}, "
            f"{r.gpus} GPU{'s' if r.gpus != 1 else ''}")
    parts = [head, "", measured_table(r)]
    if any(c.source for c in r.comparison):
        sources = sorted({c.source for c in r.comparison if c.source})
        parts += ["", f"Measured vs predicted (means; prediction: {'; '.join(sources)})", comparison_table(r)]
        charts = [chart(r, "ttft", "TTFT mean ms", ttft_target), chart(r, "tpot", "TPOT mean ms", tpot_target)]
        parts += ["", LEGEND, *[c for c in charts if c]]
    elif r.levels:
        parts += ["", "no prediction to compare with (the plan has no performance estimates for this profile)"]
    if r.sla:
        parts += ["", r.sla.message]
    parts += [f"note: {n}" for n in r.notes]
    if r.stopped:
        parts.append(f"stopped early: {r.stopped} (partial results kept)")
    return "\n".join(parts)
