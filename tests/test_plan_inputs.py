"""Plan inputs: the memory fraction is recorded for replay; dtypes an engine cannot serve are refused."""

from __future__ import annotations

from servewise.profiles import load_profile

from .conftest import run_cli


def test_memory_fraction_is_pinned_and_replays_without_drift(tmp_path):
    prof = tmp_path / "p.yaml"
    r = run_cli("plan", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm", "--gpus", "1",
                "--isl", "1000", "--osl", "200", "--concurrency", "8", "--ttft-ms", "2000", "--tpot-ms", "50",
                "--gpu-memory-utilization", "0.8", "--save", str(prof))
    assert r.code == 0, r.err
    p = load_profile(prof)
    assert p.search.memory_fraction == 0.8
    assert p.plan is not None and p.plan.worker.gpu_memory_utilization == 0.8
    r = run_cli("--profile", str(prof), "--out", str(tmp_path / "out"), "--strict")
    assert r.code == 0, r.err
    assert "drift" not in r.err


def test_trtllm_cannot_quantize_a_16bit_checkpoint_at_load_time():
    r = run_cli("estimate", "--model", "Qwen/Qwen3-32B", "--gpu", "h100-sxm", "--gpus", "2", "--tp", "2",
                "--engine", "trtllm", "--weights-dtype", "fp8")
    assert r.code == 2 and r.err.count("\n") == 1
    assert "--weights-dtype" in r.err and "pre-quantized fp8 checkpoint" in r.err
