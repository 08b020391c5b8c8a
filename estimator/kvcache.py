"""KV-cache bytes per token on one GPU, and how many tokens each engine's allocator fits.

Per layer and token on one GPU:
- MHA/GQA/MQA: 2 (K and V) x ceil(kv_heads / tp) x head_dim x element bytes; KV heads are
  replicated when TP exceeds them;
- MLA: (kv_lora_rank + qk_rope_head_dim) x element bytes, the same on every TP rank;
- element bytes: 2 (``auto``: the model's 16-bit dtype), 1 for fp8.

Sliding-window layers hold at most window + one chunk of tokens per request; how that turns
into capacity is each engine's allocator (below). All functions broadcast over numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servewise.estimator.memory import ArrayLike, ceil_div
from servewise.estimator.quant import kv_bytes_per_element
from servewise.estimator.resolve import ResolvedModel


@dataclass(frozen=True)
class KvLayout:
    """The attention layers of the most loaded pipeline stage and their per-token cost on one GPU."""

    full_layers: np.ndarray
    sliding_layers: np.ndarray
    window: int
    bytes_per_token_layer: np.ndarray   # one layer, one token, one GPU

    @property
    def bytes_per_token(self) -> np.ndarray:
        """Bytes one token costs when every attention layer holds it (what vLLM's 'GPU KV cache
        size' counts, and the full-context cost of one token)."""
        return self.bytes_per_token_layer * (self.full_layers + self.sliding_layers)

    @property
    def hybrid(self) -> np.ndarray:
        return (self.full_layers > 0) & (self.sliding_layers > 0)


def kv_bytes_per_token_layer(rm: ResolvedModel, tp: ArrayLike, kv_dtype: str = "auto") -> np.ndarray:
    """K+V bytes of one token in one attention layer on one GPU (formula in the module docstring)."""
    a = rm.arch
    tp = np.asarray(tp)
    el = kv_bytes_per_element(kv_dtype)
    if a.mla:
        return np.full(np.shape(tp), float(a.kv_elements_per_token_per_layer() * el))
    return 2.0 * ceil_div(a.num_kv_heads, tp) * a.head_dim * el


def kv_layout(rm: ResolvedModel, tp: ArrayLike, pp: ArrayLike = 1, kv_dtype: str = "auto") -> KvLayout:
    """Full and sliding attention layers on the most loaded stage: ceil(n / pp) of each kind."""
    a = rm.arch
    counts = a.kv_layers()
    tp, pp = np.broadcast_arrays(np.asarray(tp), np.asarray(pp))
    return KvLayout(full_layers=ceil_div(counts["full"], pp), sliding_layers=ceil_div(counts["sliding"], pp),
                    window=int(a.sliding_window or 0), bytes_per_token_layer=kv_bytes_per_token_layer(rm, tp, kv_dtype))


def kv_bytes_per_token_per_gpu(rm: ResolvedModel, tp: ArrayLike, pp: ArrayLike = 1,
                               kv_dtype: str = "auto") -> np.ndarray:
    """KV bytes one token costs on one GPU over every attention layer of the most loaded stage."""
    return kv_layout(rm, tp, pp, kv_dtype).bytes_per_token


@dataclass(frozen=True)
class KvCapacity:
    """What the KV-cache memory holds (arrays over the grid)."""

    blocks: np.ndarray            # allocator blocks (pages) of ``block_size`` tokens
    tokens: np.ndarray            # the engine's reported KV size in tokens
    max_concurrency: np.ndarray   # requests of ``context`` tokens that fit at once
    max_context: np.ndarray       # longest single request that fits (capped at the model's positions)


def _sliding_tokens(window: int, chunk: ArrayLike, length: ArrayLike) -> np.ndarray:
    """Tokens a sliding-window layer keeps for one request: min(window - 1 + chunk, length)."""
    return np.minimum(window - 1 + np.asarray(chunk), np.asarray(length))


def vllm_capacity(lay: KvLayout, kv_bytes: ArrayLike, block: int, context: ArrayLike,
                  max_num_batched_tokens: ArrayLike, max_positions: int) -> KvCapacity:
    """vLLM V1 KV-cache manager (v1/core/kv_cache_utils.py).

    One attention type: blocks = kv_bytes // (block x bytes_per_token); tokens = blocks x block.
    Hybrid (full + sliding): layers form groups of g = min(n_full, n_sliding) layers sharing one
    pool of pages; blocks = kv_bytes // (block x per-layer bytes) // g; reported tokens =
    blocks // n_groups x block. A request needs cdiv(L, block) blocks per full group and
    cdiv(min(window - 1 + max_num_batched_tokens, L), block) + 1 per sliding group; max
    concurrency = blocks / blocks per request. Longest request: the largest L whose summed
    per-layer need fits kv_bytes (estimate_max_model_len).
    """
    kv = np.maximum(np.asarray(kv_bytes, dtype=np.float64), 0.0)
    page = lay.bytes_per_token_layer * block
    nf, ns = lay.full_layers, lay.sliding_layers
    g = np.where(lay.hybrid, np.minimum(nf, ns), nf + ns)
    groups_full = np.where(lay.hybrid, ceil_div(nf, np.maximum(g, 1)), 1)
    groups_sw = np.where(lay.hybrid, ceil_div(ns, np.maximum(g, 1)), 0)
    n_groups = groups_full + groups_sw
    blocks = np.floor(kv / page / np.maximum(g, 1))
    tokens = np.floor(blocks / n_groups) * block
    only_sliding = (nf == 0) & (ns > 0)
    full_blocks = ceil_div(context, block)
    sw_blocks = ceil_div(_sliding_tokens(lay.window, max_num_batched_tokens, context), block) + 1
    per_req = np.where(only_sliding, sw_blocks, groups_full * full_blocks + groups_sw * sw_blocks)
    max_conc = blocks / np.maximum(per_req, 1)

    def need(length: np.ndarray) -> np.ndarray:
        sw = ceil_div(_sliding_tokens(lay.window, max_num_batched_tokens, length), block) + 1
        return page * (nf * ceil_div(length, block) + ns * sw)

    return KvCapacity(blocks, tokens, max_conc, _largest_fitting(need, kv, max_positions))


def _largest_fitting(need, budget: np.ndarray, upper: int) -> np.ndarray:
    """Largest L in [0, upper] with need(L) <= budget, by vectorised bisection (need is monotone)."""
    lo = np.zeros(np.shape(budget), dtype=np.int64)
    hi = np.full(np.shape(budget), int(upper), dtype=np.int64)
    fits_one = need(np.ones_like(lo)) <= budget
    for _ in range(int(upper).bit_length() + 1):
        mid = (lo + hi + 1) // 2
        ok = need(mid) <= budget
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid - 1)
    return np.where(fits_one, lo, 0)


def sglang_capacity(lay: KvLayout, kv_bytes: ArrayLike, context: ArrayLike, swa_ratio: float,
                    max_positions: int) -> KvCapacity:
    """SGLang token pool (page size 1). Hybrid SWA models get two pools sized together:
    full tokens x full-layer bytes + swa_ratio x full tokens x sliding-layer bytes = kv_bytes;
    capacity is counted in full-layer tokens (srt/model_executor/pool_configurator.py)."""
    kv = np.maximum(np.asarray(kv_bytes, dtype=np.float64), 0.0)
    per = lay.bytes_per_token_layer * (lay.full_layers + np.where(lay.hybrid, swa_ratio, 1.0) * lay.sliding_layers)
    tokens = np.floor(kv / per)
    return KvCapacity(tokens, tokens, tokens / np.asarray(context), np.minimum(tokens, max_positions))


def paged_capacity(lay: KvLayout, kv_bytes: ArrayLike, block: int, context: ArrayLike,
                   max_positions: int) -> KvCapacity:
    """A plain paged pool (TensorRT-LLM): blocks = kv_bytes // (block x bytes per token over all
    attention layers); sliding-window layers are counted like full ones (conservative: TensorRT-LLM
    sizes per-window pools, not modelled)."""
    kv = np.maximum(np.asarray(kv_bytes, dtype=np.float64), 0.0)
    blocks = np.floor(kv / (lay.bytes_per_token * block))
    tokens = blocks * block
    return KvCapacity(blocks, tokens, blocks / ceil_div(context, block), np.minimum(tokens, max_positions))
