"""Per-iteration performance model (estimator/perf.py): physics invariants and broadcasting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from servewise.estimator.arch import ModelArch
from servewise.estimator.perf import (
    Parallel, gemm_efficiency_key, gemm_peak_flops, linear_params_per_gpu, make_target, smoothmax, step_time,
)
from servewise.estimator.quant import weight_format
from servewise.perfdata import find_model, get_gpu

# Mixtral-style MoE (config.json field names of mistralai/Mixtral-8x7B-v0.1: 8 experts, top-2).
MOE_CONFIG = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 4096,
              "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 8, "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 32000,
              "max_position_embeddings": 32768, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}


def arch(model_id: str) -> ModelArch:
    return ModelArch.from_hf_config(find_model(model_id).config)


def target(model_id="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm", dtype="bf16", engine="vllm", kv="auto",
           a: ModelArch | None = None):
    return make_target(a or arch(model_id), weight_format(dtype), get_gpu(gpu), engine, kv)


def total(t, tp=1, **kw) -> np.ndarray:
    return step_time(t, Parallel.of(tp), **kw).total_s


def test_smoothmax_is_between_max_and_sum():
    a, b = np.array([1.0, 1.0, 5.0]), np.array([1.0, 3.0, 0.1])
    s = smoothmax(a, b, 4.0)
    assert np.all(s >= np.maximum(a, b)) and np.all(s <= a + b)
    assert smoothmax(np.array(2.0), np.array(1e-9), 4.0) == pytest.approx(2.0)


def test_decode_step_is_above_the_weight_streaming_bound():
    """Llama-3.1-8B in bf16 streams ~15 GB of linear weights per decode step: at H100's 3.35 TB/s
    (datasheet) no step can be faster than that, whatever the fitted efficiencies."""
    t = target()
    a = t.arch
    w = linear_params_per_gpu(a, 1.0)
    weight_bytes = 2.0 * (float(w["qkv"] + w["o"] + w["dense_mlp"]) * a.num_layers + float(w["lm_head"]))
    bound = weight_bytes / get_gpu("h100-sxm").memory_bandwidth_bytes_per_s
    step = float(total(t, decode_seqs=1, decode_ctx=1024))
    assert bound < step < 4 * bound


def test_prefill_step_is_above_the_compute_bound():
    """8,192 prompt tokens of Llama-3.1-8B: 2 x params FLOPs per token at the 989 TFLOP/s BF16 peak."""
    t = target()
    a = t.arch
    w = linear_params_per_gpu(a, 1.0)
    flops = 2.0 * 8192 * (float(w["qkv"] + w["o"] + w["dense_mlp"]) * a.num_layers + float(w["lm_head"]))
    step = float(total(t, prefill_tokens=8192, prefill_ctx=512))
    assert flops / 989.4e12 < step < 3 * flops / 989.4e12


def test_step_time_grows_with_batch_tokens_and_context():
    t = target()
    d = total(t, decode_seqs=np.array([1, 8, 64, 256]), decode_ctx=2048)
    assert np.all(np.diff(d) > 0)
    c = total(t, decode_seqs=64, decode_ctx=np.array([512, 4096, 32768]))
    assert np.all(np.diff(c) > 0)
    p = total(t, prefill_tokens=np.array([256, 2048, 8192]), prefill_ctx=1024)
    assert np.all(np.diff(p) > 0)


def test_tensor_parallel_shortens_the_step_of_a_large_model():
    t = target("meta-llama/Llama-3.1-70B-Instruct")
    d = total(t, tp=np.array([1, 2, 4, 8]), decode_seqs=16, decode_ctx=2048)
    assert np.all(np.diff(d) < 0)
    assert step_time(t, Parallel.of(1), decode_seqs=16, decode_ctx=2048).communication_s == 0
    assert step_time(t, Parallel.of(4), decode_seqs=16, decode_ctx=2048).communication_s > 0


def test_fp8_weights_speed_up_memory_bound_decode_and_compute_bound_prefill_on_hopper():
    bf16, fp8 = target(dtype="bf16"), target(dtype="fp8")
    assert total(fp8, decode_seqs=1, decode_ctx=512) < 0.75 * total(bf16, decode_seqs=1, decode_ctx=512)
    assert total(fp8, prefill_tokens=8192, prefill_ctx=512) < total(bf16, prefill_tokens=8192, prefill_ctx=512)


def test_fp8_runs_on_16bit_tensor_cores_where_the_gpu_has_no_fp8():
    h100 = get_gpu("h100-sxm")
    no_fp8 = h100.model_copy(update={"flops": {k: v for k, v in h100.flops.items() if k not in ("fp8", "fp4")}})
    assert gemm_peak_flops(h100, weight_format("fp8")) == h100.flops["fp8"]
    assert gemm_peak_flops(no_fp8, weight_format("fp8")) == h100.flops["bf16"]
    assert gemm_peak_flops(h100, weight_format("nvfp4")) == h100.flops["bf16"]   # weight-only on Hopper
    assert gemm_peak_flops(h100, weight_format("int4-awq")) == h100.flops["bf16"]
    assert gemm_efficiency_key(h100, weight_format("fp8")) == "gemm_efficiency_8bit"
    assert gemm_efficiency_key(no_fp8, weight_format("fp8")) == "gemm_efficiency"


def test_fp8_kv_cache_halves_decode_attention_reads():
    a, b = target(kv="auto"), target(kv="fp8")
    sa = step_time(a, Parallel.of(1), decode_seqs=128, decode_ctx=16384)
    sb = step_time(b, Parallel.of(1), decode_seqs=128, decode_ctx=16384)
    assert float(sb.attention_s) < 0.7 * float(sa.attention_s)


def test_moe_touches_top_k_experts_for_one_token_and_all_for_many():
    """Decode with one sequence reads top_k of num_experts experts per layer; a large batch reads all."""
    moe = ModelArch.from_hf_config(MOE_CONFIG)
    base = target(a=moe)
    # the roofline itself, without the fitted expert-kernel efficiency
    t = make_target(moe, weight_format("bf16"), get_gpu("h100-sxm"), "vllm", coef={**base.coef, "moe_efficiency": 1.0})
    one = step_time(t, Parallel.of(1), decode_seqs=1, decode_ctx=512)
    many = step_time(t, Parallel.of(1), decode_seqs=256, decode_ctx=512)
    expert_bytes = moe.expert_params() * 2.0 * moe.num_layers
    bw = get_gpu("h100-sxm").memory_bandwidth_bytes_per_s
    # one token: 2 of 8 experts streamed, not 8
    assert float(one.weights_read_s) < 8 * expert_bytes / bw * 0.5
    assert float(many.weights_read_s + many.gemm_compute_s) > 8 * expert_bytes / bw


def test_attention_data_parallel_moe_uses_all_to_all_and_attention_tp_an_allreduce():
    """With attention DP each rank's tokens travel to the experts and back (all-to-all); with attention
    TP the tokens are on every rank already and one all-reduce combines the experts' output, whether the
    experts are split by EP or by TP (same bytes on the wire)."""
    moe = ModelArch.from_hf_config(MOE_CONFIG)
    t = target(a=moe)
    kw = dict(decode_seqs=64, decode_ctx=512)
    tp_ep = step_time(t, Parallel.of(tp=4, ep=4), **kw)
    tp_only = step_time(t, Parallel.of(tp=4, ep=1), **kw)
    assert float(tp_ep.communication_s) == pytest.approx(float(tp_only.communication_s))
    dp_ep = step_time(t, Parallel.of(tp=1, dp=4, ep=4), **kw)
    assert float(dp_ep.communication_s) > 0
    dp_one = step_time(t, Parallel.of(tp=1, dp=1, ep=1), **kw)
    assert float(dp_one.communication_s) == 0


def test_sliding_window_caps_attention():
    base = dict(MOE_CONFIG, model_type="mistral", architectures=["MistralForCausalLM"], sliding_window=4096)
    for k in ("num_local_experts", "num_experts_per_tok"):
        base.pop(k)
    windowed = ModelArch.from_hf_config(base)
    full = ModelArch.from_hf_config(dict(base, sliding_window=None))
    long = dict(decode_seqs=32, decode_ctx=30000)
    assert float(step_time(target(a=windowed), Parallel.of(1), **long).attention_s) < \
        0.3 * float(step_time(target(a=full), Parallel.of(1), **long).attention_s)


def test_pipeline_parallel_splits_the_batch_into_micro_batches():
    t = target("meta-llama/Llama-3.1-70B-Instruct")
    one = float(total(t, tp=4, decode_seqs=64, decode_ctx=1024))
    pp2 = float(step_time(t, Parallel.of(tp=4, pp=2), decode_seqs=64, decode_ctx=1024).total_s)
    assert math.isfinite(pp2) and pp2 > 0 and pp2 != one


def test_pipeline_parallel_never_shortens_one_prompt():
    """A prompt is one sequence: it passes the stages one after another, so its prefill step costs at
    least the whole model at all its tokens (it was split into pp micro-batches, and one request's
    TTFT fell by a third from PP1 to PP2); several prompts do fill the stages."""
    t = target("meta-llama/Llama-3.1-70B-Instruct")
    kw = dict(prefill_tokens=2048, prefill_ctx=1024, prefill_seqs=1)
    one = float(total(t, tp=4, **kw))
    for pp in (2, 4):
        assert float(step_time(t, Parallel.of(tp=4, pp=pp), **kw).total_s) >= one
    four = dict(prefill_tokens=4 * 2048, prefill_ctx=1024, prefill_seqs=4)
    assert float(step_time(t, Parallel.of(tp=4, pp=4), **four).total_s) < 0.5 * float(total(t, tp=4, **four))


def test_step_time_broadcasts_over_candidate_axes():
    t = target("meta-llama/Llama-3.1-70B-Instruct")
    tp = np.array([1, 2, 4, 8])[:, None]
    batch = np.array([1, 16, 128])[None, :]
    grid = step_time(t, Parallel.of(tp), decode_seqs=batch, decode_ctx=2048)
    assert grid.total_s.shape == (4, 3)
    for i, p in enumerate([1, 2, 4, 8]):
        for j, b in enumerate([1, 16, 128]):
            one = step_time(t, Parallel.of(p), decode_seqs=b, decode_ctx=2048)
            assert float(one.total_s) == pytest.approx(grid.total_s[i, j], rel=1e-12)
            for k, v in one.terms().items():
                assert float(v) == pytest.approx(grid.terms()[k][i, j], rel=1e-12, abs=1e-15)


def test_layer_counts_are_computed_once_per_architecture(monkeypatch):
    """The per-layer kind and MoE counts are derived once per architecture object: step-time calls
    (the search makes hundreds) never walk the layers again."""
    a = arch("deepseek-ai/DeepSeek-V3")
    counts = a.layer_counts
    assert (counts.moe, counts.dense_mlp, counts.full) == (58, 3, 61)    # first_k_dense_replace = 3
    assert a.num_moe_layers == 58 and a.kv_layers() == {"full": 61, "sliding": 0}
    t = target(a=a, dtype="fp8")

    def walked(self, i):  # noqa: ARG001
        raise AssertionError("layer_is_moe called again")

    monkeypatch.setattr(ModelArch, "layer_is_moe", walked)
    assert a.layer_counts is counts
    assert float(total(t, tp=8, decode_seqs=16, decode_ctx=2048)) > 0
