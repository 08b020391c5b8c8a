"""KV cache per token and capacity: hand computations with the formula in each docstring."""

from __future__ import annotations

import numpy as np
import pytest

from servewise.estimator.kvcache import (
    kv_bytes_per_token_layer, kv_layout, paged_capacity, sglang_capacity, vllm_capacity,
)
from servewise.estimator.resolve import resolve_model
from servewise.profiles.schema import Model

def _model(model_id: str):
    """A catalog model (perfdata/models, config.json fields transcribed from the Hub)."""
    return resolve_model(Model(id=model_id))


def test_mla_kv_per_token_matches_hand_computation():
    """MLA caches the compressed latent and the shared rope key, once per layer, on every TP rank:
    bytes/token = layers x (kv_lora_rank + qk_rope_head_dim) x element bytes
    = 61 x (512 + 64) x 2 = 70,272 (bf16) and 35,136 (fp8), independent of TP."""
    rm = _model("deepseek-ai/DeepSeek-V3")
    for tp in (1, 8, 16):
        assert float(kv_layout(rm, tp).bytes_per_token) == 61 * (512 + 64) * 2 == 70_272
        assert float(kv_layout(rm, tp, kv_dtype="fp8").bytes_per_token) == 35_136


def test_sliding_window_kv_matches_hand_computation():
    """Gemma-2-9B alternates sliding-window (even layers, window 4,096) and full attention.

    Per layer and token: 2 x kv_heads x head_dim x 2 bytes = 2 x 8 x 256 x 2 = 8,192 B; 21 + 21 layers.
    vLLM (hybrid allocator, block 16): groups of g = 21 layers, one full and one sliding group;
    blocks = kv_bytes // (16 x 8,192) // 21; reported tokens = blocks // 2 x 16. One request of
    L tokens needs cdiv(L, 16) blocks (full group) + cdiv(min(4,095 + max_num_batched_tokens, L), 16) + 1
    (sliding group); max concurrency = blocks / that.
    """
    rm = _model("google/gemma-2-9b-it")
    lay = kv_layout(rm, 1)
    assert (int(lay.full_layers), int(lay.sliding_layers), lay.window) == (21, 21, 4096)
    assert float(kv_bytes_per_token_layer(rm, 1)) == 8192
    kv = 20 * 1024**3
    cap = vllm_capacity(lay, kv, 16, 8192, 2048, 8192)
    blocks = kv // (16 * 8192) // 21
    assert int(cap.blocks) == blocks
    assert int(cap.tokens) == blocks // 2 * 16
    per_request = 8192 // 16 + (-(-min(4095 + 2048, 8192) // 16) + 1)
    assert float(cap.max_concurrency) == pytest.approx(blocks / per_request)
    # the longest request: full layers hold L tokens, sliding layers at most window - 1 + chunk
    need = lambda n: 16 * 8192 * (21 * -(-n // 16) + 21 * (-(-min(4095 + 2048, n) // 16) + 1))  # noqa: E731
    small = 2 * 1024**3
    L = int(vllm_capacity(lay, small, 16, 8192, 2048, 8192).max_context)
    assert need(L) <= small < need(L + 16)


def test_gqa_kv_heads_are_replicated_when_tp_exceeds_them():
    """8 KV heads at TP16: each rank holds ceil(8 / 16) = 1 head, not half a head:
    2 x 1 x 128 x 2 = 512 B per layer and token (Llama-3.1-70B: 80 layers -> 40,960 B)."""
    rm = _model("meta-llama/Llama-3.1-70B-Instruct")
    assert float(kv_bytes_per_token_layer(rm, 16)) == 512
    assert float(kv_bytes_per_token_layer(rm, 8)) == 512
    assert float(kv_bytes_per_token_layer(rm, 4)) == 1024
    assert float(kv_layout(rm, 16).bytes_per_token) == 80 * 512


def test_capacity_is_floored_to_whole_blocks_and_vectorised():
    rm = _model("meta-llama/Llama-3.1-8B-Instruct")
    lay = kv_layout(rm, np.array([1, 2, 4]))
    kv = np.array([10.3e9, 10.3e9, 10.3e9])
    cap = vllm_capacity(lay, kv, 16, 8192, 8192, 131072)
    assert np.all(cap.tokens % 16 == 0)
    assert list(cap.blocks) == [int(k // (16 * b)) for k, b in zip(kv, lay.bytes_per_token)]
    trt = paged_capacity(lay, kv, 32, 8192, 131072)
    assert np.all(trt.tokens % 32 == 0) and np.all(trt.tokens <= cap.tokens + 32)


def test_sglang_hybrid_pool_sizes_sliding_layers_at_the_ratio():
    """SGLang's SWA pool: full tokens x (21 full layers + 0.8 x 21 sliding layers) x 8,192 B = kv bytes."""
    rm = _model("google/gemma-2-9b-it")
    cap = sglang_capacity(kv_layout(rm, 1), 10 * 1024**3, 8192, 0.8, 8192)
    assert int(cap.tokens) == int(10 * 1024**3 // (8192 * (21 + 0.8 * 21)))


def test_linear_attention_hybrid_state_and_vllm_block_size():
    """Qwen3.5-397B-A17B: 15 full-attention + 45 Gated DeltaNet layers. At TP8 one full layer costs
    2 x ceil(2 / 8) x 256 x 2 = 1,024 B per token; one GDN layer holds per sequence
    (conv_dim 12,288 / 8 x 3 + 64 / 8 x 128 x 128) x 2 B = 271,360 B. vLLM enlarges the attention block
    to 16 x cdiv(271,360, 16 x 1,024) = 272 tokens; groups of 15 layers (1 full, 3 linear); a request of
    L tokens takes cdiv(L, 272) + 3 blocks."""
    rm = _model("Qwen/Qwen3.5-397B-A17B")
    lay = kv_layout(rm, 8)
    assert (int(lay.full_layers), int(lay.linear_layers)) == (15, 45)
    assert float(lay.bytes_per_token_layer) == 1024
    assert float(lay.state_bytes_per_seq_layer) == (12288 / 8 * 3 + 64 / 8 * 128 * 128) * 2 == 271_360
    kv = 30 * 1024**3
    cap = vllm_capacity(lay, kv, 16, 32768, 8192, 262144)
    assert int(cap.block_size) == 272
    blocks = kv // (272 * 1024) // 15
    assert int(cap.blocks) == blocks
    assert float(cap.max_concurrency) == pytest.approx(blocks / (-(-32768 // 272) + 3))
