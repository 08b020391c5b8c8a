"""The SLA search: the vectorised grid equals a plain loop over ``estimate``, masks, ranking, loads,
percentiles, stranded GPUs and the layouts it considers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from servewise.estimator.api import estimate_in_context, plan_in_context
from servewise.estimator.context import build_context
from servewise.estimator.pareto import pareto_mask
from servewise.estimator.search import Sla, SearchOptions, percentile_exponent, run_search, select
from servewise.estimator.search_space import budgets, layouts
from servewise.perfdata import get_gpu
from servewise.perfdata.calibration import load_calibration
from servewise.profiles.schema import AggPlan, DisaggPlan, Worker
from servewise.profiles.store import profile_from_dict

WIDE = SearchOptions(prefill_keep=10_000, decode_keep=10_000, batches_keep=10_000)


def profile(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm", gpus=4, per_node=None, engine="vllm",
            isl=2048, osl=256, load=None, ttft=None, tpot=None, percentile="mean", modes=("agg", "disagg"),
            prefill_gpu=None, price=None, **model_fields):
    per_node = per_node or gpus
    return profile_from_dict({
        "schema_version": 1, "generator": {"servewise": "0.1.0", "perfdata": "test"},
        "hardware": {"gpu": gpu, "gpus_per_node": per_node, "nodes": gpus // per_node, "prefill_gpu": prefill_gpu},
        "model": {"id": model, **model_fields},
        "workload": {"isl": isl, "osl": osl, "load": load or {"concurrency": 16}},
        "sla": {"ttft_ms": ttft, "tpot_ms": tpot, "percentile": percentile},
        "engine": {"name": engine}, "search": {"modes": list(modes), "gpu_hour_usd": price}})


def close(a: float, b: float, rel: float = 1e-6) -> bool:
    return a == b or math.isclose(a, b, rel_tol=rel)


def close_ms(reported_ms: float, seconds: float) -> bool:
    """``estimate`` rounds milliseconds to 3 decimals."""
    return math.isclose(reported_ms, seconds * 1e3, rel_tol=1e-6, abs_tol=6e-4)


# ----------------------------------------------------------------------------- vectorised == plain loop
def test_aggregated_grid_equals_a_plain_loop_over_estimate():
    """Every aggregated grid point, rebuilt as a plan and estimated on its own (scalar memory model and
    performance), gives the same feasibility and figures; the loop's best is the search's best."""
    ctx = build_context(profile(model="Qwen/Qwen3-32B", gpus=4, load={"concurrency": 12}, ttft=800, tpot=25,
                                modes=("agg",)))
    t = run_search(ctx).tables["agg"]
    lay = layouts(ctx, ctx.hardware.gpu, 4, 4)
    fractions = sorted({float(f) for f in t["fraction"]})
    seen, meeting, loop_best = 0, 0, (-1.0, None)
    for i, (r, b, f) in itertools.product(range(len(lay)), itertools.product(range(1, 5), budgets(ctx), fractions)):
        tp, pp = int(lay.tp[i]), int(lay.pp[i])
        if tp * pp * r > 4 or r > 12:
            continue
        seqs = math.ceil(12 / r)
        hit = np.flatnonzero((t["tp"] == tp) & (t["pp"] == pp) & (t["replicas"] == r) & (t["budget"] == b)
                             & np.isclose(t["fraction"], f))
        assert len(hit) == 1, (tp, pp, r, b, f)
        j = int(hit[0])
        assert t["seqs"][j] == seqs
        est = estimate_in_context(ctx, AggPlan(replicas=r, worker=Worker(
            tp=tp, pp=pp, max_num_seqs=seqs, max_num_batched_tokens=int(b), gpu_memory_utilization=f)))
        serves = est.feasible and est.perf is not None and close(est.perf.concurrency, 12.0) and \
            est.memory.kv_cache_tokens >= 2048 + 256
        assert bool(t["ok"][j]) == serves, (tp, pp, r, b, f)
        seen += 1
        if not serves:
            continue
        p = est.perf
        assert close_ms(p.ttft_ms, t["ttft"][j]) and close_ms(p.tpot_ms, t["tpot"][j])
        assert math.isclose(p.output_tokens_per_s, t["thr"][j], abs_tol=6e-3)
        assert est.memory.kv_cache_tokens == int(t["kv_tokens"][j])
        if p.ttft_ms <= 800 and p.tpot_ms <= 25:
            meeting += 1
            if p.output_tokens_per_s_per_gpu > loop_best[0] + 1e-6:
                loop_best = (p.output_tokens_per_s_per_gpu, j)
    r = select(t, Sla(0.8, 0.025), "output_tokens_per_s_per_gpu")
    assert seen == len(t) and 0 < t["ok"].sum() < seen          # TP1 does not fit a 32B model in 80 GB
    assert 0 < meeting == r.meets.sum() < t["ok"].sum()         # and some that fit miss the SLA
    assert loop_best[1] is not None
    assert close(r.score[r.best], loop_best[0], 1e-4)


def test_disaggregated_grid_equals_a_plain_loop_over_estimate():
    """With the screens keeping everything, each xPyD point estimated on its own matches the grid."""
    ctx = build_context(profile(model="Qwen/Qwen3-0.6B", gpus=4, load={"concurrency": 8}, modes=("disagg",)))
    t = run_search(ctx, WIDE).tables["disagg"]
    assert len(t) > 20 and t["ok"].sum() > 10
    lay = layouts(ctx, ctx.hardware.gpu, 4, 3)
    shapes = {(int(a), int(b)) for a, b in zip(lay.tp, lay.pp)}
    assert {(int(a), int(b)) for a, b in zip(t["p_tp"], t["p_pp"])} == shapes   # nothing screened away
    for j in range(len(t)):
        c = lambda k: t[k][j]  # noqa: E731
        plan = DisaggPlan(replicas=int(c("replicas")), prefill=Worker(
            tp=int(c("p_tp")), pp=int(c("p_pp")), workers=int(c("p_workers")), max_num_seqs=int(c("p_seqs")),
            max_num_batched_tokens=int(c("p_budget")), gpu_memory_utilization=float(c("p_fraction"))),
            decode=Worker(tp=int(c("d_tp")), pp=int(c("d_pp")), workers=int(c("d_workers")),
                          max_num_seqs=int(c("d_seqs")), max_num_batched_tokens=int(c("d_budget")),
                          gpu_memory_utilization=float(c("d_fraction"))))
        assert plan.gpus <= 4
        assert c("d_seqs") == math.ceil(8 / (c("replicas") * c("d_workers")))
        est = estimate_in_context(ctx, plan)
        if not t["ok"][j]:
            continue
        assert est.feasible and est.perf is not None
        assert close_ms(est.perf.ttft_ms, c("ttft")) and close_ms(est.perf.tpot_ms, c("tpot"))
        assert math.isclose(est.perf.output_tokens_per_s, c("thr"), abs_tol=6e-3)


# ----------------------------------------------------------------------------- result and loads
@pytest.mark.parametrize("load", [{"concurrency": 24}, {"request_rate": 3.0}, {"max_throughput": True}])
def test_candidates_match_estimate_and_serve_the_load(load):
    ctx = build_context(profile(gpus=4, load=load, ttft=1000, tpot=40))
    r = plan_in_context(ctx, SearchOptions())
    assert r.feasible and r.load.kind == next(iter(load))
    assert r.chosen_estimate.perf.output_tokens_per_s == pytest.approx(r.chosen.perf.output_tokens_per_s, rel=1e-4)
    assert r.chosen_estimate.perf.ttft_ms == pytest.approx(r.chosen.perf.ttft_ms, rel=1e-4)
    assert set(r.best) == {"agg", "disagg"} and all(r.best.values())
    for best in r.best.values():             # each mode's best is what `estimate` says of its plan
        est = estimate_in_context(ctx, best.plan).perf
        for k in ("ttft_ms", "tpot_ms", "output_tokens_per_s", "concurrency", "requests_per_s"):
            assert getattr(est, k) == pytest.approx(getattr(best.perf, k), rel=1e-3, abs=2e-3), (best.mode, k)
    for mode, cands in r.candidates.items():
        for c in cands:
            if not c.meets_sla:
                continue
            assert c.perf.ttft_ms <= 1000 and c.perf.tpot_ms <= 40
            if "concurrency" in load:
                assert c.perf.concurrency == pytest.approx(24)
                w = c.plan.worker if mode == "agg" else c.plan.decode
                assert c.plan.replicas * w.workers * w.dp * w.max_num_seqs >= 24
            elif "request_rate" in load:
                assert c.perf.requests_per_s == pytest.approx(3.0, rel=0.01)
                e2e_s = (c.perf.ttft_ms + 255 * c.perf.tpot_ms) / 1e3     # Little's law, as disaggregated
                assert c.perf.concurrency == pytest.approx(c.perf.requests_per_s * e2e_s, rel=2e-3), mode
            else:
                assert c.gpus_charged == 4


def test_stranded_gpus_are_charged_at_max_throughput():
    """24 GPUs of which a TP16 x PP1 ... shape uses 16: the other 8 are stranded and counted."""
    ctx = build_context(profile(model="meta-llama/Llama-3.1-405B-Instruct", gpus=24, per_node=8,
                                load={"max_throughput": True}, modes=("agg",), max_model_len=8192))
    t = run_search(ctx).tables["agg"]
    ok = t["ok"]
    assert ok.any()
    assert np.all(t["charged"][ok] == 24)
    assert (t["gpus"][ok] < 24).any()          # some shapes leave GPUs idle, and pay for them
    r = select(t, Sla(), "output_tokens_per_s_per_gpu")
    assert np.allclose(r.per_gpu[ok], t["thr"][ok] / 24)


def test_percentile_uses_the_band():
    ctx = build_context(profile(gpus=2, load={"concurrency": 8}, modes=("agg",)))
    t = run_search(ctx).tables["agg"]
    mean = select(t, Sla(0.5, 0.02, "mean"), "output_tokens_per_s_per_gpu")
    p50 = select(t, Sla(0.5, 0.02, "p50"), "output_tokens_per_s_per_gpu")
    p90 = select(t, Sla(0.5, 0.02, "p90"), "output_tokens_per_s_per_gpu")
    p99 = select(t, Sla(0.5, 0.02, "p99"), "output_tokens_per_s_per_gpu")
    ok = t["ok"]
    assert np.array_equal(mean.tpot_stat[ok], t["tpot"][ok]) and np.array_equal(p50.meets, mean.meets)
    level = load_calibration().band_level                  # the band's high end is its (1 + level) / 2 quantile
    assert percentile_exponent("p90", 0.8) == pytest.approx(1.0)      # an 80% band's high end is p90 itself
    assert percentile_exponent("p99", 0.9) == pytest.approx(2.3263 / 1.6449, rel=1e-4)
    k90 = percentile_exponent("p90", level)
    assert np.allclose(p90.tpot_stat[ok], t["tpot"][ok] * (t["tpot_hi"][ok] / t["tpot"][ok]) ** k90)
    assert np.all(p90.tpot_stat[ok] >= t["tpot"][ok]) and np.all(p99.tpot_stat[ok] >= p90.tpot_stat[ok])
    assert p99.meets.sum() <= p90.meets.sum() <= mean.meets.sum()


def test_ranking_prefers_the_default_fraction_and_fewer_gpus():
    ctx = build_context(profile(gpus=4, load={"concurrency": 4}, modes=("agg",)))
    out = run_search(ctx)
    r = out.ranked["agg"]
    t = r.table
    best = r.best
    assert best is not None and t["frac_default"][best]
    assert np.all(r.score[r.order[:1]] >= r.score[r.meets & t["ok"]].max() * 0.99)


def test_pareto_mask_matches_brute_force():
    rng = np.random.default_rng(7)
    x, y = rng.random(300).round(2), rng.random(300).round(2)
    m = pareto_mask(x, y)
    for i in range(len(x)):
        dominated = np.any((x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i])))
        assert m[i] == (not dominated and not np.any((x == x[i]) & (y == y[i]) & (np.arange(len(x)) < i)))


# ----------------------------------------------------------------------------- layouts
def test_tp_stays_in_the_scale_up_domain_and_the_node():
    nvl = build_context(profile(gpu="h100-nvl", gpus=8, per_node=8))
    assert get_gpu("h100-nvl").scale_up_domain_gpus == 2
    lay = layouts(nvl, nvl.hardware.gpu, 8, 8)
    assert lay.tp.max() == 2 and (lay.pp > 1).any()       # wider models go to pipeline stages
    sxm = build_context(profile(gpus=16, per_node=8))
    assert layouts(sxm, sxm.hardware.gpu, 8, 16).tp.max() == 8


def test_moe_layouts_expert_and_attention_data_parallel():
    ctx = build_context(profile(model="Qwen/Qwen3-30B-A3B", gpus=8, engine="vllm"))
    lay = layouts(ctx, ctx.hardware.gpu, 8, 8)
    dp = lay.dp > 1
    assert dp.any() and np.all(lay.ep[dp] == lay.tp[dp] * lay.dp[dp])
    assert np.all((lay.ep[~dp] == 1) | (lay.ep[~dp] == lay.tp[~dp]))
    assert (dp & (lay.tp > 1)).any()
    trt = build_context(profile(model="Qwen/Qwen3-30B-A3B", gpus=8, engine="trtllm"))
    lt = layouts(trt, trt.hardware.gpu, 8, 8)
    assert np.all(lt.tp[lt.dp > 1] == 1)                 # TensorRT-LLM attention DP runs attention at TP 1
    dense = build_context(profile(gpus=8))
    assert np.all(layouts(dense, dense.hardware.gpu, 8, 8).dp == 1)


def test_heterogeneous_prefill_gpu():
    ctx = build_context(profile(gpus=4, prefill_gpu="h200-sxm", load={"concurrency": 8}, modes=("disagg",)))
    r = plan_in_context(ctx, SearchOptions())
    assert r.best["disagg"] is not None
    c = r.best["disagg"]
    assert c.plan.prefill.gpu == "h200-sxm" and c.plan.decode.gpu is None
    assert r.chosen_estimate.roles["prefill"].gpu == "h200-sxm"
    assert r.chosen_estimate.perf.ttft_ms == pytest.approx(c.perf.ttft_ms, rel=1e-4)


def test_cost_per_million_tokens():
    priced = plan_in_context(build_context(profile(gpus=2, load={"concurrency": 8}, price=2.5)), SearchOptions())
    c = priced.chosen
    expect = 2.5 * c.gpus_charged / (c.perf.output_tokens_per_s * 3600) * 1e6
    assert c.cost_per_million_tokens_usd == pytest.approx(expect, rel=1e-3)
    lo, hi = c.cost_per_million_tokens_usd_range
    assert lo <= c.cost_per_million_tokens_usd <= hi
    plain = plan_in_context(build_context(profile(gpus=2, load={"concurrency": 8})), SearchOptions())
    assert all(x.cost_per_million_tokens_usd is None for cs in plain.candidates.values() for x in cs)


def test_verdict_names_the_ratio_and_close_calls():
    r = plan_in_context(build_context(profile(gpus=4, load={"concurrency": 16}, ttft=2000, tpot=60)), SearchOptions())
    a, d = r.best["agg"], r.best["disagg"]
    assert a is not None and d is not None
    assert r.comparison.ratio == pytest.approx(d.score / a.score, rel=1e-3)
    assert f"{max(r.comparison.ratio, 1 / r.comparison.ratio):.2f}x" in r.verdict
    ar, dr = r.comparison.agg_range, r.comparison.disagg_range
    assert r.comparison.close_call == (ar[1] >= dr[0] and dr[1] >= ar[0])
    assert ("close call" in r.verdict) == r.comparison.close_call


def test_nodes_needed_places_whole_workers_in_order():
    from servewise.estimator.search_space import nodes_needed

    got = nodes_needed([(np.array([3, 1, 2, 5, 1]), np.array([2, 4, 16, 1, 12])),
                        (np.array([1, 3, 1, 3, 0]), np.array([4, 4, 8, 4, 4]))], 8)
    # 3xTP2 leave 2 GPUs, too few for a TP4; 2 x 16-GPU workers then an 8; 5 x 1 then 3 x 4; 12 spans 1.5 nodes
    assert got.tolist() == [2, 2, 5, 3, math.inf]
    assert nodes_needed([(np.array([2, 3]), np.array([4, 4]))], 6).tolist() == [2, 3]


def test_every_listed_multi_node_candidate_renders():
    """Whatever the search lists must deploy: each candidate of a two-node vLLM plan renders."""
    from servewise.render import render

    p = profile(model="meta-llama/Llama-3.1-70B-Instruct", gpus=16, per_node=8, isl=2048, osl=256,
                load={"max_throughput": True}, ttft=500, tpot=30)
    r = plan_in_context(build_context(p), SearchOptions())
    cands = [c for cs in r.candidates.values() for c in cs] + r.pareto
    assert {c.mode for c in cands} == {"agg", "disagg"}
    for c in cands:
        doc = p.model_dump(mode="json")
        doc["plan"] = c.plan.model_dump(mode="json")
        files = render(profile_from_dict(doc, path="test"))
        assert "plan.json" in files


def test_trtllm_workers_stay_within_a_node():
    """trtllm-serve across nodes needs an MPI launcher servewise does not emit (render refuses it), so
    the search never lists such a worker: Qwen3 32B at 32k + 2k tokens on two nodes of 8 x RTX 4090
    chose TP4 PP4 over 16 GPUs, a plan whose replay then failed."""
    from servewise.render import render

    p = profile(model="Qwen/Qwen3-32B", gpu="rtx-4090", gpus=16, per_node=8, engine="trtllm", isl=32000,
                osl=2000, load={"max_throughput": True})
    ctx = build_context(p)
    lay = layouts(ctx, ctx.hardware.gpu, 8, 16)
    assert len(lay) and lay.gpus.max() <= 8
    r = plan_in_context(ctx, SearchOptions())
    assert r.feasible
    cands = [c for cs in r.candidates.values() for c in cs] + r.pareto
    for c in cands:
        workers = [c.plan.worker] if c.mode == "agg" else [c.plan.prefill, c.plan.decode]
        assert all(w.tp * w.pp * w.dp <= 8 for w in workers), c.plan
    doc = p.model_dump(mode="json")
    doc["plan"] = r.chosen.plan.model_dump(mode="json")
    assert "plan.json" in render(profile_from_dict(doc, path="test"))


def test_request_rates_beyond_capacity_are_infeasible_points():
    """Under a request rate a candidate without a steady state (the model's open loop finds none) is
    evaluated but never kept: every kept candidate serves exactly its share of the rate; a rate nothing
    sustains leaves the plan infeasible."""
    ctx = build_context(profile(gpus=2, load={"request_rate": 20.0}))
    out = run_search(ctx)
    unsustained = 0
    for t in out.tables.values():
        ok = t["ok"]
        assert np.all(np.isfinite(t["ttft"][ok])) and np.allclose(t["rps"][ok], 20.0, rtol=1e-9)
        assert not np.any(ok & ~np.isfinite(t["ttft"]))
        unsustained += int(np.sum(np.isinf(t["ttft"])))
    assert unsustained > 0                    # some evaluated candidates cannot take 20 requests/s
    r = plan_in_context(build_context(profile(gpus=2, load={"request_rate": 1e4})), SearchOptions())
    assert not r.feasible and "serves the load" in r.reason


def test_engine_defaults_follow_the_device_memory_not_what_is_free():
    """vLLM and SGLang pick their batch defaults by the GPU's memory; a plan sized on free memory
    (hardware.memory_bytes) must not drop to a smaller GPU's defaults (vLLM on an H100: 1024 / 8192,
    not 256 / 2048)."""
    from servewise.estimator.context import build_context
    from servewise.estimator.search_space import engine_batch_defaults
    from servewise.profiles import load_profile
    from servewise.profiles.store import profile_from_dict, profile_to_dict

    from .conftest import EXAMPLES

    for engine in ("vllm", "sglang"):
        doc = profile_to_dict(load_profile(EXAMPLES / "qwen3-32b-8xh200-vllm.yaml"))
        doc["engine"] = {**doc["engine"], "name": engine, "version": None, "image": None}
        whole = engine_batch_defaults(build_context(profile_from_dict(doc)), 1)
        doc["hardware"]["memory_bytes"] = 30 * 1024**3
        assert engine_batch_defaults(build_context(profile_from_dict(doc)), 1) == whole, engine


def test_vllm_data_parallel_spans_at_most_two_nodes_when_kubernetes_is_a_target():
    """A LeaderWorkerSet's shared worker template carries one --data-parallel-start-rank, so render refuses
    vLLM data parallel over more than two nodes for k8s; the search does not offer what cannot deploy,
    and offers it when only the shell / compose targets (one script per node) are asked for."""
    from servewise.estimator.context import build_context
    from servewise.estimator.search_space import layouts
    from servewise.profiles import load_profile
    from servewise.profiles.store import profile_from_dict, profile_to_dict

    from .conftest import EXAMPLES

    doc = profile_to_dict(load_profile(EXAMPLES / "qwen3-30b-a3b-8xh100-moe-ep-vllm.yaml"))
    doc["hardware"].update(gpus_per_node=2, nodes=8)
    doc["plan"] = None

    def widest(targets: list[str]) -> int:
        doc["deploy"]["targets"] = targets
        ctx = build_context(profile_from_dict(doc))
        lay = layouts(ctx, ctx.hardware.gpu, 2, 16)
        spans = (lay.tp * lay.pp * lay.dp)[lay.dp > 1]
        return int(spans.max()) if len(spans) else 0

    assert widest(["shell", "compose", "helm", "k8s"]) == 4
    assert widest(["shell", "compose"]) == 16
