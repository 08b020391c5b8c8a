"""Engine catalog: every file loads, every fact is sourced, and every flag name, default and
spelling agrees with the accepted-flags lists in ../shared/engine_flags (skipped without them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servewise.perfdata.engines import EngineVersion, all_dynamo_releases, all_engines, get_dynamo, get_engine
from servewise.perfdata.errors import UnknownIdError

VERSIONS = [(name, ev) for name, spec in all_engines().items() for ev in spec.versions]
IDS = [f"{name}-{ev.version}" for name, ev in VERSIONS]
WITH_FLAGS = [(n, ev) for n, ev in VERSIONS if ev.flags_reference]
WITH_FLAGS_IDS = [f"{n}-{ev.version}" for n, ev in WITH_FLAGS]


def _flags_file(shared: Path, name: str) -> dict:
    path = shared / "engine_flags" / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())


def _names(flags: dict) -> dict[str, dict]:
    """Every accepted spelling of every flag (name, aliases, negations) -> its entry."""
    out = {}
    for key, e in flags.items():
        for n in [key, *e.get("aliases", []), e.get("bool_negation"), *e.get("negation_aliases", [])]:
            if n:
                out[n] = e
    return out


def _yaml_field(ref: dict, dotted: str) -> dict:
    """A TensorRT-LLM LlmArgs YAML field (``kv_cache_config.dtype``) from the flags file."""
    node = ref["extra_llm_api_options"]["pytorch_backend_fields (TorchLlmArgs = BaseLlmArgs + these)"]
    parts = dotted.split(".")
    entry = node[parts[0]]
    for p in parts[1:]:
        entry = entry["fields"][p]
    return entry


def _lookup(ref: dict, flag: str) -> dict:
    if flag.startswith("-"):
        names = _names(ref["flags"])
        assert flag in names, f"{flag} is not an accepted flag"
        return names[flag]
    return _yaml_field(ref, flag)


def _allowed(entry: dict) -> list[str]:
    return [str(v) for v in (entry.get("choices") or entry.get("known_values") or [])]


def test_every_engine_file_loads():
    assert set(all_engines()) == {"vllm", "sglang", "trtllm"}
    assert get_engine("vllm").version().version == "0.33.0"
    assert get_engine("sglang").version().version == "0.5.23"
    assert get_engine("trtllm").version().version == "1.2.1"


@pytest.mark.parametrize(("name", "ev"), VERSIONS, ids=IDS)
def test_every_fact_is_sourced_and_image_pinned(name, ev: EngineVersion):
    for key in EngineVersion.SOURCED_FACTS:
        assert ev.sources.get(key), f"{name} {ev.version}: no source for {key}"
    assert ev.version in ev.image, f"{ev.image} does not name version {ev.version}"


@pytest.mark.parametrize(("name", "ev"), WITH_FLAGS, ids=WITH_FLAGS_IDS)
def test_named_flags_exist_with_their_defaults(shared_dir, name, ev: EngineVersion):
    ref = _flags_file(shared_dir, ev.flags_reference)
    knob = _lookup(ref, ev.memory_knob.flag)
    assert knob["default"] == ev.memory_knob.default, "memory-knob default differs from the engine's"
    _lookup(ref, ev.block_size_flag)
    _lookup(ref, ev.kv_cache_dtype_flag)
    if ev.quantization.flag:
        _lookup(ref, ev.quantization.flag)
    assert _lookup(ref, "--port")["default"] == ev.port
    host = _lookup(ref, "--host")["default"]
    assert (host or "0.0.0.0") == ev.default_bind, "default bind address differs (None binds all interfaces)"
    if not ev.block_size_flag.startswith("-"):
        assert _lookup(ref, ev.block_size_flag)["default"] == ev.block_size_tokens


@pytest.mark.parametrize(("name", "ev"), WITH_FLAGS, ids=WITH_FLAGS_IDS)
def test_kv_dtype_spellings_are_accepted(shared_dir, name, ev: EngineVersion):
    allowed = _allowed(_lookup(_flags_file(shared_dir, ev.flags_reference), ev.kv_cache_dtype_flag))
    assert allowed, f"{ev.kv_cache_dtype_flag} lists no values"
    for ours, spelling in ev.kv_cache_dtypes.items():
        assert spelling in allowed, f"{name} {ev.version} rejects --kv-cache-dtype {spelling} (for {ours})"


def test_sglang_fp8_kv_is_spelled_e4m3():
    """SGLang rejects plain ``fp8`` (reference/deploy_targets.md, engine_flags README)."""
    for ev in get_engine("sglang").versions:
        assert ev.kv_cache_dtypes["fp8"] == "fp8_e4m3"


@pytest.mark.parametrize(("name", "ev"), WITH_FLAGS, ids=WITH_FLAGS_IDS)
def test_quantization_values_are_accepted(shared_dir, name, ev: EngineVersion):
    ref = _flags_file(shared_dir, ev.flags_reference)
    values = list(ev.quantization.online.values()) + [c.value for c in ev.quantization.checkpoint.values()]
    if not ev.quantization.flag:
        assert all(v is None for v in values), "an engine without a quantization flag cannot take values"
        assert not ev.quantization.online
        return
    allowed = _allowed(_lookup(ref, ev.quantization.flag))
    for v in values:
        assert v in allowed, f"{name} {ev.version} rejects {ev.quantization.flag} {v}"


@pytest.mark.parametrize(("name", "ev"), WITH_FLAGS, ids=WITH_FLAGS_IDS)
def test_disaggregation_backends_exist(shared_dir, name, ev: EngineVersion):
    ref = _flags_file(shared_dir, ev.flags_reference)
    d = ev.disaggregation_transfer
    assert d is not None
    if name == "vllm":
        known = ref["kv_transfer"]["kv_connectors"]
    elif name == "sglang":
        known = _lookup(ref, "--disaggregation-transfer-backend")["choices"]
        assert _lookup(ref, "--disaggregation-transfer-backend")["default"] == d.default_backend
    else:
        known = _yaml_field(ref, "cache_transceiver_config.backend")["choices"]
    for b in d.transfer_backends:
        assert b in known, f"{name} {ev.version}: unknown transfer backend {b}"


def test_awq_kernel_is_pinned_not_forced_slow():
    """vLLM and SGLang read AWQ from quantization_config; an explicit ``--quantization awq`` would force
    the slower kernel (vllm awq_marlin.override_quantization_method), so vLLM gets ``awq_marlin`` pinned
    where Marlin runs (compute capability >= 8.0) and ``awq`` on older GPUs; SGLang is left to detect it."""
    q = get_engine("vllm").version().quantization
    assert q.flag_value("awq", compute_capability="9.0") == "awq_marlin"
    assert q.flag_value("gptq", compute_capability="8.0") == "gptq_marlin"
    assert q.flag_value("awq", compute_capability="7.5") == "awq"
    assert q.flag_value("fp8", compute_capability="9.0") is None   # one kernel path: left to detection
    assert get_engine("sglang").version().quantization.flag_value("awq", compute_capability="9.0") is None
    for name in ("vllm", "sglang"):
        q = get_engine(name).version().quantization
        assert q.flag_value(None, "fp8") == "fp8"     # a 16-bit checkpoint served as fp8 needs the flag
    assert get_engine("trtllm").version().quantization.flag_value(None, "fp8") is None


def test_unknown_version_suggests():
    with pytest.raises(UnknownIdError, match="0.33.0"):
        get_engine("vllm").version("0.33")
    with pytest.raises(UnknownIdError, match=r"'9\.9\.9' \(supported: 0\.33\.0, 0\.31\.0, 0\.11\.0\)"):
        get_engine("vllm").version("9.9.9")


# ----------------------------------------------------------------------------- Dynamo
def test_dynamo_release_loads_and_pins_catalogued_versions():
    releases = all_dynamo_releases()
    assert "1.6.1" in releases
    d = get_dynamo("1.6.1")
    assert get_dynamo() == d
    for name in ("vllm", "sglang"):
        pinned = d.engines[name]
        ev = get_engine(name).version(pinned.version)          # the pinned version is catalogued
        assert ev.dynamo_runtime_image == pinned.image
        assert ev.memory_knob.flag == pinned.memory_knob.flag
        assert ev.block_size_tokens == pinned.block_size_tokens
    for pinned in d.engines.values():
        assert pinned.image.endswith(":" + d.version)
    with pytest.raises(UnknownIdError):
        get_dynamo("9.9.9")


def test_dynamo_facts_match_its_flags_file(shared_dir):
    d = get_dynamo("1.6.1")
    ref = _flags_file(shared_dir, d.flags_reference)
    pins = ref["pinned_engine_versions"]
    assert d.engines["vllm"].version == pins["vllm"]
    assert d.engines["sglang"].version == pins["sglang"]
    assert d.engines["trtllm"].version == pins["tensorrt-llm"]
    assert ref["commands"]["frontend"]["flags"]["--http-port"]["default"] == d.frontend_port
    for eng in d.engines.values():
        names: dict[str, dict] = {}
        for item in eng.flags:                      # engine flags passed through + the command's own
            file, _, command = item.partition("#commands.")
            part = _flags_file(shared_dir, file)
            names.update(_names(part["commands"][command]["flags"] if command else part["flags"]))
        assert eng.memory_knob.flag in names and eng.block_size_flag in names, eng.module
        assert names[eng.memory_knob.flag]["default"] == eng.memory_knob.default
        if names[eng.block_size_flag]["default"] is not None:
            assert names[eng.block_size_flag]["default"] == eng.block_size_tokens


@pytest.mark.parametrize(("name", "ev"), WITH_FLAGS, ids=WITH_FLAGS_IDS)
def test_serving_behaviour_agrees_with_the_engine_defaults(shared_dir, name, ev: EngineVersion):
    """The scheduling facts the performance model reads (``serving``) follow the engine's own defaults:
    SGLang mixes prompts into decode steps only with --enable-mixed-chunk and derives its running-request
    cap from the KV pool unless --max-running-requests is given; TensorRT-LLM's capacity scheduler reserves
    whole requests (GUARANTEED_NO_EVICT) and chunks prompts only when enable_chunked_prefill is set."""
    ref = _flags_file(shared_dir, ev.flags_reference)
    s = ev.serving
    if name == "sglang":
        mixed = _lookup(ref, "--enable-mixed-chunk")["default"]
        assert (s.scheduling == "mixed") == bool(mixed)
        assert (s.default_running_limit == "kv_pool") == (_lookup(ref, "--max-running-requests")["default"] is None)
    elif name == "trtllm":
        policy = _yaml_field(ref, "scheduler_config.capacity_scheduler_policy")["default"]
        assert (s.kv_reservation == "whole_request") == (policy == "GUARANTEED_NO_EVICT")
        assert s.chunked_prefill == _lookup(ref, "--enable_chunked_prefill")["default"]
        assert s.scheduling == "mixed"
    else:
        assert "--max-num-seqs" in _names(ref["flags"]) and s.default_running_limit == "max_num_seqs"
        assert (s.scheduling, s.kv_reservation, s.chunked_prefill) == ("mixed", "incremental", True)


def test_the_performance_model_reads_the_engine_version_it_is_given():
    """A PerfTarget carries the scheduling facts of the version asked for (the default otherwise)."""
    from servewise.estimator.arch import ModelArch
    from servewise.estimator.perf import make_target
    from servewise.estimator.quant import weight_format
    from servewise.perfdata import find_model, get_gpu

    a = ModelArch.from_hf_config(find_model("Qwen/Qwen3-8B").config)
    for name, spec in all_engines().items():
        for ev in spec.versions:
            t = make_target(a, weight_format("bf16"), get_gpu("h100-sxm"), name, engine_version=ev.version)
            assert t.serving == ev.serving
        assert make_target(a, weight_format("bf16"), get_gpu("h100-sxm"), name).serving == spec.version().serving
    with pytest.raises(UnknownIdError):
        make_target(a, weight_format("bf16"), get_gpu("h100-sxm"), "vllm", engine_version="0.0.1")
