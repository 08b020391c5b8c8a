"""``servewise estimate``: the memory breakdown in JSON and GiB, feasibility and exit codes."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

GIB = 1024**3
KEYS = {"weights_bytes", "kv_cache_bytes", "activation_bytes", "cuda_graph_bytes", "other_bytes", "total_bytes",
        "budget_bytes", "kv_cache_tokens", "max_concurrency"}
L70 = ("--model", "meta-llama/Llama-3.1-70B-Instruct", "--gpu", "h100-sxm", "--max-model-len", "16000")


def _memory(*argv: str) -> tuple[int, dict, str]:
    r = run_cli("estimate", *argv, "--json")
    return r.code, json.loads(r.out), r.err


def test_llama_70b_bf16_on_one_h100_names_the_weights():
    code, doc, err = _memory(*L70, "--engine-version", "0.11.0")
    assert code == 1 and err == ""
    m = doc["memory"]
    assert doc["feasible"] is False and m["feasible"] is False
    assert m["overflow"]["term"] == "weights"
    assert m["overflow"]["bytes"] == pytest.approx(m["weights_bytes"] - m["budget_bytes"], abs=1)
    assert KEYS <= set(m)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_what_does_not_fit_is_not_reported_as_held_within_the_budget(engine):
    """The total an engine would hold counts every fixed term even when they overrun the budget, so
    the table never shows a total below the weights it contains, nor headroom that is not there."""
    code, doc, _ = _memory(*L70, "--engine", engine)
    m = doc["memory"]
    fixed = m["weights_bytes"] + m["activation_bytes"] + m["other_bytes"] + m["cuda_graph_bytes"]
    assert code == 1 and m["total_bytes"] == pytest.approx(fixed, abs=2)
    assert m["headroom_bytes"] < 0


def test_llama_70b_bf16_on_two_h100_tp2_fits_with_a_kv_capacity():
    code, doc, _ = _memory(*L70, "--gpus", "2", "--tp", "2")
    m = doc["memory"]
    assert code == 0 and doc["feasible"] is True
    assert m["kv_cache_tokens"] >= 16000 and m["max_concurrency"] >= 1
    assert m["weights_bytes"] == pytest.approx(65.74 * GIB, rel=0.01)


def test_llama_70b_fp8_on_one_h100_has_no_room_for_kv_as_measured():
    """Measured (vLLM 0.11, H100, 0.9): 67.72 GiB of FP8 weights and -1.44 GiB left for KV (the
    KV cache is then empty and the shortfall is the overflow)."""
    code, doc, _ = _memory(*L70, "--weights-dtype", "fp8", "--engine-version", "0.11.0")
    m = doc["memory"]
    assert code == 1 and m["overflow"]["term"] == "kv_cache" and m["kv_cache_bytes"] == 0
    assert abs(m["overflow"]["bytes"] / GIB - 1.44) <= 0.5
    assert m["weights_bytes"] / GIB == pytest.approx(67.72, rel=0.02)


def test_one_request_too_long_reports_the_estimated_max_model_len():
    """Qwen3-32B on one H100 at 32,000 tokens failed to start on vLLM 0.11 (llm-d table):
    4.46 GiB of KV at 256 KiB per token holds 18,256 tokens in whole blocks of 16."""
    code, doc, _ = _memory("--model", "Qwen/Qwen3-32B", "--gpu", "h100-sxm", "--engine-version", "0.11.0",
                           "--max-model-len", "32000")
    m = doc["memory"]
    assert code == 1 and m["overflow"]["term"] == "kv_cache"
    blocks = int(m["kv_cache_bytes"] // (16 * 262144))
    assert m["estimated_max_model_len"] == m["max_context_tokens"] == blocks * 16


def test_human_table_in_gib():
    r = run_cli("estimate", *L70, "--gpus", "2", "--tp", "2")
    assert r.code == 0
    for label in ("weights", "KV cache", "activation peak", "CUDA graphs", "non-torch", "budget", "GPU memory"):
        assert label in r.out
    assert "GiB" in r.out and "KiB/token" in r.out


@pytest.mark.parametrize("argv, field", [
    (("--weights-dtype", "int3"), "--weights-dtype"),
    (("--tp", "3", "--gpus", "3"), "--tp"),
    (("--max-model-len", "500000"), "--max-model-len"),
    (("--gpus", "0"), "--gpus"),
    (("--gpu-memory-utilization", "-0.5"), "--gpu-memory-utilization"),
])
def test_bad_input_exits_2_with_one_line_naming_the_flag(argv, field):
    r = run_cli("estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm", *argv, "--json")
    assert r.code == 2 and r.out == ""
    assert len(r.err.strip().splitlines()) == 1 and field in r.err


def test_three_engines_size_the_kv_cache_by_their_own_rules():
    """Same model and GPU, each engine at its own defaults: vLLM 0.11 loses its sampler-pass peak
    (~4.8 GiB at 1,024 rows of 128,256 fp32 logits) inside 0.9 x total; SGLang keeps activations
    outside mem_fraction_static (auto 0.829 on an H100); TensorRT-LLM takes 0.9 of what is free
    after weights and the estimation run, in blocks of 32."""
    docs = {}
    for engine, extra in (("vllm", ("--engine-version", "0.11.0")), ("sglang", ()), ("trtllm", ())):
        code, doc, _ = _memory("--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm",
                               "--max-model-len", "16000", "--engine", engine, *extra)
        assert code == 0
        docs[engine] = doc["memory"]
    tokens = {e: m["kv_cache_tokens"] for e, m in docs.items()}
    assert len(set(tokens.values())) == 3
    assert docs["vllm"]["memory_fraction_of"] == docs["sglang"]["memory_fraction_of"] == "total"
    assert docs["trtllm"]["memory_fraction_of"] == "free_after_weights"
    assert docs["sglang"]["memory_fraction"] == 0.829
    assert docs["vllm"]["activation_sampler_bytes"] > 4 * GIB > docs["sglang"]["activation_sampler_bytes"]
    free = docs["trtllm"]["gpu_memory_bytes"] - sum(docs["trtllm"][k] for k in (
        "weights_bytes", "activation_bytes", "other_bytes"))
    assert docs["trtllm"]["kv_cache_bytes"] == pytest.approx(0.9 * free, abs=2)
    assert tokens["trtllm"] % 32 == 0 and tokens["vllm"] % 16 == 0


def test_heterogeneous_estimate_says_which_pool_runs_on_which_gpu():
    r = run_cli("estimate", "--model", "Qwen/Qwen3-32B", "--gpu", "h100-sxm", "--gpus", "8", "--mode", "disagg",
                "--prefill-tp", "4", "--decode-tp", "4", "--prefill-gpu", "h200-sxm")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0].startswith("Qwen/Qwen3-32B on 4 x h200-sxm (prefill) + 4 x h100-sxm (decode),")


def test_batch_limit_defaults_are_the_ones_the_help_states():
    """Without --max-num-seqs / --max-num-batched-tokens an aggregated estimate takes the engine's own
    defaults for the GPU (vLLM 0.33 on an H100: 1024 / 8192), not the load, as --help says."""
    from servewise.estimator.engine_defaults import batch_defaults
    from servewise.perfdata.gpus import get_gpu

    gpu = get_gpu("h100-sxm")
    want = batch_defaults("vllm", "0.33.0", gpu, gpu.memory_bytes, 1, 16000)
    code, doc, _ = _memory("--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm", "--engine-version",
                           "0.33.0", "--max-model-len", "16000", "--concurrency", "8")
    w = doc["plan"]["worker"]
    assert code == 0 and (w["max_num_seqs"], w["max_num_batched_tokens"]) == (want.max_num_seqs,
                                                                              want.max_num_batched_tokens)
    assert w["max_num_seqs"] != 8                       # not the load
    from servewise.wizard.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    help_text = " ".join(sub.choices["estimate"].format_help().split())
    assert "(default: the load)" not in help_text and "aggregated, the engine's own for this GPU" in help_text
