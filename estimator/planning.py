"""From a search outcome to the ``PlanResult`` the CLI and the wizard show: candidates per mode, best
per mode, the Pareto front, the verdict and the chosen plan with its estimates."""

from __future__ import annotations

import math

import numpy as np

from servewise.estimator.context import Context
from servewise.estimator.cost import cost_per_million_tokens_usd
from servewise.estimator.pareto import pareto_mask
from servewise.estimator.results import (
    Candidate, Comparison, LoadInfo, PerfEstimate, PlanResult, SearchStats, SlaInfo,
)
from servewise.estimator.search import (
    Ranked, SearchOutcome, Sla, distinct_best, first_per_shape, shape_key, shortfall,
)
from servewise.estimator.search_space import prefill_gpu
from servewise.profiles.schema import AggPlan, DisaggPlan, Estimates, Worker

MEETING_LISTED = 8      # SLA-meeting candidates listed per mode (the best of each shape)
MISSING_LISTED = 4      # near misses listed per mode (smallest shortfall first)
PARETO_LISTED = 16
TIE = 0.005             # objectives within 0.5% are a tie (a request rate fixes tokens/s per GPU)
MODE_NAMES = {"agg": "aggregated", "disagg": "disaggregated"}
STATISTICS = {"mean": "compared on the point estimate, which predicts the mean over requests",
              "p50": "compared on the point estimate; with fixed-length requests the median request is at or "
                     "below the mean",
              "p90": "compared on the value measurements stay under in 90% of held-out cases, read off the "
                     "estimate's band assuming log-normal errors",
              "p99": "compared on the value measurements stay under in 99% of held-out cases, the estimate's "
                     "band extrapolated assuming log-normal errors"}


def _r(x: float, nd: int = 3) -> float:
    x = float(x)
    return round(x, nd) if math.isfinite(x) else x


def _ms(x: float) -> float:
    return _r(float(x) * 1e3)


def load_info(outcome: SearchOutcome) -> LoadInfo:
    ld = outcome.load
    if ld.kind == "concurrency":
        meaning = (f"closed loop at {ld.value:g} concurrent requests in total: a candidate of r replicas runs "
                   f"{ld.value:g} / r clients per replica and must admit them all (batch limit and KV cache)")
    elif ld.kind == "request_rate":
        meaning = (f"open loop at {ld.value:g} requests/s in total (Poisson arrivals): a candidate of r replicas "
                   "must sustain its share in a steady state")
    else:
        meaning = ("offline maximum throughput: replicas fill the GPUs and the batch per rank is swept; each "
                   "candidate runs its batch full (a closed loop at that concurrency)")
    return LoadInfo(kind=ld.kind, value=ld.value, meaning=meaning)  # type: ignore[arg-type]


def _worker(t, i: int, prefix: str = "", workers: int = 1, gpu: str | None = None) -> Worker:
    c = lambda k: t[prefix + k][i]  # noqa: E731
    dp = int(c("dp"))
    return Worker(tp=int(c("tp")), pp=int(c("pp")), dp=dp, ep=int(c("ep")), attention_dp=dp > 1, workers=workers,
                  max_num_seqs=int(c("seqs")), max_num_batched_tokens=int(c("budget")),
                  gpu_memory_utilization=float(c("fraction")), gpu=gpu)


def plan_of(ctx: Context, mode: str, t, i: int) -> AggPlan | DisaggPlan:
    """The plan a table row stands for: exactly the values the model was evaluated with."""
    if mode == "agg":
        return AggPlan(replicas=int(t["replicas"][i]), worker=_worker(t, i))
    pg = prefill_gpu(ctx)
    hetero = pg.id if pg is not ctx.hardware.gpu else None
    return DisaggPlan(replicas=int(t["replicas"][i]),
                      prefill=_worker(t, i, "p_", int(t["p_workers"][i]), hetero),
                      decode=_worker(t, i, "d_", int(t["d_workers"][i])))


def perf_of(t, i: int, osl: int) -> PerfEstimate:
    """The row's figures as ``estimate`` reports them (perf_estimate._perf: totals over the replicas,
    per GPU over the GPUs used)."""
    thr, lo, hi = float(t["thr"][i]), float(t["thr_lo"][i]), float(t["thr_hi"][i])
    gpus = float(t["gpus"][i])
    tpot, tpot_lo, tpot_hi = float(t["tpot"][i]), float(t["tpot_lo"][i]), float(t["tpot_hi"][i])
    kv = t.cols.get("kv_transfer")
    return PerfEstimate(
        ttft_ms=_ms(t["ttft"][i]), ttft_ms_range=(_ms(t["ttft_lo"][i]), _ms(t["ttft_hi"][i])), tpot_ms=_ms(tpot),
        tpot_ms_range=(_ms(tpot_lo), _ms(tpot_hi)), output_tokens_per_s=round(thr, 2),
        output_tokens_per_s_range=(_r(lo), _r(hi)), output_tokens_per_s_per_gpu=_r(thr / gpus),
        output_tokens_per_s_per_gpu_range=(_r(lo / gpus), _r(hi / gpus)),
        tokens_per_s_per_user=_r(1.0 / tpot), tokens_per_s_per_user_range=(_r(1.0 / tpot_hi), _r(1.0 / tpot_lo)),
        requests_per_s=round(float(t["rps"][i]), 4), requests_per_s_range=(_r(lo / osl), _r(hi / osl)),
        concurrency=_r(t["conc"][i]), kv_transfer_ms=None if kv is None else _ms(kv[i]),
        provenance=t.provenance)


def candidate(ctx: Context, r: Ranked, i: int, price: float | None) -> Candidate:
    t = r.table
    charged = float(t["charged"][i])
    thr = np.array([t["thr"][i], t["thr_lo"][i], t["thr_hi"][i]], dtype=np.float64)
    cost = cost_per_million_tokens_usd(price, charged, thr) if price else None
    used = int(t["gpus"][i])
    return Candidate(
        mode=t.mode, plan=plan_of(ctx, t.mode, t, i), gpus_used=used, meets_sla=bool(r.meets[i]),  # type: ignore
        perf=perf_of(t, i, ctx.profile.workload.osl), score=_r(r.score[i]), gpus_charged=int(charged),
        stranded_gpus=int(charged) - used, ttft_ms_at_percentile=_ms(r.ttft_stat[i]),
        tpot_ms_at_percentile=_ms(r.tpot_stat[i]), output_tokens_per_s_per_gpu_charged=_r(thr[0] / charged),
        output_tokens_per_s_per_gpu_charged_range=(_r(thr[1] / charged), _r(thr[2] / charged)),
        cost_per_million_tokens_usd=None if cost is None else _r(cost[0], 4),
        cost_per_million_tokens_usd_range=None if cost is None else (_r(cost[2], 4), _r(cost[1], 4)),
        kv_cache_tokens=int(t["kv_tokens"][i]), weights_bytes=int(t["weights_bytes"][i]),
        kv_cache_bytes=int(t["kv_cache_bytes"][i]))


def listed(r: Ranked, sla: Sla) -> list[int]:
    """The candidates listed for a mode: the best SLA-meeting shapes, then the nearest misses (smallest
    shortfall first) of other shapes."""
    out = distinct_best(r, MEETING_LISTED, meeting=True)
    short = shortfall(r, sla)
    miss = r.order[~r.meets[r.order]]
    miss = miss[np.isfinite(short[miss])]
    miss = miss[np.lexsort((-r.score[miss], short[miss]))]
    taken = set(shape_key(r.table)[out].tolist()) if out else set()
    keys = shape_key(r.table)[miss]
    miss = miss[~np.isin(keys, list(taken))] if taken else miss
    return out + first_per_shape(r, miss, MISSING_LISTED)


def pareto_front(outcome: SearchOutcome) -> list[tuple[str, int]]:
    """(mode, index) of the tokens/s/GPU vs tokens/s/user front over candidates that fit, serve the
    load and meet the TTFT target (TPOT is the front's own axis), spread along it, at most PARETO_LISTED."""
    pts: list[tuple[str, int]] = []
    xs, ys = [], []
    for mode, r in outcome.ranked.items():
        idx = np.flatnonzero(r.ttft_ok)
        pts += [(mode, int(i)) for i in idx]
        xs.append(1.0 / r.table["tpot"][idx])
        ys.append(r.per_gpu[idx])
    if not pts:
        return []
    x, y = np.concatenate(xs), np.concatenate(ys)
    on = np.flatnonzero(pareto_mask(x, y))
    on = on[np.argsort(x[on], kind="stable")]
    if len(on) > PARETO_LISTED:
        on = on[np.unique(np.linspace(0, len(on) - 1, PARETO_LISTED).round().astype(int))]
    return [pts[i] for i in on]


def choose(best: dict[str, Candidate | None]) -> Candidate | None:
    """The better mode's best; disaggregated only when it beats aggregated by more than a tie."""
    a, d = best.get("agg"), best.get("disagg")
    if a is None or d is None:
        return a or d
    return d if d.score > a.score * (1.0 + TIE) else a


def compare(best: dict[str, Candidate | None], objective: str, notes: list[str] | None = None
            ) -> tuple[str | None, Comparison | None]:
    """The verdict: which mode wins on the objective, by what ratio, and whether the bands overlap."""
    a, d = best.get("agg"), best.get("disagg")
    if a is None and d is None:
        return None, None
    if a is None or d is None:
        only = "agg" if a is not None else "disagg"
        other = "disagg" if only == "agg" else "agg"
        skipped = next((n.split(": ", 1)[1] for n in notes or [] if n.startswith(f"{MODE_NAMES[other]} not")), None)
        why = ("was not searched" + (f": {skipped}" if skipped else "")) if other not in best else \
            "has no candidate that meets the SLA"
        return f"only {MODE_NAMES[only]} serving meets the SLA ({MODE_NAMES[other]} {why})", \
            Comparison(winner=only)  # type: ignore[arg-type]

    def rng(c: Candidate) -> tuple[float, float]:
        if objective == "tokens_per_s_per_user":
            assert c.perf is not None
            return c.perf.tokens_per_s_per_user_range
        assert c.output_tokens_per_s_per_gpu_charged_range is not None
        return c.output_tokens_per_s_per_gpu_charged_range

    ratio = d.score / a.score if a.score > 0 else math.inf
    winner = "disagg" if ratio > 1.0 + TIE else "agg"
    ar, dr = rng(a), rng(d)
    close = ar[1] >= dr[0] and dr[1] >= ar[0]
    what = "tokens/s per user" if objective == "tokens_per_s_per_user" else "output tokens/s per GPU"
    w, l_ = (d, a) if winner == "disagg" else (a, d)
    if abs(ratio - 1.0) <= TIE:
        text = (f"aggregated and disaggregated tie on {what} ({a.score:,.1f} vs {d.score:,.1f}); aggregated is "
                "chosen: one kind of worker is simpler to run")
    else:
        text = (f"{MODE_NAMES[winner]} wins: {max(ratio, 1 / ratio if ratio else math.inf):.2f}x the {what} of "
                f"{MODE_NAMES['agg' if winner == 'disagg' else 'disagg']} ({w.score:,.1f} vs {l_.score:,.1f})")
    if close and abs(ratio - 1.0) > TIE:
        text += (f"; a close call: the bands overlap (aggregated {ar[0]:,.1f}-{ar[1]:,.1f}, disaggregated "
                 f"{dr[0]:,.1f}-{dr[1]:,.1f}), so measure both before committing")
    return text, Comparison(winner=winner, ratio=_r(ratio, 4), close_call=close,  # type: ignore[arg-type]
                            agg_range=ar, disagg_range=dr)


def plan_result(ctx: Context, outcome: SearchOutcome, common: dict) -> PlanResult:
    """Everything but the advice and the chosen plan's full estimate (``api.plan`` adds those)."""
    price = ctx.profile.search.gpu_hour_usd
    cands: dict[str, list[Candidate]] = {}
    best: dict[str, Candidate | None] = {}
    built: dict[tuple[str, int], Candidate] = {}

    def get(mode: str, i: int) -> Candidate:
        if (mode, i) not in built:
            built[(mode, i)] = candidate(ctx, outcome.ranked[mode], i, price)
        return built[(mode, i)]

    for mode, r in outcome.ranked.items():
        cands[mode] = [get(mode, i) for i in listed(r, outcome.sla)]
        best[mode] = get(mode, r.best) if r.best is not None else None
    front = [get(m, i) for m, i in pareto_front(outcome)]
    chosen = choose(best)
    verdict, comparison = compare(best, outcome.objective, outcome.notes)
    s = outcome.sla
    stats = SearchStats(grid={m: len(t) for m, t in outcome.tables.items()},
                        evaluated={m: t.evaluated for m, t in outcome.tables.items()},
                        meeting_sla={m: int(r.meets.sum()) for m, r in outcome.ranked.items()},
                        screens={m: dict(t.screened) for m, t in outcome.tables.items()},
                        pareto_size=len(front), notes=list(outcome.notes))
    sla = SlaInfo(ttft_ms=None if s.ttft_s is None else s.ttft_s * 1e3,
                  tpot_ms=None if s.tpot_s is None else s.tpot_s * 1e3, percentile=s.percentile,  # type: ignore
                  statistic=STATISTICS[s.percentile])
    reason = None if chosen else _reason(ctx, outcome)
    return PlanResult(feasible=chosen is not None, reason=reason, load=load_info(outcome), sla=sla,
                      gpu_hour_usd=price, chosen=chosen, best=best, candidates=cands, pareto=front, verdict=verdict,
                      comparison=comparison, search=stats, **common)


def _reason(ctx: Context, outcome: SearchOutcome) -> str:
    if not outcome.tables:  # no mode could be searched (e.g. --mode disagg on one GPU): say why, not "memory"
        return "; ".join(outcome.notes) or "no serving mode could be searched"
    fits = {m: int(t["ok"].sum()) for m, t in outcome.tables.items()}
    if not any(fits.values()):
        return "no configuration fits in memory and serves the load" + _memory_detail(ctx)
    s = outcome.sla
    parts = []
    if s.ttft_s is not None:
        parts.append(f"TTFT {s.ttft_s * 1e3:g} ms")
    if s.tpot_s is not None:
        parts.append(f"TPOT {s.tpot_s * 1e3:g} ms")
    return f"no configuration that fits meets {' and '.join(parts)} ({s.percentile})"


def _memory_detail(ctx: Context) -> str:
    """What overflows on the widest single-worker layout (most GPUs, engine defaults), in the memory
    model's own words; or, where that layout fits, that it cannot be placed on whole nodes."""
    from servewise.estimator.report import memory_estimate
    from servewise.estimator.search_space import default_fraction, engine_batch_defaults, layouts

    hw = ctx.hardware
    lay = layouts(ctx, hw.gpu, hw.gpus_per_node, hw.total_gpus)
    if not len(lay):
        return ""
    i = int(np.lexsort((lay.ep, -lay.gpus))[0])
    tp, pp, dp, ep = (int(x[i]) for x in (lay.tp, lay.pp, lay.dp, lay.ep))
    seqs, tokens = engine_batch_defaults(ctx, tp)
    frac = float(default_fraction(ctx, tp, pp, tokens, seqs))
    w = Worker(tp=tp, pp=pp, dp=dp, ep=ep, attention_dp=dp > 1, max_num_seqs=seqs, max_num_batched_tokens=tokens,
               gpu_memory_utilization=frac)
    m = memory_estimate(ctx, w)
    what = f"TP{tp}" + (f" PP{pp}" if pp > 1 else "") + (f" DP{dp}" if dp > 1 else "") + (f" EP{ep}" if ep > 1 else "")
    if m.overflow:
        return f"; even {what}: {m.overflow.message}"
    g, n = tp * pp * dp, hw.gpus_per_node
    if g > n and g % n:
        return (f"; {what} fits in memory, but its {g} GPUs span nodes without filling whole nodes of {n} GPUs "
                "(a worker wider than a node takes whole nodes)")
    return ""


def estimates_of(c: Candidate) -> Estimates:
    """The figures pinned with a saved plan."""
    p = c.perf
    if p is None:
        return Estimates(kv_cache_tokens=c.kv_cache_tokens, weights_bytes=c.weights_bytes)
    return Estimates(
        ttft_ms=p.ttft_ms, ttft_ms_range=list(p.ttft_ms_range), tpot_ms=p.tpot_ms, tpot_ms_range=list(p.tpot_ms_range),
        output_tokens_per_s=p.output_tokens_per_s, output_tokens_per_s_range=list(p.output_tokens_per_s_range),
        output_tokens_per_s_per_gpu=p.output_tokens_per_s_per_gpu,
        output_tokens_per_s_per_gpu_range=list(p.output_tokens_per_s_per_gpu_range),
        tokens_per_s_per_user=p.tokens_per_s_per_user, tokens_per_s_per_user_range=list(p.tokens_per_s_per_user_range),
        requests_per_s=p.requests_per_s, concurrency=p.concurrency, kv_transfer_ms=p.kv_transfer_ms,
        kv_cache_tokens=c.kv_cache_tokens, weights_bytes=c.weights_bytes, kv_cache_bytes=c.kv_cache_bytes,
        cost_per_million_tokens_usd=c.cost_per_million_tokens_usd, provenance=p.provenance or None)
