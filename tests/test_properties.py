"""Properties over generated inputs (hypothesis, derandomized so CI sees the same examples):
valid profiles round-trip through YAML; the estimator's figures are finite and non-negative for
every request it accepts; rendered artifacts always parse (YAML, JSON) and pass ``bash -n``, and
the served name reaches the engine as one intact argument."""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from servewise.estimator import estimate
from servewise.perfdata import all_gpus
from servewise.perfdata.errors import ServewiseError
from servewise.perfdata.models import all_models
from servewise.profiles import ProfileError, dump_profile, load_profile, parse_profile, profile_from_dict, save_profile
from servewise.profiles.schema import Profile
from servewise.profiles.secrets import token_kind
from servewise.render import render
from servewise.render.errors import RenderError

from .conftest import EXAMPLES
from .test_render_scripts import SCRIPT_ENV
from .validators.stubs import run_script

FEW = settings(max_examples=30, derandomize=True, database=None, deadline=None,
               suppress_health_check=list(HealthCheck))

# Text a user may type into a free-form field: anything printable (any script, emoji, shell and YAML
# metacharacters), nothing invisible, nothing that looks like a credential.
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Zl", "Zp")), min_size=1,
               max_size=24).filter(lambda s: token_kind(s) is None)
DNS = st.from_regex(r"\A[a-z]([-a-z0-9]{0,20}[a-z0-9])?\Z")
HF_ID = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_]{0,10}/[A-Za-z0-9][A-Za-z0-9._]{0,20}\Z")
POSITIVE = st.floats(min_value=1e-3, max_value=1e5, allow_nan=False, allow_infinity=False)
FIGURE = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def workers(draw, gpus: int, role: str | None = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    tp = draw(st.sampled_from([t for t in (1, 2, 4, 8) if t <= gpus]))
    dp = draw(st.sampled_from([d for d in (1, 2) if tp * d <= gpus]))
    return {"tp": tp, "pp": 1, "dp": dp, "ep": draw(st.sampled_from([1, tp])), "attention_dp": dp > 1 and draw(
        st.booleans()), "workers": 1, "max_num_seqs": draw(st.integers(1, 4096)),
        "max_num_batched_tokens": draw(st.integers(1, 10**6)), "gpu_memory_utilization": draw(
            st.floats(min_value=0.05, max_value=1.0)), "gpu": None if role != "prefill" else draw(
            st.none() | st.sampled_from(sorted(all_gpus())))}


@st.composite
def profiles(draw) -> Profile:  # type: ignore[no-untyped-def]
    per_node, nodes = draw(st.sampled_from([1, 2, 4, 8])), draw(st.integers(1, 3))
    modes = draw(st.sampled_from([["agg"], ["disagg"], ["agg", "disagg"], ["disagg", "agg"]]))
    plan = None
    mode = draw(st.sampled_from(["none", "agg", "disagg"]))
    if mode == "agg":
        w = draw(workers(per_node))
        plan = {"mode": "agg", "replicas": draw(st.integers(1, per_node * nodes // (w["tp"] * w["dp"]))), "worker": w}
    elif mode == "disagg" and per_node * nodes >= 2:
        half = per_node * nodes // 2
        plan = {"mode": "disagg", "replicas": 1, "prefill": draw(workers(min(half, per_node), "prefill")),
                "decode": draw(workers(min(half, per_node)))}
    if plan is not None and draw(st.booleans()):
        plan["estimates"] = {"ttft_ms": draw(FIGURE), "ttft_ms_range": sorted([draw(FIGURE), draw(FIGURE)]),
                             "tpot_ms": draw(FIGURE), "kv_cache_tokens": draw(st.integers(0, 10**9)),
                             "provenance": draw(TEXT)}
    role = "agg" if plan is None or plan["mode"] == "agg" else "decode"
    extra = draw(st.lists(TEXT.filter(lambda s: not s.startswith("-")), max_size=3))
    local = draw(st.booleans())
    doc = {
        "schema_version": 1, "generator": {"servewise": draw(TEXT), "perfdata": draw(TEXT)},
        "hardware": {"gpu": draw(st.sampled_from(sorted(all_gpus()))), "gpus_per_node": per_node, "nodes": nodes,
                     "interconnect": draw(st.sampled_from([None, "nvlink", "pcie"])), "source": "manual",
                     "prefill_gpu": None, "memory_bytes": draw(st.none() | st.integers(1, 10**14))},
        "model": {"id": ("/models/" + draw(TEXT)) if local else draw(st.sampled_from(sorted(all_models())) | HF_ID),
                  "revision": draw(st.none() | TEXT), "served_name": draw(st.none() | TEXT),
                  "weights_dtype": draw(st.sampled_from(["auto", "bf16", "fp8", "int4-awq"])),
                  "kv_cache_dtype": draw(st.sampled_from(["auto", "fp8"])),
                  "max_model_len": draw(st.none() | st.integers(1, 10**8)),
                  "architecture": draw(st.none() | st.dictionaries(TEXT, st.integers(0, 10**6) | TEXT, max_size=3))},
        "workload": {"isl": draw(st.integers(1, 10**8)), "osl": draw(st.integers(1, 10**8)), "load": draw(
            st.sampled_from(["concurrency", "request_rate", "max_throughput"]).flatmap(lambda k: st.fixed_dictionaries(
                {k: {"concurrency": st.integers(1, 10**6), "request_rate": POSITIVE,
                     "max_throughput": st.just(True)}[k]})))},
        "sla": {"ttft_ms": draw(st.none() | POSITIVE), "tpot_ms": draw(st.none() | POSITIVE),
                "percentile": draw(st.sampled_from(["mean", "p50", "p90", "p99"]))},
        "engine": {"name": draw(st.sampled_from(["vllm", "sglang", "trtllm"])),
                   "version": draw(st.none() | st.sampled_from(["0.33.0", "0.5.21", "1.2.1rc3"])), "image": None},
        "search": {"modes": modes, "gpu_hour_usd": draw(st.none() | POSITIVE)},
        "plan": plan,
        "deploy": {"name": draw(st.none() | DNS), "namespace": draw(DNS), "service_port": draw(st.integers(1, 65535)),
                   "extra_args": {"agg": extra if role == "agg" else [], "prefill": [],
                                  "decode": extra if role == "decode" else []}},
    }
    try:
        return profile_from_dict(doc)
    except ProfileError:
        reject()


@FEW
@given(profiles())
def test_any_valid_profile_round_trips(profile: Profile):
    text = dump_profile(profile)
    again = parse_profile(text)
    assert again == profile
    assert dump_profile(again) == text, "saving is deterministic"
    with tempfile.TemporaryDirectory() as d:
        save_profile(profile, Path(d) / "p.yaml")
        assert load_profile(Path(d) / "p.yaml") == profile


# ----------------------------------------------------------------------------- estimator
ESTIMATE_MODELS = ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-30B-A3B", "deepseek-ai/DeepSeek-V2-Lite",
                   "google/gemma-2-9b-it", "openai/gpt-oss-20b", "Qwen/Qwen3-32B-AWQ"]
ESTIMATE_GPUS = ["h100-sxm", "h200-sxm", "a100-sxm-80gb", "l40s", "l4", "b200"]


@st.composite
def fixed_configs(draw) -> Profile:  # type: ignore[no-untyped-def]
    base = load_profile(EXAMPLES / "llama-3.1-8b-1xl4-vllm.yaml").model_dump(mode="json")
    isl, osl = draw(st.integers(1, 8000)), draw(st.integers(1, 2000))
    base["hardware"].update(gpu=draw(st.sampled_from(ESTIMATE_GPUS)), gpus_per_node=8, nodes=1)
    base["model"].update(id=draw(st.sampled_from(ESTIMATE_MODELS)), max_model_len=isl + osl + draw(st.integers(0, 4096)),
                         kv_cache_dtype=draw(st.sampled_from(["auto", "fp8"])))
    base["engine"].update(name=draw(st.sampled_from(["vllm", "sglang", "trtllm"])), version=None)
    base["workload"] = {"isl": isl, "osl": osl, "load": draw(
        st.sampled_from([{"concurrency": 1}, {"concurrency": 64}, {"concurrency": 1000}, {"request_rate": 0.5},
                         {"request_rate": 50.0}, {"max_throughput": True}]))}

    def worker(gpus: int) -> dict:  # type: ignore[type-arg]
        return {"tp": draw(st.sampled_from([t for t in (1, 2, 4, 8) if t <= gpus])), "max_num_seqs": draw(
            st.integers(1, 512)), "max_num_batched_tokens": draw(st.integers(512, 32768)),
            "gpu_memory_utilization": draw(st.floats(min_value=0.3, max_value=0.95))}

    if draw(st.booleans()):
        w = worker(8)
        base["plan"] = {"mode": "agg", "replicas": 8 // w["tp"], "worker": w}
    else:
        base["plan"] = {"mode": "disagg", "replicas": 1, "prefill": worker(4), "decode": worker(4)}
    try:
        return profile_from_dict(base)
    except ProfileError:
        reject()


def _numbers(value: Any, path: str = ""):  # type: ignore[no-untyped-def]
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path, value


MEASURES = ("_bytes", "_ms", "_s", "_tokens", "tokens_per_s", "per_s_per_gpu", "per_s_per_user", "_range")


@FEW
@given(fixed_configs())
def test_the_estimator_never_returns_nan_or_negative_figures(profile: Profile):
    try:
        est = estimate(profile)
    except ServewiseError as e:
        event(f"refused with a typed error ({type(e).__name__})")
        return  # a refusal with a typed one-line error is a valid answer
    event("feasible" if est.feasible else "infeasible")
    for path, v in _numbers(est.model_dump(mode="json")):
        assert math.isfinite(v), f"{path} = {v}"
        measure = any(path.endswith(m) or f"{m}[" in path for m in MEASURES)
        if measure and "headroom" not in path:
            assert v >= 0, f"{path} = {v}"


# ----------------------------------------------------------------------------- render
RENDER_EXAMPLES = ["llama-3.1-8b-local-folder-vllm", "qwen3-32b-4xh100-sglang", "llama-3.1-70b-8xh100-disagg-vllm",
                   "llama-3.1-8b-2xh100-dynamo-disagg-sglang", "llama-3.1-405b-2x8xh100-multinode-vllm",
                   "qwen3-30b-a3b-8xh100-moe-ep-vllm"]


@st.composite
def renderable(draw) -> Profile:  # type: ignore[no-untyped-def]
    doc = load_profile(EXAMPLES / f"{draw(st.sampled_from(RENDER_EXAMPLES))}.yaml").model_dump(mode="json")
    doc["model"]["served_name"] = draw(TEXT.filter(lambda s: not s.startswith("-") and "{{" not in s))
    if doc["model"]["id"].startswith("/"):
        doc["model"]["id"] = "/srv/" + draw(TEXT.filter(lambda s: "{{" not in s))
    doc["deploy"].update(name=draw(st.none() | DNS), namespace=draw(DNS))
    try:
        return profile_from_dict(doc)
    except ProfileError:
        reject()


def _bash_n(root: Path, rel: str) -> None:
    proc = subprocess.run(["bash", "-n", str(root / rel)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"{rel}: {proc.stderr}"


@FEW
@given(renderable())
def test_rendered_artifacts_always_parse_and_pass_bash_n(profile: Profile):
    try:
        files = render(profile)
    except RenderError:
        event("refused with a typed error")
        return
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        for rel, text in files.items():
            if rel.endswith((".yaml", ".yml")):
                list(yaml.safe_load_all(text))
            elif rel.endswith(".json"):
                json.loads(text)
            elif rel.endswith(".sh"):
                _bash_n(root, rel)
        serve = next(rel for rel in sorted(files) if rel.startswith("shell/serve") and rel.endswith(".sh"))
        argv = run_script(root / serve, {**SCRIPT_ENV, "INSTANCE": "0"}, "property").argv
        assert profile.model.served_name in argv, (serve, argv)
