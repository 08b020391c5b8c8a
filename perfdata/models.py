"""Model catalog: one YAML per model in ``perfdata/models/<org>/``.

Each entry carries the architecture fields of the model's Hugging Face ``config.json``
verbatim (trimmed to what servewise uses, under ``config``) plus metadata. The estimator
reads ``config`` through the same parser it uses for a live ``config.json``, so catalog
and Hub models follow one code path.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from servewise.perfdata.errors import UnknownIdError
from servewise.perfdata.loader import read_yaml, read_yaml_dir

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


# The config.json keys that describe the architecture (verbatim names); the catalog keeps these and a
# profile records these for a non-catalog model, so the estimator parses both the same way.
ARCH_CONFIG_KEYS = (
    "architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "max_position_embeddings", "vocab_size", "tie_word_embeddings",
    "attention_bias", "mlp_bias", "hidden_act", "rope_theta", "rope_scaling", "rope_parameters", "partial_rotary_factor",
    "rotary_dim", "sliding_window", "use_sliding_window", "max_window_layers", "sliding_window_pattern", "layer_types",
    "query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping",
    "num_local_experts", "num_experts", "num_experts_per_tok", "experts_per_token", "moe_intermediate_size",
    "shared_expert_intermediate_size", "shared_intermediate_size", "n_routed_experts", "n_shared_experts",
    "first_k_dense_replace", "moe_layer_freq", "decoder_sparse_step", "mlp_only_layers", "norm_topk_prob",
    "topk_method", "n_group", "topk_group", "scoring_func", "routed_scaling_factor", "use_routing_bias",
    "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "qk_head_dim",
    "index_n_heads", "index_head_dim", "index_topk",
    "use_qk_norm", "qk_norm_type", "attn_output_gate", "full_attention_interval", "linear_conv_kernel_dim",
    "linear_key_head_dim", "linear_num_key_heads", "linear_num_value_heads", "linear_value_head_dim",
    "num_nextn_predict_layers", "mtp_num_hidden_layers", "use_mtp", "num_mtp_modules",
    "torch_dtype", "dtype", "quantization_config",
    "spatial_merge_size", "multimodal_projector_bias", "projector_hidden_act", "mm_tokens_per_image",
    "text_config", "vision_config",
)
VISION_CONFIG_KEYS = (
    "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "head_dim",
    "patch_size", "image_size", "num_channels", "depth", "num_heads", "in_channels", "out_hidden_size",
    "spatial_merge_size", "temporal_patch_size", "num_position_embeddings", "deepstack_visual_indexes",
    "vt_hidden_size", "vt_intermediate_size", "vt_num_attention_heads", "vt_num_hidden_layers", "mm_hidden_size",
    "merge_kernel_size", "text_hidden_size", "init_pos_emb_height", "init_pos_emb_width", "mm_projector_type",
    "vision_use_head",
)


def trim_config(config: dict[str, Any], keys: tuple[str, ...] = ARCH_CONFIG_KEYS) -> dict[str, Any]:
    """The architecture fields of a config.json, verbatim (text_config / vision_config trimmed alike)."""
    out: dict[str, Any] = {}
    for k in keys:
        if k in config:
            v = config[k]
            if k == "text_config" and isinstance(v, dict):
                v = trim_config(v)
            elif k == "vision_config" and isinstance(v, dict):
                v = trim_config(v, VISION_CONFIG_KEYS)
            out[k] = v
    return out


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$",
                    description="Hugging Face repo id; the catalog id")
    family: str = Field(description="short family name for search, e.g. llama3.1, qwen3-moe")
    params: float = Field(gt=0, description="published parameter count of what the checkpoint holds")
    params_source: str
    params_note: str | None = Field(default=None, description="what the count includes (MTP, vision tower)")
    params_rounding: float | None = Field(
        default=None, gt=0, description="half-width of the rounding of a published count given to few digits "
        "(1T -> 0.05e12); only where no more precise count is published")
    dtype: Literal["bf16", "fp16", "fp32", "fp8", "int8", "int4-awq", "int4-gptq", "nvfp4", "mxfp4"] = Field(
        description="weights format of the checkpoint as published")
    license: str
    gated: bool
    base_model: str | None = Field(default=None, description="the model a quantized/fine-tuned repo derives from")
    aliases: list[str] = Field(default_factory=list, description="other ids the same checkpoint is known by")
    config: dict[str, Any] = Field(description="config.json fields, verbatim names")
    quantization_config: dict[str, Any] | None = Field(
        default=None, description="config.json quantization_config (or hf_quant_config.json), verbatim")
    source: str = Field(description="repo@revision path of the config this entry was transcribed from")
    tags: list[str] = Field(default_factory=list)


_LOADED: dict[str, ModelEntry] = {}   # one object per entry, whether read alone or with the whole catalog


@cache
def all_models() -> dict[str, ModelEntry]:
    """Every catalog model, by Hugging Face id."""
    out = {}
    for d in read_yaml_dir("models"):
        m = ModelEntry.model_validate(d)
        out[m.id] = _LOADED.setdefault(m.id, m)
    return out


def _exact(model_id: str) -> ModelEntry | None:
    """The entry whose file is ``models/<id>.yaml``, read alone (planning one model need not parse the
    whole catalog); None when there is no such file."""
    if model_id in _LOADED:
        return _LOADED[model_id]
    if not _ID.match(model_id):
        return None
    try:
        doc = read_yaml(f"models/{model_id}.yaml")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    entry = ModelEntry.model_validate(doc)
    return _LOADED.setdefault(model_id, entry) if entry.id == model_id else None


def find_model(model_id: str) -> ModelEntry | None:
    """Exact id, else a case-insensitive id match (HF ids are case-insensitive on the Hub)."""
    exact = _exact(model_id)
    if exact is not None:
        return exact
    models = all_models()
    if model_id in models:
        return models[model_id]
    low = model_id.lower()
    for k, v in models.items():
        if k.lower() == low or low in (a.lower() for a in v.aliases):
            return v
    return None


def get_model(model_id: str) -> ModelEntry:
    entry = find_model(model_id)
    if entry is None:
        raise UnknownIdError("model", model_id, all_models(),
                             hint="(list them with `servewise models`, or pass a local checkpoint folder)")
    return entry


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([mbt])$", re.IGNORECASE)
_SCALE = {"m": 1e6, "b": 1e9, "t": 1e12}


def _token_matches(entry: ModelEntry, token: str) -> bool:
    """A size (``70b``, ``0.6B``, ``1t``: published count within 10%, or the size as a whole word of the
    id, so ``7b`` finds neither ``27b`` nor ``A17B``) or a substring of the id, family or a tag
    (case-insensitive)."""
    low = token.lower()
    names = (entry.id, entry.family, *entry.tags, *entry.aliases)
    size = _SIZE.match(low)
    if size:
        wanted = float(size.group(1)) * _SCALE[size.group(2)]
        word = re.compile(rf"(?<![0-9a-z.]){re.escape(low)}(?![0-9a-z])")
        return abs(entry.params - wanted) <= 0.1 * wanted or any(word.search(n.lower()) for n in names)
    return any(low in n.lower() for n in names)


def search_models(query: str | None = None) -> list[ModelEntry]:
    """Catalog models matching every word of ``query`` (all of them when empty), sorted by id."""
    words = (query or "").split()
    return sorted((m for m in all_models().values() if all(_token_matches(m, w) for w in words)),
                  key=lambda m: m.id.lower())
