"""Checkpoint folders for tests: a config.json written from public facts and header-only
safetensors files whose tensor names, dtypes and shapes follow each format's on-disk layout.

The tensor layouts are written here independently of servewise's own module enumeration, so
comparing the header bytes with the architecture's estimate is a real check. Header-only files
carry no weights (their data offsets point past the end of the file); servewise reads headers only.

``python -m tests.checkpoint_fixtures`` rewrites the committed folders in tests/fixtures/checkpoints.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints"
DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4, "I8": 1, "U8": 1, "F8_E4M3": 1}

# google/gemma-2-2b config.json (as in mlc-ai/mlc-llm python/mlc_llm/model/model_preset.py "gemma2_2b").
GEMMA2_2B = {
    "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 2304, "intermediate_size": 9216,
    "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
    "max_position_embeddings": 8192, "vocab_size": 256000, "sliding_window": 4096, "query_pre_attn_scalar": 256,
    "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "hidden_activation": "gelu_pytorch_tanh",
    "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "attention_bias": False, "torch_dtype": "bfloat16",
}
# meta-llama/Llama-3.2-1B config.json (same preset file, "llama3_2_1b").
LLAMA32_1B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192,
    "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
    "max_position_embeddings": 131072, "vocab_size": 128256, "tie_word_embeddings": True, "attention_bias": False,
    "mlp_bias": False, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "torch_dtype": "bfloat16",
}
# Qwen/Qwen3-0.6B config.json (ai-dynamo/aiconfigurator model_configs/Qwen--Qwen3-0.6B_config.json).
QWEN3_06B = {
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 1024, "intermediate_size": 3072,
    "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
    "max_position_embeddings": 40960, "vocab_size": 151936, "tie_word_embeddings": True, "attention_bias": False,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000, "sliding_window": None, "use_sliding_window": False,
    "max_window_layers": 28, "torch_dtype": "bfloat16",
}
AWQ = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"}
FP8_BLOCK = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def linear(name: str, out_f: int, in_f: int, fmt: str, group: int = 128) -> dict[str, tuple[str, list[int]]]:
    """The tensors one linear layer stores in ``fmt`` (AutoAWQ, AutoGPTQ, FP8 block, ModelOpt NVFP4,
    compressed-tensors packed / int8, bitsandbytes 4-bit, plain 16-bit)."""
    if fmt == "bf16":
        return {f"{name}.weight": ("BF16", [out_f, in_f])}
    if fmt == "awq":   # qweight [in, out/8] int32, qzeros [in/g, out/8], scales [in/g, out] fp16
        return {f"{name}.qweight": ("I32", [in_f, out_f // 8]), f"{name}.qzeros": ("I32", [in_f // group, out_f // 8]),
                f"{name}.scales": ("F16", [in_f // group, out_f])}
    if fmt == "gptq":  # qweight [in/8, out], qzeros [in/g, out/8], scales [in/g, out], g_idx [in]
        return {f"{name}.qweight": ("I32", [in_f // 8, out_f]), f"{name}.qzeros": ("I32", [in_f // group, out_f // 8]),
                f"{name}.scales": ("F16", [in_f // group, out_f]), f"{name}.g_idx": ("I32", [in_f])}
    if fmt == "fp8-block":
        return {f"{name}.weight": ("F8_E4M3", [out_f, in_f]),
                f"{name}.weight_scale_inv": ("F32", [_cdiv(out_f, 128), _cdiv(in_f, 128)])}
    if fmt == "nvfp4":  # two E2M1 values per byte, an FP8 scale per 16, fp32 global and input scales
        return {f"{name}.weight": ("U8", [out_f, in_f // 2]), f"{name}.weight_scale": ("F8_E4M3", [out_f, in_f // 16]),
                f"{name}.weight_scale_2": ("F32", []), f"{name}.input_scale": ("F32", [])}
    if fmt == "ct-w4a16":
        return {f"{name}.weight_packed": ("I32", [out_f, in_f // 8]),
                f"{name}.weight_scale": ("BF16", [out_f, in_f // group]), f"{name}.weight_shape": ("I32", [2])}
    if fmt == "ct-w8a8":
        return {f"{name}.weight": ("I8", [out_f, in_f]), f"{name}.weight_scale": ("F32", [out_f, 1])}
    if fmt == "bnb4":
        n = out_f * in_f
        return {f"{name}.weight": ("U8", [n // 2, 1]), f"{name}.weight.absmax": ("F32", [n // 64]),
                f"{name}.weight.quant_map": ("F32", [16])}
    raise ValueError(fmt)


def dense_tensors(cfg: dict[str, Any], fmt: str = "bf16", group: int = 128) -> dict[str, tuple[str, list[int]]]:
    """Llama / Qwen2-3 / Mistral / Gemma 2-3 / Phi-3 style decoders (text config)."""
    h, n = cfg["hidden_size"], cfg["num_hidden_layers"]
    heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    hd = cfg.get("head_dim") or h // heads
    inter, vocab = cfg["intermediate_size"], cfg["vocab_size"]
    mt = cfg["model_type"]
    t: dict[str, tuple[str, list[int]]] = {"model.embed_tokens.weight": ("BF16", [vocab, h])}
    for i in range(n):
        p = f"model.layers.{i}"
        for proj, o, k in (("q_proj", heads * hd, h), ("k_proj", kv * hd, h), ("v_proj", kv * hd, h),
                           ("o_proj", h, heads * hd)):
            t.update(linear(f"{p}.self_attn.{proj}", o, k, fmt, group))
            if mt == "qwen2" and proj != "o_proj":
                t[f"{p}.self_attn.{proj}.bias"] = ("BF16", [o])
        if mt in ("qwen3", "gemma3_text"):
            t[f"{p}.self_attn.q_norm.weight"] = ("BF16", [hd])
            t[f"{p}.self_attn.k_norm.weight"] = ("BF16", [hd])
        for proj, o, k in (("gate_proj", inter, h), ("up_proj", inter, h), ("down_proj", h, inter)):
            t.update(linear(f"{p}.mlp.{proj}", o, k, fmt, group))
        norms = ["input_layernorm", "post_attention_layernorm"]
        if mt in ("gemma2", "gemma3_text"):
            norms += ["pre_feedforward_layernorm", "post_feedforward_layernorm"]
        for nm in norms:
            t[f"{p}.{nm}.weight"] = ("BF16", [h])
    t["model.norm.weight"] = ("BF16", [h])
    tied = cfg.get("tie_word_embeddings", mt in ("gemma2", "gemma3_text"))
    if not tied:
        t["lm_head.weight"] = ("BF16", [vocab, h])
    return t


def write_header_only(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A safetensors file holding only its header (offsets laid out as if the data followed)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    off = 0
    for name in sorted(tensors):
        dtype, shape = tensors[name]
        n = DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def header_bytes(tensors: dict[str, tuple[str, list[int]]]) -> int:
    total = 0
    for dtype, shape in tensors.values():
        n = DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        total += n
    return total


def make_checkpoint(folder: Path, config: dict[str, Any], tensors: dict[str, tuple[str, list[int]]] | None,
                    hf_quant_config: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if hf_quant_config is not None:
        (folder / "hf_quant_config.json").write_text(json.dumps(hf_quant_config, indent=2) + "\n")
    if tensors is not None:
        write_header_only(folder / "model.safetensors", tensors)
    return folder


COMMITTED = {
    "gemma-2-2b-like": lambda: (GEMMA2_2B, dense_tensors(GEMMA2_2B)),
    "llama-3.2-1b-awq": lambda: ({**LLAMA32_1B, "torch_dtype": "float16", "quantization_config": AWQ},
                                 dense_tensors(LLAMA32_1B, "awq")),
    "qwen3-0.6b-fp8": lambda: ({**QWEN3_06B, "quantization_config": FP8_BLOCK}, dense_tensors(QWEN3_06B, "fp8-block")),
}


def main() -> None:
    for name, build in COMMITTED.items():
        cfg, tensors = build()
        make_checkpoint(FIXTURES / name, cfg, tensors)
        print(f"wrote {FIXTURES / name}")


if __name__ == "__main__":
    main()


def gpt_oss_tensors(cfg: dict[str, Any]) -> dict[str, tuple[str, list[int]]]:
    """gpt-oss layout: MXFP4 expert blocks (16 bytes = 32 values) and E8M0 scales per 32, BF16
    attention with biases and sinks, BF16 router with bias."""
    h, n, e = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_local_experts"]
    heads, kv, hd, inter = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["intermediate_size"]
    t: dict[str, tuple[str, list[int]]] = {"model.embed_tokens.weight": ("BF16", [cfg["vocab_size"], h]),
                                          "lm_head.weight": ("BF16", [cfg["vocab_size"], h]),
                                          "model.norm.weight": ("BF16", [h])}
    for i in range(n):
        p = f"model.layers.{i}"
        for proj, o, k in (("q_proj", heads * hd, h), ("k_proj", kv * hd, h), ("v_proj", kv * hd, h),
                           ("o_proj", h, heads * hd)):
            t[f"{p}.self_attn.{proj}.weight"] = ("BF16", [o, k])
            t[f"{p}.self_attn.{proj}.bias"] = ("BF16", [o])
        t[f"{p}.self_attn.sinks"] = ("BF16", [heads])
        t[f"{p}.mlp.router.weight"] = ("BF16", [e, h])
        t[f"{p}.mlp.router.bias"] = ("BF16", [e])
        for proj, o, k in (("gate_up_proj", 2 * inter, h), ("down_proj", h, inter)):
            t[f"{p}.mlp.experts.{proj}_blocks"] = ("U8", [e, o, k // 32, 16])
            t[f"{p}.mlp.experts.{proj}_scales"] = ("U8", [e, o, k // 32])
            t[f"{p}.mlp.experts.{proj}_bias"] = ("BF16", [e, o])
        t[f"{p}.input_layernorm.weight"] = ("BF16", [h])
        t[f"{p}.post_attention_layernorm.weight"] = ("BF16", [h])
    return t
