"""Model catalog: every file loads and parses, every parameter count matches its published
figure within 1%, and the models the calibration data names are catalogued."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from servewise.estimator.arch import ModelArch
from servewise.perfdata import all_models, find_model, get_model
from servewise.perfdata.errors import UnknownIdError
from servewise.perfdata.loader import data_root
from servewise.perfdata.models import trim_config

MODELS = sorted(all_models().values(), key=lambda m: m.id)
IDS = [m.id for m in MODELS]
QUANTIZED = {"fp8", "int8", "int4-awq", "int4-gptq", "nvfp4", "mxfp4"}


def test_catalog_is_large_enough():
    assert len(MODELS) >= 40


@pytest.mark.parametrize("m", MODELS, ids=IDS)
def test_file_path_matches_id(m):
    org, name = m.id.split("/")
    assert (data_root() / "models" / org / f"{name}.yaml").is_file()


@pytest.mark.parametrize("m", MODELS, ids=IDS)
def test_parameter_count_within_one_percent_of_published(m):
    """ModelArch.total_params() against the published count named in params_source."""
    computed = ModelArch.from_hf_config(m.config).total_params()
    tolerance = max(0.01 * m.params, m.params_rounding or 0.0)
    assert abs(computed - m.params) <= tolerance, (
        f"{m.id}: computed {computed / 1e9:.3f}B vs published {m.params / 1e9:.3f}B ({m.params_source})")


def test_rounding_allowance_is_rare_and_needed():
    """A rounded published count is accepted only where the 1% bound cannot be met from it."""
    rounded = [m for m in MODELS if m.params_rounding]
    assert len(rounded) <= 2, [m.id for m in rounded]
    for m in rounded:
        computed = ModelArch.from_hf_config(m.config).total_params()
        assert abs(computed - m.params) > 0.01 * m.params, f"{m.id} does not need params_rounding"
        assert "rounded" in m.params_source


@pytest.mark.parametrize("m", MODELS, ids=IDS)
def test_config_holds_architecture_keys_only(m):
    """The catalog keeps the same config.json keys a profile records for a non-catalog model."""
    assert trim_config(m.config) == m.config


@pytest.mark.parametrize("m", MODELS, ids=IDS)
def test_facts_are_sourced(m):
    assert m.source.strip() and m.params_source.strip()
    assert "transcribed from" in m.source or "config.json" in m.source


@pytest.mark.parametrize("m", MODELS, ids=IDS)
def test_quantized_checkpoints_carry_their_quantization_config(m):
    if m.dtype in QUANTIZED:
        assert m.quantization_config, f"{m.id} is {m.dtype} but has no quantization_config"
    else:
        assert m.quantization_config is None
    if m.base_model:
        assert m.base_model != m.id


def test_vision_tower_is_counted_and_said_so():
    for m in MODELS:
        arch = ModelArch.from_hf_config(m.config)
        if "vision_config" in m.config:
            assert arch.vision_params > 0, f"{m.id}: vision tower not counted"
            assert m.params_note and ("vision" in m.params_note or "MoonViT" in m.params_note)


def test_ids_and_aliases_are_unique():
    seen: set[str] = set()
    for m in MODELS:
        for name in [m.id, *m.aliases]:
            assert name.lower() not in seen, name
            seen.add(name.lower())


def test_lookup_is_case_insensitive_and_follows_aliases():
    assert find_model("qwen/qwen3-32b").id == "Qwen/Qwen3-32B"
    assert find_model("zhipuai/GLM-5").id == "zai-org/GLM-5"
    with pytest.raises(UnknownIdError, match="did you mean"):
        get_model("Qwen/Qwen3-33B")


def test_required_families_are_present():
    families = {m.family for m in MODELS}
    for fam in ("llama3.1", "llama3.2", "llama3.3", "qwen2.5", "qwen3", "qwen3-moe", "mistral", "mixtral", "gemma2",
                "gemma3", "phi3", "phi4", "deepseek-v2", "deepseek-v3", "gpt-oss"):
        assert fam in families, fam
    dtypes = {m.dtype for m in MODELS}
    assert {"fp8", "int4-awq", "int4-gptq", "nvfp4", "mxfp4"} <= dtypes


def _calibration_models(shared: Path) -> set[str]:
    names = set()
    with open(shared / "calibration" / "vllm_memory_startup_h100.csv", newline="") as f:
        names |= {row["model"] for row in csv.DictReader(f)}
    with open(shared / "calibration" / "aiconfigurator_silicon_sample.csv", newline="") as f:
        names |= {row["model_path"] for row in csv.DictReader(f)}
    return names


def test_every_calibration_model_is_catalogued(shared_dir):
    missing = sorted(n for n in _calibration_models(shared_dir) if find_model(n) is None)
    assert not missing, f"calibration data names models the catalog lacks: {missing}"


@pytest.mark.parametrize("m", MODELS, ids=IDS)
def test_every_model_estimates_end_to_end(m, cli):
    """Resolution, the memory model and the performance model accept every catalog entry."""
    heads = ModelArch.from_hf_config(m.config).num_attention_heads
    tp = next(str(t) for t in (8, 4, 2, 1) if heads % t == 0 and (m.params > 5e9 or t == 1))
    r = cli("estimate", "--model", m.id, "--gpu", "b200", "--gpus", tp, "--tp", tp, "--isl", "1000", "--osl", "200",
            "--concurrency", "8", "--max-model-len", "4096", "--json")
    assert r.code in (0, 1), r.err
    assert r.err == ""
