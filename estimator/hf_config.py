"""Parse a Hugging Face ``config.json`` (or the catalog's verbatim copy) into ``ModelArch``.

Only architectures whose memory and compute servewise models correctly are accepted; any
other ``model_type`` is refused with its name and the reason (never approximated).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servewise.estimator.arch import MLA, LayerKind, ModelArch, MoE, UnsupportedArchitectureError

# model_type -> default of tie_word_embeddings when the config omits it (the transformers class default).
_TIE_DEFAULT = {"gemma": True, "gemma2": True, "gemma3_text": True, "gemma3": True}

# Dense decoder-only families whose layers are "attention + gated MLP" with standard names.
_DENSE = {"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "gemma3_text", "granite",
          "olmo2", "cohere", "exaone", "internlm2", "starcoder2_gated", "glm", "smollm3", "ministral"}
_MOE = {"mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3", "gpt_oss", "olmoe", "phimoe"}
# Wrappers whose language model sits under text_config.
_MULTIMODAL_TEXT = {"gemma3": "gemma3_text", "mistral3": "mistral", "llava": None, "qwen2_5_vl": "qwen2",
                    "llama4": "llama4_text", "pixtral": "mistral"}
_REFUSED = {
    "mamba": "pure state-space model: no attention KV cache to size",
    "falcon_h1": "hybrid Mamba/attention layers: state-size memory not modelled yet",
    "jamba": "hybrid Mamba/attention MoE: state-size memory not modelled yet",
    "qwen3_next": "hybrid Gated-DeltaNet/attention layers: linear-attention state memory not modelled yet",
    "nemotron_h": "hybrid Mamba2/attention layers: state-size memory not modelled yet",
    "deepseek_v32": "DeepSeek sparse attention indexer cache not modelled yet",
    "llama4_text": "chunked local attention and interleaved MoE of Llama 4 are not modelled yet",
}


def _get(cfg: Mapping[str, Any], key: str, default: Any = None, *, required: bool = False) -> Any:
    if key in cfg and cfg[key] is not None:
        return cfg[key]
    if required:
        raise UnsupportedArchitectureError(f"config.json has no {key!r}; cannot describe the model")
    return default


def _int(cfg: Mapping[str, Any], key: str, default: int | None = None, *, required: bool = False,
         lo: int = 0, hi: int = 10**9) -> int:
    v = _get(cfg, key, default, required=required)
    if v is None:
        return v  # type: ignore[return-value]
    if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v:
        raise UnsupportedArchitectureError(f"config.json field {key!r} must be an integer, got {v!r}")
    v = int(v)
    if not lo <= v <= hi:
        raise UnsupportedArchitectureError(f"config.json field {key!r} = {v} is out of range [{lo}, {hi}]")
    return v


def _layer_kinds(cfg: Mapping[str, Any], model_type: str, n: int) -> tuple[tuple[LayerKind, ...], int | None]:
    """Per-layer attention kind from ``layer_types`` or the family's documented pattern."""
    window = _get(cfg, "sliding_window")
    if isinstance(window, bool) or (window is not None and not isinstance(window, int)):
        window = None
    names = _get(cfg, "layer_types")
    if isinstance(names, list) and len(names) == n:
        kinds: list[LayerKind] = []
        for name in names:
            if name in ("full_attention", "attention", "global"):
                kinds.append("full")
            elif name in ("sliding_attention", "local", "sliding"):
                kinds.append("sliding")
            else:
                raise UnsupportedArchitectureError(f"layer type {name!r} ({model_type}) is not modelled")
        return tuple(kinds), window if "sliding" in kinds else None
    if model_type == "gemma2" and window:
        # Gemma 2 alternates local (even layers) and global attention (transformers Gemma2 modelling).
        return tuple("sliding" if i % 2 == 0 else "full" for i in range(n)), window
    if model_type in ("gemma3_text", "gemma3") and window:
        # Gemma 3: every `sliding_window_pattern`-th layer is global, the others local.
        p = _int(cfg, "sliding_window_pattern", 6, lo=1)
        return tuple("full" if (i + 1) % p == 0 else "sliding" for i in range(n)), window
    if model_type in ("mistral", "mixtral") and window and window < _int(cfg, "max_position_embeddings", 0):
        return tuple("sliding" for _ in range(n)), window
    if model_type in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe") and cfg.get("use_sliding_window") and window:
        max_window_layers = _int(cfg, "max_window_layers", n)
        return tuple("sliding" if i >= max_window_layers else "full" for i in range(n)), window
    return tuple("full" for _ in range(n)), None


def _moe(cfg: Mapping[str, Any], model_type: str, n: int, h: int) -> MoE | None:
    if model_type in ("mixtral", "phimoe"):
        return MoE(num_experts=_int(cfg, "num_local_experts", required=True, lo=1),
                   top_k=_int(cfg, "num_experts_per_tok", 2, lo=1),
                   expert_intermediate=_int(cfg, "intermediate_size", required=True, lo=1))
    if model_type == "gpt_oss":
        return MoE(num_experts=_int(cfg, "num_local_experts", required=True, lo=1),
                   top_k=_int(cfg, "num_experts_per_tok", _int(cfg, "experts_per_token", 4), lo=1),
                   expert_intermediate=_int(cfg, "intermediate_size", required=True, lo=1),
                   expert_bias=True, router_bias=True)
    if model_type in ("qwen2_moe", "qwen3_moe", "olmoe"):
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
    if model_type in ("deepseek_v2", "deepseek_v3"):
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
                   router_bias=model_type == "deepseek_v3" or cfg.get("topk_method") == "noaux_tc")
    return None


def _text_config(config: Mapping[str, Any]) -> tuple[Mapping[str, Any], str, int]:
    model_type = str(config.get("model_type") or "")
    if model_type in _MULTIMODAL_TEXT and isinstance(config.get("text_config"), Mapping):
        text = dict(config["text_config"])
        inner = text.get("model_type") or _MULTIMODAL_TEXT[model_type]
        if not inner:
            raise UnsupportedArchitectureError(f"{model_type}: text_config has no model_type")
        text["model_type"] = inner
        for k in ("tie_word_embeddings", "architectures"):
            if k in config and k not in text:
                text[k] = config[k]
        return text, inner, int(config.get("vision_params", 0) or 0)
    return config, model_type, int(config.get("vision_params", 0) or 0)


def parse_hf_config(config: Mapping[str, Any]) -> ModelArch:
    """``ModelArch`` from a config.json mapping; raises ``UnsupportedArchitectureError``."""
    if not isinstance(config, Mapping):
        raise UnsupportedArchitectureError("config.json is not a JSON object")
    outer_type = str(config.get("model_type") or "")
    cfg, model_type, vision_params = _text_config(config)
    if not model_type:
        raise UnsupportedArchitectureError("config.json has no 'model_type'")
    if model_type in _REFUSED:
        raise UnsupportedArchitectureError(f"model_type {model_type!r} is not supported: {_REFUSED[model_type]}")
    if model_type not in _DENSE | _MOE:
        raise UnsupportedArchitectureError(
            f"model_type {model_type!r} is not a family servewise models (known: "
            f"{', '.join(sorted(_DENSE | _MOE))}); pass a supported model or open an issue")

    n = _int(cfg, "num_hidden_layers", required=True, lo=1, hi=10_000)
    h = _int(cfg, "hidden_size", required=True, lo=1, hi=1_000_000)
    heads = _int(cfg, "num_attention_heads", required=True, lo=1, hi=100_000)
    kv_heads = _int(cfg, "num_key_value_heads", heads, lo=1, hi=100_000)
    if heads % kv_heads:
        raise UnsupportedArchitectureError(f"num_attention_heads {heads} is not a multiple of "
                                           f"num_key_value_heads {kv_heads}")
    head_dim = _int(cfg, "head_dim", 0, hi=100_000) or h // heads
    mla = None
    if model_type in ("deepseek_v2", "deepseek_v3"):
        mla = MLA(q_lora_rank=_int(cfg, "q_lora_rank", None), kv_lora_rank=_int(cfg, "kv_lora_rank", required=True),
                  qk_nope_head_dim=_int(cfg, "qk_nope_head_dim", required=True),
                  qk_rope_head_dim=_int(cfg, "qk_rope_head_dim", required=True),
                  v_head_dim=_int(cfg, "v_head_dim", required=True))
        head_dim = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    kinds, window = _layer_kinds(cfg, model_type, n)
    moe = _moe(cfg, model_type, n, h)
    tie = cfg.get("tie_word_embeddings")
    if tie is None:
        tie = _TIE_DEFAULT.get(model_type, False)
    archs = cfg.get("architectures") or config.get("architectures") or []
    return ModelArch(
        model_type=model_type if outer_type == model_type else f"{outer_type}/{model_type}",
        architectures=tuple(str(a) for a in archs),
        num_layers=n, hidden_size=h, num_attention_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
        intermediate_size=_int(cfg, "intermediate_size", 0),
        vocab_size=_int(cfg, "vocab_size", required=True, lo=1, hi=10_000_000),
        max_position_embeddings=_int(cfg, "max_position_embeddings", required=True, lo=1, hi=100_000_000),
        tie_word_embeddings=bool(tie), layer_kinds=kinds, sliding_window=window, moe=moe, mla=mla,
        attention_bias=bool(cfg.get("attention_bias")) or model_type in ("qwen2", "qwen2_moe"),
        o_bias=bool(cfg.get("attention_bias")) and model_type not in ("qwen2", "qwen2_moe"),
        qk_norm=model_type in ("qwen3", "qwen3_moe", "gemma3_text", "olmo2", "olmoe"),
        norms_per_layer=4 if model_type in ("gemma2", "gemma3_text") else 2,
        attention_sinks=model_type == "gpt_oss",
        vision_params=vision_params,
    )


