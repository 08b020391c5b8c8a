"""``servewise models --describe``: a resolved model's architecture, parameter counts, weight
bytes per format and cache bytes per token, as one typed document (printed by the CLI)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from servewise.estimator.quant import FORMATS, kv_bytes_per_element
from servewise.estimator.quant_scheme import weight_split
from servewise.estimator.resolve import ResolvedModel

_SERVING_FORMATS = ("bf16", "fp8", "int8", "int4-awq", "int4-gptq", "nvfp4", "mxfp4")


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MoEFacts(_Doc):
    experts: int
    top_k: int
    expert_intermediate_size: int
    shared_experts: int
    shared_intermediate_size: int
    dense_layers: int


class Architecture(_Doc):
    model_type: str
    architectures: list[str]
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    attention: str                         # MHA | GQA | MQA | MLA, with the head counts
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    layers_by_kind: dict[str, int]         # full / sliding / linear
    sliding_window: int | None
    moe: MoEFacts | None
    mla: dict[str, int | None] | None
    linear_attention: dict[str, int] | None
    sparse_indexer: dict[str, int] | None
    mtp_layers: int


class Params(_Doc):
    total: int
    language_model: int
    vision: int
    active: int | None                     # MoE: routed experts counted top_k times
    active_excluding_embedding: int | None
    published: float | None
    published_source: str | None
    note: str | None


class Checkpoint(_Doc):
    dtype: str
    quantization_method: str | None
    quantization: str | None               # one line: format, scales, group
    quantized_roles: list[str]
    excluded_modules: list[str]
    kv_cache_dtype: str | None             # a KV quantization the checkpoint ships
    weight_bytes: float
    weight_bytes_source: str               # architecture | safetensors


class ModelDescription(_Doc):
    id: str
    source: str                            # catalog | hub | hub-cache | local | profile
    revision: str | None
    config_hash: str | None
    architecture: Architecture
    params: Params
    checkpoint: Checkpoint
    weight_bytes: dict[str, float]         # every linear layer of the decoder in that format; the rest 16-bit
    kv_bytes_per_token: dict[str, dict[str, float]]   # KV dtype -> layer kind -> bytes, whole model
    indexer_bytes_per_token: int           # DSA indexer keys (fp8 + scales), included above
    linear_state_bytes_per_sequence: dict[str, int] | None   # Gated DeltaNet conv / recurrent state at 16 bit


def _attention_kind(rm: ResolvedModel) -> str:
    a = rm.arch
    if a.mla:
        return f"MLA ({a.num_attention_heads} heads, latent {a.mla.kv_lora_rank} + rope {a.mla.qk_rope_head_dim})"
    if a.num_kv_heads == a.num_attention_heads:
        return f"MHA ({a.num_attention_heads} heads)"
    kind = "MQA" if a.num_kv_heads == 1 else "GQA"
    return f"{kind} ({a.num_attention_heads} query / {a.num_kv_heads} KV heads)"


def _architecture(rm: ResolvedModel) -> Architecture:
    a = rm.arch
    counts: dict[str, int] = {}
    for k in a.layer_kinds:
        counts[k] = counts.get(k, 0) + 1
    moe = None
    if a.moe:
        m = a.moe
        moe = MoEFacts(experts=m.num_experts, top_k=m.top_k, expert_intermediate_size=m.expert_intermediate,
                       shared_experts=m.num_shared_experts, shared_intermediate_size=m.shared_intermediate,
                       dense_layers=a.num_layers - a.num_moe_layers)
    mla = None
    if a.mla:
        mla = {"q_lora_rank": a.mla.q_lora_rank, "kv_lora_rank": a.mla.kv_lora_rank,
               "qk_nope_head_dim": a.mla.qk_nope_head_dim, "qk_rope_head_dim": a.mla.qk_rope_head_dim,
               "v_head_dim": a.mla.v_head_dim}
    linear = None
    if a.linear:
        la = a.linear
        linear = {"key_heads": la.num_key_heads, "value_heads": la.num_value_heads, "key_head_dim": la.key_head_dim,
                  "value_head_dim": la.value_head_dim, "conv_kernel": la.conv_kernel}
    ix = a.indexer
    indexer = {"heads": ix.n_heads, "head_dim": ix.head_dim, "topk": ix.topk} if ix else None
    return Architecture(
        model_type=a.model_type, architectures=list(a.architectures), num_layers=a.num_layers,
        hidden_size=a.hidden_size,
        num_attention_heads=a.num_attention_heads, num_kv_heads=a.num_kv_heads, head_dim=a.head_dim,
        attention=_attention_kind(rm), intermediate_size=a.intermediate_size, vocab_size=a.vocab_size,
        max_position_embeddings=a.max_position_embeddings, tie_word_embeddings=a.tie_word_embeddings,
        layers_by_kind=counts, sliding_window=a.sliding_window, moe=moe, mla=mla, linear_attention=linear,
        sparse_indexer=indexer, mtp_layers=a.mtp_layers)


def describe(rm: ResolvedModel, *, params_source: str | None = None, params_note: str | None = None
             ) -> ModelDescription:
    """Everything ``models --describe`` shows, from the resolved model alone."""
    a = rm.arch
    params = Params(total=a.total_params(), language_model=a.total_params(include_vision=False), vision=a.vision_params,
                    active=a.active_params() if a.moe else None,
                    active_excluding_embedding=a.active_params(include_embedding=False) if a.moe else None,
                    published=rm.published_params, published_source=params_source, note=params_note)
    split = weight_split(a, rm.checkpoint_quant)
    q = rm.checkpoint_quant
    ckpt = Checkpoint(dtype=rm.checkpoint_dtype, quantization_method=q.method if q else None,
                      quantization=q.detail if q else None, quantized_roles=sorted(split.quantized_roles),
                      excluded_modules=list(q.excluded) if q else [], kv_cache_dtype=q.kv_cache_dtype if q else None,
                      weight_bytes=float(rm.weight_bytes if rm.weight_bytes is not None else split.weight_bytes),
                      weight_bytes_source=rm.weight_bytes_source)
    per_format = {"bf16": float(weight_split(a, None).weight_bytes)}
    for name in _SERVING_FORMATS[1:]:
        per_format[name] = float(weight_split(a, None, uniform=FORMATS[name]).weight_bytes)
    kv = {dt: {k: float(v) for k, v in a.kv_bytes_per_token(kv_bytes_per_element(dt)).items()}
          for dt in ("bf16", "fp8")}
    conv, rec = a.linear_state_elements_per_seq()
    state = {"conv": conv * 2, "recurrent": rec * 2} if a.linear else None
    return ModelDescription(id=rm.id, source=rm.source, revision=rm.revision, config_hash=rm.config_hash,
                            architecture=_architecture(rm), params=params, checkpoint=ckpt,
                            weight_bytes=per_format, kv_bytes_per_token=kv,
                            indexer_bytes_per_token=a.num_attention_layers * a.indexer_bytes_per_token_per_layer(),
                            linear_state_bytes_per_sequence=state)
