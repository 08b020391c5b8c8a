"""Model architecture: a frozen description parsed from a Hugging Face ``config.json``.

The catalog stores the same fields verbatim, so catalog, Hub and local models share
``ModelArch.from_hf_config``. Derived quantities (parameter counts, KV bytes per token,
recurrent state per sequence) are small functions below, each with its formula in the
docstring. Counts are in parameters; bytes come from ``servewise.estimator.quant``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from servewise.perfdata.errors import DataError

LayerKind = Literal["full", "sliding", "linear"]
"""full: attention over the whole context; sliding: attention over the last ``sliding_window``
tokens; linear: recurrent / linear-attention state (Gated DeltaNet) of a fixed size per sequence."""


class UnsupportedArchitectureError(DataError):
    """A config servewise cannot model correctly; refused rather than approximated."""


@dataclass(frozen=True)
class MoE:
    num_experts: int
    top_k: int
    expert_intermediate: int
    num_shared_experts: int = 0
    shared_intermediate: int = 0          # total intermediate width of the shared expert(s)
    dense_layers: tuple[int, ...] = ()     # layer indices that use a dense MLP instead of experts
    dense_intermediate: int = 0
    expert_bias: bool = False              # gpt-oss experts carry biases
    router_bias: bool = False              # gpt-oss router bias; DeepSeek/MiniMax e_score_correction_bias
    shared_expert_gate: bool = False       # Qwen2-MoE / Qwen3.5 gate their shared expert with a hidden->1 projection


@dataclass(frozen=True)
class MLA:
    """DeepSeek multi-head latent attention ranks (config: q_lora_rank, kv_lora_rank, qk_*_head_dim)."""

    q_lora_rank: int | None
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class LinearAttention:
    """Gated DeltaNet layers (Qwen3-Next, Qwen3.5: ``linear_*`` config fields).

    Projections (transformers Qwen3NextGatedDeltaNet): in_proj_qkvz h -> 2*key_dim + 2*value_dim,
    in_proj_ba h -> 2*v_heads, a depthwise conv1d over conv_dim = 2*key_dim + value_dim with
    ``conv_kernel`` taps, dt_bias and A_log (v_heads each), a gated RMSNorm of v_head_dim, and
    out_proj value_dim -> h; key_dim = k_heads*k_head_dim, value_dim = v_heads*v_head_dim.
    """

    num_key_heads: int
    num_value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel: int

    @property
    def key_dim(self) -> int:
        return self.num_key_heads * self.key_head_dim

    @property
    def value_dim(self) -> int:
        return self.num_value_heads * self.value_head_dim

    @property
    def conv_dim(self) -> int:
        return 2 * self.key_dim + self.value_dim

    def params(self, hidden: int) -> int:
        """h*(2*kd + 2*vd) + h*2*vh + conv_dim*kernel + 2*vh + v_head_dim + vd*h."""
        return (hidden * (2 * self.key_dim + 2 * self.value_dim) + hidden * 2 * self.num_value_heads
                + self.conv_dim * self.conv_kernel + 2 * self.num_value_heads + self.value_head_dim
                + self.value_dim * hidden)

    def recurrent_state_elements(self) -> int:
        """Per sequence and layer: one k_head_dim x v_head_dim matrix per value head."""
        return self.num_value_heads * self.key_head_dim * self.value_head_dim

    def conv_state_elements(self) -> int:
        """Per sequence and layer: the last (kernel - 1) inputs of the causal conv1d."""
        return self.conv_dim * (self.conv_kernel - 1)


@dataclass(frozen=True)
class SparseIndexer:
    """DeepSeek sparse-attention lightning indexer (DeepSeek-V3.2, GLM-5: ``index_*`` config fields)."""

    n_heads: int
    head_dim: int
    topk: int

    def params(self, hidden: int, q_lora_rank: int) -> int:
        """wq_b q_lora -> heads*head_dim, wk h -> head_dim, k_norm LayerNorm (2*head_dim), weights_proj h -> heads."""
        return q_lora_rank * self.n_heads * self.head_dim + hidden * self.head_dim + 2 * self.head_dim \
            + hidden * self.n_heads

    def cache_bytes_per_token(self) -> int:
        """fp8 keys plus one fp32 scale per 128 values, whatever the KV dtype: head_dim + head_dim/128*4
        (vLLM deepseek_v2.py DeepseekV32IndexerCache: 132 bytes for head_dim 128)."""
        return self.head_dim + self.head_dim // 128 * 4


@dataclass(frozen=True)
class LayerCounts:
    """How many decoder layers are of each kind (one architecture's, computed once)."""

    full: int           # attention over the whole context
    sliding: int        # sliding-window attention
    linear: int         # linear-attention (recurrent) mixers
    moe: int            # layers whose MLP is routed experts
    dense_mlp: int      # layers with a dense MLP

    @property
    def attention(self) -> int:
        return self.full + self.sliding


@dataclass(frozen=True)
class ModelArch:
    """What servewise needs of a decoder-only language model (multimodal: its text part)."""

    model_type: str
    architectures: tuple[str, ...]
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    layer_kinds: tuple[LayerKind, ...]
    sliding_window: int | None = None
    moe: MoE | None = None
    mla: MLA | None = None
    linear: LinearAttention | None = None  # the linear-attention layers (layer_kinds == "linear")
    indexer: SparseIndexer | None = None   # DSA indexer in every attention layer
    attention_bias: bool = False           # biases on q/k/v (Qwen2) and o where o_bias
    o_bias: bool = False
    qk_norm: bool = False                  # RMSNorm on q and k (Qwen3, Gemma3, MiniMax-M2)
    qk_norm_per_layer: bool = False        # MiniMax-M2: q/k norms span all heads, not one head_dim
    attn_output_gate: bool = False         # Qwen3-Next/3.5: q_proj also emits a sigmoid gate per head
    norms_per_layer: int = 2               # Gemma2/3 use 4 (pre/post attention and MLP)
    attention_sinks: bool = False          # gpt-oss: one learned sink logit per head
    gated_mlp: bool = True
    mtp_layers: int = 0                    # multi-token-prediction layers (not counted in total_params)
    vision_params: int = 0                 # parameters outside the language model (vision tower, projector)

    # ----------------------------------------------------------------- parsing
    @classmethod
    def from_hf_config(cls, config) -> ModelArch:
        from servewise.estimator.hf_config import parse_hf_config

        return parse_hf_config(config)

    # ----------------------------------------------------------------- shape facts
    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def is_mla(self) -> bool:
        return self.mla is not None

    @property
    def q_size(self) -> int:
        """Width of the queries: heads x head_dim (MLA: heads x (nope + rope))."""
        if self.mla:
            return self.num_attention_heads * (self.mla.qk_nope_head_dim + self.mla.qk_rope_head_dim)
        return self.num_attention_heads * self.head_dim

    @property
    def q_proj_size(self) -> int:
        """Output width of q_proj: the queries, and as much again for an output gate (Qwen3.5)."""
        return self.q_size * (2 if self.attn_output_gate else 1)

    @property
    def attn_out_size(self) -> int:
        """Width of the attention output before o_proj: heads x head_dim (MLA: heads x v_head_dim)."""
        if self.mla:
            return self.num_attention_heads * self.mla.v_head_dim
        return self.num_attention_heads * self.head_dim

    def layer_is_moe(self, i: int) -> bool:
        return self.moe is not None and i not in self.moe.dense_layers

    @cached_property
    def layer_counts(self) -> LayerCounts:
        """Layers of each kind, counted once per architecture object (the performance model asks for
        them on every step-time call; the frozen fields they derive from never change)."""
        kinds = self.layer_kinds
        moe = sum(self.layer_is_moe(i) for i in range(self.num_layers))
        return LayerCounts(full=kinds.count("full"), sliding=kinds.count("sliding"), linear=kinds.count("linear"),
                           moe=moe, dense_mlp=self.num_layers - moe)

    @property
    def num_moe_layers(self) -> int:
        return self.layer_counts.moe

    @property
    def num_attention_layers(self) -> int:
        return self.layer_counts.attention

    @property
    def num_linear_layers(self) -> int:
        return self.layer_counts.linear

    # ----------------------------------------------------------------- parameter counts
    def attention_params_per_layer(self) -> int:
        """q, k, v, o projections (+ biases, q/k norms, sinks, MLA down/up projections and norms, indexer).

        GQA: h*q_proj + 2*h*(kv_heads*head_dim) + (heads*head_dim)*h.
        MLA: [h*q_lora + q_lora + q_lora*heads*(nope+rope)] or h*heads*(nope+rope)
             + h*(kv_lora + rope) + kv_lora + kv_lora*heads*(nope + v) + heads*v*h.
        """
        h = self.hidden_size
        if self.mla:
            m = self.mla
            qk = m.qk_nope_head_dim + m.qk_rope_head_dim
            if m.q_lora_rank:
                q = h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * self.num_attention_heads * qk
            else:
                q = h * self.num_attention_heads * qk
            kv = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank
            kv += m.kv_lora_rank * self.num_attention_heads * (m.qk_nope_head_dim + m.v_head_dim)
            n = q + kv + self.attn_out_size * h
            if self.indexer:
                n += self.indexer.params(h, m.q_lora_rank or h)
            return n
        kv_size = self.num_kv_heads * self.head_dim
        n = h * self.q_proj_size + 2 * h * kv_size + self.attn_out_size * h
        if self.attention_bias:
            n += self.q_size + 2 * kv_size
        if self.o_bias:
            n += h
        if self.qk_norm:
            n += (self.q_size + kv_size) if self.qk_norm_per_layer else 2 * self.head_dim
        if self.attention_sinks:
            n += self.num_attention_heads
        return n

    def dense_mlp_params(self, intermediate: int) -> int:
        """Gated MLP (gate, up, down): 3*h*i; plain MLP: 2*h*i."""
        return (3 if self.gated_mlp else 2) * self.hidden_size * intermediate

    def expert_params(self) -> int:
        """One routed expert: a gated MLP of width ``expert_intermediate`` (+ biases for gpt-oss)."""
        assert self.moe
        n = self.dense_mlp_params(self.moe.expert_intermediate)
        if self.moe.expert_bias:
            n += 2 * self.moe.expert_intermediate + self.hidden_size
        return n

    def moe_nonexpert_params_per_layer(self) -> int:
        """Router (h*E [+E]), shared experts (3*h*shared_i) and the shared-expert gate (h)."""
        assert self.moe
        m = self.moe
        n = self.hidden_size * m.num_experts + (m.num_experts if m.router_bias else 0)
        if m.shared_intermediate:
            n += self.dense_mlp_params(m.shared_intermediate)
        if m.shared_expert_gate:
            n += self.hidden_size
        return n

    def mlp_params_per_layer(self, i: int) -> int:
        if self.layer_is_moe(i):
            assert self.moe
            return self.moe.num_experts * self.expert_params() + self.moe_nonexpert_params_per_layer()
        inter = self.moe.dense_intermediate if (self.moe and self.moe.dense_intermediate) else self.intermediate_size
        return self.dense_mlp_params(inter)

    def mixer_params(self, i: int) -> int:
        """The token mixer of layer i: attention, or the linear-attention block."""
        if self.layer_kinds[i] == "linear":
            assert self.linear
            return self.linear.params(self.hidden_size)
        return self.attention_params_per_layer()

    def layer_params(self, i: int) -> int:
        return self.mixer_params(i) + self.mlp_params_per_layer(i) + self.norms_per_layer * self.hidden_size

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def lm_head_params(self) -> int:
        """0 when tied to the input embedding."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    def total_params(self, include_vision: bool = True) -> int:
        """Every parameter the checkpoint holds for the language model (+ vision tower if asked);
        multi-token-prediction layers are not counted (they are a draft model, not the served one)."""
        n = sum(self.layer_params(i) for i in range(self.num_layers))
        n += self.embedding_params() + self.lm_head_params() + self.hidden_size  # final norm
        return n + (self.vision_params if include_vision else 0)

    def active_params(self, include_embedding: bool = True) -> int:
        """Parameters touched per token: routed experts counted top_k times, not num_experts times.

        ``include_embedding=False`` leaves out the input embedding table (a token reads one row of
        it), the convention of the gpt-oss model card; Mistral and Qwen count it in.
        """
        n = self.total_params(include_vision=False)
        if not include_embedding:
            n -= self.embedding_params()
        if self.moe:
            n -= (self.moe.num_experts - self.moe.top_k) * self.expert_params() * self.num_moe_layers
        return n

    # ----------------------------------------------------------------- KV cache and state
    def kv_elements_per_token_per_layer(self) -> int:
        """Cached elements per token in one attention layer, whole model (no TP split).

        MHA/GQA/MQA: 2 * num_kv_heads * head_dim (K and V).
        MLA: kv_lora_rank + qk_rope_head_dim (the compressed latent and the shared rope key).
        The DSA indexer keys are extra bytes of their own: ``indexer_bytes_per_token_per_layer``.
        """
        if self.mla:
            return self.mla.kv_lora_rank + self.mla.qk_rope_head_dim
        return 2 * self.num_kv_heads * self.head_dim

    def kv_heads_per_gpu(self, tp: int) -> int:
        """KV heads each TP rank holds: ceil(kv_heads / tp); heads are replicated when tp > kv_heads."""
        return max(1, -(-self.num_kv_heads // tp))

    def kv_elements_per_token_per_layer_per_gpu(self, tp: int) -> int:
        """Per GPU under TP: GQA shards KV heads (replicating when tp exceeds them); the MLA latent
        is replicated on every rank."""
        if self.mla:
            return self.kv_elements_per_token_per_layer()
        return 2 * self.kv_heads_per_gpu(tp) * self.head_dim

    def indexer_bytes_per_token_per_layer(self) -> int:
        """DSA indexer cache bytes per token and attention layer (0 without an indexer)."""
        return self.indexer.cache_bytes_per_token() if self.indexer else 0

    def kv_bytes_per_token(self, kv_bytes_per_element: float) -> dict[LayerKind, float]:
        """Whole-model cache bytes one token costs, by layer kind (sliding layers stop growing at
        the window): layers x KV elements x element bytes, plus the indexer keys."""
        per_layer = self.kv_elements_per_token_per_layer() * kv_bytes_per_element \
            + self.indexer_bytes_per_token_per_layer()
        return {kind: n * per_layer for kind, n in self.kv_layers().items() if n}

    def linear_state_elements_per_seq(self) -> tuple[int, int]:
        """(conv, recurrent) state elements one sequence holds over all linear-attention layers,
        whatever its length; (0, 0) without such layers."""
        if not self.linear:
            return 0, 0
        n = self.num_linear_layers
        return n * self.linear.conv_state_elements(), n * self.linear.recurrent_state_elements()

    def kv_layers(self) -> dict[LayerKind, int]:
        """Number of layers of each kind that hold a KV cache."""
        c = self.layer_counts
        return {"full": c.full, "sliding": c.sliding}
