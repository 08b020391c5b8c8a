"""Serving dynamics: from step times to TTFT, TPOT and throughput of one aggregated worker.

Closed loop (ARCHITECTURE.md section 3): ``c`` clients each keep one request in flight; a request is
``isl`` prompt tokens, then ``osl`` output tokens; the client sends the next request when one ends.
The engine runs steps under a token budget ``B`` (``max_num_batched_tokens``; SGLang's chunked
prefill size): every step advances all running decodes by one token and, when prompts wait, adds up to
``B`` prompt tokens ("heavy" step); steps without prompt tokens are "light".

Mechanisms modelled (all closed form, numpy, broadcasting over every input):

- **Admission**: at most ``n = min(c, max_num_seqs, KV capacity in requests)`` run; the other
  ``c - n`` wait, and by Little's law the wait is ``(c - n) / throughput``. Engines that reserve a
  request's whole KV at admission (``kv_reservation: whole_request``, TRT-LLM) wait before the first
  token; engines that allocate as they go and preempt (vLLM, SGLang) split the wait between TTFT and
  TPOT (``before_first_token``).
- **Chunked prefill**: prompts are packed into heavy steps of at most ``B'`` tokens (``B`` minus the
  decodes sharing the step in engines that mix them, ``scheduling: mixed``: vLLM and TRT-LLM; SGLang
  pauses decoding for its prefill batches, ``prefill_first``). A prompt takes ``a = isl / P_h`` heavy
  steps (a < 1: several prompts share one). Each engine version's scheduling facts, with their sources,
  are in ``perfdata/engines/<engine>.yaml`` (``serving``).
- **Burst queueing** (mixed engines, ``prompt_queue``; the disaggregated prefill pool uses the same
  function, since it sees the same clients): the load generator starts all ``c`` requests at once, so
  the first wave's prompts queue behind one another: a mean of ``(n a + max(1, a)) / 2`` full heavy
  steps. Later waves arrive in groups of ``prefill_group_requests`` prompts (fitted; the sample's
  requests that finished in the same step re-arrive a few milliseconds apart and split into small
  groups), each waiting for the step in progress -- another group's heavy step with probability
  ``(H - 1) / H`` (``others_busy``: ``H = n a`` heavy steps per cycle; the cohort the first wave formed
  comes back one prompt step apart every cycle), else a decode step -- then its own. The reported mean
  weights the first wave by ``1 / requests_per_client`` (fitted: the requests each client sends in a
  benchmark run).
- **Prefill-first engines** (SGLang): requests that start decoding together finish together, so every
  cycle is a burst: all prompts are prefilled (mean wait half of them), then all decode; a request's
  decode window holds the prompts prefilled after its own.
- **Prefill interference**: a request's ``osl - 1`` decode steps include the heavy steps of the other
  ``n - 1`` requests' prompts, ``(n - 1) a`` of them (capped at one per step where steps mix); TPOT is
  the mean step time over that window.
- **Prefill saturation**: prompt throughput cannot exceed ``P_h / (isl t_heavy)``; past it, every step
  is heavy and the extra requests queue (TTFT grows linearly with concurrency, as measured).
- **Little's law** (``closed_loop``): the clients' cycle is the latency they see, request overhead
  (``request_overhead_s``: HTTP, tokenisation, detokenisation) included, so requests/s =
  ``c / (TTFT + (osl - 1) TPOT)`` of the reported TTFT and TPOT, and tokens/s = that x ``osl``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servewise.estimator.perf import ArrayLike, Parallel, PerfTarget, StepTime, step_time
from servewise.perfdata.engines import ServingBehaviour

@dataclass(frozen=True)
class ServingPoint:
    """One worker's steady state (arrays of the broadcast shape). Rates are per worker."""

    ttft_s: np.ndarray
    tpot_s: np.ndarray
    requests_per_s: np.ndarray
    output_tokens_per_s: np.ndarray
    running: np.ndarray           # requests decoding or prefilling in the engine (per DP rank)
    queued: np.ndarray            # requests waiting for admission (per DP rank)
    heavy: StepTime               # a step carrying prompt tokens
    light: StepTime               # a decode-only step
    prefill_bound: np.ndarray     # True where prompt throughput, not decoding, limits the rate
    prompt_steps: np.ndarray      # heavy steps a request's own prompt takes (1 where prompts share a step)

    @property
    def concurrency(self) -> np.ndarray:
        return self.running + self.queued


def kv_capacity_requests(serving: ServingBehaviour, kv_tokens, isl, osl) -> np.ndarray:
    """Requests the KV cache holds at once: whole requests where the engine reserves them, otherwise
    at their mean footprint over a request's life, isl + osl / 2 tokens."""
    per = isl + osl if serving.kv_reservation == "whole_request" else isl + osl / 2.0
    return np.floor(np.asarray(kv_tokens, dtype=np.float64) / per)


def before_first_token(serving: ServingBehaviour, isl, osl) -> np.ndarray:
    """Share of the KV-capacity wait a request spends before its first token.

    Engines that reserve a request's whole KV footprint at admission (TRT-LLM) queue it until then: all
    of the wait is TTFT. Engines that allocate as tokens are generated (vLLM, SGLang) admit a request
    once its prompt fits and preempt running ones when decoding runs out of blocks, so the wait splits
    by footprint: the prompt's share isl / (isl + osl) before the first token, the rest as stalls
    between output tokens (TPOT). Approximation of the preemption dynamics, not a fitted factor.
    """
    if serving.kv_reservation == "whole_request":
        return np.ones_like(np.asarray(isl, dtype=np.float64))
    return np.asarray(isl, dtype=np.float64) / (isl + osl)


def closed_loop(clients, capacity_rps, ttft_s, tpot_s, osl, share_before_first_token=1.0):
    """Little's law over a closed loop: ``clients`` each send their next request when the previous one
    ends, so requests/s = clients / (TTFT + (osl - 1) TPOT) with the latencies the clients see.

    ``ttft_s`` / ``tpot_s`` are the latencies of an admitted request (request overhead included);
    ``capacity_rps`` what the serving system completes at most. The loop runs at the smaller of the two
    rates; when the capacity binds, the clients beyond it wait ``clients / rate - cycle`` per request,
    ``share_before_first_token`` of it before the first token, the rest between output tokens. Returns
    (TTFT, TPOT, requests/s) with ``TTFT + (osl - 1) TPOT = clients / requests/s`` exactly, which holds
    over a benchmark run of N requests too: it lasts (N / clients) x the mean end-to-end latency.
    """
    cycle = ttft_s + (osl - 1.0) * tpot_s
    rate = np.minimum(capacity_rps, clients / cycle)
    wait = np.maximum(clients / rate - cycle, 0.0)
    return (ttft_s + share_before_first_token * wait, tpot_s + (1.0 - share_before_first_token) * wait / (osl - 1.0),
            rate)


def _heavy(t: PerfTarget, par: Parallel, isl, osl, n, room, prompts, mixed):
    """A heavy step carrying up to ``prompts`` prompts (at most ``room`` tokens) beside the decodes."""
    p = np.minimum(room, np.maximum(prompts, 1.0) * isl)
    decoding = np.where(mixed, np.maximum(n - np.maximum(p / isl, 1.0), 0.0), 0.0)
    st = step_time(t, par, p, isl / 2.0, decoding, isl + osl / 2.0, np.maximum(p / isl, 1.0))
    return st, p


def prompt_queue(th_burst, a_burst, th, a, prompts, k, busy, idle_step_s):
    """Mean time from a prompt's arrival to its first token's step, over a closed-loop benchmark run, at a
    server of prompt steps (an aggregated engine's heavy steps, or one prefill rank): the one arrival
    model the aggregated and the disaggregated paths share.

    The first wave is a burst of all ``prompts`` at once: a mean of half of them ahead, in steps of
    ``th_burst`` holding ``1 / a_burst`` prompts each. Later waves arrive in groups
    (``prefill_group_requests``) and wait for the step in progress -- another group's prompt step
    (``th``) with probability ``busy``, otherwise ``idle_step_s`` (a decode step of a mixed engine;
    nothing for a prefill-only pool, idle between prompts) -- then their own ``max(a, 1)`` steps. The
    run's mean weights the first wave by ``1 / k`` (``requests_per_client``)."""
    first = th_burst * (prompts * a_burst + np.maximum(a_burst, 1.0)) / 2.0
    wave = th * np.maximum(a, 1.0) + busy * th + (1.0 - busy) * idle_step_s
    return (first + (k - 1.0) * wave) / k


def others_busy(steps_per_cycle):
    """Probability that an arriving group finds another group's prompt step in progress: ``(H - 1) / H``
    with ``H`` prompt steps per cycle. In a closed loop started as one burst with fixed prompt and output
    lengths, the first wave's prompts leave the server one prompt step apart, finish one step apart and
    come back one step apart, cycle after cycle: every group but the cohort's first arrives while the
    previous group's step runs, however idle the server is in between (the sample's prefill pools at a
    few percent utilisation queue like this too: benchmarks.accuracy, disagg/ segments)."""
    h = np.maximum(steps_per_cycle, 1.0)
    return (h - 1.0) / h


def _mixed(t: PerfTarget, par: Parallel, isl, osl, n, budget, tl, requests_per_client):
    """Steps mix decodes and prompt chunks (vLLM, TRT-LLM): decodes first, prompts fill the budget."""
    c = t.coef
    room = np.maximum(budget - np.maximum(n - budget / isl, 0.0), 0.1 * budget)
    burst, p_burst = _heavy(t, par, isl, osl, n, room, n, True)                 # all prompts queued at once
    group = np.minimum(n, c["prefill_group_requests"])                          # prompts arriving together later
    heavy, p_heavy = _heavy(t, par, isl, osl, n, room, group, True)
    th = heavy.total_s
    extra = np.maximum(th - tl, 0.0)                           # what a heavy step adds to a decode window
    a = isl / p_heavy                                          # heavy steps per prompt
    tpot = tl + np.minimum((n - 1.0) * a, osl - 1.0) * extra / (osl - 1.0)
    k = requests_per_client or c["requests_per_client"]
    ttft_run = prompt_queue(burst.total_s, isl / p_burst, th, a, n, k, others_busy(n * a), tl)
    rate = n / (ttft_run + (osl - 1.0) * tpot)
    # prompts per second when every step is heavy: prompts then queue, and pipeline stages take one each
    full, p_full = _heavy(t, par, isl, osl, n, room, np.maximum(group, np.minimum(n, par.pp)), True)
    rate_prefill = p_full / (isl * full.total_s)
    bound = rate > rate_prefill
    return (heavy, ttft_run, np.where(bound, full.total_s, tpot), np.minimum(rate, rate_prefill), bound,
            np.maximum(a, 1.0))


def _prefill_first(t: PerfTarget, par: Parallel, isl, osl, n, budget, tl):
    """Prefill batches run before decoding resumes (SGLang's default): requests that finish together
    re-arrive together, every cycle is a burst. All ``n`` prompts are prefilled in chunks of the budget
    (mean wait: half of them), then all decode; a request's decode window holds the prefill chunks
    that follow its own."""
    heavy, p = _heavy(t, par, isl, osl, n, budget, n, False)
    th = heavy.total_s
    a = isl / p
    chunks = n * a
    own = np.maximum(a, 1.0)
    ttft = th * (chunks + own) / 2.0
    tpot = tl + th * np.maximum(chunks - own, 0.0) / 2.0 / (osl - 1.0)
    rate = n / (th * chunks + (osl - 1.0) * tl)
    return heavy, ttft, tpot, rate, np.asarray(chunks * th > (osl - 1.0) * tl), own


def aggregated(t: PerfTarget, par: Parallel, isl: ArrayLike, osl: ArrayLike, concurrency: ArrayLike,
               max_num_batched_tokens: ArrayLike, max_num_seqs: ArrayLike, kv_tokens: ArrayLike,
               requests_per_client: float | None = None) -> ServingPoint:
    """Closed-loop steady state of one aggregated worker at ``concurrency`` clients (see module doc).

    ``kv_tokens``: KV-cache capacity per DP rank in tokens (``budget.memory_terms(...).kv_cache_tokens``).
    Concurrency is per worker; it is spread evenly over the worker's ``dp`` attention ranks.
    """
    c = t.coef
    mixed = t.serving.scheduling == "mixed"
    isl = np.asarray(isl, dtype=np.float64)
    osl = np.maximum(np.asarray(osl, dtype=np.float64), 2.0)
    cr = np.maximum(np.asarray(concurrency, dtype=np.float64) / par.dp, 1.0)
    cap = np.maximum(kv_capacity_requests(t.serving, kv_tokens, isl, osl), 1.0)
    n = np.maximum(np.minimum(np.minimum(cr, max_num_seqs), cap), 1.0)
    budget = np.maximum(np.asarray(max_num_batched_tokens, dtype=np.float64), 1.0)
    light = step_time(t, par, 0.0, 0.0, n, isl + osl / 2.0)
    tl = light.total_s
    if mixed:
        heavy, ttft_run, tpot, rate, bound, own = _mixed(t, par, isl, osl, n, budget, tl, requests_per_client)
    else:
        heavy, ttft_run, tpot, rate, bound, own = _prefill_first(t, par, isl, osl, n, budget, tl)
    ttft, tpot, rate = closed_loop(cr, rate, ttft_run + c["request_overhead_s"], tpot, osl,
                                   before_first_token(t.serving, isl, osl))
    reqs = rate * par.dp
    return ServingPoint(ttft_s=ttft, tpot_s=tpot, requests_per_s=reqs, output_tokens_per_s=reqs * osl,
                        running=n + 0 * ttft, queued=np.maximum(cr - n, 0.0) + 0 * ttft, heavy=heavy,
                        light=light, prefill_bound=bound, prompt_steps=own + 0 * ttft)


def _prefill_token_cost(t: PerfTarget, par: Parallel, isl, osl, n, budget, tl, mixed):
    """Seconds a prompt token adds to the engine's time (marginal cost in a heavy step), and that heavy
    step. The step carries one prompt per pipeline stage (as many as the budget holds): under load the
    stages work on different prompts at once, while each prompt still passes every stage (the step's
    time is one prompt's own latency)."""
    room = np.where(mixed, np.maximum(budget - n, 0.1 * budget), budget)
    heavy, p = _heavy(t, par, isl, osl, n, room, par.pp, mixed)
    extra = np.maximum(heavy.total_s - tl, 0.0) if mixed else heavy.total_s
    return extra / p, heavy


def aggregated_at_rate(t: PerfTarget, par: Parallel, isl: ArrayLike, osl: ArrayLike, request_rate: ArrayLike,
                       max_num_batched_tokens: ArrayLike, max_num_seqs: ArrayLike, kv_tokens: ArrayLike,
                       iterations: int = 60) -> ServingPoint:
    """Open-loop steady state at ``request_rate`` (Poisson arrivals, requests/s per worker), by a fixed point
    on the running batch ``n = rate x (TTFT + (osl - 1) TPOT)`` (Little's law).

    Prompt work takes a fraction ``rho = rate x isl x cost_per_prompt_token`` of the engine's time, so each
    decode step stretches by ``1 / (1 - rho)`` (TPOT) and a prompt waits the M/D/1 queue
    ``rho s / (2 (1 - rho))`` for ``s = isl x cost`` plus half a step before its own heavy step. Rates the
    worker cannot sustain (rho >= 1, or the batch exceeds KV capacity / max_num_seqs) give infinite TTFT.
    """
    c = t.coef
    mixed = t.serving.scheduling == "mixed"
    isl = np.asarray(isl, dtype=np.float64)
    osl = np.maximum(np.asarray(osl, dtype=np.float64), 2.0)
    lam = np.asarray(request_rate, dtype=np.float64) / par.dp
    cap = np.minimum(np.maximum(kv_capacity_requests(t.serving, kv_tokens, isl, osl), 1.0), max_num_seqs)
    budget = np.maximum(np.asarray(max_num_batched_tokens, dtype=np.float64), 1.0)
    n = np.ones(np.broadcast_shapes(np.shape(lam), np.shape(isl), np.shape(osl), np.shape(cap), np.shape(par.tp)))
    for _ in range(iterations):
        light = step_time(t, par, 0.0, 0.0, np.minimum(n, cap), isl + osl / 2.0)
        tl = light.total_s
        cost, heavy = _prefill_token_cost(t, par, isl, osl, np.minimum(n, cap), budget, tl, mixed)
        s = isl * cost
        rho = lam * s
        stable = rho < 0.999
        rho_c = np.minimum(rho, 0.999)
        tpot = tl / (1.0 - rho_c)
        ttft = tl / 2.0 + rho_c * s / (2.0 * (1.0 - rho_c)) + heavy.total_s * np.maximum(isl / budget, 1.0)
        n_new = lam * (ttft + (osl - 1.0) * tpot)
        n = 0.5 * n + 0.5 * np.maximum(n_new, 1.0)
    stable = stable & (n <= cap * 1.0001)
    ttft = np.where(stable, ttft + c["request_overhead_s"], np.inf)
    reqs = np.where(stable, lam, 0.0) * par.dp
    return ServingPoint(ttft_s=ttft, tpot_s=tpot, requests_per_s=reqs, output_tokens_per_s=reqs * osl,
                        running=np.minimum(n, cap), queued=np.where(stable, 0.0, np.inf), heavy=heavy, light=light,
                        prefill_bound=~stable, prompt_steps=np.maximum(isl / budget, 1.0) + np.zeros(np.shape(ttft)))


def sustainable_rate(t: PerfTarget, par: Parallel, isl: float, osl: float, max_num_batched_tokens: float,
                     max_num_seqs: float, kv_tokens: float, rounds: int = 5, points: int = 16) -> float:
    """The highest request rate (requests/s per worker) at which ``aggregated_at_rate`` finds a steady
    state, for one configuration (scalar inputs): a k-section search, each round evaluating ``points``
    rates at once between the last stable and the first unstable one (``(points + 1) ** rounds``-fold
    narrower than the start, which is twice the closed-loop rate of a full batch, doubled until unstable)."""
    n = max_batch(t, isl, osl, kv_tokens, max_num_seqs)
    full = aggregated(t, par, isl, osl, n * par.dp, max_num_batched_tokens, max_num_seqs, kv_tokens)

    def stable(rates: np.ndarray) -> np.ndarray:
        pt = aggregated_at_rate(t, par, isl, osl, rates, max_num_batched_tokens, max_num_seqs, kv_tokens)
        return np.isfinite(np.asarray(pt.ttft_s).reshape(-1))

    lo, hi = 0.0, 2.0 * float(np.asarray(full.requests_per_s).reshape(-1)[0])
    for _ in range(20):
        if not stable(np.array([hi]))[0]:
            break
        lo, hi = hi, 2.0 * hi
    for _ in range(rounds):
        grid = lo + (hi - lo) * np.arange(1, points + 1) / (points + 1)
        ok = stable(grid)
        below = np.flatnonzero(ok)
        above = np.flatnonzero(~ok)
        lo = float(grid[below[-1]]) if len(below) else lo
        hi = float(grid[above[0]]) if len(above) else hi
    return lo


def max_batch(t: PerfTarget, isl, osl, kv_tokens, max_num_seqs) -> np.ndarray:
    """The largest batch a worker rank runs offline: KV capacity in requests, capped by max_num_seqs."""
    return np.maximum(np.minimum(kv_capacity_requests(t.serving, kv_tokens, isl, osl), max_num_seqs), 1.0)
