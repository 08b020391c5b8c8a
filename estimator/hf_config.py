"""Parse a Hugging Face ``config.json`` (or the catalog's verbatim copy) into ``ModelArch``.

Only architectures whose memory and compute servewise models correctly are accepted; any
other ``model_type`` is refused with its name and the reason (never approximated). Field
values are checked (integers, ranges, consistency) so a corrupted config fails with one line
naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import inf
from typing import Any

from servewise.estimator.arch import (
    MLA, LayerKind, LinearAttention, ModelArch, MoE, SparseIndexer, UnsupportedArchitectureError,
)
from servewise.estimator.vision import vision_params

# model_type -> default of tie_word_embeddings when the config omits it (the transformers class default).
_TIE_DEFAULT = {"gemma": True, "gemma2": True, "gemma3_text": True}

DENSE = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "gemma3_text", "granite"})
MOE = frozenset({"mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3", "kimi_k2", "gpt_oss",
                 "minimax_m2", "qwen3_next", "qwen3_5_moe_text", "deepseek_v32", "glm_moe_dsa"})
_MLA = frozenset({"deepseek_v2", "deepseek_v3", "kimi_k2", "deepseek_v32", "glm_moe_dsa"})
_DSA = frozenset({"deepseek_v32", "glm_moe_dsa"})
_GDN = frozenset({"qwen3_next", "qwen3_5_moe_text"})
_QWEN_MOE = frozenset({"qwen2_moe", "qwen3_moe"}) | _GDN
_QK_NORM = frozenset({"qwen3", "qwen3_moe", "gemma3_text"}) | _GDN
# Multimodal wrappers whose language model sits under text_config (inner type when text_config omits it).
MULTIMODAL = {"gemma3": "gemma3_text", "mistral3": "mistral", "kimi_k25": "kimi_k2",
              "qwen3_5_moe": "qwen3_5_moe_text"}
REFUSED = {
    "mamba": "pure state-space model: no attention KV cache, and its state memory is not modelled",
    "mamba2": "pure state-space model: no attention KV cache, and its state memory is not modelled",
    "falcon_h1": "hybrid Mamba/attention layers: Mamba state memory is not modelled",
    "jamba": "hybrid Mamba/attention MoE: Mamba state memory is not modelled",
    "nemotron_h": "hybrid Mamba2/attention layers: Mamba state memory is not modelled",
    "llama4": "chunked local attention and interleaved MoE of Llama 4 are not modelled",
    "llama4_text": "chunked local attention and interleaved MoE of Llama 4 are not modelled",
    "deepseek_v4": "compressed sparse attention of DeepSeek-V4 is not modelled",
}
_MAX_INT = 10**12


def _get(cfg: Mapping[str, Any], key: str, default: Any = None, *, required: bool = False) -> Any:
    if key in cfg and cfg[key] is not None:
        return cfg[key]
    if required:
        raise UnsupportedArchitectureError(f"config.json has no {key!r}; cannot describe the model")
    return default


def _int(cfg: Mapping[str, Any], key: str, default: int | None = None, *, required: bool = False,
         lo: int = 0, hi: int = _MAX_INT) -> int:
    v = _get(cfg, key, default, required=required)
    if v is None:
        return v  # type: ignore[return-value]
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v or v in (inf, -inf) or int(v) != v:
        raise UnsupportedArchitectureError(f"config.json field {key!r} must be an integer, got {v!r}")
    v = int(v)
    if not lo <= v <= hi:
        shown = v if abs(v) < 10**15 else f"{float(v):.3g}"
        raise UnsupportedArchitectureError(f"config.json field {key!r} = {shown} is out of range [{lo}, {hi}]")
    return v


def _layer_kinds(cfg: Mapping[str, Any], model_type: str, n: int) -> tuple[tuple[LayerKind, ...], int | None]:
    """Per-layer attention kind from ``layer_types`` or the family's documented pattern."""
    window = _get(cfg, "sliding_window")
    if isinstance(window, bool) or (window is not None and not isinstance(window, int)):
        raise UnsupportedArchitectureError(f"config.json field 'sliding_window' must be an integer, got {window!r}")
    window = _int(cfg, "sliding_window", lo=0, hi=100_000_000)  # a window longer than any context is absurd
    names = _get(cfg, "layer_types")
    if names is not None:
        if not isinstance(names, list) or len(names) != n:
            raise UnsupportedArchitectureError(f"config.json 'layer_types' must list {n} layers "
                                               f"(num_hidden_layers)")
        kinds: list[LayerKind] = []
        for name in names:
            if name in ("full_attention", "attention", "global"):
                kinds.append("full")
            elif name in ("sliding_attention", "local", "sliding"):
                kinds.append("sliding")
            elif name == "linear_attention" and model_type in _GDN:
                kinds.append("linear")
            else:
                raise UnsupportedArchitectureError(f"layer type {name!r} ({model_type}) is not modelled")
        if "sliding" in kinds and not window:
            raise UnsupportedArchitectureError("config.json lists sliding_attention layers but no sliding_window")
        return tuple(kinds), window if "sliding" in kinds else None
    if model_type in _GDN:
        # Qwen3-Next: every full_attention_interval-th layer is full attention, the rest Gated DeltaNet.
        step = _int(cfg, "full_attention_interval", 4, lo=1)
        return tuple("full" if (i + 1) % step == 0 else "linear" for i in range(n)), None
    if model_type == "gemma2" and window:
        # Gemma 2 alternates local (even layers) and global attention (transformers Gemma2 modelling).
        return tuple("sliding" if i % 2 == 0 else "full" for i in range(n)), window
    if model_type == "gemma3_text" and window:
        # Gemma 3: every `sliding_window_pattern`-th layer is global, the others local.
        p = _int(cfg, "sliding_window_pattern", 6, lo=1)
        return tuple("full" if (i + 1) % p == 0 else "sliding" for i in range(n)), window
    if model_type in ("mistral", "mixtral", "phi3") and window and window < _int(cfg, "max_position_embeddings", 0):
        return tuple("sliding" for _ in range(n)), window
    if model_type in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe") and cfg.get("use_sliding_window") and window:
        max_window_layers = _int(cfg, "max_window_layers", n)
        return tuple("sliding" if i >= max_window_layers else "full" for i in range(n)), window
    return tuple("full" for _ in range(n)), None


def _moe(cfg: Mapping[str, Any], model_type: str, n: int) -> MoE | None:
    if model_type == "mixtral":
        return MoE(num_experts=_int(cfg, "num_local_experts", required=True, lo=1),
                   top_k=_int(cfg, "num_experts_per_tok", 2, lo=1),
                   expert_intermediate=_int(cfg, "intermediate_size", required=True, lo=1))
    if model_type == "gpt_oss":
        return MoE(num_experts=_int(cfg, "num_local_experts", required=True, lo=1),
                   top_k=_int(cfg, "num_experts_per_tok", _int(cfg, "experts_per_token", 4), lo=1),
                   expert_intermediate=_int(cfg, "intermediate_size", required=True, lo=1),
                   expert_bias=True, router_bias=True)
    if model_type == "minimax_m2":
        shared = _int(cfg, "shared_intermediate_size", 0)
        return MoE(num_experts=_int(cfg, "num_local_experts", required=True, lo=1),
                   top_k=_int(cfg, "num_experts_per_tok", required=True, lo=1),
                   expert_intermediate=_int(cfg, "intermediate_size", required=True, lo=1),
                   num_shared_experts=1 if shared else 0, shared_intermediate=shared,
                   router_bias=bool(cfg.get("use_routing_bias")))
    if model_type in _QWEN_MOE:
        step = _int(cfg, "decoder_sparse_step", 1, lo=1)
        mlp_only = set(_get(cfg, "mlp_only_layers", []) or [])
        dense = tuple(i for i in range(n) if i in mlp_only or (i + 1) % step != 0)
        shared = _int(cfg, "shared_expert_intermediate_size", 0)
        return MoE(num_experts=_int(cfg, "num_experts", required=True, lo=1),
                   top_k=_int(cfg, "num_experts_per_tok", required=True, lo=1),
                   expert_intermediate=_int(cfg, "moe_intermediate_size", required=True, lo=1),
                   num_shared_experts=1 if shared else 0, shared_intermediate=shared,
                   dense_layers=dense, dense_intermediate=_int(cfg, "intermediate_size", 0),
                   shared_expert_gate=bool(shared))
    if model_type in _MLA:
        first_dense = _int(cfg, "first_k_dense_replace", 0)
        freq = _int(cfg, "moe_layer_freq", 1, lo=1)
        dense = tuple(i for i in range(n) if i < first_dense or i % freq != 0)
        n_shared = _int(cfg, "n_shared_experts", 0)
        expert_i = _int(cfg, "moe_intermediate_size", required=True, lo=1)
        return MoE(num_experts=_int(cfg, "n_routed_experts", required=True, lo=1),
                   top_k=_int(cfg, "num_experts_per_tok", required=True, lo=1),
                   expert_intermediate=expert_i, num_shared_experts=n_shared,
                   shared_intermediate=n_shared * expert_i, dense_layers=dense,
                   dense_intermediate=_int(cfg, "intermediate_size", required=True),
                   router_bias=cfg.get("topk_method") == "noaux_tc")
    return None


def _mla(cfg: Mapping[str, Any]) -> MLA:
    return MLA(q_lora_rank=_int(cfg, "q_lora_rank", None, lo=1), kv_lora_rank=_int(cfg, "kv_lora_rank", required=True,
                                                                                     lo=1),
               qk_nope_head_dim=_int(cfg, "qk_nope_head_dim", required=True),
               qk_rope_head_dim=_int(cfg, "qk_rope_head_dim", required=True),
               v_head_dim=_int(cfg, "v_head_dim", required=True, lo=1))


def _linear(cfg: Mapping[str, Any]) -> LinearAttention:
    return LinearAttention(num_key_heads=_int(cfg, "linear_num_key_heads", required=True, lo=1),
                           num_value_heads=_int(cfg, "linear_num_value_heads", required=True, lo=1),
                           key_head_dim=_int(cfg, "linear_key_head_dim", required=True, lo=1),
                           value_head_dim=_int(cfg, "linear_value_head_dim", required=True, lo=1),
                           conv_kernel=_int(cfg, "linear_conv_kernel_dim", 4, lo=1))


def _text_config(config: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    model_type = str(config.get("model_type") or "")
    if model_type in MULTIMODAL:
        if not isinstance(config.get("text_config"), Mapping):
            raise UnsupportedArchitectureError(f"{model_type} config has no text_config")
        text = dict(config["text_config"])
        inner = str(text.get("model_type") or MULTIMODAL[model_type])
        text["model_type"] = inner
        for k in ("tie_word_embeddings", "architectures"):
            if k in config and k not in text:
                text[k] = config[k]
        return text, inner
    return config, model_type


def _check_family(model_type: str) -> None:
    if not model_type:
        raise UnsupportedArchitectureError("config.json has no 'model_type'")
    if model_type in REFUSED:
        raise UnsupportedArchitectureError(f"model_type {model_type!r} is not supported: {REFUSED[model_type]}")
    if model_type not in DENSE | MOE:
        raise UnsupportedArchitectureError(
            f"model_type {model_type!r} is not a family servewise models (known: "
            f"{', '.join(sorted(DENSE | MOE | set(MULTIMODAL)))}); pass a supported model or open an issue")


def parse_hf_config(config: Mapping[str, Any]) -> ModelArch:
    """``ModelArch`` from a config.json mapping; raises ``UnsupportedArchitectureError``."""
    if not isinstance(config, Mapping):
        raise UnsupportedArchitectureError("config.json is not a JSON object")
    outer_type = str(config.get("model_type") or "")
    if outer_type in REFUSED:
        _check_family(outer_type)
    cfg, model_type = _text_config(config)
    _check_family(model_type)

    n = _int(cfg, "num_hidden_layers", required=True, lo=1, hi=10_000)
    h = _int(cfg, "hidden_size", required=True, lo=1, hi=1_000_000)
    heads = _int(cfg, "num_attention_heads", required=True, lo=1, hi=100_000)
    kv_heads = _int(cfg, "num_key_value_heads", heads, lo=1, hi=100_000)
    if heads % kv_heads:
        raise UnsupportedArchitectureError(f"num_attention_heads {heads} is not a multiple of "
                                           f"num_key_value_heads {kv_heads}")
    head_dim = _int(cfg, "head_dim", 0, hi=100_000) or h // heads
    mla = _mla(cfg) if model_type in _MLA else None
    if mla:
        head_dim = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    indexer = None
    if model_type in _DSA:
        indexer = SparseIndexer(n_heads=_int(cfg, "index_n_heads", required=True, lo=1),
                                head_dim=_int(cfg, "index_head_dim", required=True, lo=1),
                                topk=_int(cfg, "index_topk", required=True, lo=1))
    kinds, window = _layer_kinds(cfg, model_type, n)
    linear = _linear(cfg) if "linear" in kinds else None
    moe = _moe(cfg, model_type, n)
    intermediate = _int(cfg, "intermediate_size", 0, hi=10_000_000)
    if not moe and not intermediate:
        raise UnsupportedArchitectureError("config.json has no 'intermediate_size'; cannot size the MLP")
    tie = cfg.get("tie_word_embeddings")
    if tie is None:
        tie = _TIE_DEFAULT.get(model_type, False)
    archs = cfg.get("architectures") or config.get("architectures") or []
    if not isinstance(archs, list | tuple) or not all(isinstance(a, str) for a in archs):
        raise UnsupportedArchitectureError(f"config.json field 'architectures' must be a list of class names, "
                                           f"got {archs!r}"[:300])
    vparams, _tower = vision_params(config, h)
    bias = bool(cfg.get("attention_bias"))
    return ModelArch(
        model_type=model_type if outer_type == model_type else f"{outer_type}/{model_type}",
        architectures=tuple(str(a) for a in archs),
        num_layers=n, hidden_size=h, num_attention_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
        intermediate_size=intermediate,
        vocab_size=_int(cfg, "vocab_size", required=True, lo=1, hi=10_000_000),
        max_position_embeddings=_int(cfg, "max_position_embeddings", required=True, lo=1, hi=100_000_000),
        tie_word_embeddings=bool(tie), layer_kinds=kinds, sliding_window=window, moe=moe, mla=mla,
        linear=linear, indexer=indexer,
        attention_bias=bias or model_type in ("qwen2", "qwen2_moe"),
        o_bias=bias and model_type not in ("qwen2", "qwen2_moe"),
        qk_norm=model_type in _QK_NORM
        or (model_type == "minimax_m2" and bool(cfg.get("use_qk_norm"))),
        qk_norm_per_layer=model_type == "minimax_m2" and cfg.get("qk_norm_type") == "per_layer",
        attn_output_gate=model_type in _GDN and bool(cfg.get("attn_output_gate", True)),
        norms_per_layer=4 if model_type in ("gemma2", "gemma3_text") else 2,
        attention_sinks=model_type == "gpt_oss",
        mtp_layers=_int(cfg, "num_nextn_predict_layers", 0) or _int(cfg, "mtp_num_hidden_layers", 0)
        or (_int(cfg, "num_mtp_modules", 0) if cfg.get("use_mtp") else 0),
        vision_params=vparams,
    )
