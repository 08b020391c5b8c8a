"""``servewise plan``: search the configuration that best meets the SLA; optionally save a profile."""

from __future__ import annotations

import argparse

from servewise.estimator import plan
from servewise.estimator.results import Candidate, PlanResult
from servewise.perfdata.errors import located
from servewise.profiles import load_profile, profile_from_dict, save_profile
from servewise.profiles.schema import AggPlan, Profile, Worker, quantity_bytes
from servewise.wizard import flags
from servewise.wizard.commands.estimate import format_memory
from servewise.wizard.exitcodes import ExitCode
from servewise.wizard.output import info, print_json
from servewise.wizard.textchart import scatter

MODE_TITLES = {"agg": "aggregated", "disagg": "disaggregated"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="search the best configuration under the SLA",
                       description="Search aggregated and disaggregated configurations under the SLA: the best "
                                   "of each, the Pareto front of tokens/s per GPU against tokens/s per user, "
                                   "the verdict, and advice when nothing meets the targets.")
    p.add_argument("--profile", type=flags.path, help="plan for this profile's inputs instead of flags")
    flags.add_model_hardware_flags(p)
    flags.add_detect_flags(p)
    flags.add_workload_flags(p, searches_batch=True)
    p.add_argument("--mode", dest="search_mode", choices=["agg", "disagg"],
                   help="search only aggregated or only disaggregated configurations (default: both)")
    p.add_argument("--save", metavar="PATH", type=flags.path,
                   help="write a profile with the chosen plan (and its estimates) pinned")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=run)


def pinned(profile: Profile, result: PlanResult) -> Profile:
    """``profile`` with ``result.chosen`` pinned: its plan, the figures it was chosen on, the engine
    version it was planned with, and a model-cache volume large enough for the checkpoint."""
    from servewise.estimator.planning import estimates_of
    from servewise.estimator.resolve import checkpoint_gib

    assert result.chosen is not None
    chosen = result.chosen
    if calibrated(result):  # the figures the profile's own user calibration gives this configuration
        assert result.chosen_estimate is not None
        chosen = chosen.model_copy(update={"perf": result.chosen_estimate.perf})
    doc = profile.model_dump(mode="json")
    doc["plan"] = chosen.plan.model_copy(update={"estimates": estimates_of(chosen)}).model_dump(mode="json")
    doc["engine"]["version"] = result.engine_version
    need_gib = checkpoint_gib(profile.model)
    if need_gib is not None and quantity_bytes(profile.deploy.model_cache_size) < need_gib * 1024**3:
        doc["deploy"]["model_cache_size"] = f"{need_gib}Gi"  # else the k8s / Helm artifacts are refused
    return profile_from_dict(doc, path="plan")


def unrenderable(profile: Profile) -> None:
    """Say so when the saved profile's engine version has no accepted-flags list: it plans, but render
    (and replay) will refuse to write its commands unchecked."""
    from servewise.perfdata import get_engine

    spec = get_engine(profile.engine.name)
    ev = spec.version(profile.engine.version)
    if not ev.flags_reference:
        have = ", ".join(spec.renderable_versions)
        info(f"note: {profile.engine.name} {ev.version} is planned but cannot be rendered (no accepted-flags "
             f"list to check its commands against); render supports {have}")


def calibrated(result: PlanResult) -> bool:
    """Whether the profile's user calibration (``servewise bench --calibrate``) applies to the chosen
    configuration: it was measured on that deployment."""
    est = result.chosen_estimate
    return est is not None and est.perf is not None and "calibration" in est.provenance


def calibration_lines(r: PlanResult) -> list[str]:
    """What the profile's user calibration did to the chosen configuration, or why it did not apply."""
    est = r.chosen_estimate
    if est is None:
        return []
    if calibrated(r):
        p = est.perf
        assert p is not None
        return [f"{est.provenance['calibration']}: the chosen configuration, calibrated: TTFT "
                f"{_with_band(p.ttft_ms, p.ttft_ms_range)} ms, TPOT {_with_band(p.tpot_ms, p.tpot_ms_range)} ms, "
                f"{_with_band(p.output_tokens_per_s_per_gpu, p.output_tokens_per_s_per_gpu_range)} tok/s/GPU "
                "(pinned by --save; the table and the search use the uncalibrated model)"]
    return [a for a in est.assumptions if a.startswith("user calibration not applied")]


def run(a: argparse.Namespace) -> int:
    flags.refuse_request_flags_with_profile(a, allowed=("--gpu-memory-utilization",))
    with located(path=a.profile):
        if a.profile:
            profile = load_profile(a.profile)
            if a.search_mode:  # applied on top of the profile, as --gpu-memory-utilization is
                doc = profile.model_dump(mode="json")
                doc["search"]["modes"] = [a.search_mode]
                profile = profile_from_dict(doc, path=a.profile)
        else:
            if not (a.concurrency or a.request_rate or a.max_throughput):
                a.max_throughput = True   # the search picks the batch
            profile = flags.profile_from_args(a)
        result = plan(profile, memory_fraction=a.gpu_memory_utilization)
    if a.json:
        print_json(result)
    else:
        print(format_plan(result))
    if not result.feasible:
        return ExitCode.INFEASIBLE
    if a.save:
        saved = pinned(profile, result)
        save_profile(saved, a.save)
        if not a.json:
            info(f"saved {a.save}")
            unrenderable(saved)
    return ExitCode.OK


# ----------------------------------------------------------------------------- human summary
def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def _with_band(v: float | None, band) -> str:  # type: ignore[no-untyped-def]
    return _num(v) if not band else f"{_num(v)} ({_num(band[0])}-{_num(band[1])})"


def _par(w: Worker) -> str:
    return f"TP{w.tp}" + "".join(f" {n}{v}" for n, v in (("PP", w.pp), ("DP", w.dp), ("EP", w.ep)) if v > 1) + \
        (" attn-DP" if w.attention_dp else "")


def layout(c: Candidate) -> str:
    p = c.plan
    if isinstance(p, AggPlan):
        return f"{p.replicas} x {_par(p.worker)}"
    text = f"{p.prefill.workers} x {_par(p.prefill)} P + {p.decode.workers} x {_par(p.decode)} D"
    return f"{p.replicas} x ({text})" if p.replicas > 1 else text


def _batch(c: Candidate) -> str:
    p = c.plan
    if isinstance(p, AggPlan):
        return f"{p.worker.max_num_seqs} / {p.worker.max_num_batched_tokens}"
    return f"P {p.prefill.max_num_seqs} / {p.prefill.max_num_batched_tokens}, " \
           f"D {p.decode.max_num_seqs} / {p.decode.max_num_batched_tokens}"


def _fraction(c: Candidate) -> str:
    p = c.plan
    if isinstance(p, AggPlan):
        return f"{p.worker.gpu_memory_utilization:g}"
    return f"P {p.prefill.gpu_memory_utilization:g}, D {p.decode.gpu_memory_utilization:g}"


def comparison_table(r: PlanResult) -> list[str]:
    modes = list(r.best)
    rows: list[tuple[str, list[str]]] = []
    # a mode with nothing meeting the SLA shows its nearest miss (the first listed candidate), marked so
    cells = {m: r.best[m] or next(iter(r.candidates.get(m) or []), None) for m in modes}

    def add(label: str, f) -> None:  # type: ignore[no-untyped-def]
        rows.append((label, [f(c) if c is not None else "-" for c in cells.values()]))

    add("layout", layout)
    add("GPUs used / charged", lambda c: f"{c.gpus_used} / {c.gpus_charged}")
    add("max_num_seqs / batched tokens", _batch)
    add("memory fraction", _fraction)
    add("concurrency", lambda c: _num(c.perf.concurrency) if c.perf else "-")
    add("TTFT ms", lambda c: _with_band(c.perf.ttft_ms, c.perf.ttft_ms_range) if c.perf else "-")
    add("TPOT ms", lambda c: _with_band(c.perf.tpot_ms, c.perf.tpot_ms_range) if c.perf else "-")
    add("tok/s/GPU", lambda c: _with_band(c.output_tokens_per_s_per_gpu_charged,
                                          c.output_tokens_per_s_per_gpu_charged_range))
    add("tok/s/user", lambda c: _with_band(c.perf.tokens_per_s_per_user, c.perf.tokens_per_s_per_user_range)
        if c.perf else "-")
    add("tok/s total", lambda c: _with_band(c.perf.output_tokens_per_s, c.perf.output_tokens_per_s_range)
        if c.perf else "-")
    if r.gpu_hour_usd:
        add("$ / M output tokens", lambda c: _with_band(c.cost_per_million_tokens_usd,
                                                        c.cost_per_million_tokens_usd_range))
    heads = ["", *(MODE_TITLES[m] + ("" if r.best[m] is not None else " (nearest miss)" if cells[m] is not None
                                     else " (nothing fits)") for m in modes)]
    width = [max(len(x) for x in [heads[i], *(row[1][i - 1] if i else row[0] for row in rows)])
             for i in range(len(heads))]
    out = ["  ".join(h.ljust(w) for h, w in zip(heads, width)).rstrip()]
    for label, vals in rows:
        out.append("  ".join(x.ljust(w) for x, w in zip([label, *vals], width)).rstrip())
    return out


def pareto_chart(r: PlanResult) -> list[str]:
    """tokens/s/GPU against tokens/s/user: listed candidates as a/d, the front as A/D, the chosen *,
    the TPOT target as a ':' column."""
    pts = []
    for m, cs in r.candidates.items():
        pts += [(c.perf.tokens_per_s_per_user, c.output_tokens_per_s_per_gpu_charged or 0.0, m[0])
                for c in cs if c.perf]
    pts += [(c.perf.tokens_per_s_per_user, c.output_tokens_per_s_per_gpu_charged or 0.0, c.mode[0].upper())
            for c in r.pareto if c.perf]
    if r.chosen and r.chosen.perf:
        pts.append((r.chosen.perf.tokens_per_s_per_user, r.chosen.output_tokens_per_s_per_gpu_charged or 0.0, "*"))
    vline = 1000.0 / r.sla.tpot_ms if r.sla and r.sla.tpot_ms else None
    lines = ["Pareto front: A/D front (aggregated/disaggregated), a/d other candidates, * chosen"
             + (", : TPOT target" if vline else "")]
    return lines + scatter(pts, x_label="tokens/s per user (1 / TPOT)", y_label="tok/s/GPU", vline=vline)


def format_plan(r: PlanResult) -> str:
    lines = [f"{r.model} on {r.gpus} x {r.gpu}, {r.engine} {r.engine_version}, max_model_len {r.max_model_len:,}"]
    if r.load:
        lines.append(f"load: {r.load.meaning}")
    if r.sla:
        targets = [f"{k} <= {v:g} ms" for k, v in (("TTFT", r.sla.ttft_ms), ("TPOT", r.sla.tpot_ms)) if v]
        lines.append(f"SLA: {', '.join(targets)} ({r.sla.percentile}, {r.sla.statistic})" if targets else
                     "SLA: none (no TTFT or TPOT target: throughput alone decides)")
    lines.append("")
    if r.best:
        lines += comparison_table(r)
        lines.append("")
    if r.verdict:
        lines.append(f"verdict: {r.verdict}")
    if r.feasible and r.chosen is not None:
        c = r.chosen
        lines.append(f"chosen: {MODE_TITLES[c.mode]} {layout(c)}, max_num_seqs / batched tokens {_batch(c)}, "
                     f"memory fraction {_fraction(c)}")
        est = r.chosen_estimate
        if est is not None and est.memory is not None:
            lines += ["", format_memory(est.memory, "Memory of the chosen configuration")]
        for role, rp in ((est.roles or {}) if est is not None else {}).items():
            lines += ["", format_memory(rp.memory, f"Memory of the chosen configuration ({role}, TP{rp.worker.tp})")]
        lines += calibration_lines(r)
    else:
        lines.append(f"no configuration {'meets the SLA' if r.sla.ttft_ms or r.sla.tpot_ms else 'is feasible'}: "
                     f"{r.reason}")
    if any(r.candidates.values()):
        lines.append("")
        lines += pareto_chart(r)
    if r.advice:
        lines += ["", "advice (each checked by re-running the search):"]
        lines += [f"- {a.message}" for a in r.advice]
    elif not r.feasible:
        lines += ["", "advice: none of more GPUs, FP8 weights or KV cache, a shorter max length or looser "
                      "targets within reach makes a candidate feasible"]
    return "\n".join(lines)
