"""Weight bytes per GPU and quantization formats: hand computations and published sizes."""

from __future__ import annotations

import numpy as np
import pytest

from servewise.estimator.memory import weight_breakdown, weight_bytes_per_gpu
from servewise.estimator.quant import (
    FORMATS, dtype_from_quantization_config, excluded_kinds, scheme_from_quantization_config, weight_format,
)
from servewise.estimator.resolve import resolve_model
from servewise.profiles.schema import Model

GIB = 1024**3
GPT_OSS_QCFG = {"quant_method": "mxfp4", "modules_to_not_convert": [
    "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
FP8_DYNAMIC_QCFG = {"quant_method": "compressed-tensors", "ignore": ["lm_head"], "config_groups": {"group_0": {
    "targets": ["Linear"], "weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}}}


def test_bytes_per_param_of_each_format():
    """(bits + (scale + zero bits) / group) / 8."""
    assert FORMATS["bf16"].bytes_per_param == 2
    assert FORMATS["int4-awq"].bytes_per_param == pytest.approx((4 + (16 + 4) / 128) / 8)   # 0.5195
    assert weight_format("int4-gptq", 32).bytes_per_param == pytest.approx((4 + 20 / 32) / 8)
    assert FORMATS["nvfp4"].bytes_per_param == pytest.approx((4 + 8 / 16) / 8)            # 0.5625
    assert FORMATS["mxfp4"].bytes_per_param == pytest.approx((4 + 8 / 32) / 8)            # 0.53125
    block = scheme_from_quantization_config({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8")
    assert block.format.bytes_per_param == pytest.approx(1 + 4 / 16384)
    sym = scheme_from_quantization_config({"quant_method": "gptq", "group_size": 128, "sym": True}, "int4-gptq")
    assert sym.format.bytes_per_param == pytest.approx((4 + 16 / 128) / 8)
    with pytest.raises(ValueError, match="unknown weights format"):
        weight_format("int3")


def test_checkpoint_ignore_lists_keep_modules_in_16_bits():
    gpt_oss = scheme_from_quantization_config(GPT_OSS_QCFG, "mxfp4")
    assert gpt_oss.quantized == {"mlp", "shared_experts", "experts"}
    assert not gpt_oss.is_quantized("attention") and gpt_oss.bytes_per_param("attention") == 2
    fp8 = scheme_from_quantization_config(FP8_DYNAMIC_QCFG, "fp8")
    assert fp8.is_quantized("attention") and not fp8.is_quantized("lm_head")
    assert fp8.format.channel_scale_bits == 32
    assert excluded_kinds(["re:.*mlp.gate$", "model.layers.3.mlp"]) == {"router"}   # one layer only: ignored
    assert dtype_from_quantization_config(GPT_OSS_QCFG) == "mxfp4"
    assert dtype_from_quantization_config(FP8_DYNAMIC_QCFG) == "fp8"
    assert dtype_from_quantization_config({"quant_method": "awq", "bits": 4}) == "int4-awq"


def test_llama_8b_bf16_weights_hand_computation():
    """Llama-3.1-8B: 8,030,261,248 parameters x 2 B + rotary cos/sin cache 131,072 x 128 x 2 B
    = 16,093,995,008 B = 14.99 GiB, as vLLM 0.11 logs 'Model loading took 14.99 GiB' (llm-d
    empirical table); the vocabulary 128,256 is already a multiple of 64."""
    rm = resolve_model(Model(id="meta-llama/Llama-3.1-8B-Instruct"))
    assert rm.arch.total_params() == 8_030_261_248
    b = float(weight_bytes_per_gpu(rm, 1))
    assert b == 8_030_261_248 * 2 + 131072 * 128 * 2
    assert round(b / GIB, 2) == 14.99


def test_tp_shards_everything_but_norms_and_replicated_kv_heads():
    rm = resolve_model(Model(id="meta-llama/Llama-3.1-70B-Instruct"))
    w1, w2, w16 = (weight_breakdown(rm, tp) for tp in (1, 2, 16))
    for k in ("mlp", "embedding"):
        assert float(w2.params[k]) == pytest.approx(float(w1.params[k]) / 2, rel=1e-9)
    norm = 8192  # the final norm is replicated with the LM head
    assert float(w2.params["lm_head"]) - norm == pytest.approx((float(w1.params["lm_head"]) - norm) / 2, rel=1e-9)
    # TP16 > 8 KV heads: k/v keep one whole head per rank, q/o split 16 ways
    h, d = 8192, 128
    per_layer = (h * 64 * d + 64 * d * h) / 16 + 2 * h * 1 * d
    assert float(w16.params["attention"]) == pytest.approx(per_layer * 80)


def test_pipeline_stages_and_tied_embeddings():
    """Qwen3-0.6B ties its LM head: one vocab matrix at PP1; at PP2 the last stage needs its own."""
    rm = resolve_model(Model(id="Qwen/Qwen3-32B"))
    full, half = weight_breakdown(rm, 1, 1), weight_breakdown(rm, 1, 2)
    assert float(half.params["mlp"]) == pytest.approx(float(full.params["mlp"]) / 2)
    assert float(half.params["embedding"]) + float(half.params["lm_head"]) < \
        float(full.params["embedding"]) + float(full.params["lm_head"])
    tied = {"model_type": "qwen3", "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
            "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
            "max_position_embeddings": 40960, "tie_word_embeddings": True}
    rm0 = resolve_model(Model(id="Qwen/Qwen3-0.6B", architecture=tied))
    one, two = weight_breakdown(rm0, 1, 1), weight_breakdown(rm0, 1, 2)
    assert float(one.params["lm_head"]) == 1024          # the final norm only
    assert float(two.params["lm_head"]) + float(two.params["embedding"]) >= 151936 * 1024


def test_moe_experts_split_by_tp_or_whole_by_ep():
    """gpt-oss-20b: 24 layers x 32 experts x 3 x 2880 x 2880 MXFP4 weights; TP2 halves each expert,
    EP4 keeps 8 whole experts per rank. Attention, router, embeddings stay BF16 (checkpoint list)."""
    cfg = {"model_type": "gpt_oss", "hidden_size": 2880, "intermediate_size": 2880, "num_hidden_layers": 24,
           "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64, "num_local_experts": 32,
           "num_experts_per_tok": 4, "vocab_size": 201088, "max_position_embeddings": 131072,
           "attention_bias": True, "sliding_window": 128, "quantization_config": GPT_OSS_QCFG,
           "layer_types": ["sliding_attention", "full_attention"] * 12}
    rm = resolve_model(Model(id="openai/gpt-oss-20b", architecture=cfg))
    assert rm.weights.name == "mxfp4"
    experts = 24 * 32 * 3 * 2880 * 2880
    b1, b2, e4 = (weight_breakdown(rm, tp, 1, ep) for tp, ep in ((1, 1), (2, 1), (4, 4)))
    assert float(b1.params["experts"]) == experts
    assert float(b2.params["experts"]) == experts / 2
    assert float(e4.params["experts"]) == experts / 4
    assert float(b1.bytes["experts"]) == pytest.approx(experts * (0.5 + 1 / 32))
    assert float(b1.bytes["attention"]) == pytest.approx(float(b1.params["attention"]) * 2)


def test_weights_broadcast_over_a_grid():
    rm = resolve_model(Model(id="Qwen/Qwen3-32B"))
    tp = np.array([1, 2, 4, 8])[:, None]
    pp = np.array([1, 2])[None, :]
    grid = weight_bytes_per_gpu(rm, tp, pp)
    assert grid.shape == (4, 2)
    for i, t in enumerate((1, 2, 4, 8)):
        for j, p in enumerate((1, 2)):
            assert grid[i, j] == pytest.approx(float(weight_bytes_per_gpu(rm, t, p)))


def test_vllm_keeps_a_16bit_copy_of_quantized_mla_kv_b():
    """vLLM's MLA backend dequantizes kv_b_proj into W_UK / W_UV and keeps them in 16 bits
    (attention/backends/mla/common.py): kv_lora x heads x (nope + v) x 2 B / tp per layer
    = 512 x 128 x 256 x 2 / 8 x 61 = 255,852,544 B at TP8 for DeepSeek-V3 FP8."""
    from servewise.estimator.budget import MemoryRequest, residency
    from servewise.perfdata import get_gpu
    rm = resolve_model(Model(id="deepseek-ai/DeepSeek-V3"))
    assert rm.weights.name == "fp8" and rm.scheme.is_quantized("experts")
    gpu = get_gpu("h200-sxm")
    req = MemoryRequest(rm, gpu, gpu.memory_bytes, "vllm", "0.33.0", 16, "auto", 32768)
    b = weight_breakdown(rm, 8, 1, 1, residency(req))
    assert float(b.bytes["mla_absorbed"]) == 512 * 128 * 256 * 2 / 8 * 61
    sg = MemoryRequest(rm, gpu, gpu.memory_bytes, "sglang", "0.5.23", 1, "auto", 32768)
    assert "mla_absorbed" not in weight_breakdown(rm, 8, 1, 1, residency(sg)).bytes
