"""config.json fields of the calibration-set models, used only while the model catalog lacks them.

Transcribed from each repository's config.json on huggingface.co (fields servewise reads).
``vision_params`` is derived: the Pixtral tower and projector of Mistral-Small-3.2 counted from its
vision_config (patch conv 602,112 + 24 layers x 16,779,264 + norms 2,048 + patch merger 4,194,304 +
projector 5,242,880 + 26,214,400 = 438,958,080).
"""

from __future__ import annotations

_GPT_OSS = {
    "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "attention_bias": True, "head_dim": 64,
    "hidden_size": 2880, "intermediate_size": 2880, "max_position_embeddings": 131072, "num_attention_heads": 64,
    "num_key_value_heads": 8, "num_experts_per_tok": 4, "experts_per_token": 4, "sliding_window": 128,
    "rope_theta": 150000, "rope_scaling": {"rope_type": "yarn", "factor": 32.0,
                                           "original_max_position_embeddings": 4096},
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 201088,
    "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]},
}


def _gpt_oss(layers: int, experts: int) -> dict:
    kinds = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)]
    return {**_GPT_OSS, "num_hidden_layers": layers, "num_local_experts": experts, "layer_types": kinds}


FALLBACK_CONFIGS: dict[str, dict] = {
    "openai/gpt-oss-20b": _gpt_oss(24, 32),
    "openai/gpt-oss-120b": _gpt_oss(36, 128),
    "Qwen/Qwen3-0.6B": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "attention_bias": False, "head_dim": 128,
        "hidden_size": 1024, "intermediate_size": 3072, "max_position_embeddings": 40960, "num_attention_heads": 16,
        "num_hidden_layers": 28, "num_key_value_heads": 8, "rope_theta": 1000000, "sliding_window": None,
        "use_sliding_window": False, "max_window_layers": 28, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "vocab_size": 151936,
    },
    "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8192,
        "intermediate_size": 28672, "max_position_embeddings": 131072, "num_attention_heads": 64,
        "num_hidden_layers": 80, "num_key_value_heads": 8, "rope_theta": 500000.0,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 128256,
        "quantization_config": {
            "quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["lm_head"],
            "config_groups": {"group_0": {
                "targets": ["Linear"],
                "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True,
                            "dynamic": False},
                "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": True}}}},
    },
    "mistralai/Mistral-Small-3.2-24B-Instruct-2506": {
        "architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3", "torch_dtype": "bfloat16",
        "vision_params": 438958080,
        "text_config": {
            "model_type": "mistral", "head_dim": 128, "hidden_size": 5120, "intermediate_size": 32768,
            "max_position_embeddings": 131072, "num_attention_heads": 32, "num_hidden_layers": 40,
            "num_key_value_heads": 8, "rope_theta": 1000000000.0, "sliding_window": None, "vocab_size": 131072},
    },
}
