"""Architecture maths against published numbers (each test cites its figure)."""

from __future__ import annotations

import pytest

from servewise.estimator.arch import ModelArch, UnsupportedArchitectureError
from servewise.estimator.hf_config import parse_hf_config
from servewise.perfdata import get_model


def arch(model_id: str) -> ModelArch:
    return ModelArch.from_hf_config(get_model(model_id).config)


def test_llama31_8b_total():
    """Llama 3.1 8B: 8.03B parameters (Hugging Face safetensors metadata)."""
    assert arch("meta-llama/Llama-3.1-8B-Instruct").total_params() == pytest.approx(8.03e9, rel=1e-3)


def test_deepseek_v3_total_and_active_without_mtp():
    """DeepSeek-V3 technical report: 671B total, 37B activated per token; MTP module excluded."""
    a = arch("deepseek-ai/DeepSeek-V3")
    assert a.total_params() == pytest.approx(671e9, rel=1e-3)
    assert a.active_params() == pytest.approx(37e9, rel=0.02)
    assert a.mtp_layers == 1
    assert a.moe.dense_layers == (0, 1, 2)                        # first_k_dense_replace = 3
    assert a.num_moe_layers == 58


@pytest.mark.parametrize(("model", "total", "active"), [
    ("openai/gpt-oss-20b", 20.91e9, 3.61e9),    # gpt-oss model card Table 1
    ("openai/gpt-oss-120b", 116.83e9, 5.13e9),
])
def test_gpt_oss_counts_match_model_card(model, total, active):
    """The model card's active count leaves out the input embedding table."""
    a = arch(model)
    assert a.total_params() == pytest.approx(total, rel=2e-3)
    assert a.active_params(include_embedding=False) == pytest.approx(active, rel=5e-3)
    assert a.attention_sinks and a.o_bias and a.moe.expert_bias


def test_mixtral_active_matches_announcement():
    """Mixtral 8x7B: 46.7B total, 12.9B used per token (Mistral AI, 'Mixtral of experts')."""
    a = arch("mistralai/Mixtral-8x7B-v0.1")
    assert a.total_params() == pytest.approx(46.7e9, rel=2e-3)
    assert a.active_params() == pytest.approx(12.9e9, rel=5e-3)


def test_qwen3_moe_active():
    """Qwen3-30B-A3B: 30.5B total, 3.3B activated (model card)."""
    a = arch("Qwen/Qwen3-30B-A3B")
    assert a.active_params() == pytest.approx(3.3e9, rel=0.02)


def test_llama70b_kv_bytes_per_token():
    """80 layers x 2 (K,V) x 8 KV heads x 128 x 2 bytes = 327,680 B = 0.3125 MiB per token."""
    a = arch("meta-llama/Llama-3.1-70B-Instruct")
    assert a.kv_bytes_per_token(2.0) == {"full": 327_680}
    assert a.kv_bytes_per_token(1.0) == {"full": 163_840}


def test_mistral_small_kv_matches_calibration_note():
    """The llm-d calibration record states 163,840 B/token for Mistral-Small-3.2-24B (40 x 2 x 8 x 128 x 2)."""
    a = arch("mistralai/Mistral-Small-3.2-24B-Instruct-2506")
    assert a.kv_bytes_per_token(2.0) == {"full": 163_840}
    assert a.total_params(include_vision=False) == pytest.approx(23.57e9, rel=2e-3)
    assert a.vision_params == pytest.approx(0.439e9, rel=0.01)


def test_deepseek_mla_kv_bytes():
    """MLA caches kv_lora_rank + rope dim = 512 + 64 elements per layer: 61 x 576 x 2 = 70,272 B/token."""
    a = arch("deepseek-ai/DeepSeek-R1")
    assert a.kv_elements_per_token_per_layer() == 576
    assert a.kv_bytes_per_token(2.0) == {"full": 70_272}
    assert a.kv_elements_per_token_per_layer_per_gpu(8) == 576   # the latent is replicated under TP


def test_gemma2_alternates_local_and_global_layers():
    """Gemma 2 9B: 42 layers alternating 4096-token sliding and global attention; 4 norms per layer."""
    a = arch("google/gemma-2-9b-it")
    assert a.kv_layers() == {"full": 21, "sliding": 21}
    assert a.layer_kinds[0] == "sliding" and a.layer_kinds[1] == "full"
    assert a.sliding_window == 4096 and a.norms_per_layer == 4 and a.tie_word_embeddings


def test_gemma3_five_local_per_global():
    """Gemma 3: 5 local (512-token window) layers per global one (sliding_window_pattern 6)."""
    a = arch("google/gemma-3-1b-it")
    assert a.kv_layers() == {"full": 4, "sliding": 22}
    assert a.layer_kinds[5] == "full" and a.qk_norm


def test_gpt_oss_sliding_layers():
    """gpt-oss-120b: layer_types alternate 128-token sliding and full attention over 36 layers."""
    a = arch("openai/gpt-oss-120b")
    assert a.kv_layers() == {"full": 18, "sliding": 18} and a.sliding_window == 128


def test_qwen35_hybrid_state():
    """Qwen3.5-397B-A17B: 15 full-attention layers (2 KV heads x 256) and 45 Gated DeltaNet layers whose
    recurrent state is 64 value heads x 128 x 128 per layer and sequence."""
    a = arch("Qwen/Qwen3.5-397B-A17B")
    assert a.kv_layers() == {"full": 15, "sliding": 0} and a.num_linear_layers == 45
    assert a.kv_bytes_per_token(2.0) == {"full": 15 * 2 * 2 * 256 * 2}
    conv, rec = a.linear_state_elements_per_seq()
    assert rec == 45 * 64 * 128 * 128
    assert conv == 45 * (2 * 16 * 128 + 64 * 128) * 3
    assert a.attn_output_gate and a.q_proj_size == 2 * a.q_size


def test_glm5_indexer_cache():
    """GLM-5: MLA latent (512 + 64) plus the DSA indexer keys, 128 fp8 values + one fp32 scale = 132 B."""
    a = arch("zai-org/GLM-5")
    assert a.indexer_bytes_per_token_per_layer() == 132
    assert a.kv_bytes_per_token(2.0) == {"full": 78 * (576 * 2 + 132)}
    assert a.total_params() == pytest.approx(744e9, rel=2e-3)


def test_minimax_m2_per_layer_qk_norm_and_routing_bias():
    a = arch("MiniMaxAI/MiniMax-M2.5")
    assert a.qk_norm and a.qk_norm_per_layer and a.moe.router_bias and a.moe.num_experts == 256
    assert a.mtp_layers == 3


def test_qwen2_has_qkv_bias_only():
    a = arch("Qwen/Qwen2.5-7B")
    assert a.attention_bias and not a.o_bias


def test_kimi_multimodal_wrapper_uses_its_deepseek_text_model():
    a = arch("moonshotai/Kimi-K2.5")
    assert a.model_type == "kimi_k25/kimi_k2" and a.mla and a.moe.num_experts == 384
    assert a.active_params() == pytest.approx(32e9, rel=0.03)    # model card: 32B activated


@pytest.mark.parametrize(("patch", "message"), [
    ({"model_type": "mamba"}, "state-space"),
    ({"model_type": "frobnicator"}, "not a family"),
    ({"num_hidden_layers": "32"}, "must be an integer"),
    ({"num_hidden_layers": 10**9}, "out of range"),
    ({"num_key_value_heads": 7}, "not a multiple"),
    ({"hidden_size": None}, "no 'hidden_size'"),
    ({"layer_types": ["full_attention"]}, "must list"),
    ({"sliding_window": "4k"}, "must be an integer"),
])
def test_bad_configs_are_refused_with_the_field(patch, message):
    cfg = dict(get_model("meta-llama/Llama-3.1-8B-Instruct").config)
    cfg.update(patch)
    with pytest.raises(UnsupportedArchitectureError, match=message):
        parse_hf_config(cfg)


def test_gemma3_multimodal_wrapper_counts_its_siglip_tower():
    """Gemma 3 wrapper: the language model under text_config; the SigLIP So400m tower (27 layers, 1152 wide,
    4304 MLP, 14-pixel patches of a 896-pixel image) = 416,866,032 parameters (patch embedding with bias
    678,528, 4,096 learned positions 4,718,592, 27 blocks of 15,239,504, post-LayerNorm 2,304), plus the
    projector: a 1152 x text-hidden matrix and a 1152 RMSNorm."""
    text = dict(get_model("google/gemma-3-1b-it").config)
    cfg = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "text_config": text,
           "mm_tokens_per_image": 256,
           "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
                             "num_hidden_layers": 27, "num_attention_heads": 16, "patch_size": 14, "image_size": 896}}
    a = parse_hf_config(cfg)
    assert a.model_type == "gemma3/gemma3_text" and a.tie_word_embeddings
    assert a.vision_params == 416_866_032 + 1152 * text["hidden_size"] + 1152
    assert a.total_params(include_vision=False) == arch("google/gemma-3-1b-it").total_params()


def test_unknown_vision_tower_is_not_guessed():
    cfg = dict(get_model("mistralai/Mistral-Small-3.2-24B-Instruct-2506").config)
    cfg["vision_config"] = {"model_type": "some_new_vit", "hidden_size": 1024}
    assert parse_hf_config(cfg).vision_params == 0
