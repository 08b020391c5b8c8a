"""Serving dynamics (estimator/serving.py, estimator/disagg.py): closed loop, open loop, disagg."""

from __future__ import annotations

import numpy as np
import pytest

from servewise.estimator.disagg import disaggregated, kv_cache_bytes, kv_transfer_s, matched_prefill_workers
from servewise.estimator.perf import Parallel, make_target
from servewise.estimator.quant import weight_format
from servewise.estimator.serving import aggregated, aggregated_at_rate, kv_capacity_requests, max_batch
from tests.test_perf import arch

def qwen(engine="vllm", gpu="h100-sxm"):
    from servewise.perfdata import get_gpu

    return make_target(arch("Qwen/Qwen3-32B"), weight_format("bf16"), get_gpu(gpu), engine)


def agg(t, c, isl=1024, osl=512, tp=4, kv=1e6, budget=8192, seqs=1024):
    return aggregated(t, Parallel.of(tp), isl, osl, c, budget, seqs, kv)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
@pytest.mark.parametrize("kv", [1e6, 60_000.0])
def test_closed_loop_obeys_littles_law(engine, kv):
    """Each client sends its next request when the previous one ends: clients = requests/s x (TTFT +
    (osl - 1) TPOT) with the latencies the model reports (request overhead included), whether or not
    requests wait for admission (a 60k-token KV cache holds ~12 of these requests)."""
    t = qwen(engine)
    c = np.array([1.0, 8, 32, 128])
    p = agg(t, c, kv=kv)
    assert p.requests_per_s * (p.ttft_s + (512 - 1) * p.tpot_s) == pytest.approx(c, rel=1e-9)
    assert p.output_tokens_per_s == pytest.approx(c * 512 / (p.ttft_s + 511 * p.tpot_s), rel=1e-9)
    if kv < 1e5:
        assert np.any(p.queued > 0)


def test_closed_loop_throughput_of_a_single_client_is_one_request_per_latency():
    """Llama-3.1-8B on one H100, ISL 4096 / OSL 8, one client: tokens/s = 8 / (TTFT + 7 TPOT)."""
    from servewise.estimator.perf import make_target
    from servewise.perfdata import get_gpu

    t = make_target(arch("meta-llama/Llama-3.1-8B-Instruct"), weight_format("bf16"), get_gpu("h100-sxm"), "vllm")
    p = aggregated(t, Parallel.of(1), 4096, 8, 1.0, 8192, 1024, 4e5)
    assert float(p.output_tokens_per_s) == pytest.approx(8.0 / float(p.ttft_s + 7 * p.tpot_s), rel=1e-9)


@pytest.mark.parametrize("concurrency", [1.0, 16.0, 64.0, 512.0])
def test_disagg_closed_loop_obeys_littles_law(concurrency):
    """The same for an xPyD system, including a load past the pools' capacity (requests then wait for
    their first token)."""
    t = qwen()
    p = disaggregated(t, t, Parallel.of(4), Parallel.of(4), 4000, 500, concurrency, 1.0, 1.0, 8192, 64, 1e6, 50e9)
    e2e = float(p.ttft_s + 499 * p.tpot_s)
    assert float(p.requests_per_s) * e2e == pytest.approx(concurrency, rel=1e-9)
    assert float(p.output_tokens_per_s) == pytest.approx(float(p.requests_per_s) * 500)
    assert float(p.requests_per_s) <= min(float(p.prefill_capacity_rps), float(p.decode_capacity_rps)) * 1.0001


def test_disagg_open_loop_serves_the_rate_and_saturates():
    """Open loop at a sustainable rate: requests/s = the rate, tokens/s = rate x osl; past either pool's
    capacity no steady state (infinite TTFT, no throughput)."""
    from servewise.estimator.disagg import disaggregated_at_rate

    t = qwen()
    rates = np.array([0.1, 1.0, 3.0, 1e3])
    p = disaggregated_at_rate(t, t, Parallel.of(4), Parallel.of(4), 4000, 500, rates, 1.0, 1.0, 8192, 256, 1e6, 50e9)
    cap = np.minimum(p.prefill_capacity_rps, p.decode_capacity_rps)
    ok = rates < 0.99 * cap
    assert ok[:2].all() and not ok[3]
    assert p.output_tokens_per_s[ok] == pytest.approx(rates[ok] * 500)
    assert np.all(np.diff(p.ttft_s[ok]) > 0) and np.isinf(p.ttft_s[3]) and p.requests_per_s[3] == 0


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_latency_and_throughput_grow_with_concurrency(engine):
    p = agg(qwen(engine), np.array([1.0, 4, 16, 64, 256]))
    assert np.all(np.diff(p.ttft_s) > 0) and np.all(np.diff(p.tpot_s) > 0)
    assert np.all(np.diff(p.output_tokens_per_s) > 0)


def test_ttft_grows_about_linearly_with_concurrency_under_bursts():
    """Measured TTFT in closed-loop benchmarks grows ~linearly with concurrency (perf_model.md 6.3):
    doubling a large concurrency roughly doubles the queueing part, unlike a capped queueing factor."""
    p = agg(qwen(), np.array([256.0, 512.0]), isl=4096, osl=256)
    assert p.ttft_s[1] / p.ttft_s[0] > 1.6


def test_ttft_does_not_depend_on_output_length_when_decode_dominates():
    """The sample's vLLM rows keep TTFT flat across OSL 128..1024 at fixed concurrency and ISL."""
    p = agg(qwen(), 16.0, isl=4096, osl=np.array([512.0, 1024.0, 4096.0]))
    assert p.ttft_s.max() / p.ttft_s.min() < 1.1


def test_short_outputs_feel_other_prompts_in_tpot():
    p = agg(qwen(), 64.0, isl=4096, osl=np.array([128.0, 1024.0]))
    assert p.tpot_s[0] > 1.5 * p.tpot_s[1]


def test_kv_capacity_limits_the_running_batch_and_queues_the_rest():
    t = qwen()
    cap = kv_capacity_requests(t.serving, 100_000, 4096, 1024)
    assert cap == np.floor(100_000 / (4096 + 512))
    assert kv_capacity_requests(qwen("trtllm").serving, 100_000, 4096, 1024) == np.floor(100_000 / 5120)
    small, big = agg(t, 128.0, isl=4096, osl=1024, kv=100_000), agg(t, 128.0, isl=4096, osl=1024, kv=1e7)
    assert float(small.running) == cap and float(small.queued) == 128 - cap
    assert float(small.ttft_s) > 3 * float(big.ttft_s)
    assert float(small.output_tokens_per_s) < float(big.output_tokens_per_s)


def test_max_num_seqs_caps_the_batch():
    p = agg(qwen(), 256.0, seqs=64)
    assert float(p.running) == 64 and float(p.queued) == 192


def test_open_loop_matches_rate_and_saturates():
    t = qwen()
    rates = np.array([0.1, 1.0, 4.0, 1e4])
    p = aggregated_at_rate(t, Parallel.of(4), 1024, 512, rates, 8192, 1024, 1e6)
    assert p.output_tokens_per_s[:3] == pytest.approx(rates[:3] * 512)
    assert np.all(np.diff(p.ttft_s[:3]) > 0) and np.isinf(p.ttft_s[3])
    assert p.tpot_s[0] < p.tpot_s[2]


def test_max_batch_is_kv_limited():
    t = qwen()
    assert float(max_batch(t, 4000, 500, 900_000, 1024)) == np.floor(900_000 / 4250)
    assert float(max_batch(t, 4000, 500, 900_000, 64)) == 64


def test_kv_transfer_is_bytes_over_parallel_links():
    """Qwen3-32B: 64 layers x 2 x 8 KV heads x 128 x 2 bytes = 256 KiB per token (bf16)."""
    t = qwen()
    assert float(kv_cache_bytes(t, 4000)) == pytest.approx(4000 * 64 * 2 * 8 * 128 * 2)
    bw = 450e9
    got = float(kv_transfer_s(t, t, 4, 4, 4000, bw))
    c = t.coef
    assert got == pytest.approx(c["kv_transfer_latency_s"] + 4000 * 262144 / (4 * bw * c["kv_transfer_efficiency"]))
    assert float(kv_transfer_s(t, t, 4, 1, 4000, bw)) > got


def test_disagg_rate_is_the_slower_pool_and_ttft_includes_the_transfer():
    t = qwen()
    args = dict(isl=4000, osl=500, prefill_budget=8192, decode_max_seqs=1024, decode_kv_tokens=1e6, link_bw=50e9)
    one = disaggregated(t, t, Parallel.of(4), Parallel.of(4), concurrency=64.0, prefill_workers=1.0,
                        decode_workers=1.0, **args)
    assert float(one.requests_per_s) <= min(float(one.prefill_capacity_rps), float(one.decode_capacity_rps)) * 1.0001
    assert float(one.ttft_s) > float(one.kv_transfer_s) + float(one.prefill_s) * 0.99
    more_decode = disaggregated(t, t, Parallel.of(4), Parallel.of(4), concurrency=64.0, prefill_workers=1.0,
                                decode_workers=2.0, **args)
    assert float(more_decode.tpot_s) < float(one.tpot_s)
    x = matched_prefill_workers(float(one.prefill_capacity_rps), 4.0, np.array([1.0, 3.0, 10.0]))
    assert np.all(np.diff(x) >= 0) and x[0] >= 1


def test_disagg_broadcasts_like_a_loop():
    t = qwen()
    ys = np.array([1.0, 2.0, 3.0])
    kw = dict(isl=2048, osl=256, concurrency=48.0, prefill_workers=1.0, prefill_budget=8192, decode_max_seqs=512,
              decode_kv_tokens=5e5, link_bw=450e9)
    grid = disaggregated(t, t, Parallel.of(2), Parallel.of(4), decode_workers=ys, **kw)
    for i, y in enumerate(ys):
        one = disaggregated(t, t, Parallel.of(2), Parallel.of(4), decode_workers=y, **kw)
        assert float(one.ttft_s) == pytest.approx(grid.ttft_s[i]) and float(one.tpot_s) == pytest.approx(grid.tpot_s[i])


def test_one_arrival_model_serves_both_paths(monkeypatch):
    """The aggregated engine's prompts and the disaggregated prefill pool's go through the same
    closed-loop arrival model (serving.prompt_queue): the first wave's burst, then groups that wait for
    another group's prompt step only as often as the server is busy with them."""
    import servewise.estimator.disagg as dis
    import servewise.estimator.serving as srv

    calls: list[str] = []
    real = srv.prompt_queue

    def spy(*a, **kw):
        calls.append("called")
        return real(*a, **kw)

    monkeypatch.setattr(srv, "prompt_queue", spy)
    monkeypatch.setattr(dis, "prompt_queue", spy)
    t = qwen("trtllm")
    agg(t, 16.0)
    n_agg = len(calls)
    disaggregated(t, t, Parallel.of(4), Parallel.of(4), 4000, 500, 16.0, 1.0, 1.0, 8192, 64, 1e6, 50e9)
    assert n_agg > 0 and len(calls) > n_agg


def test_the_cohort_comes_back_one_prompt_step_apart():
    """Later groups wait for the preceding group's prompt step (H - 1) / H of the time, H prompt steps per
    cycle: the only group never waits; a decode step (aggregated) or nothing (an idle prefill pool) else."""
    from servewise.estimator.serving import others_busy, prompt_queue

    assert others_busy(1.0) == 0.0 and others_busy(0.3) == 0.0
    assert others_busy(10.0) == pytest.approx(0.9)
    # no first-wave weight (k -> inf): own step plus busy x another's step plus the rest x the idle step
    assert prompt_queue(0.0, 1.0, 0.1, 1.0, 10.0, 1e12, 0.9, 0.02) == pytest.approx(0.1 + 0.9 * 0.1 + 0.1 * 0.02)


def test_prefill_queueing_falls_with_more_prefill_workers():
    """One client per prefill rank never queues (its prompt step alone); spreading the same clients over
    more prefill workers shortens the wait for the others' steps and the first wave's burst."""
    t = qwen("trtllm")
    kw = dict(isl=4000, osl=500, prefill_budget=4096, decode_max_seqs=64, decode_kv_tokens=1e6, link_bw=50e9)
    waits = [float(disaggregated(t, t, Parallel.of(4), Parallel.of(4), concurrency=16.0, prefill_workers=x,
                                 decode_workers=1.0, **kw).prefill_s) for x in (1.0, 2.0, 4.0, 16.0)]
    assert all(b < a for a, b in zip(waits, waits[1:], strict=False))
    alone = disaggregated(t, t, Parallel.of(4), Parallel.of(4), concurrency=16.0, prefill_workers=16.0,
                          decode_workers=1.0, **kw)
    assert float(alone.prefill_s) == pytest.approx(float(alone.prefill_step.total_s), rel=1e-9)
