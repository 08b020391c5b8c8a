"""Advice when nothing meets the SLA: concrete numbers, each confirmed by planning again with the change."""

from __future__ import annotations

import pytest

from servewise.estimator import plan
from servewise.estimator.advice import nice_up
from servewise.profiles.store import profile_from_dict

from .test_search import profile


def _apply(p, change: dict):  # type: ignore[no-untyped-def]
    doc = p.model_dump(mode="json")
    for path, value in change.items():
        section, key = path.split(".")
        doc[section][key] = value
    return profile_from_dict(doc, path="test")


@pytest.mark.parametrize("x, up", [(347.2, 350), (14.3, 15), (1.234, 1.3), (5.0, 5.0), (999.1, 1000)])
def test_nice_up_rounds_up_to_two_significant_figures(x, up):
    assert nice_up(x) == pytest.approx(up)


def test_memory_bound_request_gets_gpu_count_and_max_length():
    """Llama 3.1 8B at its 131k context on one 24 GB card: the KV cache cannot hold one request."""
    p = profile(gpu="rtx-4090", gpus=1, load={"concurrency": 4}, modes=("agg",))
    r = plan(p)
    assert not r.feasible and "KV cache" in r.reason
    kinds = {a.kind: a for a in r.advice}
    assert {"more_gpus", "shorter_context"} <= set(kinds)
    assert kinds["more_gpus"].change == {"hardware.gpus_per_node": 2, "hardware.nodes": 1}
    mml = kinds["shorter_context"].value
    assert isinstance(mml, int) and mml % 1024 == 0 and str(mml) in kinds["shorter_context"].message
    for a in r.advice:                                   # each holds when followed
        assert plan(_apply(p, a.change)).feasible, a.message
    assert not plan(_apply(p, {"model.max_model_len": mml + 1024})).feasible   # and is the largest


def test_tight_targets_get_the_smallest_relaxation():
    p = profile(gpus=2, load={"concurrency": 32}, ttft=100, tpot=5, modes=("agg",))
    r = plan(p)
    assert not r.feasible
    relax = [a for a in r.advice if a.kind in ("relax_ttft", "relax_tpot", "relax_sla")]
    assert relax
    for a in relax:
        assert a.best is not None and a.best.meets_sla
        assert plan(_apply(p, a.change)).feasible, a.message
        if a.kind != "relax_sla":               # one target moved: 10% less would not do (2-figure rounding)
            (key, v), = a.change.items()
            assert not plan(_apply(p, {key: v * 0.9})).feasible


def test_trtllm_fp8_advice_names_an_fp8_checkpoint():
    """TensorRT-LLM does not quantize at load, so FP8 advice points at the catalog's FP8 checkpoint."""
    p = profile(model="Qwen/Qwen3-32B", gpu="h200-sxm", gpus=8, isl=4000, osl=500, engine="trtllm",
                load={"max_throughput": True}, ttft=300, tpot=5)
    r = plan(p)
    assert not r.feasible
    fp8 = [a for a in r.advice if a.kind == "quantize_weights"]
    assert fp8 and fp8[0].change == {"model.id": "Qwen/Qwen3-32B-FP8"}
    assert plan(_apply(p, fp8[0].change)).feasible


def test_gpu_count_advice_keeps_doubling_while_nothing_sustains_the_load():
    """Llama 3.2 1B at 20 requests/s of 8,000 + 2,000 tokens on 4 x RTX 5090: neither 4 nor 8 GPUs
    sustain the rate (no candidate to measure closeness by), 12 do; the advice must get there rather
    than stop at the first doubling that still has no candidate."""
    p = profile(model="meta-llama/Llama-3.2-1B-Instruct", gpu="rtx-5090", gpus=4, isl=8000, osl=2000,
                load={"request_rate": 20.0})
    r = plan(p)
    assert not r.feasible
    assert not plan(_apply(p, {"hardware.gpus_per_node": 8, "hardware.nodes": 1})).feasible
    more = [a for a in r.advice if a.kind == "more_gpus"]
    assert more, r.advice
    assert plan(_apply(p, more[0].change)).feasible, more[0].message


def test_reason_names_node_placement_when_memory_is_not_what_fails():
    """Qwen3 235B on 4 nodes of 6 x H100: the 8- and 16-GPU layouts that hold the weights cannot fill whole
    6-GPU nodes, so nothing is placeable; the reason must say so, not leave 'fits in memory' unexplained."""
    r = plan(profile(model="Qwen/Qwen3-235B-A22B", gpus=24, per_node=6, load={"max_throughput": True}))
    assert not r.feasible
    assert r.reason.startswith("no configuration fits in memory and serves the load; ")
    assert "whole nodes of 6 GPUs" in r.reason and "TP4 PP4" in r.reason


def test_weights_too_big_for_two_doublings_still_get_the_gpu_count():
    """Qwen3-32B (61 GiB of BF16 weights) on one L4 (20 GiB budget): two L4s do not hold it either, but
    four do. Nothing fitting at one count and at twice it is no sign that more GPUs cannot help."""
    p = profile(model="Qwen/Qwen3-32B", gpu="l4", gpus=1, load={"max_throughput": True}, ttft=10000, tpot=500,
                modes=("agg",))
    r = plan(p)
    assert not r.feasible
    kinds = {a.kind: a for a in r.advice}
    assert "more_gpus" in kinds, [a.message for a in r.advice]
    assert kinds["more_gpus"].value == 4
    assert plan(_apply(p, kinds["more_gpus"].change)).feasible
