"""Weight bytes on one GPU of a worker, by module and storage format.

Functions accept numpy arrays for the parallel sizes (tp, pp, ep), so the search evaluates
a whole grid in one call. Bytes everywhere; GiB only at the edges.

Sharding (vLLM / SGLang / TensorRT-LLM all follow Megatron-style TP):
- attention q/o and MLP projections split by TP; k/v hold ceil(kv_heads / tp) heads per rank
  (replicated when TP exceeds the KV heads); MLA latent down-projections are replicated;
- embeddings and LM head are vocab-parallel: ceil(vocab / 64) x 64 / tp rows per rank (vLLM
  ``VocabParallelEmbedding`` pads the vocabulary to a multiple of 64); a tied LM head costs nothing
  unless pipeline parallelism puts it on another stage;
- routed experts split by TP, or whole experts over ``ep`` ranks with expert parallelism;
  routers and norms are replicated;
- pipeline parallelism: the most loaded stage holds ceil(layers / pp) layers plus the larger of
  the embedding (first stage) and the LM head (last stage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servewise.estimator.arch import ModelArch
from servewise.estimator.quant import ModuleKind, QuantScheme
from servewise.estimator.resolve import ResolvedModel

ArrayLike = int | float | np.ndarray
GIB = 1024**3
VOCAB_PADDING = 64


def ceil_div(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    return -(-np.asarray(a) // np.asarray(b))


def round_up(a: ArrayLike, m: int) -> np.ndarray:
    return ceil_div(a, m) * m


@dataclass(frozen=True)
class Residency:
    """How an engine holds a format in memory beyond its checkpoint bytes (see budget.residency)."""

    expert_intermediate_multiple: int = 1   # MoE kernels pad the expert width per rank
    expert_hidden_multiple: int = 1
    block_scale_copies: float = 1.0         # resident copies of the group scales of experts
    expert_bias_bytes: float = 2.0          # 4.0 where biases are converted to fp32
    mla_dequantized_kv_b: bool = False      # MLA kernels keep a 16-bit copy of a quantized kv_b_proj


@dataclass(frozen=True)
class WeightBreakdown:
    """Parameters and bytes on the most loaded GPU, by module kind (arrays over the grid)."""

    params: dict[ModuleKind | str, np.ndarray]
    bytes: dict[ModuleKind | str, np.ndarray]

    @property
    def total_bytes(self) -> np.ndarray:
        return sum(self.bytes.values())  # type: ignore[return-value]


def attention_linear_params_per_gpu(a: ModelArch, tp: np.ndarray) -> np.ndarray:
    """q, k, v, o weights of one layer on one rank (biases excluded).

    GQA: h x q_proj / tp + 2 x h x ceil(kv_heads / tp) x d + (heads x d) / tp x h (q_proj = heads x d,
    twice that with an output gate).
    MLA: replicated q_a (h x q_lora) and kv_a (h x (kv_lora + rope)); q_b, kv_b and o split by TP;
    a DSA indexer (wq_b, wk, weights_proj) is replicated.
    """
    h = a.hidden_size
    if a.mla:
        m = a.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            q_rep, q_split = h * m.q_lora_rank, m.q_lora_rank * a.num_attention_heads * qk
        else:
            q_rep, q_split = 0, h * a.num_attention_heads * qk
        kv_rep = h * (m.kv_lora_rank + m.qk_rope_head_dim)
        kv_split = m.kv_lora_rank * a.num_attention_heads * (m.qk_nope_head_dim + m.v_head_dim)
        indexer = a.indexer.params(h, m.q_lora_rank or h) if a.indexer else 0
        return q_rep + kv_rep + indexer + (q_split + kv_split + a.attn_out_size * h) / tp
    kv = ceil_div(a.num_kv_heads, tp) * a.head_dim
    return (h * a.q_proj_size + a.attn_out_size * h) / tp + 2 * h * kv


def attention_small_params_per_gpu(a: ModelArch, tp: np.ndarray) -> np.ndarray:
    """16-bit odds and ends of one attention layer: biases, q/k norms, MLA norms, sinks."""
    n = np.zeros(np.shape(tp), dtype=np.float64)
    if a.mla:
        return n + (a.mla.q_lora_rank or 0) + a.mla.kv_lora_rank
    if a.attention_bias:
        n = n + a.q_size / tp + 2 * ceil_div(a.num_kv_heads, tp) * a.head_dim
    if a.o_bias:
        n = n + a.hidden_size
    if a.qk_norm:
        n = n + ((a.q_size + a.num_kv_heads * a.head_dim) / tp if a.qk_norm_per_layer else 2 * a.head_dim)
    if a.attention_sinks:
        n = n + a.num_attention_heads / tp
    return n


def _expert_dims(a: ModelArch, tp: np.ndarray, ep: np.ndarray, res: Residency) -> tuple[np.ndarray, np.ndarray]:
    """(experts on this rank, expert width on this rank) after padding: with EP whole experts
    (E / ep, full width); otherwise every expert split by TP."""
    assert a.moe
    use_ep = ep > 1
    local_experts = np.where(use_ep, a.moe.num_experts / np.maximum(ep, 1), a.moe.num_experts)
    width = np.where(use_ep, a.moe.expert_intermediate, a.moe.expert_intermediate / tp)
    return local_experts, round_up(np.ceil(width), res.expert_intermediate_multiple)


def weight_breakdown(rm: ResolvedModel, tp: ArrayLike, pp: ArrayLike = 1, ep: ArrayLike = 1,
                     residency: Residency | None = None) -> WeightBreakdown:
    """Parameters and bytes of every module kind on the most loaded GPU of a worker."""
    a, q = rm.arch, rm.scheme
    res = residency or Residency()
    tp, pp, ep = np.broadcast_arrays(*(np.asarray(x, dtype=np.int64) for x in (tp, pp, ep)))
    h = a.hidden_size
    stage_layers = ceil_div(a.num_layers, pp)
    frac = stage_layers / a.num_layers
    n_moe = a.num_moe_layers
    n_dense = a.num_layers - n_moe
    n_attn = a.num_attention_layers

    params: dict[str, np.ndarray] = {}
    params["attention"] = attention_linear_params_per_gpu(a, tp) * n_attn * frac
    if a.linear:  # Gated DeltaNet projections and conv split by TP like attention heads
        params["attention"] = params["attention"] + a.linear.params(h) / tp * a.num_linear_layers * frac
    dense_i = a.moe.dense_intermediate if (a.moe and a.moe.dense_intermediate) else a.intermediate_size
    params["mlp"] = a.dense_mlp_params(dense_i) / tp * n_dense * frac
    small = attention_small_params_per_gpu(a, tp) * n_attn + a.norms_per_layer * h * a.num_layers
    bias = np.zeros_like(frac)
    if a.moe:
        m = a.moe
        params["shared_experts"] = a.dense_mlp_params(m.shared_intermediate) / tp * n_moe * frac
        params["router"] = (h * m.num_experts + (m.num_experts if m.router_bias else 0)) * n_moe * frac \
            + np.zeros_like(frac)
        if m.shared_expert_gate:
            small = small + h * n_moe
        local, width = _expert_dims(a, tp, ep, res)
        hidden = round_up(h, res.expert_hidden_multiple)
        per_expert = (3 if a.gated_mlp else 2) * hidden * width
        params["experts"] = local * per_expert * n_moe * frac
        if m.expert_bias:
            bias = local * (2 * width + hidden) * n_moe * frac
    vocab_rows = round_up(a.vocab_size, VOCAB_PADDING) / tp
    embed = vocab_rows * h + a.vision_params / tp
    tied_here = a.tie_word_embeddings & (pp == 1)
    head = np.where(tied_here, 0.0, vocab_rows * h) + h  # + final norm
    params["embedding"] = np.where(pp > 1, np.where(embed >= head, embed, 0.0), embed)
    params["lm_head"] = np.where(pp > 1, np.where(embed >= head, 0.0, head), head)
    params["norms_biases"] = small * frac + bias
    params["rotary_cache"] = np.full(np.shape(tp), a.max_position_embeddings * _rotary_dim(a), dtype=np.float64)

    out: dict[str, np.ndarray] = {}
    for kind, n in params.items():
        out[kind] = _bytes_of(kind, np.asarray(n, dtype=np.float64), q, res, a)
    out["norms_biases"] = params["norms_biases"] * q.high_precision_bytes + bias * (res.expert_bias_bytes - 2.0)
    if a.mla and res.mla_dequantized_kv_b and q.is_quantized("attention"):
        m = a.mla
        kv_b = m.kv_lora_rank * a.num_attention_heads * (m.qk_nope_head_dim + m.v_head_dim) / tp * n_attn * frac
        out["mla_absorbed"] = kv_b * q.high_precision_bytes
    return WeightBreakdown({k: np.asarray(v, dtype=np.float64) for k, v in params.items()},
                           {k: np.asarray(v, dtype=np.float64) for k, v in out.items()})


def _rotary_dim(a: ModelArch) -> int:
    return a.mla.qk_rope_head_dim if a.mla else a.head_dim


def _bytes_of(kind: str, n: np.ndarray, q: QuantScheme, res: Residency, a: ModelArch) -> np.ndarray:
    """Bytes of ``n`` parameters of one module kind: quantized weights pay the format's bits, group
    scales (x resident copies for experts) and channel scales (fp32 per output row ~ n / hidden)."""
    if kind in ("norms_biases", "rotary_cache") or not q.is_quantized(kind):  # type: ignore[arg-type]
        return n * q.high_precision_bytes
    f = q.format
    scales = (f.scale_bits + f.zero_bits) / f.group / 8.0 if f.group else 0.0
    copies = res.block_scale_copies if kind == "experts" else 1.0
    channel = f.channel_scale_bits / 8.0 / a.hidden_size
    return n * (f.bits / 8.0 + scales * copies + channel)


def weight_bytes_per_gpu(rm: ResolvedModel, tp: ArrayLike, pp: ArrayLike = 1, ep: ArrayLike = 1,
                         residency: Residency | None = None) -> np.ndarray:
    """Weight bytes on the most loaded GPU of a worker (sum of ``weight_breakdown``)."""
    return weight_breakdown(rm, tp, pp, ep, residency).total_bytes
