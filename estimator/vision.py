"""Parameter counts of the vision towers and projectors that multimodal wrappers carry.

servewise serves the language model; the tower's weights still occupy GPU memory, so they are
counted from ``vision_config`` with one function per tower family. An unknown tower returns
``None`` (the caller says it is not counted) rather than a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _vit_block(h: int, inter: int) -> int:
    """Pre-LN ViT block with biases: fused or separate q/k/v/o (4h^2 + 4h), a GELU MLP
    (2*h*i + i + h) and two LayerNorms (4h)."""
    return 4 * h * h + 4 * h + 2 * h * inter + inter + h + 4 * h


def siglip_params(v: Mapping[str, Any]) -> int:
    """SigLIP vision model without head (Gemma 3): conv patch embedding with bias
    (3*p^2*h + h), learned positions ((image/p)^2 * h), L ViT blocks, post LayerNorm (2h)."""
    h, p = int(v["hidden_size"]), int(v["patch_size"])
    positions = (int(v["image_size"]) // p) ** 2
    return int(v.get("num_channels", 3)) * p * p * h + h + positions * h \
        + int(v["num_hidden_layers"]) * _vit_block(h, int(v["intermediate_size"])) + 2 * h


def gemma3_projector_params(v: Mapping[str, Any], text_hidden: int) -> int:
    """Gemma3MultiModalProjector: mm_input_projection (h_v x h_t) and mm_soft_emb_norm (h_v)."""
    h = int(v["hidden_size"])
    return h * text_hidden + h


def pixtral_params(v: Mapping[str, Any]) -> int:
    """Pixtral encoder (Mistral Small 3.x): bias-free conv patch embedding (3*p^2*h), ln_pre (h),
    L blocks of bias-free q/k/v/o (4h^2), gated SiLU MLP (3*h*i) and two RMSNorms (2h)."""
    h, p, inter = int(v["hidden_size"]), int(v["patch_size"]), int(v["intermediate_size"])
    block = 4 * h * h + 3 * h * inter + 2 * h
    return int(v.get("num_channels", 3)) * p * p * h + h + int(v["num_hidden_layers"]) * block


def mistral3_projector_params(cfg: Mapping[str, Any], v: Mapping[str, Any], text_hidden: int) -> int:
    """Mistral3MultiModalProjector: RMSNorm (h_v), patch merger (h_v*m^2 -> h_v), linear_1
    (h_v -> h_t) and linear_2 (h_t -> h_t), biases only if multimodal_projector_bias."""
    h, m = int(v["hidden_size"]), int(cfg.get("spatial_merge_size", 2))
    bias = bool(cfg.get("multimodal_projector_bias", False))
    return h + h * m * m * h + h * text_hidden + text_hidden * text_hidden + (2 * text_hidden if bias else 0)


def moonvit_params(v: Mapping[str, Any]) -> int:
    """MoonViT (Kimi K2.5): conv patch embedding with bias, learned 2-D positions
    (init_pos_emb_height x width x h), L ViT blocks, final LayerNorm; patch-merger projector:
    LayerNorm (h), linear_1 (h*m -> h*m) and linear_2 (h*m -> text hidden), with biases."""
    h, p = int(v["vt_hidden_size"]), int(v["patch_size"])
    merged = int(v.get("mm_hidden_size", h)) * _prod(v.get("merge_kernel_size", [2, 2]))
    tower = 3 * p * p * h + h + int(v["init_pos_emb_height"]) * int(v["init_pos_emb_width"]) * h \
        + int(v["vt_num_hidden_layers"]) * _vit_block(h, int(v["vt_intermediate_size"])) + 2 * h
    text = int(v["text_hidden_size"])
    return tower + 2 * int(v.get("mm_hidden_size", h)) + merged * merged + merged + merged * text + text


def qwen_vl_params(v: Mapping[str, Any]) -> int:
    """Qwen3-VL / Qwen3.5 vision: conv3d patch embedding with bias (3*t*p^2*h + h), learned
    positions (num_position_embeddings*h), ``depth`` ViT blocks, and the patch merger: LayerNorm
    (2h), linear_fc1 (h*m^2 -> h*m^2) and linear_fc2 (h*m^2 -> out_hidden), with biases."""
    h, p = int(v["hidden_size"]), int(v["patch_size"])
    t = int(v.get("temporal_patch_size", 2))
    merged = h * int(v.get("spatial_merge_size", 2)) ** 2
    out = int(v["out_hidden_size"])
    n_merge = 1 + len(v.get("deepstack_visual_indexes") or [])
    merger = 2 * h + merged * merged + merged + merged * out + out
    return int(v.get("in_channels", 3)) * t * p * p * h + h + int(v["num_position_embeddings"]) * h \
        + int(v["depth"]) * _vit_block(h, int(v["intermediate_size"])) + n_merge * merger


def _prod(xs) -> int:
    n = 1
    for x in xs:
        n *= int(x)
    return n


def vision_params(config: Mapping[str, Any], text_hidden: int) -> tuple[int, str | None]:
    """(parameters, tower name) of a wrapper's vision tower + projector; (0, None) without one;
    (0, "unknown:<type>") for a tower servewise has no formula for (the caller reports it)."""
    v = config.get("vision_config")
    if not isinstance(v, Mapping):
        return 0, None
    wrapper = str(config.get("model_type") or "")
    vtype = str(v.get("model_type") or "")
    try:
        if wrapper == "gemma3" and vtype == "siglip_vision_model":
            return siglip_params(v) + gemma3_projector_params(v, text_hidden), "siglip"
        if wrapper == "mistral3" and vtype == "pixtral":
            return pixtral_params(v) + mistral3_projector_params(config, v, text_hidden), "pixtral"
        if wrapper == "kimi_k25" and "vt_hidden_size" in v:
            return moonvit_params(v), "moonvit"
        if wrapper in ("qwen3_5_moe", "qwen3_5", "qwen3_vl", "qwen3_vl_moe") and "depth" in v:
            return qwen_vl_params(v), "qwen-vl"
    except (KeyError, TypeError, ValueError):
        pass
    return 0, f"unknown:{vtype or wrapper}"
