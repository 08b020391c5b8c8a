"""Engine budget rules, engine defaults and the vectorised breakdown."""

from __future__ import annotations

import numpy as np
import pytest

from servewise.estimator.budget import MemoryRequest, memory_terms
from servewise.estimator.engine_defaults import batch_defaults, default_memory_fraction, sglang_prefill_graph_count
from servewise.estimator.resolve import resolve_model
from servewise.perfdata import get_gpu
from servewise.perfdata.memory_rules import memory_calibration, rules_for
from servewise.profiles.schema import Model

GIB = 1024**3
H100 = get_gpu("h100-sxm")
# each engine's default KV block / page: vLLM 16, SGLang page size 1, TensorRT-LLM tokens_per_block 32
BLOCK = {"vllm": 16, "sglang": 1, "trtllm": 32}


def _req(engine: str, version: str, model: str = "meta-llama/Llama-3.1-8B-Instruct", mml: int = 16000,
         gpu=H100, kv="auto", arch: dict | None = None) -> MemoryRequest:
    rm = resolve_model(Model(id=model, architecture=arch))
    return MemoryRequest(rm, gpu, gpu.memory_bytes, engine, version, BLOCK[engine], kv, mml)


def _f(x) -> float:
    return float(np.asarray(x))


def test_three_engines_give_different_kv_for_the_documented_reasons():
    """Same model, GPU, fraction 0.9 and batch limits (1024 seqs, 8192 tokens):
    vLLM:   KV = 0.9 x total - weights - activation - non-torch;
    SGLang: KV = 0.9 x (total - non-torch) - weights (activations live outside the fraction);
    TRT-LLM: KV = 0.9 x (total - weights - activation - non-torch) (a fraction of what is free)."""
    t = {e: memory_terms(_req(e, v), 1, 1, 1, 1, 1024, 8192, 0.9)
         for e, v in (("vllm", "0.11.0"), ("sglang", "0.5.23"), ("trtllm", "1.2.1"))}
    total = H100.memory_bytes
    w, nt = _f(t["vllm"].weights_bytes), _f(t["vllm"].other_bytes)
    assert _f(t["vllm"].kv_cache_bytes) == pytest.approx(0.9 * total - w - _f(t["vllm"].activation_bytes) - nt)
    assert _f(t["sglang"].kv_cache_bytes) == pytest.approx(0.9 * (total - nt) - w)
    trt_act = _f(t["trtllm"].activation_bytes)
    assert _f(t["trtllm"].kv_cache_bytes) == pytest.approx(0.9 * (total - w - trt_act - nt))
    tokens = {e: int(np.asarray(x.kv_cache_tokens)) for e, x in t.items()}
    assert len(set(tokens.values())) == 3
    assert tokens["vllm"] < tokens["sglang"] and tokens["vllm"] < tokens["trtllm"]
    assert tokens["vllm"] % 16 == 0 and tokens["trtllm"] % 32 == 0


def test_vllm_cuda_graphs_budgeted_from_v0_21_only():
    old = memory_terms(_req("vllm", "0.11.0"), 1, 1, 1, 1, 256, 8192, 0.9)
    new = memory_terms(_req("vllm", "0.31.0"), 1, 1, 1, 1, 256, 8192, 0.9)
    assert not old.cuda_graph_in_budget and new.cuda_graph_in_budget
    assert _f(old.total_bytes) == pytest.approx(_f(old.budget_bytes) + _f(old.cuda_graph_bytes))
    for t in (old, new):
        graphs = _f(t.cuda_graph_bytes) if t.cuda_graph_in_budget else 0.0
        rest = _f(t.weights_bytes) + _f(t.activation_bytes) + _f(t.other_bytes) + graphs
        assert _f(t.kv_cache_bytes) == pytest.approx(0.9 * H100.memory_bytes - rest)


def test_vllm_sampler_pass_scales_with_vocab_and_rows_not_hidden_size():
    """vLLM 0.11's profile peak is the dummy sampler over min(max_num_seqs, max_num_batched_tokens)
    rows of fp32 logits: ~38 B per logit (sort path), so Qwen3-0.6B and Qwen3-32B (same vocabulary)
    peak alike, and a quarter of the rows takes about a quarter of the memory."""
    big = memory_terms(_req("vllm", "0.11.0", "Qwen/Qwen3-32B"), 1, 1, 1, 1, 1024, 8192, 0.9)
    rules = rules_for(memory_calibration().vllm, "0.11.0")
    assert _f(big.activation_sampler_bytes) == pytest.approx(1024 * 151936 * rules.sampler_bytes_per_logit.value)
    assert _f(big.activation_sampler_bytes) > _f(big.activation_forward_bytes)
    quarter = memory_terms(_req("vllm", "0.11.0", "Qwen/Qwen3-32B"), 1, 1, 1, 1, 256, 8192, 0.9)
    assert _f(quarter.activation_sampler_bytes) == pytest.approx(_f(big.activation_sampler_bytes) / 4)


def test_engine_batch_defaults_by_gpu_memory_and_version():
    """vLLM API server: >= 70 GiB and not an A100 -> 1024 seqs / 8192 tokens, else 256 / 2048;
    from 0.21 GPUs with >= 160 GiB get 16384 tokens (vllm engine/arg_utils.py)."""
    a100 = H100.model_copy(update={"id": "a100-sxm-80gb", "name": "NVIDIA A100-SXM4-80GB"})
    b200 = H100.model_copy(update={"id": "b200", "name": "NVIDIA B200", "memory_bytes": 192 * 10**9})
    l4 = get_gpu("l4")
    d = lambda gpu, v="0.11.0": batch_defaults("vllm", v, gpu, gpu.memory_bytes)  # noqa: E731
    assert (d(H100).max_num_seqs, d(H100).max_num_batched_tokens) == (1024, 8192)
    assert (d(a100).max_num_seqs, d(a100).max_num_batched_tokens) == (256, 2048)
    assert (d(l4).max_num_seqs, d(l4).max_num_batched_tokens) == (256, 2048)
    assert d(b200).max_num_batched_tokens == 8192 and d(b200, "0.33.0").max_num_batched_tokens == 16384
    assert batch_defaults("trtllm", "1.2.1", H100, H100.memory_bytes).max_num_seqs == 2048
    assert batch_defaults("sglang", "0.5.23", H100, H100.memory_bytes, tp=4).max_num_seqs == 512


def test_sglang_automatic_mem_fraction_static():
    """H100 (81,079.5 MiB as CUDA reports it), TP1, chunked prefill 8192, decode graphs up to 256,
    58 prefill graph sizes: reserve = max(512 + 1.5 x 8192 + 128 + 2 x 256 + 8 x 58, 10240) = 13,904 MiB;
    mem_fraction_static = round((81,079.5 - 13,904) / 81,079.5, 3) = 0.829."""
    assert sglang_prefill_graph_count(8192) == 58
    mib = H100.memory_bytes / 2**20
    expected = round((mib - 13904) / mib, 3)
    assert default_memory_fraction("sglang", "0.5.23", None, H100.memory_bytes, 1, 1, 8192, 256) == expected == 0.829
    assert default_memory_fraction("vllm", "0.33.0", 0.92, H100.memory_bytes) == 0.92


def test_memory_terms_grid_equals_scalar_loop():
    req = _req("vllm", "0.33.0", "Qwen/Qwen3-32B")
    tp, seqs, frac = np.array([1, 2, 4, 8])[:, None, None], np.array([64, 1024])[None, :, None], \
        np.array([0.85, 0.95])[None, None, :]
    grid = memory_terms(req, tp, 1, 1, 1, seqs, 8192, frac)
    assert grid.kv_cache_tokens.shape == (4, 2, 2) and grid.budget_bytes.shape == (4, 2, 2)
    for i, t in enumerate((1, 2, 4, 8)):
        for j, s in enumerate((64, 1024)):
            for k, f in enumerate((0.85, 0.95)):
                one = memory_terms(req, t, 1, 1, 1, s, 8192, f)
                assert grid.kv_cache_tokens[i, j, k] == int(np.asarray(one.kv_cache_tokens))
                assert grid.overflow[i, j, k] == int(np.asarray(one.overflow))
                assert grid.kv_cache_bytes[i, j, k] == pytest.approx(_f(one.kv_cache_bytes))


def test_unseen_small_gpu_log_qwen3_8b_fp8():
    """A published vLLM V1 start-up log (Sept 2025, 0.10/0.11 era; Qwen3-8B-FP8, 23.53 GiB GPU,
    --gpu-memory-utilization 0.8, --max-model-len 1024, TP1): weights 8.80, peak activation 1.40,
    non-torch 0.02 GiB, 'Available KV cache memory: 8.60 GiB', 'GPU KV cache size: 62,608 tokens'.
    Below 70 GiB vLLM defaults to 256 seqs / 2048 tokens. Target: KV within max(5 %, 0.5 GiB)."""
    qwen3_8b_fp8 = {"model_type": "qwen3", "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
                    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
                    "max_position_embeddings": 40960, "tie_word_embeddings": False,
                    "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128],
                                            "activation_scheme": "dynamic"}}
    gpu = H100.model_copy(update={"id": "custom-24g", "name": "custom 23.53 GiB", "memory_bytes": int(23.53 * GIB),
                                  "compute_capability": "8.9"})
    req = _req("vllm", "0.11.0", "Qwen/Qwen3-8B-FP8", 1024, gpu, arch=qwen3_8b_fp8)
    d = batch_defaults("vllm", "0.11.0", gpu, gpu.memory_bytes, 1, 1024)
    t = memory_terms(req, 1, 1, 1, 1, d.max_num_seqs, d.max_num_batched_tokens, 0.8)
    assert _f(t.weights_bytes) / GIB == pytest.approx(8.80, rel=0.02)
    assert abs(_f(t.kv_cache_bytes) / GIB - 8.60) <= max(0.05 * 8.60, 0.5)
    assert abs(int(np.asarray(t.kv_cache_tokens)) - 62608) <= 0.05 * 62608


def test_memory_rules_are_keyed_by_version_and_sourced():
    cal = memory_calibration()
    pick = lambda v: rules_for(cal.vllm, v).since  # noqa: E731
    assert [pick(v) for v in ("0.10.2", "0.11.0", "0.20.1", "0.21.0", "0.25.1", "0.31.0", "0.33.0", "0.40.0")] == \
        ["0.11.0", "0.11.0", "0.11.0", "0.21.0", "0.21.0", "0.31.0", "0.33.0", "0.33.0"]
    assert not rules_for(cal.vllm, "0.11.0").cuda_graph_budgeted and rules_for(cal.vllm, "0.21.0").cuda_graph_budgeted
    for c in cal.coefficients.values():
        assert c.source and c.unit
    for r in cal.vllm:
        assert r.sampler_bytes_per_logit.source and r.sources
    assert set(cal.dataset.rows_fitted).isdisjoint(cal.dataset.rows_excluded)
