"""Shell scripts: bash -n, shellcheck, and the command lines they really run (stub executables on
PATH record the argv), checked against the pinned version's flag list and the plan."""

from __future__ import annotations

import json
import subprocess

import pytest

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
        assert float(f["--gpu-memory-utilization"]) == w.gpu_memory_utilization
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
        assert int(f["--max-running-requests"]) == w.max_num_seqs
        assert int(f["--chunked-prefill-size"]) == w.max_num_batched_tokens
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
