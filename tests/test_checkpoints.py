"""Non-catalog models: local checkpoint folders (config + header-only safetensors) for each family
and quantization, recorded into the profile, and replayed without the folder."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from servewise.estimator.arch import ModelArch
from servewise.estimator.quant_scheme import detect, weight_split
from servewise.estimator.resolve import resolve_config
from servewise.perfdata import all_models, get_model
from servewise.profiles import load_profile
from servewise.profiles.checkpoint import load_checkpoint

from .checkpoint_fixtures import (
    AWQ, COMMITTED, FIXTURES, LLAMA32_1B, QWEN3_06B, dense_tensors, gpt_oss_tensors, header_bytes, make_checkpoint,
)
from .conftest import ROOT, run_cli

GIB = 1024**3
WORKLOAD = ("--gpu", "h100-sxm", "--isl", "2000", "--osl", "200", "--concurrency", "4")


def _describe(path: Path | str) -> dict:
    r = run_cli("models", "--describe", str(path), "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def _estimate(path: Path | str, *extra: str) -> dict:
    r = run_cli("estimate", "--model", str(path), *WORKLOAD, *extra, "--json")
    assert r.code in (0, 1), r.err
    return json.loads(r.out)


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_committed_fixtures_are_what_the_generator_writes(tmp_path, name):
    cfg, tensors = COMMITTED[name]()
    make_checkpoint(tmp_path / name, cfg, tensors)
    for f in ("config.json", "model.safetensors"):
        assert (tmp_path / name / f).read_bytes() == (FIXTURES / name / f).read_bytes(), f"regenerate {name}: " \
            "python -m tests.checkpoint_fixtures"


def test_gemma2_folder_sizes_kv_with_its_sliding_window_layers():
    path = "./" + str((FIXTURES / "gemma-2-2b-like").relative_to(ROOT))
    d = _estimate(path)
    m = d["memory"]
    assert {k: v for k, v in m["kv_layers"].items() if v} == {"full": 13, "sliding": 13}
    assert m["sliding_window"] == 4096
    assert m["kv_bytes_per_token"] == 26 * 2 * 4 * 256 * 2          # K and V, 4 KV heads x 256, bf16
    desc = _describe(path)
    assert desc["checkpoint"]["weight_bytes_source"] == "safetensors"
    assert desc["params"]["total"] == pytest.approx(2.61e9, rel=5e-3)  # gemma-2-2b: 2.61B parameters


def test_awq_folder_yields_awq_weight_bytes_and_method():
    folder = FIXTURES / "llama-3.2-1b-awq"
    cfg, tensors = COMMITTED["llama-3.2-1b-awq"]()
    desc = _describe(folder)
    ck = desc["checkpoint"]
    assert ck["dtype"] == "int4-awq" and ck["quantization_method"] == "awq"
    assert ck["weight_bytes"] == header_bytes(tensors)                  # exact, from the headers
    arch = ModelArch.from_hf_config(cfg)
    estimated = weight_split(arch, detect(cfg["quantization_config"])).weight_bytes
    assert estimated == pytest.approx(ck["weight_bytes"], rel=0.01)    # the architecture agrees
    d = _estimate(folder)
    assert any("awq" in a and "--quantization awq_marlin" in a for a in d["assumptions"])


@pytest.mark.parametrize("gpu, value", [("h100-sxm", "awq_marlin"), ("t4", "awq")])
def test_awq_folder_renders_a_pinned_quantization_kernel(tmp_path, gpu, value):
    """vLLM detects AWQ itself but an explicit ``awq`` forces the slow kernel, so servewise pins
    ``awq_marlin`` where Marlin runs (compute capability >= 8.0) and ``awq`` below (T4 is 7.5)."""
    profile = tmp_path / "p.yaml"
    args = [a if a != "h100-sxm" else gpu for a in WORKLOAD]
    r = run_cli("plan", "--model", str(FIXTURES / "llama-3.2-1b-awq"), *args, "--save", str(profile))
    assert r.code == 0, r.err
    out = tmp_path / "out"
    assert run_cli("--profile", str(profile), "--out", str(out)).code == 0
    serve = (out / "shell" / "serve.sh").read_text().split()
    assert serve[serve.index("--quantization") + 1] == value


def test_fp8_folder_needs_no_quantization_flag(tmp_path):
    folder = FIXTURES / "qwen3-0.6b-fp8"
    profile = tmp_path / "p.yaml"
    r = run_cli("plan", "--model", str(folder), *WORKLOAD, "--save", str(profile))
    assert r.code == 0, r.err
    p = load_profile(profile)
    assert p.model.architecture and p.model.config_hash.startswith("sha256:")
    assert p.model.architecture["quantization_config"]["quant_method"] == "fp8"
    out = tmp_path / "out"
    assert run_cli("--profile", str(profile), "--out", str(out)).code == 0
    serve = (out / "shell" / "serve.sh").read_text()
    assert "vllm serve" in serve and "--quantization" not in serve
    d = _estimate(folder)
    assert any("fp8" in a and "reads it from the checkpoint" in a for a in d["assumptions"])


def test_replay_needs_neither_the_folder_nor_the_network(tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / "gemma-2-2b-like", folder)
    profile = tmp_path / "p.yaml"
    assert run_cli("plan", "--model", str(folder), *WORKLOAD, "--save", str(profile)).code == 0
    shutil.rmtree(folder)
    r = run_cli("--profile", str(profile), "--out", str(tmp_path / "out"))
    assert r.code == 0, r.err


def test_replay_warns_when_the_local_config_changed_since_planning(tmp_path):
    """model.config_hash lets replay see that the folder now holds another config.json."""
    folder = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / "gemma-2-2b-like", folder)
    profile = tmp_path / "p.yaml"
    assert run_cli("plan", "--model", str(folder), *WORKLOAD, "--save", str(profile)).code == 0
    same = run_cli("--profile", str(profile), "--out", str(tmp_path / "out1"))
    assert same.code == 0 and "config.json" not in same.err
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 20}))
    r = run_cli("--profile", str(profile), "--out", str(tmp_path / "out2"))
    assert r.code == 0, r.err
    assert f"warning: {folder / 'config.json'} is not the config.json the profile was planned with" in r.err


@pytest.mark.parametrize("fmt, qcfg, hfq, dtype, method", [
    ("gptq", {"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True, "desc_act": False}, None,
     "int4-gptq", "gptq"),
    ("ct-w4a16", {"quant_method": "compressed-tensors", "format": "pack-quantized", "ignore": ["lm_head"],
                  "config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int",
                                                                             "group_size": 128, "symmetric": True,
                                                                             "strategy": "group"}}}},
     None, "int4-gptq", "compressed-tensors"),
    ("ct-w8a8", {"quant_method": "compressed-tensors", "format": "int-quantized", "ignore": ["lm_head"],
                 "config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 8, "type": "int",
                                                                            "strategy": "channel"}}}},
     None, "int8", "compressed-tensors"),
    ("nvfp4", None, {"producer": {"name": "modelopt", "version": "0.33.0"},
                     "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16,
                                      "exclude_modules": ["lm_head"]}}, "nvfp4", "modelopt_fp4"),
    ("bnb4", {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}, None,
     "bnb-4bit", "bitsandbytes"),
])
def test_quantized_folders_are_detected_and_sized(tmp_path, fmt, qcfg, hfq, dtype, method):
    cfg = {**QWEN3_06B, **({"quantization_config": qcfg} if qcfg else {})}
    tensors = dense_tensors(QWEN3_06B, fmt)
    folder = make_checkpoint(tmp_path / fmt, cfg, tensors, hfq)
    facts = load_checkpoint(str(folder))
    rm = resolve_config(str(folder), facts.architecture_record(), source="local")
    assert rm.checkpoint_dtype == dtype and rm.quantization_method == method
    assert rm.weight_bytes == header_bytes(tensors) and rm.weight_bytes_source == "safetensors"
    estimated = weight_split(rm.arch, rm.checkpoint_quant).weight_bytes
    assert estimated == pytest.approx(rm.weight_bytes, rel=0.02), "architecture estimate vs exact header bytes"


def test_bitsandbytes_is_refused_by_an_engine_that_lacks_it(tmp_path):
    cfg = {**LLAMA32_1B, "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}}
    folder = make_checkpoint(tmp_path / "bnb", cfg, dense_tensors(LLAMA32_1B, "bnb4"))
    r = run_cli("estimate", "--model", str(folder), *WORKLOAD, "--json")
    assert r.code == 2 and "bnb-4bit" in r.err and r.err.count("\n") == 1
    assert run_cli("estimate", "--model", str(folder), *WORKLOAD, "--engine", "sglang", "--json").code in (0, 1)


def test_mxfp4_folder_matches_the_architecture(tmp_path):
    cfg = {**get_model("openai/gpt-oss-20b").config, "quantization_config": get_model("openai/gpt-oss-20b")
           .quantization_config}
    tensors = gpt_oss_tensors(cfg)
    rm = resolve_config("x", load_checkpoint(str(make_checkpoint(tmp_path / "oss", cfg, tensors)))
                        .architecture_record(), source="local")
    assert rm.quantization_method == "mxfp4"
    assert weight_split(rm.arch, rm.checkpoint_quant).weight_bytes == pytest.approx(rm.weight_bytes, rel=0.005)
    assert rm.weight_bytes / GIB == pytest.approx(12.8, abs=0.1)       # the published checkpoint is ~13.8 GB


def test_mtp_tensors_are_counted_apart(tmp_path):
    cfg = dict(QWEN3_06B)
    tensors = dense_tensors({**QWEN3_06B, "num_hidden_layers": 29})   # one layer past num_hidden_layers
    facts = load_checkpoint(str(make_checkpoint(tmp_path / "mtp", cfg, tensors)))
    st = facts.safetensors
    assert st.extra_bytes > 0 and st.served_bytes == header_bytes(dense_tensors(cfg))


@pytest.mark.parametrize("model_id", sorted(all_models()), ids=lambda i: i)
def test_folder_of_every_catalog_config_resolves_like_the_catalog(tmp_path, model_id):
    """A checkpoint folder holding a catalog model's config gives the catalog's architecture, so its
    count matches the published one within 1% exactly as the catalog test checks."""
    m = get_model(model_id)
    cfg = {**m.config, **({"quantization_config": m.quantization_config} if m.quantization_config and
                          "producer" not in m.quantization_config else {})}
    hfq = m.quantization_config if m.quantization_config and "producer" in m.quantization_config else None
    folder = make_checkpoint(tmp_path / "m", cfg, None, hfq)
    rm = resolve_config(str(folder), load_checkpoint(str(folder)).architecture_record(), source="local")
    assert rm.arch == ModelArch.from_hf_config(m.config)
    assert rm.checkpoint_dtype == m.dtype
    assert abs(rm.arch.total_params() - m.params) <= max(0.01 * m.params, m.params_rounding or 0)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("hidden_size"), "hidden_size"),
    (lambda d: d.update(num_hidden_layers="28"), "must be an integer"),
    (lambda d: d.update(num_hidden_layers=10**12), "out of range"),
    (lambda d: d.update(vocab_size=-5), "out of range"),
    (lambda d: d.update(hidden_size=1e300), "= 1e+300 is out of range"),
    (lambda d: d.update(architectures="Qwen3ForCausalLM"), "'architectures' must be a list"),
    (lambda d: d.update(architectures=[1]), "'architectures' must be a list"),
    (lambda d: d.update(sliding_window=10**30), "'sliding_window' = 1e+30 is out of range"),
    (lambda d: d.update(sliding_window=-1), "'sliding_window' = -1 is out of range"),
    (lambda d: d.update(model_type="frobnicator"), "not a family"),
    (lambda d: d.update(model_type="mamba"), "state-space"),
    (lambda d: d.update(model_type="nemotron_h"), "Mamba2"),
    (lambda d: d.update(quantization_config={"quant_method": "hqq"}), "hqq"),
])
def test_corrupted_configs_exit_3_with_one_line(tmp_path, mutate, message):
    cfg = dict(QWEN3_06B)
    mutate(cfg)
    folder = make_checkpoint(tmp_path / "bad", cfg, None)
    r = run_cli("estimate", "--model", str(folder), *WORKLOAD, "--json")
    assert r.code == 3 and r.out == "" and r.err.count("\n") == 1 and message in r.err, r.err


@pytest.mark.parametrize("value, message", [(float("inf"), "must be an integer, got inf"),   # 1e400 in JSON
                                            (float("nan"), "must be an integer, got nan")])
def test_non_finite_config_numbers_are_described_as_errors(tmp_path, value, message):
    cfg = dict(QWEN3_06B, hidden_size=value)
    folder = make_checkpoint(tmp_path / "bad", cfg, None)
    r = run_cli("models", "--describe", str(folder))
    assert r.code == 3 and r.out == "" and r.err.count("\n") == 1 and message in r.err, r.err


@pytest.mark.parametrize("setup, message", [
    (lambda f: (f / "config.json").write_text("{not json"), "not valid JSON"),
    (lambda f: (f / "config.json").write_text("[1, 2]"), "expected a JSON object"),
    (lambda f: (f / "config.json").unlink(), "no config.json"),
    (lambda f: (f / "model.safetensors").write_bytes(struct.pack("<Q", 10**12)), "out of range"),
    (lambda f: (f / "model.safetensors").write_bytes(struct.pack("<Q", 7) + b"{\"a\":1}"), "no dtype/shape"),
    (lambda f: (f / "hf_quant_config.json").write_text("{\"quantization\": {\"quant_algo\": \"W4A8_AWQ\"}}"),
     "W4A8_AWQ"),
])
def test_broken_folders_exit_3_with_one_line(tmp_path, setup, message):
    folder = make_checkpoint(tmp_path / "f", dict(QWEN3_06B), dense_tensors(QWEN3_06B))
    setup(folder)
    r = run_cli("models", "--describe", str(folder), "--json")
    assert r.code == 3 and r.out == "" and r.err.count("\n") == 1 and message in r.err, r.err


def test_missing_folder_and_revision_on_a_folder():
    assert run_cli("models", "--describe", "./no/such/folder").code == 3
    r = run_cli("models", "--describe", str(FIXTURES / "gemma-2-2b-like"), "--revision", "main")
    assert r.code == 2 and "--revision" in r.err


def test_awq_without_a_group_defaults_and_llama_awq_constants():
    """AutoAWQ stores 4-bit weights plus an fp16 scale and a 4-bit zero per 128: 4.15625 bits per weight."""
    assert detect(AWQ).fmt.bytes_per_param == pytest.approx((4 + 20 / 128) / 8)
