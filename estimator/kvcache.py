"""KV-cache bytes per token on one GPU, and how many tokens each engine's allocator fits.

Per layer and token on one GPU:
- MHA/GQA/MQA: 2 (K and V) x ceil(kv_heads / tp) x head_dim x element bytes; KV heads are
  replicated when TP exceeds them;
- MLA: (kv_lora_rank + qk_rope_head_dim) x element bytes, the same on every TP rank;
- element bytes: 2 (``auto``: the model's 16-bit dtype), 1 for fp8;
- DeepSeek sparse attention (DSA) adds the indexer keys (fp8 + scales) per token and layer; vLLM
  stores the MLA latent of DSA models as ``fp8_ds_mla``: 656 bytes per token and layer
  (config.py DeepseekV32ForCausalLM, kv_cache_interface.py MLAAttentionSpec).

Sliding-window layers hold at most window + one chunk of tokens per request; linear-attention
(Gated DeltaNet) layers hold a fixed state per sequence: conv (conv_dim / tp x (kernel - 1)) +
recurrent (value_heads / tp x key_head_dim x value_head_dim) elements in the model dtype. How that
turns into capacity is each engine's allocator (below). All functions broadcast over numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servewise.estimator.memory import ArrayLike, ceil_div
from servewise.estimator.quant import kv_bytes_per_element
from servewise.estimator.resolve import ResolvedModel


FP8_DS_MLA_BYTES = 656
"""vLLM's fp8_ds_mla cache entry per token and layer for DSA models (kv_cache_interface.py)."""


@dataclass(frozen=True)
class KvLayout:
    """The cache-holding layers of the most loaded pipeline stage and their cost on one GPU."""

    full_layers: np.ndarray
    sliding_layers: np.ndarray
    window: int
    bytes_per_token_layer: np.ndarray   # one attention layer, one token, one GPU
    linear_layers: np.ndarray | int = 0
    state_bytes_per_seq_layer: np.ndarray | float = 0.0   # one linear-attention layer, one sequence

    @property
    def bytes_per_token(self) -> np.ndarray:
        """Bytes one token costs when every attention layer holds it (what vLLM's 'GPU KV cache
        size' counts, and the full-context cost of one token)."""
        return self.bytes_per_token_layer * (self.full_layers + self.sliding_layers)

    @property
    def state_bytes_per_seq(self) -> np.ndarray:
        """Fixed per-sequence state of the linear-attention layers."""
        return np.asarray(self.state_bytes_per_seq_layer) * self.linear_layers

    @property
    def hybrid(self) -> np.ndarray:
        """More than one kind of cache layer: vLLM's hybrid allocator groups them."""
        kinds = (self.full_layers > 0).astype(int) + (self.sliding_layers > 0) + (np.asarray(self.linear_layers) > 0)
        return kinds > 1


def kv_bytes_per_token_layer(rm: ResolvedModel, tp: ArrayLike, kv_dtype: str = "auto",
                             engine: str = "vllm") -> np.ndarray:
    """K+V bytes of one token in one attention layer on one GPU (formula in the module docstring)."""
    a = rm.arch
    tp = np.asarray(tp)
    el = kv_bytes_per_element(kv_dtype)
    if a.mla:
        latent = a.kv_elements_per_token_per_layer() * el
        if a.indexer and engine == "vllm" and kv_dtype in ("auto", "fp8"):
            latent = FP8_DS_MLA_BYTES
        return np.full(np.shape(tp), float(latent + a.indexer_bytes_per_token_per_layer()))
    return 2.0 * ceil_div(a.num_kv_heads, tp) * a.head_dim * el


def state_bytes_per_seq_layer(rm: ResolvedModel, tp: ArrayLike) -> np.ndarray:
    """Gated DeltaNet state of one sequence in one layer on one GPU, model dtype (2 bytes):
    (conv_dim / tp x (kernel - 1) + value_heads / tp x key_head_dim x value_head_dim) x 2."""
    lin = rm.arch.linear
    tp = np.asarray(tp, dtype=np.float64)
    if lin is None:
        return np.zeros(np.shape(tp))
    conv = lin.conv_dim / tp * (lin.conv_kernel - 1)
    rec = np.ceil(lin.num_value_heads / tp) * lin.key_head_dim * lin.value_head_dim
    return (conv + rec) * 2.0


def kv_layout(rm: ResolvedModel, tp: ArrayLike, pp: ArrayLike = 1, kv_dtype: str = "auto",
              engine: str = "vllm") -> KvLayout:
    """Cache layers of each kind on the most loaded stage: ceil(n / pp) of each kind."""
    a = rm.arch
    counts = a.kv_layers()
    tp, pp = np.broadcast_arrays(np.asarray(tp), np.asarray(pp))
    return KvLayout(full_layers=ceil_div(counts["full"], pp), sliding_layers=ceil_div(counts["sliding"], pp),
                    window=int(a.sliding_window or 0),
                    bytes_per_token_layer=kv_bytes_per_token_layer(rm, tp, kv_dtype, engine),
                    linear_layers=ceil_div(a.num_linear_layers, pp),
                    state_bytes_per_seq_layer=state_bytes_per_seq_layer(rm, tp))


def kv_bytes_per_token_per_gpu(rm: ResolvedModel, tp: ArrayLike, pp: ArrayLike = 1,
                               kv_dtype: str = "auto") -> np.ndarray:
    """KV bytes one token costs on one GPU over every attention layer of the most loaded stage."""
    return kv_layout(rm, tp, pp, kv_dtype).bytes_per_token


@dataclass(frozen=True)
class KvCapacity:
    """What the KV-cache memory holds (arrays over the grid)."""

    blocks: np.ndarray            # allocator blocks (pages) of ``block_size`` tokens
    block_size: np.ndarray | int  # tokens per block the allocator used (vLLM enlarges it for hybrids)
    tokens: np.ndarray            # the engine's reported KV size in tokens
    max_concurrency: np.ndarray   # requests of ``context`` tokens that fit at once
    max_context: np.ndarray       # longest single request that fits (capped at the model's positions)
    request_bytes: np.ndarray     # KV bytes one request of ``context`` tokens needs


def _sliding_tokens(window: int, chunk: ArrayLike, length: ArrayLike) -> np.ndarray:
    """Tokens a sliding-window layer keeps for one request: min(window - 1 + chunk, length)."""
    return np.minimum(window - 1 + np.asarray(chunk), np.asarray(length))


def vllm_block_size(lay: KvLayout, block: int) -> np.ndarray:
    """vLLM enlarges the attention block of hybrid linear-attention models until one attention page
    holds a whole state page: 16 x cdiv(state page, 16 x attention bytes per token) (config.py
    HybridAttentionMambaModelConfig); the state page is then padded to the attention page."""
    state = np.asarray(lay.state_bytes_per_seq_layer, dtype=np.float64)
    need = 16 * ceil_div(state, 16 * lay.bytes_per_token_layer)
    return np.where((np.asarray(lay.linear_layers) > 0) & (need > block), need, block)


def vllm_capacity(lay: KvLayout, kv_bytes: ArrayLike, block: int, context: ArrayLike,
                  max_num_batched_tokens: ArrayLike, max_positions: int, tokens_reported: str = "blocks",
                  group_size: str = "min") -> KvCapacity:
    """vLLM V1 KV-cache manager (v1/core/kv_cache_utils.py, kv_cache_planning.py).

    One attention type: blocks = kv_bytes // (block x bytes_per_token); tokens = blocks x block.
    Hybrid (full / sliding / linear-attention layers): layers form groups of g layers sharing one
    pool of equal pages, g = the smallest kind's layer count (from v0.31: the largest when it is
    below 1.5 x the smallest); blocks = kv_bytes // page // g. A request needs cdiv(L, block)
    blocks per full group, cdiv(min(window - 1 + max_num_batched_tokens, L), block) + 1 per
    sliding group and 1 per linear-attention group; max concurrency = blocks / blocks per request.
    Reported tokens: blocks // groups x block (v0.11), or int(max concurrency x L) (v0.31+).
    Longest request: the largest L whose summed per-layer need fits kv_bytes (estimate_max_model_len).
    """
    kv = np.maximum(np.asarray(kv_bytes, dtype=np.float64), 0.0)
    bsz = vllm_block_size(lay, block)
    page = lay.bytes_per_token_layer * bsz
    nf, ns, nl = lay.full_layers, lay.sliding_layers, np.asarray(lay.linear_layers)
    present = [np.where(n > 0, n, np.inf) for n in (nf, ns, nl)]
    small = np.minimum(np.minimum(present[0], present[1]), present[2])
    large = np.maximum(np.maximum(nf, ns), nl)
    hybrid_g = np.where((group_size == "max_within_1.5x") & (large < 1.5 * small), large, small)
    g = np.where(lay.hybrid, hybrid_g, nf + ns + nl)
    g = np.maximum(np.where(np.isfinite(g), g, 1), 1)
    groups = [np.where(lay.hybrid, ceil_div(n, g), (n > 0) * 1) for n in (nf, ns, nl)]
    n_groups = np.maximum(groups[0] + groups[1] + groups[2], 1)
    blocks = np.floor(kv / page / g)
    tokens = np.floor(blocks / n_groups) * bsz
    full_blocks = ceil_div(context, bsz)
    sw_blocks = ceil_div(_sliding_tokens(lay.window, max_num_batched_tokens, context), bsz) + 1
    per_req = groups[0] * full_blocks + groups[1] * sw_blocks + groups[2]
    max_conc = blocks / np.maximum(per_req, 1)
    if tokens_reported == "concurrency":
        tokens = np.floor(max_conc * np.asarray(context))

    def need(length: np.ndarray) -> np.ndarray:
        sw = ceil_div(_sliding_tokens(lay.window, max_num_batched_tokens, length), bsz) + 1
        return page * (nf * ceil_div(length, bsz) + ns * sw + nl)

    return KvCapacity(blocks, bsz, tokens, max_conc, _largest_fitting(need, kv, max_positions),
                      need(np.asarray(context)))


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
    return KvCapacity(tokens, 1, tokens, tokens / np.asarray(context), np.minimum(tokens, max_positions),
                      per * np.asarray(context))


def paged_capacity(lay: KvLayout, kv_bytes: ArrayLike, block: int, context: ArrayLike,
                   max_positions: int) -> KvCapacity:
    """A plain paged pool (TensorRT-LLM): blocks = kv_bytes // (block x bytes per token over all
    attention layers); sliding-window layers are counted like full ones (conservative: TensorRT-LLM
    sizes per-window pools, not modelled)."""
    kv = np.maximum(np.asarray(kv_bytes, dtype=np.float64), 0.0)
    blocks = np.floor(kv / (lay.bytes_per_token * block))
    tokens = blocks * block
    return KvCapacity(blocks, block, tokens, blocks / ceil_div(context, block), np.minimum(tokens, max_positions),
                      lay.bytes_per_token * block * ceil_div(context, block))
