"""Per-GPU memory of one worker: weights, KV cache, activation peak, CUDA graphs, non-torch.

Functions accept numpy arrays for the parallel sizes and batch limits, so the search
evaluates a whole grid in one call. Bytes everywhere; GiB only at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servewise.estimator.quant import kv_bytes_per_element
from servewise.estimator.resolve import ResolvedModel

ArrayLike = int | float | np.ndarray


def _ceil_div(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    return -(-np.asarray(a) // np.asarray(b))


@dataclass(frozen=True)
class WeightSplit:
    """Parameter counts of one GPU's shard, by how they are stored."""

    quantized: np.ndarray      # linear layers in the serving weights format
    high_precision: np.ndarray  # embeddings, LM head, norms, routers (16-bit)


def weight_params_per_gpu(rm: ResolvedModel, tp: ArrayLike, pp: ArrayLike = 1, ep: ArrayLike = 1,
                          dp: ArrayLike = 1) -> WeightSplit:
    """Parameters held by the most loaded GPU of a worker.

    Attention: q/o projections split by TP; k/v hold ceil(kv_heads / tp) heads per rank (replicated
    when TP exceeds the KV heads). MLA: the q/kv up-projections split by TP, the latent
    down-projections are replicated. Dense MLP: split by TP. Routed experts: split over
    tp x dp ranks with expert parallelism (ep > 1), else each expert split by TP. Embedding and
    LM head: vocab-parallel (split by TP), on the first / last pipeline stage. Layers: ceil(L / pp)
    on the most loaded stage.
    """
    a = rm.arch
    tp, pp, ep, dp = (np.asarray(x, dtype=np.int64) for x in (tp, pp, ep, dp))
    h = a.hidden_size
    if a.mla:
        m = a.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            q_rep = h * m.q_lora_rank + m.q_lora_rank
            q_split = m.q_lora_rank * a.num_attention_heads * qk
        else:
            q_rep, q_split = 0, h * a.num_attention_heads * qk
        kv_rep = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank
        kv_split = m.kv_lora_rank * a.num_attention_heads * (m.qk_nope_head_dim + m.v_head_dim)
        attn = q_rep + kv_rep + (q_split + kv_split + a.attn_out_size * h) / tp
    else:
        kv_per_gpu = _ceil_div(a.num_kv_heads, tp) * a.head_dim
        attn = (h * a.q_size + a.attn_out_size * h) / tp + 2 * h * kv_per_gpu
        if a.attention_bias:
            attn = attn + a.q_size / tp + 2 * kv_per_gpu
    attn_small = (h if a.o_bias else 0) + (2 * a.head_dim if a.qk_norm else 0) \
        + (a.num_attention_heads if a.attention_sinks else 0)

    expert_shards = np.where(ep > 1, tp * dp, tp)
    layers_on_stage = _ceil_div(a.num_layers, pp)
    # Average layer composition scaled to the stage's layer count (MoE/dense mix is near-uniform).
    n_moe = a.num_moe_layers
    n_dense = a.num_layers - n_moe
    mlp_dense = (a.dense_mlp_params(a.moe.dense_intermediate if a.moe and a.moe.dense_intermediate
                                    else a.intermediate_size) * n_dense) / tp
    experts = np.zeros_like(tp, dtype=np.float64)
    router = 0.0
    if a.moe:
        experts = a.moe.num_experts * a.expert_params() * n_moe / expert_shards
        nonexpert = a.moe_nonexpert_params_per_layer()
        shared = a.dense_mlp_params(a.moe.shared_intermediate) if a.moe.shared_intermediate else 0
        router = (nonexpert - shared) * n_moe
        mlp_dense = mlp_dense + shared * n_moe / tp
    frac = layers_on_stage / a.num_layers
    attn_layers = a.num_attention_layers
    linear_params = attn * attn_layers + mlp_dense
    if rm.quantized_experts_only:
        quantized = experts * frac
        high = linear_params * frac
    else:
        quantized = (linear_params + experts) * frac
        high = np.zeros_like(quantized)
    norms = (a.norms_per_layer * h + attn_small) * layers_on_stage + router * frac
    vocab = a.embedding_params() / tp
    head = a.lm_head_params() / tp
    ends = np.where(pp > 1, np.maximum(vocab, head + h), vocab + head + h)
    high = high + norms + ends
    return WeightSplit(np.asarray(quantized, dtype=np.float64), np.asarray(high, dtype=np.float64))


def weight_bytes_per_gpu(rm: ResolvedModel, tp: ArrayLike, pp: ArrayLike = 1, ep: ArrayLike = 1,
                         dp: ArrayLike = 1) -> np.ndarray:
    """Weight bytes on the most loaded GPU: quantized params x format bytes + 16-bit params x 2."""
    s = weight_params_per_gpu(rm, tp, pp, ep, dp)
    return s.quantized * rm.weights.bytes_per_param + s.high_precision * 2.0


def kv_bytes_per_token_per_gpu(rm: ResolvedModel, tp: ArrayLike, pp: ArrayLike = 1,
                               kv_dtype: str = "auto") -> np.ndarray:
    """KV bytes one token costs on one GPU, over the attention layers of the most loaded stage.

    GQA: layers x 2 x ceil(kv_heads / tp) x head_dim x bytes; MLA: layers x (kv_lora_rank +
    qk_rope_head_dim) x bytes, replicated on every TP rank. Sliding-window layers are counted
    here per token like full layers; their cap at the window is applied by ``kv_capacity``.
    """
    a = rm.arch
    tp, pp = np.asarray(tp), np.asarray(pp)
    el = kv_bytes_per_element(kv_dtype)
    if a.mla:
        per_layer = np.full(np.shape(tp), a.kv_elements_per_token_per_layer() * el, dtype=np.float64)
    else:
        per_layer = 2.0 * _ceil_div(a.num_kv_heads, tp) * a.head_dim * el
    return per_layer * _ceil_div(a.num_attention_layers, pp)


GIB = 1024**3


@dataclass(frozen=True)
class MemoryTerms:
    """Per-GPU memory of one worker (arrays broadcast over the candidate grid)."""

    weights_bytes: np.ndarray
    activation_bytes: np.ndarray
    cuda_graph_bytes: np.ndarray
    other_bytes: np.ndarray
    budget_bytes: np.ndarray
    kv_cache_bytes: np.ndarray       # may be negative: the weights and overheads exceed the budget
    kv_bytes_per_token: np.ndarray
    kv_cache_tokens: np.ndarray      # floored to whole blocks, 0 when kv_cache_bytes <= 0
    block_size_tokens: int

    @property
    def total_bytes(self) -> np.ndarray:
        return self.weights_bytes + self.activation_bytes + self.cuda_graph_bytes + self.other_bytes + \
            np.maximum(self.kv_cache_bytes, 0)


def activation_peak_bytes(rm: ResolvedModel, tp: ArrayLike, max_num_batched_tokens: ArrayLike,
                          max_num_seqs: ArrayLike) -> np.ndarray:
    """Peak of vLLM's start-up profile run: the dummy forward over ``max_num_batched_tokens`` tokens
    plus the dummy sampler pass over ``max_num_seqs`` rows of fp32 logits.

    forward = tokens x (hidden + 2 x intermediate / tp) x 2 bytes x k_fwd (live activations of
    the largest layer, gate+up output); sampler = seqs x vocab x 4 bytes x k_samp (logits and
    their sampling copies).
    """
    a = rm.arch
    inter = a.moe.expert_intermediate * a.moe.top_k if a.moe else a.intermediate_size
    fwd = np.asarray(max_num_batched_tokens) * (a.hidden_size + 2.0 * inter / np.asarray(tp)) * 2.0 * _K_FWD
    samp = np.asarray(max_num_seqs) * a.vocab_size * 4.0 * _K_SAMPLER
    return fwd + samp


# Provisional coefficients, refined by the memory calibration (perfdata/memory_calibration.yaml).
_K_FWD = 4.0
_K_SAMPLER = 9.5


def non_torch_bytes(tp: ArrayLike) -> np.ndarray:
    """CUDA context, cuBLAS workspaces and NCCL buffers: ~0.13 GiB alone, ~0.55 GiB with TP > 1
    (vLLM 0.11 start-up logs on H100, llm-d empirical table)."""
    return np.where(np.asarray(tp) > 1, 0.55 * GIB, 0.13 * GIB)
