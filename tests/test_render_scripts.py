"""Shell scripts: bash -n, shellcheck, and the command lines they really run (stub executables on
PATH record the argv), checked against the pinned version's flag list and the plan."""

from __future__ import annotations

import json
import math
import subprocess

import pytest
import yaml

from servewise.render.context import build_render_context

from .conftest import example_profiles
from .validators.argv import parse_and_check
from .validators.artifacts import examples
from .validators.stubs import run_script
from .validators.tools import run, shellcheck

SCRIPT_ENV = {"HEAD_ADDRESS": "10.0.0.1", "HOST_IP": "10.0.0.2", "NODE_ADDRESSES": "10.0.0.1 10.0.0.2 10.0.0.3"}


def _role(script: str) -> str:
    name = script.rsplit("/", 1)[1]
    for role in ("prefill", "decode", "router", "frontend"):
        if name.startswith(f"serve_{role}"):
            return role
    return "agg"


def test_bash_syntax_and_shellcheck():
    scripts = [p for r in examples().values() for p in r.paths("shell/", ".sh")]
    assert scripts
    for p in scripts:
        proc = subprocess.run(["bash", "-n", str(p)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{p}: {proc.stderr}"
        text = p.read_text()
        assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text, p
    proc = run([shellcheck(), "--severity=style", "--shell=bash", *scripts])
    assert proc.returncode == 0, proc.stdout[-4000:]


def _expected_model(r) -> str:  # type: ignore[no-untyped-def]
    return r.profile.model.id


def _docker_split(argv: list[str]) -> tuple[dict[str, list[str]], str, list[str]]:
    """(options, image, container argv) of a `docker run` command line."""
    assert argv[:2] == ["docker", "run"]
    opts: dict[str, list[str]] = {}
    i = 2
    takes = {"--name", "--gpus", "--ulimit", "-p", "-v", "-e", "--mount"}
    while argv[i].startswith("-"):
        name = argv[i].split("=", 1)[0]
        if name in takes and "=" not in argv[i]:
            opts.setdefault(name, []).append(argv[i + 1])
            i += 2
        else:
            opts.setdefault(name, []).append(argv[i].partition("=")[2])
            i += 1
    image, rest = argv[i], argv[i + 1:]
    if image.startswith("vllm/vllm-openai:"):
        rest = ["vllm", "serve", *rest]
    return opts, image, rest


@pytest.mark.parametrize("stem", [p.stem for p in example_profiles()])
def test_scripts_run_and_pass_the_flag_lists(stem: str, shared_dir):
    r = examples()[stem]
    rc = build_render_context(r.profile)
    seen_ports: dict[tuple[int, str], str] = {}
    for path in r.paths("shell/", ".sh"):
        rel = path.relative_to(r.root).as_posix()
        role = _role(rel)
        insts = rc.role_instances(role) if role in ("agg", "prefill", "decode") else [None]
        for k, inst in enumerate(insts):
            cap = run_script(path, {**SCRIPT_ENV, "INSTANCE": str(k)}, f"{stem}-{path.stem}-{k}")
            argv = cap.argv
            if argv[0] == "docker":
                opts, image, argv = _docker_split(argv)
                assert image == rc.image and not image.endswith(":latest")
                assert opts["--gpus"] == [f'"device={",".join(map(str, inst.gpus))}"']
                assert "HF_TOKEN" in opts["-e"] and not any(e.startswith("HF_TOKEN=") for e in opts["-e"])
                assert opts["--ipc"] == ["host"]
            parsed = parse_and_check(shared_dir, argv, r.versions)
            if inst is None:
                continue
            if "_node" not in rel and cap.argv[0] != "docker":
                assert cap.env.get("CUDA_VISIBLE_DEVICES") == ",".join(map(str, inst.gpus)), rel
            node = inst.first_node + (int(rel.rsplit("_node", 1)[1][:-3]) if "_node" in rel else 0)
            port = parsed.flags.get("--port") or parsed.flags.get("--http-port")
            if port and "docker-run" not in rel:
                key = (node, port[0][0])
                assert key not in seen_ports or seen_ports[key] == rel, f"port clash {key} in {rel}"
                seen_ports[key] = rel
            for var in ("VLLM_NIXL_SIDE_CHANNEL_PORT", "DYN_SYSTEM_PORT"):
                if var in cap.env:
                    key = (node, f"{var}={cap.env[var]}")
                    assert key not in seen_ports, f"{var} clash in {rel}"
                    seen_ports[key] = rel
            assert_modelled_values(r, inst, parsed)


def vllm_fraction(profile, w) -> float:  # type: ignore[no-untyped-def]
    """vLLM's flag is of the whole GPU; a plan sized on free memory (hardware.memory_bytes) gives the same
    bytes: fraction x free / whole, rounded down to 4 decimals."""
    from servewise.perfdata import get_gpu

    free = profile.hardware.memory_bytes
    if free is None or w.gpu is not None or not isinstance(profile.hardware.gpu, str):
        return w.gpu_memory_utilization
    whole = get_gpu(profile.hardware.gpu).memory_bytes
    return w.gpu_memory_utilization if free >= whole else math.floor(w.gpu_memory_utilization * free / whole * 1e4) / 1e4


def assert_modelled_values(r, inst, parsed) -> None:  # type: ignore[no-untyped-def]
    """The flags carry the plan's values (one mapping per engine)."""
    w, m = inst.worker, r.profile.model
    f = {k: v[0][0] if v and v[0] else "" for k, v in parsed.flags.items()}
    if parsed.program in ("vllm serve", "dynamo.vllm"):
        assert int(f["--tensor-parallel-size"]) == w.tp
        assert int(f.get("--pipeline-parallel-size", 1)) == w.pp
        assert int(f.get("--data-parallel-size", 1)) == w.dp
        assert ("--enable-expert-parallel" in parsed.flags) == (w.ep > 1)
        assert int(f["--max-num-seqs"]) == w.max_num_seqs
        assert int(f["--max-num-batched-tokens"]) == w.max_num_batched_tokens
        assert float(f["--gpu-memory-utilization"]) == vllm_fraction(r.profile, w)
        if m.max_model_len:
            assert int(f["--max-model-len"]) == m.max_model_len
        model = parsed.positional[0] if parsed.program == "vllm serve" else f["--model"]
        assert model in (r.profile.model.id, "/models/model")
        if inst.role != "agg":
            cfg = json.loads(f["--kv-transfer-config"])
            assert cfg["kv_connector"] in ("NixlConnector", "MooncakeConnector")
    elif parsed.program in ("sglang.launch_server", "dynamo.sglang"):
        tp = w.tp * w.dp if w.attention_dp else w.tp
        assert int(f["--tp-size"]) == tp and int(f.get("--pp-size", 1)) == w.pp
        dp = int(f.get("--attn-dp-size", f.get("--dp-size", 1)))
        assert dp == w.dp and (("--enable-dp-attention" in parsed.flags) or "--attn-dp-size" in parsed.flags) \
            == (w.attention_dp and r.versions.get("sglang") != "0.5.23" or "--attn-dp-size" in parsed.flags)
        assert int(f.get("--ep-size", 1)) == w.ep
        ranks = w.dp if w.attention_dp else 1  # SGLang divides both by the attention-DP size
        assert int(f["--max-running-requests"]) == w.max_num_seqs * ranks
        assert int(f["--chunked-prefill-size"]) == w.max_num_batched_tokens * ranks
        assert float(f["--mem-fraction-static"]) == w.gpu_memory_utilization
        assert f["--model-path"] in (r.profile.model.id, "/models/model")
        if m.max_model_len:
            assert int(f["--context-length"]) == m.max_model_len
        if inst.role != "agg":
            assert f["--disaggregation-mode"] == inst.role
    elif parsed.program == "trtllm-serve":
        tp = w.tp * w.dp if w.attention_dp else w.tp
        assert int(f["--tensor_parallel_size"]) == tp and int(f["--pipeline_parallel_size"]) == w.pp
        assert int(f["--max_batch_size"]) == w.max_num_seqs
        assert int(f["--max_num_tokens"]) == w.max_num_batched_tokens
        assert float(f["--free_gpu_memory_fraction"]) == w.gpu_memory_utilization
        assert parsed.positional == [r.profile.model.id] or parsed.positional == ["/models/model"]
    elif parsed.program == "dynamo.trtllm":
        assert int(f["--max-batch-size"]) == w.max_num_seqs
        assert int(f["--max-num-tokens"]) == w.max_num_batched_tokens
        assert float(f["--free-gpu-memory-fraction"]) == w.gpu_memory_utilization
    else:
        raise AssertionError(f"no modelled-value check for {parsed.program}")


ACROSS_NODES = [  # disaggregated examples with their prefill and decode pools split over two nodes
    ("llama-3.1-70b-8xh100-disagg-vllm.yaml", 4), ("llama-3.1-70b-8xh100-disagg-sglang.yaml", 4),
    ("llama-3.1-70b-fp8-8xh100-disagg-trtllm.yaml", 4), ("llama-3.1-8b-4xh100-dynamo-disagg-vllm.yaml", 2),
    ("llama-3.1-8b-2xh100-dynamo-disagg-sglang.yaml", 1), ("llama-3.1-8b-4xh100-dynamo-disagg-trtllm.yaml", 2)]


@pytest.mark.parametrize("name, gpus_per_node", ACROSS_NODES)
def test_disaggregated_scripts_across_nodes(name: str, gpus_per_node: int, shared_dir):
    """No example spreads a disaggregated plan over hosts, so each is re-laid on two nodes here: the
    scripts parse, pass shellcheck, run with the node addresses and pass the flag lists; the front door
    reaches each instance on its node, and Dynamo workers find etcd and NATS on node 0."""
    from servewise.profiles import load_profile
    from servewise.profiles.store import profile_from_dict, profile_to_dict

    from .conftest import EXAMPLES
    from .validators.artifacts import render_to

    doc = profile_to_dict(load_profile(EXAMPLES / name))
    doc["hardware"].update(gpus_per_node=gpus_per_node, nodes=2)
    prof = profile_from_dict(doc)
    rc = build_render_context(prof)
    assert {i.first_node for i in rc.instances} == {0, 1}
    r = render_to(prof, f"across-nodes-{name}")
    scripts = r.paths("shell/", ".sh")
    for p in scripts:
        proc = subprocess.run(["bash", "-n", str(p)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{p.name}: {proc.stderr}"
    proc = run([shellcheck(), "--severity=style", "--shell=bash", *scripts])
    assert proc.returncode == 0, proc.stdout[-4000:]
    nodes = {"NODE_ADDRESSES": "10.0.0.1 10.0.0.2", "NODE0_ADDRESS": "10.0.0.1", "HOST_IP": "10.0.0.9"}
    for role in ("prefill", "decode"):
        for k, inst in enumerate(rc.role_instances(role)):
            cap = run_script(r.root / "shell" / f"serve_{role}.sh", {**nodes, "INSTANCE": str(k)},
                             f"across-{name}-{role}-{k}")
            parse_and_check(shared_dir, cap.argv, r.versions)
            assert cap.env.get("CUDA_VISIBLE_DEVICES") == ",".join(map(str, inst.gpus))
            if rc.runtime == "dynamo":
                assert cap.env["ETCD_ENDPOINTS"] == "http://10.0.0.1:2379"
                assert cap.env["NATS_SERVER"] == "nats://10.0.0.1:4222"
            if "VLLM_NIXL_SIDE_CHANNEL_PORT" in cap.env:
                assert cap.env["VLLM_NIXL_SIDE_CHANNEL_HOST"] == "10.0.0.9"
    if rc.runtime == "native":
        front = run_script(r.root / "shell" / "serve_router.sh", {**nodes, "CONFIG_FILE": str(r.root / "d.yaml")},
                           f"across-{name}-router")
        if front.argv[:2] == ["trtllm-serve", "disaggregated"]:
            import yaml

            cfg = yaml.safe_load((r.root / "d.yaml").read_text())
            urls = cfg["context_servers"]["urls"] + cfg["generation_servers"]["urls"]
        else:
            parsed = parse_and_check(shared_dir, front.argv, r.versions)
            urls = [v[0].removeprefix("http://") for f in ("--prefill", "--decode") for v in parsed.flags[f]]
        expected = [f"10.0.0.{i.first_node + 1}:{i.port}" for i in rc.instances]
        assert urls == expected


def test_a_vllm_plan_sized_on_free_memory_gives_vllm_the_same_bytes_of_the_whole_gpu(shared_dir):
    """``--use-free-memory`` sizes the plan on what is free (hardware.memory_bytes); vLLM applies its
    fraction to the whole GPU and refuses to start above what is free, so the flag carries the planned
    bytes as a fraction of the whole: 0.92 of 120 GB free on an H200 (139.80 GiB) is 0.7354."""
    from servewise.estimator import estimate
    from servewise.perfdata import get_gpu
    from servewise.profiles import load_profile
    from servewise.profiles.store import profile_from_dict, profile_to_dict

    from .conftest import EXAMPLES
    from .validators.artifacts import render_to

    doc = profile_to_dict(load_profile(EXAMPLES / "qwen3-32b-8xh200-vllm.yaml"))
    doc["hardware"]["memory_bytes"] = 120_000_000_000
    prof = profile_from_dict(doc)
    w = prof.plan.worker
    r = render_to(prof, "vllm-free-memory")
    cap = run_script(r.root / "shell" / "serve.sh", {"INSTANCE": "0"}, "vllm-free-memory")
    parsed = parse_and_check(shared_dir, cap.argv, r.versions)
    given = float({k: v[0][0] for k, v in parsed.flags.items() if v and v[0]}["--gpu-memory-utilization"])
    whole = get_gpu("h200-sxm").memory_bytes
    assert given == math.floor(w.gpu_memory_utilization * 120e9 / whole * 1e4) / 1e4 < w.gpu_memory_utilization
    budget = estimate(prof).memory.budget_bytes
    assert given * whole <= 120e9 and abs(given * whole - budget) < 1e-4 * whole, "vLLM's budget is the modelled one"
    assert_modelled_values(r, build_render_context(prof).role_instances("agg")[0], parsed)
    values = yaml.safe_load(r.files["helm/vllm-stack-values.yaml"])
    assert values["servingEngineSpec"]["modelSpec"][0]["vllmConfig"]["gpuMemoryUtilization"] == given
    assert f"(given to the engine as {given} of the whole GPU)" in r.files["README.md"]
