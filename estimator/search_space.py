"""The candidate axes of the search: worker layouts (TP / PP / DP / EP), batch-token budgets, memory
fractions and batch sizes, as numpy arrays.

Layouts (one engine instance, a "worker", on ``tp x pp x dp`` GPUs):

- **TP** in powers of two up to the GPUs one node holds *and* its scale-up domain
  (``GpuSpec.scale_up_domain_gpus``: an NVLink pair on H100 NVL, 8 on an HGX board), dividing the
  attention heads, and dividing or divided by the KV heads (``context.check_parallelism``).
- **PP** only once TP fills that domain: pipeline stages are how a model larger than one NVLink domain
  is split across nodes; below it a wider TP is the faster split (and PP has no measurements behind
  its band, ``uncertainty.UNSEEN_PP``).
- **DP / EP** (mixture-of-experts models only): ``dp = 1`` with experts sharded by TP (``ep = 1``) or
  spread whole over the TP ranks (``ep = tp``); or attention data parallel, ``dp > 1`` attention ranks of
  ``tp`` GPUs each whose experts span all of them (``ep = tp x dp``: vLLM ``--data-parallel-size`` with
  ``--enable-expert-parallel``, SGLang ``--enable-dp-attention``, TensorRT-LLM ``enable_attention_dp``,
  which runs attention at TP 1, so ``tp = 1`` there). Dense models get no DP inside a worker: replicas
  of the worker are the same thing with simpler deployment.
- **TensorRT-LLM** workers stay within one node (across nodes trtllm-serve needs an MPI launcher, which
  servewise does not emit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from servewise.estimator.context import Context
from servewise.perfdata import get_gpu
from servewise.perfdata.gpus import GpuSpec

# Per-rank batch sizes swept in max-throughput mode (aiconfigurator's sweep, perf_model.md section 4,
# thinned: every step of it past 16 roughly x1.25-1.5).
BATCH_GRID = np.array([1, 2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512,
                       768, 1024])
# Tokens per engine step (max_num_batched_tokens) swept for aggregated and prefill workers.
BUDGET_GRID = (2048, 4096, 8192, 16384)
# Offsets from the engine's default memory fraction tried by the search; the ranking prefers the default.
FRACTION_OFFSETS = (-0.05, 0.0, 0.05)
MAX_FRACTION = 0.95

@dataclass(frozen=True)
class Layouts:
    """Worker layouts (parallel arrays, one entry per layout)."""

    tp: np.ndarray
    pp: np.ndarray
    dp: np.ndarray
    ep: np.ndarray

    @property
    def gpus(self) -> np.ndarray:
        return self.tp * self.pp * self.dp

    @property
    def attention_dp(self) -> np.ndarray:
        return self.dp > 1

    def __len__(self) -> int:
        return len(self.tp)

    def take(self, idx) -> Layouts:
        return Layouts(self.tp[idx], self.pp[idx], self.dp[idx], self.ep[idx])


def max_tp(gpu: GpuSpec, gpus_per_node: int) -> int:
    """The widest TP group: one node's GPUs within one scale-up domain, a power of two."""
    limit = min(gpus_per_node, gpu.scale_up_domain_gpus)
    return 1 << (max(limit, 1).bit_length() - 1)


def _powers(limit: int) -> list[int]:
    return [1 << i for i in range(max(limit, 1).bit_length()) if (1 << i) <= limit]


def tp_sizes(ctx: Context, gpu: GpuSpec, gpus_per_node: int, budget_gpus: int) -> list[int]:
    a = ctx.model.arch
    out = []
    for tp in _powers(min(max_tp(gpu, gpus_per_node), budget_gpus)):
        if a.num_attention_heads % tp:
            continue
        if not a.mla and a.num_kv_heads % tp and tp % a.num_kv_heads:
            continue
        out.append(tp)
    return out


def layouts(ctx: Context, gpu: GpuSpec, gpus_per_node: int, budget_gpus: int) -> Layouts:
    """Every worker layout of at most ``budget_gpus`` GPUs the engine can run (module docstring)."""
    a = ctx.model.arch
    tps = tp_sizes(ctx, gpu, gpus_per_node, budget_gpus)
    if not tps:
        return Layouts(*(np.zeros(0, dtype=np.int64) for _ in range(4)))
    rows: list[tuple[int, int, int, int]] = []
    full = tps[-1]
    experts = a.moe.num_experts if a.moe else 0
    for tp in tps:
        rows.append((tp, 1, 1, 1))
        if experts and tp > 1 and experts % tp == 0:
            rows.append((tp, 1, 1, tp))
    for pp in _powers(min(budget_gpus // full, a.num_layers))[1:]:
        rows.append((full, pp, 1, 1))
        if experts and full > 1 and experts % full == 0:
            rows.append((full, pp, 1, full))
    if experts:
        for tp in tps:
            if ctx.engine_name == "trtllm" and tp > 1:
                continue
            for dp in _powers(budget_gpus // tp)[1:]:
                if experts % (tp * dp) == 0:
                    rows.append((tp, 1, dp, tp * dp))
    if ctx.engine_name == "trtllm":
        # trtllm-serve starts a worker across nodes only under an MPI launcher (Slurm or mpirun), which
        # servewise does not emit (render.engines.trtllm refuses such a plan): each worker within a node
        rows = [r for r in rows if r[0] * r[1] * r[2] <= gpus_per_node]
    if ctx.engine_name == "vllm" and "k8s" in ctx.profile.deploy.targets:
        # a LeaderWorkerSet gives every non-leader pod one template, so it can carry only one
        # --data-parallel-start-rank: vLLM data parallel spans at most two nodes there (render refuses more)
        rows = [r for r in rows if r[2] == 1 or r[0] * r[1] * r[2] <= 2 * gpus_per_node]
    if not rows:
        return Layouts(*(np.zeros(0, dtype=np.int64) for _ in range(4)))
    arr = np.array(rows, dtype=np.int64)
    return Layouts(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])


def prefill_gpu(ctx: Context) -> GpuSpec:
    """The prefill pool's GPU: ``hardware.prefill_gpu`` when set (heterogeneous), else the hardware's."""
    pid = ctx.profile.hardware.prefill_gpu
    return get_gpu(pid) if pid and pid != ctx.hardware.gpu.id else ctx.hardware.gpu


def budgets(ctx: Context, *, prefill_only: bool = False) -> np.ndarray:
    """max_num_batched_tokens values tried: the grid plus the engine's default; a prefill-only worker and
    an engine without chunked prefill by default (``serving.chunked_prefill``, perfdata/engines) need a
    whole prompt per step (the smallest such budget rounded up
    to 1,024 tokens replaces the smaller ones)."""
    isl = ctx.profile.workload.isl
    vals = set(BUDGET_GRID) | {engine_batch_defaults(ctx, 1)[1]}
    if prefill_only or not ctx.engine.serving.chunked_prefill:
        whole = int(math.ceil(isl / 1024) * 1024)
        vals = {v for v in vals if v >= isl} | {whole}
    return np.array(sorted(vals), dtype=np.int64)


_DEFAULTS: dict[tuple, tuple[int, int]] = {}


def engine_batch_defaults(ctx: Context, tp: int, gpu: GpuSpec | None = None) -> tuple[int, int]:
    """(max_num_seqs, max_num_batched_tokens) the engine picks itself for a worker of this TP."""
    from servewise.estimator.engine_defaults import batch_defaults

    g = gpu or ctx.hardware.gpu
    mem = g.memory_bytes  # the engines pick their defaults by the device's memory, not by what is free
    key = (ctx.engine_name, ctx.engine.version, g.id, mem, int(tp), ctx.max_model_len)
    if key not in _DEFAULTS:
        d = batch_defaults(ctx.engine_name, ctx.engine.version, g, mem, int(tp), ctx.max_model_len)
        _DEFAULTS[key] = (d.max_num_seqs, d.max_num_batched_tokens)
    return _DEFAULTS[key]


def engine_defaults_by_tp(ctx: Context, tp) -> tuple[np.ndarray, np.ndarray]:
    """(max_num_seqs, max_num_batched_tokens) the engine picks itself, per element of ``tp`` (one
    lookup per distinct TP)."""
    tp = np.asarray(tp, dtype=np.int64)
    uniq, inv = np.unique(tp, return_inverse=True)
    vals = np.array([engine_batch_defaults(ctx, int(t)) for t in uniq], dtype=np.int64).reshape(-1, 2)
    return vals[inv, 0].reshape(tp.shape), vals[inv, 1].reshape(tp.shape)


def default_fraction(ctx: Context, tp, pp, budget, seqs, gpu: GpuSpec | None = None) -> np.ndarray:
    """The engine's own memory fraction per grid point (SGLang derives it from the GPU, TP x PP, the
    chunked-prefill size and the decode batch; the others have one documented default)."""
    knob = ctx.engine.memory_knob.default
    shape = np.broadcast_shapes(*(np.shape(x) for x in (tp, pp, budget, seqs)))
    if knob is not None:
        return np.full(shape, float(knob))
    g = gpu or ctx.hardware.gpu
    mem = g.memory_bytes  # the engines pick their defaults by the device's memory, not by what is free
    cols = np.broadcast_arrays(*(np.asarray(x, dtype=np.int64) for x in (tp, pp, budget, seqs)))
    keys = np.stack([c.ravel() for c in cols], axis=1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    vals = np.array([_sglang_fraction(ctx.engine.version, mem, *map(int, k), ctx.model.arch.is_mla) for k in uniq])
    return vals[inv.ravel()].reshape(shape)


@lru_cache(maxsize=4096)
def _sglang_fraction(version: str, mem: int, tp: int, pp: int, budget: int, seqs: int, mla: bool) -> float:
    from servewise.estimator.engine_defaults import default_memory_fraction

    return default_memory_fraction("sglang", version, None, mem, tp, pp, budget, seqs, mla)


def fractions(default: np.ndarray, fixed: float | None = None) -> np.ndarray:
    """Memory fractions per point along a new last axis: the user's, or the default and its offsets."""
    if fixed is not None:
        return np.asarray(default, dtype=np.float64)[..., None] * 0.0 + fixed
    offs = np.array(FRACTION_OFFSETS)
    return np.clip(np.round(np.asarray(default)[..., None] + offs, 3), 0.05, MAX_FRACTION)


def charged_gpus(used, total: int, load) -> np.ndarray:  # type: ignore[no-untyped-def]
    """GPUs a candidate is charged for. Under a concurrency or a request rate the load bounds what is
    needed, so a candidate is charged the GPUs it uses (the rest of the budget stays free). At max
    throughput the replicas are meant to fill the budget, so the GPUs a replica shape cannot use are
    stranded and charged too: the whole budget (aiconfigurator's tokens/s/gpu_cluster, perf_model.md
    section 4)."""
    used = np.asarray(used, dtype=np.float64)
    return np.full(used.shape, float(total)) if load.kind == "max_throughput" else used


RATE_REPLICAS_LOW, RATE_REPLICAS_HIGH = 0.3, 3.0


def rate_replicas(rate: float, capacity_rps, rmax) -> tuple[np.ndarray, np.ndarray]:
    """Replica counts worth evaluating under a request rate: from ``0.8 x rate / capacity`` (below that
    the replicas cannot keep up; the margin absorbs the capacity estimate's error) to ``3 x`` that plus 2
    (more replicas only lower each one's load - the objective, tokens/s per GPU, falls as 1 / replicas
    because the rate fixes the throughput - and a third of capacity leaves ample latency headroom).
    ``capacity_rps``: one replica's saturated rate. Returns (low, high) arrays, high < low where none."""
    cap = np.asarray(capacity_rps, dtype=np.float64)
    with np.errstate(divide="ignore"):
        need = np.where(cap > 0, rate / cap, np.inf)
    low = np.maximum(np.floor(RATE_REPLICAS_LOW * need), 1.0)
    high = np.minimum(np.ceil(RATE_REPLICAS_HIGH * need) + 2.0, np.asarray(rmax, dtype=np.float64))
    low = np.where(np.isfinite(low), low, 1.0).astype(np.int64)
    high = np.where(np.isfinite(need), high, 0.0).astype(np.int64)
    return low, np.maximum(high, low - 1)


def most_replicas(per_replica: list[tuple[np.ndarray, np.ndarray]], rmax, gpus_per_node: int,
                  nodes: int) -> np.ndarray:
    """The most replicas (at most ``rmax``) whose workers pack onto ``nodes`` (``nodes_needed``), each
    replica adding ``count`` workers of ``size`` GPUs per group: a vectorised bisection (packing is
    monotone in the replica count)."""
    hi = np.asarray(rmax, dtype=np.int64).copy()
    lo = np.zeros_like(hi)
    while np.any(lo < hi):
        mid = (lo + hi + 1) // 2
        fits = nodes_needed([(mid * c, s) for c, s in per_replica], gpus_per_node) <= nodes
        lo = np.where(fits, mid, lo)
        hi = np.where(fits, hi, mid - 1)
    return lo


def nodes_needed(groups: list[tuple[np.ndarray, np.ndarray]], gpus_per_node: int) -> np.ndarray:
    """Nodes the workers take when placed in order, each group (count, GPUs per worker) in turn, each worker
    on the first node with room after the previous one and never split across nodes (a worker larger than
    a node takes whole nodes of its own) - how deployments place them (render.topology.layout). Inf where a
    worker spans nodes without filling them whole."""
    n = gpus_per_node
    closed = np.zeros(np.broadcast_shapes(*(np.shape(c) for c, _ in groups), *(np.shape(g) for _, g in groups)))
    used = np.zeros_like(closed)
    bad = np.zeros(closed.shape, dtype=bool)
    for count, size in groups:
        with np.errstate(divide="ignore", invalid="ignore"):
            closed, used, bad = _place(closed, used, bad, count, size, n)
    return np.where(bad, np.inf, closed + (used > 0))


def _place(closed, used, bad, count, size, n: int):  # type: ignore[no-untyped-def]
    """One group of ``nodes_needed``: (closed nodes, GPUs used on the open node, bad) after it."""
    k = np.asarray(count, dtype=np.float64) + 0 * closed
    g = np.asarray(size, dtype=np.float64) + 0 * closed
    big = g > n
    bad = bad | (big & (np.mod(g, n) != 0))
    # workers wider than a node: close the open node, then g / n fresh nodes each
    closed_big = closed + (used > 0) + k * np.floor(g / n)
    # workers within a node: fill the open node, then whole nodes, then a partial one
    room = np.where(used > 0, np.floor((n - used) / np.maximum(g, 1)), 0.0)
    m0 = np.minimum(k, room)
    used1 = used + m0 * g
    rest = k - m0
    per = np.floor(n / np.maximum(g, 1))
    closed_small = closed + np.where(rest > 0, (used1 > 0) + np.floor(rest / per), 0.0)
    used_small = np.where(rest > 0, np.mod(rest, per) * g, used1)
    return np.where(big, closed_big, closed_small), np.where(big, 0.0, used_small), bad
