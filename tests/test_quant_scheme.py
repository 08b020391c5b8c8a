"""Quantization detection and exact weight bytes, checked against vLLM's measured load sizes."""

from __future__ import annotations

import csv

import pytest

from servewise.estimator.arch import ModelArch
from servewise.estimator.quant_scheme import (
    UnsupportedQuantizationError, _matches, detect, module_total, weight_split,
)
from servewise.perfdata import all_models, get_model

MODELS = sorted(all_models().values(), key=lambda m: m.id)
GIB = 1024**3


@pytest.mark.parametrize("m", MODELS, ids=[m.id for m in MODELS])
def test_modules_add_up_to_the_parameter_count(m):
    a = ModelArch.from_hf_config(m.config)
    assert module_total(a) == a.total_params()


@pytest.mark.parametrize("m", [m for m in MODELS if m.quantization_config], ids=lambda m: m.id)
def test_detected_format_is_the_catalog_dtype(m):
    scheme = detect(m.quantization_config)
    assert scheme is not None and scheme.weights_dtype == m.dtype


def test_exclusions_keep_the_named_modules_in_16_bit():
    gpt = weight_split(ModelArch.from_hf_config(get_model("openai/gpt-oss-20b").config),
                       detect(get_model("openai/gpt-oss-20b").quantization_config))
    assert gpt.quantized_roles == {"experts"}                 # self_attn and router excluded
    kimi = get_model("moonshotai/Kimi-K2.5")
    ks = detect(kimi.quantization_config)
    assert ks.fmt.group == 32 and ks.fmt.zero_bits == 0       # symmetric INT4, group 32: 4.5 bits per weight
    assert weight_split(ModelArch.from_hf_config(kimi.config), ks).quantized_roles == {"experts"}
    r1 = get_model("nvidia/DeepSeek-R1-NVFP4")
    assert "attention" not in weight_split(ModelArch.from_hf_config(r1.config), detect(r1.quantization_config)).quantized_roles


@pytest.mark.parametrize(("name", "pattern", "hit"), [
    ("model.layers.3.mlp.gate", "gate", True),
    ("model.layers.3.mlp.gate_proj", "gate", False),
    ("model.layers.3.self_attn.q_proj", "self_attn", True),
    ("model.layers.3.self_attn.q_proj", "model.layers.*.self_attn", True),
    ("model.layers.7.mlp.gate", "model.layers.*.mlp.gate", True),
    ("model.layers.1.mlp.experts.0.gate_proj", r"re:.*mlp\.(gate|up|down)_proj.*", False),
    ("model.layers.0.mlp.gate_proj", r"re:.*mlp\.(gate|up|down)_proj.*", True),
    ("lm_head", "lm_head", True),
])
def test_exclusion_patterns(name, pattern, hit):
    assert _matches(name, pattern) is hit


@pytest.mark.parametrize(("qc", "message"), [
    ({"quant_method": "hqq"}, "not one servewise sizes"),
    ({"quant_method": "gptq", "bits": 8, "group_size": 128}, "8-bit"),
    ({"quant_method": "awq", "bits": "4"}, "must be an integer"),
    ({"quant_method": "compressed-tensors"}, "no config_groups"),
    ({"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "W4A8_AWQ"}}, "W4A8_AWQ"),
    ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "8-bit"),
])
def test_unsupported_schemes_are_refused_by_name(qc, message):
    with pytest.raises(UnsupportedQuantizationError, match=message):
        detect(qc)


def test_bitsandbytes_4bit_bytes():
    s = detect({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"})
    assert s.weights_dtype == "bnb-4bit" and s.fmt.bytes_per_param == pytest.approx((4 + 32 / 64) / 8)


def _measured(shared_dir):
    with open(shared_dir / "calibration" / "vllm_memory_startup_h100.csv", newline="") as f:
        for row in csv.DictReader(f):
            yield row


def test_weight_bytes_match_vllm_load_sizes(shared_dir):
    """vLLM's 'Model loading took X GiB' (calibration/vllm_memory_startup_h100.csv, vLLM 0.11 on H100) against
    the architecture's weight bytes, per GPU (TP shards the total). gpt-oss is left out: vLLM pads its MXFP4
    expert matrices on Hopper, so the loaded size exceeds the checkpoint's (13.47 vs 12.82 GiB)."""
    checked = 0
    for row in _measured(shared_dir):
        if row["model"].startswith("openai/"):
            continue
        m = get_model(row["model"])
        split = weight_split(ModelArch.from_hf_config(m.config), detect(m.quantization_config))
        per_gpu = split.weight_bytes / int(row["tp"]) / GIB
        reported = float(row["weights_reported"].split()[0])
        assert per_gpu == pytest.approx(reported, rel=0.01), row["model"]
        checked += 1
    assert checked >= 5
