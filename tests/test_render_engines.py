"""Engine-specific artifacts and refusals: TensorRT-LLM YAML (project schema + the LlmArgs keys of the
reference list), the disaggregated-server configuration, SGLang's per-version attention-DP spelling,
and engine features the pinned version lacks, refused at render with a clear message."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml

from servewise.profiles import load_profile
from servewise.profiles.store import profile_from_dict, profile_to_dict
from servewise.render import render
from servewise.render.errors import RenderError

from .conftest import EXAMPLES
from .validators.artifacts import examples, render_to
from .validators.flag_lists import reference
from .validators.owned_schemas import TRTLLM_DISAGG, TRTLLM_OPTIONS
from .validators.stubs import run_script


def _trtllm_files() -> list[tuple[Any, str, str]]:
    """(rendered, where, text) of every TensorRT-LLM options file, loose or inside a ConfigMap."""
    out = []
    for r in examples().values():
        if r.profile.engine.name != "trtllm":
            continue
        for rel, text in r.files.items():
            name = rel.rsplit("/", 1)[-1]
            if name.startswith("trtllm-") and name != "trtllm-disagg.yaml":
                out.append((r, rel, text))
            elif name == "engine-configmap.yaml":
                for key, value in yaml.safe_load(text)["data"].items():
                    if key != "trtllm-disagg.yaml":
                        out.append((r, f"{rel}:{key}", value))
    return out


def _check_keys(doc: dict[str, Any], spec: dict[str, Any], where: str) -> None:
    for key, value in doc.items():
        assert key in spec, f"{where}: {key} is not an LLM API option (extra='forbid' rejects it)"
        entry = spec[key]
        if entry.get("choices") is not None and not isinstance(value, dict):
            assert value in entry["choices"], f"{where}: {key}={value!r}"
        if isinstance(value, dict):
            _check_keys(value, entry.get("fields", {}), f"{where}.{key}")


def test_trtllm_options_files(shared_dir):
    files = _trtllm_files()
    assert len(files) >= 8
    fields = reference(shared_dir, "trtllm-1.2.1.json")["extra_llm_api_options"][
        "pytorch_backend_fields (TorchLlmArgs = BaseLlmArgs + these)"]
    for r, where, text in files:
        doc = yaml.safe_load(text)
        jsonschema.validate(doc, TRTLLM_OPTIONS)
        _check_keys(doc, fields, where)
        role = where.rsplit("trtllm-", 1)[1].removesuffix(".yaml")
        plan = r.profile.plan
        w = plan.worker if role == "agg" else getattr(plan, role)
        sizes = doc.get("cuda_graph_config", {}).get("batch_sizes")
        if sizes is not None:
            assert sizes == sorted(set(sizes)) and max(sizes) <= w.max_num_seqs and w.max_num_seqs in sizes
        assert ("cache_transceiver_config" in doc) == (role != "agg")
        assert doc.get("disable_overlap_scheduler", False) == (role == "prefill")
        assert doc.get("enable_attention_dp", False) == w.attention_dp
        assert doc["kv_cache_config"].get("dtype", "auto") == (
            "fp8" if r.profile.model.kv_cache_dtype == "fp8" else "auto")


def _disagg_docs(r) -> list[tuple[str, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    out = []
    cm = r.files.get("k8s/engine-configmap.yaml")
    if cm and "trtllm-disagg.yaml" in yaml.safe_load(cm)["data"]:
        out.append(("k8s", yaml.safe_load(yaml.safe_load(cm)["data"]["trtllm-disagg.yaml"])))
    compose = yaml.safe_load(r.files["compose/docker-compose.yaml"])
    if "configs" in compose:
        out.append(("compose", yaml.safe_load(compose["configs"]["trtllm-disagg"]["content"])))
    return out


def test_trtllm_disaggregated_server_configuration(shared_dir):
    r = examples()["llama-3.1-70b-fp8-8xh100-disagg-trtllm"]
    cap = run_script(r.root / "shell" / "serve_router.sh",
                     {"CONFIG_FILE": str(r.root.parent / "trtllm-disagg-from-script.yaml")}, "trtllm-router")
    assert cap.argv[:3] == ["trtllm-serve", "disaggregated", "-c"]
    docs = [("shell", yaml.safe_load(open(cap.argv[3]).read()))] + _disagg_docs(r)
    assert [w for w, _ in docs] == ["shell", "k8s", "compose"]
    top = reference(shared_dir, "trtllm-1.2.1.json")["disaggregated_config"]
    for where, doc in docs:
        jsonschema.validate(doc, TRTLLM_DISAGG)
        for section in ("context_servers", "generation_servers"):
            s = doc[section]
            assert len(s["urls"]) == s["num_instances"], where
            assert set(s) <= set(top["server_section"]) | {"urls"}
        assert set(doc) - {"backend"} <= set(top["top_level"])
    k8s = dict(docs)["k8s"]
    plan = r.profile.plan
    n_prefill, n_decode = plan.prefill.workers, plan.decode.workers
    assert n_prefill > 1, "the example shows several context servers behind one disaggregated server"
    assert k8s["context_servers"]["urls"] == [f"llama-3-1-70b-instruct-fp8-prefill-{i}:{8100 + i}"
                                              for i in range(n_prefill)]
    assert k8s["generation_servers"]["urls"] == [f"llama-3-1-70b-instruct-fp8-decode-{i}:{8100 + n_prefill + i}"
                                                 for i in range(n_decode)]
    services = {d["metadata"]["name"] for rel in ("k8s/prefill.yaml", "k8s/decode.yaml")
                for d in yaml.safe_load_all(r.files[rel]) if d["kind"] == "Service"}
    for url in k8s["context_servers"]["urls"] + k8s["generation_servers"]["urls"]:
        assert url.split(":")[0] in services


ATTENTION_DP = {"plan__worker__tp": 1, "plan__worker__dp": 4, "plan__worker__ep": 4, "plan__worker__attention_dp": True,
                "plan__worker__max_num_seqs": 32}


def test_sglang_attention_dp_is_spelled_per_version(shared_dir):
    """SGLang attention DP: ``--enable-dp-attention --dp-size`` up to 0.5.21 (Dynamo 1.6.1), ``--attn-dp-size``
    from 0.5.23. No example pins it (the search does not choose it for their workloads), so the Dynamo SGLang
    example's worker is made attention-DP here; both command lines pass the flag lists and carry the plan."""
    from servewise.render.context import build_render_context

    from .test_render_scripts import assert_modelled_values
    from .validators.argv import parse_and_check

    for version, runtime, script in (("0.5.21", "dynamo", "serve_worker.sh"), ("0.5.23", "native", "serve.sh")):
        prof = _mutated("qwen3-30b-a3b-4xh100-moe-dynamo-sglang.yaml", engine__version=version,
                        deploy__runtime=runtime, **ATTENTION_DP)
        r = render_to(prof, f"sglang-attention-dp-{version}")
        text = r.files[f"shell/{script}"]
        if version == "0.5.21":
            assert "--enable-dp-attention" in text and "--attn-dp-size" not in text
        else:
            assert "--attn-dp-size 4" in text and "--enable-dp-attention" not in text and "--tp-size 4" in text
        # SGLang divides both limits by the DP size: 4 ranks of 32 sequences are asked for as 128
        assert "--max-running-requests 128" in text, text
        cap = run_script(r.root / "shell" / script, {"INSTANCE": "0"}, f"sglang-attention-dp-{version}")
        parsed = parse_and_check(shared_dir, cap.argv, r.versions)
        inst = build_render_context(prof).role_instances("agg")[0]
        assert_modelled_values(r, inst, parsed)


def _mutated(name: str, **changes: Any):  # type: ignore[no-untyped-def]
    doc = profile_to_dict(load_profile(EXAMPLES / name))
    for dotted, value in changes.items():
        node = doc
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    return profile_from_dict(doc)


@pytest.mark.parametrize("name, changes, message", [
    ("qwen3-32b-4xh100-sglang.yaml", {"model__kv_cache_dtype": "fp16"},
     "model.kv_cache_dtype: SGLang 0.5.23 has no fp16 KV cache"),
    ("llama-3.1-8b-fp8-2xh100-trtllm.yaml", {"model__kv_cache_dtype": "bf16"},
     "model.kv_cache_dtype: TensorRT-LLM 1.2.1 has no bf16 KV cache"),
    ("llama-3.1-8b-4xh100-dynamo-disagg-trtllm.yaml", {"model__weights_dtype": "fp8"},
     "cannot quantize a bf16 checkpoint to fp8 at load time"),
    ("llama-3.1-8b-fp8-2xh100-trtllm.yaml", {"plan__worker__dp": 2, "plan__replicas": 1},
     "TensorRT-LLM has no data-parallel engine replicas"),
    ("llama-3.1-405b-2x8xh100-multinode-sglang.yaml", {"engine__name": "trtllm", "engine__version": "1.2.1"},
     "spanning nodes needs an MPI launcher"),
    ("qwen3-32b-8xh200-dynamo-agg-vllm.yaml", {"engine__version": "0.33.0"},
     "Dynamo 1.6.1 runs vllm 0.31.0, but the profile pins 0.33.0"),
    ("qwen3-30b-a3b-4xh100-moe-dynamo-sglang.yaml", {"engine__version": "0.5.23"},
     "Dynamo 1.6.1 runs sglang 0.5.21"),
    ("qwen3-30b-a3b-8xh100-moe-ep-vllm.yaml", {"plan__worker__ep": 2},
     "vLLM's expert-parallel size is tp x dp = 8, not 2"),
    ("llama-3.1-8b-1xl4-vllm.yaml", {"engine__version": "0.11.0"},
     "engine.version: vLLM 0.11.0 has no accepted-flags list in this servewise version"),
])
def test_features_the_pinned_version_lacks_are_refused(name: str, changes: dict[str, Any], message: str):
    with pytest.raises(RenderError) as e:
        render(_mutated(name, **changes))
    assert message in str(e.value)


def test_refusals_reach_the_cli_as_one_line(tmp_path):
    from .conftest import run_cli

    r = run_cli("render", "--profile", str(EXAMPLES / "qwen3-32b-4xh100-sglang.yaml"), "--out", str(tmp_path / "o"),
                "--set", "model.kv_cache_dtype=fp16")
    assert r.code == 2 and r.err.count("\n") == 1 and "fp16 KV cache" in r.err
    assert not (tmp_path / "o").exists()


def test_dynamo_runtime_uses_the_pinned_images_and_infrastructure():
    for r in examples().values():
        if r.profile.deploy.runtime != "dynamo":
            continue
        compose = yaml.safe_load(r.files["compose/docker-compose.yaml"])
        assert {"etcd", "nats", "frontend"} <= set(compose["services"])
        assert all(s["image"].endswith(":1.6.1") for n, s in compose["services"].items() if n not in ("etcd", "nats"))
        assert "k8s/dynamographdeployment.yaml" in r.files and not any(f.startswith("helm/") for f in r.files)


def test_trtllm_options_reach_the_container(tmp_path):
    r = render_to(load_profile(EXAMPLES / "llama-3.1-8b-fp8-2xh100-trtllm.yaml"), "trtllm-agg")
    cap = run_script(r.root / "shell" / "serve.sh", {}, "trtllm-agg-serve")
    cfg = cap.argv[cap.argv.index("--extra_llm_api_options") + 1]
    assert cfg == str(r.root / "shell" / "trtllm-agg.yaml") and yaml.safe_load(open(cfg).read())


def test_trtllm_serve_cannot_rename_the_model():
    with pytest.raises(RenderError, match="has no --served_model_name"):
        render(_mutated("llama-3.1-8b-fp8-2xh100-trtllm.yaml", model__served_name="llama"))


@pytest.mark.parametrize("engine, version", [("sglang", "0.5.23"), ("trtllm", "1.2.1")])
def test_hostile_strings_reach_every_engine_as_one_argv_element(engine: str, version: str, shared_dir):
    from .test_render_security import HOSTILE_DIR, HOSTILE_NAME, hostile_profile
    from .validators.argv import parse_and_check

    doc = profile_to_dict(hostile_profile())
    doc["engine"] = {"name": engine, "version": version, "image": None}
    doc["model"]["revision"] = None
    if engine == "trtllm":
        doc["model"]["served_name"] = None
    r = render_to(profile_from_dict(doc), f"hostile-{engine}")
    cap = run_script(r.root / "shell" / "serve.sh", {"INSTANCE": "1"}, f"hostile-{engine}")
    parsed = parse_and_check(shared_dir, cap.argv, {engine: version})
    if engine == "sglang":
        assert parsed.flags["--model-path"] == [[HOSTILE_DIR]]
        assert parsed.flags["--served-model-name"] == [[HOSTILE_NAME]]
    else:
        assert parsed.positional == [HOSTILE_DIR]
        assert yaml.safe_load(open(cap.argv[cap.argv.index("--extra_llm_api_options") + 1]).read())


def test_vllm_data_parallel_across_nodes():
    """DP ranks spread over two nodes: --data-parallel-size-local and start ranks; three nodes in one
    Kubernetes worker template cannot express per-node start ranks and are refused there."""
    doc = profile_to_dict(load_profile(EXAMPLES / "qwen3-30b-a3b-8xh100-moe-ep-vllm.yaml"))
    doc["hardware"].update(gpus_per_node=4, nodes=2)
    doc["plan"]["worker"].update(tp=1, dp=8, ep=8)
    files = render(profile_from_dict(doc), ["shell", "k8s"])
    node1 = files["shell/serve_node1.sh"]
    for flag in ("--data-parallel-size 8", "--data-parallel-size-local 4", "--data-parallel-start-rank 4",
                 '--data-parallel-address "${HEAD_ADDRESS}"', "--headless"):
        assert flag in node1, flag
    lws = files["k8s/leaderworkerset.yaml"]
    assert "--data-parallel-start-rank\n" in lws and "$(LWS_LEADER_ADDRESS)" in lws
    # one TP group per whole node (tp = GPUs per node), DP across the nodes: a rank per node
    doc["hardware"].update(gpus_per_node=8, nodes=2)
    doc["plan"]["worker"].update(tp=8, dp=2, ep=16)
    node1 = render(profile_from_dict(doc), ["shell"])["shell/serve_node1.sh"]
    for flag in ("--tensor-parallel-size 8", "--data-parallel-size 2", "--data-parallel-size-local 1",
                 "--data-parallel-start-rank 1", "--headless"):
        assert flag in node1, flag
    assert "--nnodes" not in node1
    doc["hardware"].update(gpus_per_node=4, nodes=3)
    doc["plan"]["worker"].update(tp=1, dp=12, ep=12)
    doc["model"]["id"] = "deepseek-ai/DeepSeek-V2-Lite"
    doc["model"]["max_model_len"] = 16384
    with pytest.raises(RenderError, match="more than two nodes"):
        render(profile_from_dict(doc), ["k8s"])
