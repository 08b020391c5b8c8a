"""Disaggregated serving: a prefill pool, the KV-cache transfer, and a decode pool, in a closed loop.

``x`` prefill workers run prompts only (steps of up to ``B`` prompt tokens, no decodes); each finished
prompt's KV cache crosses the link between the pools; ``y`` decode workers run decode-only steps over
their batch. The system's request rate is the smaller of the two pools' rates (rate matching); the
pool that is not the bottleneck idles part of the time. Closed loop (ARCHITECTURE.md section 3):
``c`` clients, ``c = rate x (TTFT + (osl - 1) TPOT)`` (``serving.closed_loop``, request overhead
included); prompts queue at the prefill pool under the same arrival model as an aggregated engine's
prompts (``serving.prompt_queue``: the first wave's burst, then the cohort's groups one prompt step apart,
``serving.others_busy``; the pool is idle, not decoding, between them), then wait the KV transfer, then
the first decode step. Open loop at a request rate (Poisson arrivals): ``disaggregated_at_rate``.
The pools may use different GPUs (heterogeneous): each has its own ``PerfTarget``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servewise.estimator.perf import ArrayLike, Parallel, PerfTarget, StepTime, step_time
from servewise.estimator.serving import closed_loop, kv_capacity_requests, others_busy, prompt_queue


@dataclass(frozen=True)
class DisaggPoint:
    """System figures (arrays) and per-role detail. Rates are for the whole xPyD system."""

    ttft_s: np.ndarray
    tpot_s: np.ndarray
    requests_per_s: np.ndarray
    output_tokens_per_s: np.ndarray
    kv_transfer_s: np.ndarray
    prefill_s: np.ndarray            # prefill-pool part of TTFT: queueing + own prompt
    prefill_capacity_rps: np.ndarray
    decode_capacity_rps: np.ndarray
    decode_batch: np.ndarray         # sequences per decode DP rank
    prefill_bound: np.ndarray
    prefill_step: StepTime
    decode_step: StepTime

    @property
    def prefill_utilization(self) -> np.ndarray:
        return self.requests_per_s / self.prefill_capacity_rps

    @property
    def decode_utilization(self) -> np.ndarray:
        return self.requests_per_s / self.decode_capacity_rps


def kv_cache_bytes(t: PerfTarget, isl) -> np.ndarray:
    """KV bytes of one prompt, whole model: per attention layer kv elements x tokens (sliding layers hold
    at most the window) x bytes per element (MLA: the latent + rope key)."""
    a = t.arch
    per = a.kv_elements_per_token_per_layer() * t.kv_bytes_per_element
    n_full, n_slide = a.layer_counts.full, a.layer_counts.sliding
    isl = np.asarray(isl, dtype=np.float64)
    held = n_full * isl + n_slide * (np.minimum(isl, a.sliding_window) if a.sliding_window else isl)
    return per * held


def kv_transfer_s(prefill: PerfTarget, decode: PerfTarget, prefill_tp, decode_tp, isl, link_bw) -> np.ndarray:
    """KV transfer of one prompt between the pools: latency + bytes / (streams x link bandwidth x efficiency).

    GQA caches are sharded by KV head, so min(prefill TP, decode TP) GPU pairs move their shards in
    parallel; an MLA latent is replicated on every TP rank, so each decode rank receives all of it.
    """
    c = prefill.coef
    streams = 1.0 if prefill.arch.mla else np.minimum(prefill_tp, decode_tp)
    body = kv_cache_bytes(prefill, isl) / (streams * np.asarray(link_bw) * c["kv_transfer_efficiency"])
    return c["kv_transfer_latency_s"] + body


def _prefill_pool(t: PerfTarget, par: Parallel, isl, prompts_per_rank, budget):
    """A prefill-only rank's steps: the first wave's burst (all its prompts queued, steps of up to ``budget``
    tokens) and a later group's step (``prefill_group_requests`` prompts), with the prompts each step holds
    (``1 / a``) and the rank's prompt capacity when busy (prompts then queue, and pipeline stages take one
    each: ``step_time``)."""
    c = t.coef
    p0 = np.minimum(budget, np.maximum(prompts_per_rank, 1.0) * isl)
    burst = step_time(t, par, p0, isl / 2.0, 0.0, 0.0, np.maximum(p0 / isl, 1.0))
    group = np.minimum(prompts_per_rank, c["prefill_group_requests"])
    p = np.minimum(budget, np.maximum(group, 1.0) * isl)
    heavy = step_time(t, par, p, isl / 2.0, 0.0, 0.0, np.maximum(p / isl, 1.0))
    pf = np.minimum(budget, np.maximum(np.maximum(group, np.minimum(prompts_per_rank, par.pp)), 1.0) * isl)
    full = step_time(t, par, pf, isl / 2.0, 0.0, 0.0, np.maximum(pf / isl, 1.0))
    capacity = pf / (isl * full.total_s)        # prompts per second per rank when busy
    return burst, isl / p0, heavy, isl / p, capacity


def disaggregated(prefill: PerfTarget, decode: PerfTarget, p_par: Parallel, d_par: Parallel, isl: ArrayLike,
                  osl: ArrayLike, concurrency: ArrayLike, prefill_workers: ArrayLike, decode_workers: ArrayLike,
                  prefill_budget: ArrayLike, decode_max_seqs: ArrayLike, decode_kv_tokens: ArrayLike,
                  link_bw: ArrayLike, requests_per_client: float | None = None,
                  iterations: int = 40) -> DisaggPoint:
    """Closed-loop steady state of an xPyD system at ``concurrency`` clients (module doc)."""
    isl = np.asarray(isl, dtype=np.float64)
    osl = np.maximum(np.asarray(osl, dtype=np.float64), 2.0)
    conc = np.asarray(concurrency, dtype=np.float64)
    x = np.asarray(prefill_workers, dtype=np.float64) * p_par.dp
    y = np.asarray(decode_workers, dtype=np.float64) * d_par.dp
    k = requests_per_client or prefill.coef["requests_per_client"]
    budget = np.maximum(np.asarray(prefill_budget, dtype=np.float64), isl)
    prompts = conc / x                         # clients per prefill rank
    burst, a0, p_step, a, cap_rank = _prefill_pool(prefill, p_par, isl, prompts, budget)
    th = p_step.total_s
    mu_p = x * cap_rank
    t_kv = kv_transfer_s(prefill, decode, p_par.tp, d_par.tp, isl, link_bw)
    cap_d = _decode_cap(decode, decode_kv_tokens, isl, osl, decode_max_seqs)
    ctx = isl + osl / 2.0
    n_d = np.minimum(np.maximum(conc / y, 1.0), cap_d)
    ttft_p = prompt_queue(burst.total_s, a0, th, a, prompts, k, others_busy(prompts * a), 0.0)
    for _ in range(iterations):
        d_step = step_time(decode, d_par, 0.0, 0.0, n_d, ctx)
        tl = d_step.total_s
        mu_d = y * n_d / ((osl - 1.0) * tl)
        rate = np.minimum(mu_d, mu_p)
        base = ttft_p + t_kv + tl + decode.coef["request_overhead_s"]
        want = np.minimum(conc - rate * base, rate * (osl - 1.0) * tl) / y
        n_d = 0.5 * n_d + 0.5 * np.clip(want, 1.0, cap_d)
    d_step = step_time(decode, d_par, 0.0, 0.0, n_d, ctx)
    tl = d_step.total_s
    mu_d = y * cap_d / ((osl - 1.0) * step_time(decode, d_par, 0.0, 0.0, cap_d, ctx).total_s)
    base = ttft_p + t_kv + tl + decode.coef["request_overhead_s"]
    # Little's law (serving.closed_loop): what the pools complete at most, the rest waits before its first token
    ttft, tpot, rate = closed_loop(conc, np.minimum(y * n_d / ((osl - 1.0) * tl), mu_p), base, tl, osl)
    return DisaggPoint(ttft_s=ttft, tpot_s=tpot, requests_per_s=rate, output_tokens_per_s=rate * osl,
                       kv_transfer_s=t_kv + 0 * ttft, prefill_s=ttft_p + 0 * ttft, prefill_capacity_rps=mu_p + 0 * ttft,
                       decode_capacity_rps=mu_d + 0 * ttft, decode_batch=n_d, prefill_bound=mu_p <= rate * 1.0001,
                       prefill_step=p_step, decode_step=d_step)


def _decode_cap(decode: PerfTarget, kv_tokens, isl, osl, max_seqs) -> np.ndarray:
    """Sequences a decode rank runs at most: its KV capacity in requests, capped by max_num_seqs."""
    return np.minimum(np.maximum(kv_capacity_requests(decode.serving, kv_tokens, isl, osl), 1.0), max_seqs)


def disaggregated_at_rate(prefill: PerfTarget, decode: PerfTarget, p_par: Parallel, d_par: Parallel, isl: ArrayLike,
                          osl: ArrayLike, request_rate: ArrayLike, prefill_workers: ArrayLike,
                          decode_workers: ArrayLike, prefill_budget: ArrayLike, decode_max_seqs: ArrayLike,
                          decode_kv_tokens: ArrayLike, link_bw: ArrayLike, iterations: int = 60) -> DisaggPoint:
    """Open-loop steady state of an xPyD system at ``request_rate`` (Poisson arrivals, requests/s for the
    system), the disaggregated counterpart of ``serving.aggregated_at_rate``.

    Prefill: each of the ``x`` prefill ranks receives ``rate / x`` prompts/s and serves one in
    ``s = isl x`` the marginal cost of a prompt token (``max(isl / budget, 1)`` steps of a one-prompt
    step); it is busy ``rho = rate s / x`` of the time and a prompt waits the M/D/1 queue
    ``rho s / (2 (1 - rho))`` before its own ``s``. Decode: the batch per rank is the fixed point
    ``n = (rate / y) (osl - 1) t_decode(n)`` (Little's law). TTFT = prefill wait + prefill + KV transfer +
    one decode step + request overhead; TPOT = the decode step. A rate either pool cannot sustain
    (``rho >= 1``, or a batch beyond the decode KV capacity / max_num_seqs) gives infinite TTFT and no
    throughput; sustained, requests/s = the rate and tokens/s = rate x osl.
    """
    isl = np.asarray(isl, dtype=np.float64)
    osl = np.maximum(np.asarray(osl, dtype=np.float64), 2.0)
    lam = np.asarray(request_rate, dtype=np.float64)
    x = np.asarray(prefill_workers, dtype=np.float64) * p_par.dp
    y = np.asarray(decode_workers, dtype=np.float64) * d_par.dp
    budget = np.maximum(np.asarray(prefill_budget, dtype=np.float64), isl)
    p_step = step_time(prefill, p_par, np.minimum(budget, isl), isl / 2.0, 0.0, 0.0, 1.0)
    s = p_step.total_s * np.maximum(isl / budget, 1.0)
    # capacity: under load each pipeline stage works on its own prompt (``step_time``)
    pf = np.minimum(budget, np.minimum(p_par.pp, budget / isl) * isl)
    mu_p = x * pf / (isl * step_time(prefill, p_par, pf, isl / 2.0, 0.0, 0.0, np.maximum(pf / isl, 1.0)).total_s
                     * np.maximum(isl / budget, 1.0))
    rho = np.minimum(lam / mu_p, 0.999)
    ttft_p = s + rho * s / (2.0 * (1.0 - rho))
    t_kv = kv_transfer_s(prefill, decode, p_par.tp, d_par.tp, isl, link_bw)
    cap_d = _decode_cap(decode, decode_kv_tokens, isl, osl, decode_max_seqs)
    ctx = isl + osl / 2.0
    n_d = np.ones(np.broadcast_shapes(np.shape(lam), np.shape(cap_d), np.shape(y), np.shape(isl)))
    for _ in range(iterations):
        tl = step_time(decode, d_par, 0.0, 0.0, np.minimum(n_d, cap_d), ctx).total_s
        n_d = 0.5 * n_d + 0.5 * np.maximum(lam / y * (osl - 1.0) * tl, 1.0)
    d_step = step_time(decode, d_par, 0.0, 0.0, np.minimum(n_d, cap_d), ctx)
    tl = d_step.total_s
    mu_d = y * cap_d / ((osl - 1.0) * step_time(decode, d_par, 0.0, 0.0, cap_d, ctx).total_s)
    stable = (lam < 0.999 * mu_p) & (n_d <= cap_d * 1.0001)
    ttft = np.where(stable, ttft_p + t_kv + tl + decode.coef["request_overhead_s"], np.inf)
    rate = np.where(stable, lam, 0.0)
    z = np.zeros(np.shape(ttft))
    return DisaggPoint(ttft_s=ttft, tpot_s=tl + z, requests_per_s=rate, output_tokens_per_s=rate * osl,
                       kv_transfer_s=t_kv + z, prefill_s=ttft_p + z, prefill_capacity_rps=mu_p + z,
                       decode_capacity_rps=mu_d + z, decode_batch=np.minimum(n_d, cap_d) + z,
                       prefill_bound=~stable & (lam >= 0.999 * mu_p), prefill_step=p_step, decode_step=d_step)


def matched_prefill_workers(prefill_capacity_rps_per_worker, decode_rps_per_worker, decode_workers) -> np.ndarray:
    """Prefill workers that keep up with ``decode_workers``: ceil(y x decode rate / prefill rate) (xPyD)."""
    return np.maximum(np.ceil(decode_workers * np.asarray(decode_rps_per_worker)
                              / np.asarray(prefill_capacity_rps_per_worker) - 1e-9), 1.0)
