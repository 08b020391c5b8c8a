"""The weight tensors of a model by module name, so a checkpoint's quantization exclusions
(``modules_to_not_convert``, ``ignore``, ``exclude_modules``) can be applied exactly.

Names follow the Hugging Face checkpoints (``model.layers.{i}.self_attn.q_proj`` ...); routed
experts are one group per layer named after expert 0. Each module carries its weight and bias
parameter counts; biases, norms, routers and embeddings are never stored in a quantized format.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from servewise.estimator.arch import ModelArch

Role = Literal["attention", "mlp", "experts", "shared_experts", "router", "norm", "embedding", "lm_head", "vision"]


@dataclass(frozen=True)
class Module:
    name: str
    role: Role
    weight_params: int        # the matrix, quantizable when the role is a linear layer
    bias_params: int = 0      # biases and other 16-bit tensors of the same module

    @property
    def linear(self) -> bool:
        return self.role in ("attention", "mlp", "experts", "shared_experts")


def _attention(a: ModelArch, p: str) -> Iterator[Module]:
    h = a.hidden_size
    if a.mla:
        m = a.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            yield Module(f"{p}.self_attn.q_a_proj", "attention", h * m.q_lora_rank)
            yield Module(f"{p}.self_attn.q_a_layernorm", "norm", 0, m.q_lora_rank)
            yield Module(f"{p}.self_attn.q_b_proj", "attention", m.q_lora_rank * a.num_attention_heads * qk)
        else:
            yield Module(f"{p}.self_attn.q_proj", "attention", h * a.num_attention_heads * qk)
        yield Module(f"{p}.self_attn.kv_a_proj_with_mqa", "attention", h * (m.kv_lora_rank + m.qk_rope_head_dim))
        yield Module(f"{p}.self_attn.kv_a_layernorm", "norm", 0, m.kv_lora_rank)
        yield Module(f"{p}.self_attn.kv_b_proj", "attention",
                     m.kv_lora_rank * a.num_attention_heads * (m.qk_nope_head_dim + m.v_head_dim))
        yield Module(f"{p}.self_attn.o_proj", "attention", a.attn_out_size * h)
        if a.indexer:
            ix = a.indexer
            yield Module(f"{p}.self_attn.indexer.wq_b", "attention", (m.q_lora_rank or h) * ix.n_heads * ix.head_dim)
            yield Module(f"{p}.self_attn.indexer.wk", "attention", h * ix.head_dim)
            yield Module(f"{p}.self_attn.indexer.k_norm", "norm", 0, 2 * ix.head_dim)
            yield Module(f"{p}.self_attn.indexer.weights_proj", "router", 0, h * ix.n_heads)
        return
    kv = a.num_kv_heads * a.head_dim
    qb = a.q_size if a.attention_bias else 0
    kb = kv if a.attention_bias else 0
    yield Module(f"{p}.self_attn.q_proj", "attention", h * a.q_proj_size, qb)
    yield Module(f"{p}.self_attn.k_proj", "attention", h * kv, kb)
    yield Module(f"{p}.self_attn.v_proj", "attention", h * kv, kb)
    yield Module(f"{p}.self_attn.o_proj", "attention", a.attn_out_size * h, h if a.o_bias else 0)
    extra = 0
    if a.qk_norm:
        extra += (a.q_size + kv) if a.qk_norm_per_layer else 2 * a.head_dim
    if a.attention_sinks:
        extra += a.num_attention_heads
    if extra:
        yield Module(f"{p}.self_attn.norms_and_sinks", "norm", 0, extra)


def _linear_attention(a: ModelArch, p: str) -> Iterator[Module]:
    la, h = a.linear, a.hidden_size
    assert la
    yield Module(f"{p}.linear_attn.in_proj_qkvz", "attention", h * (2 * la.key_dim + 2 * la.value_dim))
    yield Module(f"{p}.linear_attn.in_proj_ba", "attention", h * 2 * la.num_value_heads)
    yield Module(f"{p}.linear_attn.out_proj", "attention", la.value_dim * h)
    yield Module(f"{p}.linear_attn.conv1d_and_state", "norm", 0,
                 la.conv_dim * la.conv_kernel + 2 * la.num_value_heads + la.value_head_dim)


def _moe_prefix(a: ModelArch) -> str:
    return "block_sparse_moe" if a.model_type.split("/")[-1] in ("mixtral", "minimax_m2") else "mlp"


def _mlp(a: ModelArch, i: int, p: str) -> Iterator[Module]:
    h = a.hidden_size
    if not a.layer_is_moe(i):
        inter = a.moe.dense_intermediate if (a.moe and a.moe.dense_intermediate) else a.intermediate_size
        for proj in ("gate_proj", "up_proj", "down_proj") if a.gated_mlp else ("up_proj", "down_proj"):
            yield Module(f"{p}.mlp.{proj}", "mlp", h * inter)
        return
    m = a.moe
    assert m
    mp = f"{p}.{_moe_prefix(a)}"
    bias = (2 * m.expert_intermediate + h) * m.num_experts if m.expert_bias else 0
    experts = m.num_experts * a.dense_mlp_params(m.expert_intermediate)
    yield Module(f"{mp}.experts.0.gate_proj", "experts", experts, bias)
    yield Module(f"{mp}.gate", "router", 0, h * m.num_experts + (m.num_experts if m.router_bias else 0))
    if m.shared_intermediate:
        shared = "shared_experts" if a.mla else "shared_expert"
        yield Module(f"{mp}.{shared}.gate_proj", "shared_experts", a.dense_mlp_params(m.shared_intermediate))
    if m.shared_expert_gate:
        yield Module(f"{mp}.shared_expert_gate", "router", 0, h)


def modules(a: ModelArch) -> Iterator[Module]:
    """Every weight of the model once, with its role (vision tower and projector as one block)."""
    h = a.hidden_size
    yield Module("model.embed_tokens", "embedding", 0, a.embedding_params())
    for i in range(a.num_layers):
        p = f"model.layers.{i}"
        yield from (_linear_attention(a, p) if a.layer_kinds[i] == "linear" else _attention(a, p))
        yield from _mlp(a, i, p)
        yield Module(f"{p}.layernorms", "norm", 0, a.norms_per_layer * h)
    yield Module("model.norm", "norm", 0, h)
    if not a.tie_word_embeddings:
        yield Module("lm_head", "lm_head", 0, a.lm_head_params())
    if a.vision_params:
        yield Module("vision_tower", "vision", 0, a.vision_params)
