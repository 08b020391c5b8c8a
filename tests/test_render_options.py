"""Profile options at render time: extra engine arguments, --set overrides, the KV transfer
backend, estimates in the README, and the output directory replaced whole."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from servewise.profiles import load_profile
from servewise.profiles.store import profile_from_dict, profile_to_dict
from servewise.render import render
from servewise.render.errors import RenderError

from .conftest import EXAMPLES, run_cli
from .validators.argv import parse_and_check
from .validators.artifacts import render_to
from .validators.stubs import run_script


def _doc(name: str) -> dict:  # type: ignore[type-arg]
    return profile_to_dict(load_profile(EXAMPLES / name))


def test_extra_args_reach_every_target_and_are_checked(shared_dir):
    doc = _doc("llama-3.1-70b-8xh100-disagg-vllm.yaml")
    doc["deploy"]["extra_args"]["prefill"] = ["--enforce-eager", "--seed", "7"]
    doc["deploy"]["extra_args"]["decode"] = ["--block-size=32"]
    r = render_to(profile_from_dict(doc), "extra-args")
    cap = run_script(r.root / "shell" / "serve_prefill.sh", {"INSTANCE": "1"}, "extra-prefill")
    parsed = parse_and_check(shared_dir, cap.argv, {"vllm": "0.33.0"})
    assert "--enforce-eager" in parsed.flags and parsed.flags["--seed"] == [["7"]]
    cap = run_script(r.root / "shell" / "serve_decode.sh", {}, "extra-decode")
    assert "--block-size=32" in cap.argv and "--enforce-eager" not in cap.argv
    decode = next(d for d in yaml.safe_load_all((r.root / "k8s" / "decode.yaml").read_text())
                  if d["kind"] == "Deployment")
    assert decode["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "--block-size=32"
    assert "--enforce-eager" in r.files["compose/docker-compose.yaml"]


@pytest.mark.parametrize("extra, message", [
    (["--max-num-seqs", "4"],
     "deploy.extra_args.agg: --max-num-seqs conflicts with --max-num-seqs, which servewise sets"),
    (["-tp", "2"], "conflicts with --tensor-parallel-size"),
    (["--gpu_memory_utilization=0.5"], "conflicts with --gpu-memory-utilization"),
    (["--swap-space", "4"], "deploy.extra_args.agg: vLLM 0.33.0 has no flag --swap-space"),
    (["--max-long-partial-prefills", "1"], "has no flag"),
    (["--seed", "seven"], "--seed takes an integer"),
    (["--kv-cache-dtype", "fp8"], "conflicts with"),
])
def test_extra_args_that_conflict_or_do_not_exist_are_refused(extra, message):
    doc = _doc("llama-3.1-70b-4xh100-tp4-vllm.yaml")
    doc["model"]["kv_cache_dtype"] = "fp8"
    doc["deploy"]["extra_args"]["agg"] = extra
    with pytest.raises(RenderError, match=message.replace("[", r"\[")):
        render(profile_from_dict(doc))


@pytest.mark.parametrize("name, role, extra", [
    # flags the plan governs but servewise leaves at the engine default for this plan (dp 1, pp 1, ep 1,
    # auto KV dtype, no role): set behind the plan's back they would change the GPUs or memory it modelled
    ("llama-3.1-70b-4xh100-tp4-vllm.yaml", "agg", ["--data-parallel-size", "2"]),
    ("llama-3.1-70b-4xh100-tp4-vllm.yaml", "agg", ["-pp", "2"]),
    ("llama-3.1-70b-4xh100-tp4-vllm.yaml", "agg", ["--kv_cache_dtype=fp8"]),
    ("llama-3.1-70b-4xh100-tp4-vllm.yaml", "agg", ["--headless"]),
    ("llama-3.1-70b-4xh100-tp4-vllm.yaml", "agg", ["--model", "other/model"]),
    ("llama-3.1-70b-8xh100-disagg-vllm.yaml", "decode", ["--enable-expert-parallel"]),
    ("qwen3-32b-4xh100-sglang.yaml", "agg", ["--dp-size", "2"]),
    ("qwen3-32b-4xh100-sglang.yaml", "agg", ["--attention-data-parallel-size", "2"]),
    ("llama-3.1-8b-fp8-2xh100-trtllm.yaml", "agg", ["--ep_size", "2"]),
    ("llama-3.1-8b-fp8-2xh100-trtllm.yaml", "agg", ["--context_parallel_size", "2"]),
    ("qwen3-32b-8xh200-dynamo-agg-vllm.yaml", "agg", ["--disaggregation-mode", "prefill"]),
    ("qwen3-30b-a3b-4xh100-moe-dynamo-sglang.yaml", "agg", ["--disaggregation-mode", "decode"]),
    ("qwen3-30b-a3b-8xh100-moe-ep-dynamo-trtllm.yaml", "agg", ["--disaggregation-mode", "prefill"]),
])
def test_extra_args_cannot_set_what_the_plan_leaves_at_the_default(name: str, role: str, extra: list[str]):
    doc = _doc(name)
    doc["deploy"]["extra_args"][role] = extra
    with pytest.raises(RenderError, match=f"deploy.extra_args.{role}: {extra[0].split('=')[0]} would override"):
        render(profile_from_dict(doc))
    doc["deploy"]["extra_args"][role] = []
    render(profile_from_dict(doc))


def test_extra_args_that_tune_the_engine_are_kept():
    for name, extra in (("llama-3.1-70b-4xh100-tp4-vllm.yaml", ["--enforce-eager", "--block-size", "32"]),
                        ("qwen3-32b-4xh100-sglang.yaml", ["--page-size", "16", "--disable-radix-cache"]),
                        ("llama-3.1-8b-fp8-2xh100-trtllm.yaml", ["--log_level", "info"]),
                        ("qwen3-30b-a3b-8xh100-moe-ep-dynamo-trtllm.yaml", ["--publish-kv-events"])):
        doc = _doc(name)
        doc["deploy"]["extra_args"]["agg"] = extra
        script = render(profile_from_dict(doc), ["shell"])["shell/serve_worker.sh" if "dynamo" in name else
                                                           "shell/serve.sh"]
        assert " ".join(extra) in " ".join(script.replace("\\\n", " ").split())


def test_set_overrides_on_render_and_replay(tmp_path):
    prof = str(EXAMPLES / "llama-3.1-70b-4xh100-tp4-vllm.yaml")
    sets = ["--set", "deploy.namespace=prod", "--set", "engine.image=vllm/vllm-openai:v0.33.1",
            "--set", "deploy.extra_args.agg=[--enforce-eager]"]
    r = run_cli("render", "--profile", prof, "--out", str(tmp_path / "a"), *sets)
    assert r.code == 0, r.err
    r2 = run_cli("--profile", prof, "--out", str(tmp_path / "b"), *sets)
    assert r2.code == 0, r2.err
    for out in ("a", "b"):
        dep = next(d for d in yaml.safe_load_all((tmp_path / out / "k8s" / "deployment.yaml").read_text())
                   if d["kind"] == "Deployment")
        assert dep["metadata"]["namespace"] == "prod"
        c = dep["spec"]["template"]["spec"]["containers"][0]
        assert c["image"] == "vllm/vllm-openai:v0.33.1" and "--enforce-eager" in c["args"]
    assert (tmp_path / "a" / "k8s" / "deployment.yaml").read_bytes() == \
        (tmp_path / "b" / "k8s" / "deployment.yaml").read_bytes()
    bad = run_cli("render", "--profile", prof, "--out", str(tmp_path / "c"), "--set", "engine.image=vllm:latest")
    assert bad.code == 2 and "engine.image" in bad.err


@pytest.mark.parametrize(("setting", "field", "value"), [
    ("model.revision=1234567", ("model", "revision"), "1234567"),
    ("engine.version=0.31", ("engine", "version"), "0.31"),
    ("deploy.namespace=true", ("deploy", "namespace"), "true"),
    ("workload.isl=3000", ("workload", "isl"), 3000),
    ("sla.tpot_ms=70.5", ("sla", "tpot_ms"), 70.5),
])
def test_set_keeps_text_fields_text(setting: str, field: tuple[str, str], value: object):
    """``--set`` reads a value as YAML, but a field typed as text only (a revision, a version, a name)
    keeps what was typed: ``engine.version=0.31`` is the version "0.31", not the number 0.31."""
    from servewise.profiles.overrides import apply_overrides

    prof = load_profile(EXAMPLES / "llama-3.1-70b-4xh100-tp4-vllm.yaml")
    got = getattr(getattr(apply_overrides(prof, [setting]), field[0]), field[1])
    assert got == value and type(got) is type(value)


def test_output_directory_is_replaced_whole(tmp_path):
    prof = str(EXAMPLES / "llama-3.1-70b-8xh100-disagg-vllm.yaml")
    out = tmp_path / "out"
    assert run_cli("render", "--profile", prof, "--out", str(out)).code == 0
    (out / "shell" / "stale.sh").write_text("old\n")
    r = run_cli("render", "--profile", prof, "--out", str(out))
    assert r.code == 2 and "--force" in r.err and (out / "shell" / "stale.sh").exists()
    assert run_cli("render", "--profile", prof, "--out", str(out), "--force", "--target", "shell").code == 0
    assert not (out / "shell" / "stale.sh").exists() and not (out / "k8s").exists()
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "plan.json", "shell"]


def test_mooncake_transfer_backend(shared_dir):
    doc = _doc("llama-3.1-70b-8xh100-disagg-vllm.yaml")
    doc["deploy"]["kv_transfer"] = "mooncake"
    r = render_to(profile_from_dict(doc), "mooncake")
    cap = run_script(r.root / "shell" / "serve_prefill.sh", {"INSTANCE": "1"}, "mooncake-prefill")
    parsed = parse_and_check(shared_dir, cap.argv, {"vllm": "0.33.0"})
    assert json.loads(parsed.flags["--kv-transfer-config"][0][0]) == {"kv_connector": "MooncakeConnector",
                                                                       "kv_role": "kv_producer"}
    assert cap.env["VLLM_MOONCAKE_BOOTSTRAP_PORT"] == "8999"
    router = run_script(r.root / "shell" / "serve_router.sh", {}, "mooncake-router")
    parsed = parse_and_check(shared_dir, router.argv, {})
    assert parsed.flags["--prefill"][1] == ["http://127.0.0.1:8101", "8999"]
    assert parsed.flags["--kv-connector"] == [["mooncake"]]


def test_readme_shows_estimates_with_bands():
    doc = _doc("qwen3-32b-8xh200-vllm.yaml")
    doc["plan"]["estimates"] = {"ttft_ms": 640.0, "ttft_ms_range": [520.0, 790.0], "tpot_ms": 24.5,
                                "tpot_ms_range": [21.0, 29.0], "output_tokens_per_s_per_gpu": 410.0,
                                "output_tokens_per_s_per_gpu_range": [350.0, 470.0], "provenance": "fitted model"}
    readme = render(profile_from_dict(doc), ["shell"])["README.md"]
    assert "ttft ms: 640.0 ms (band 520.0 to 790.0)" in readme
    assert "tpot ms: 24.50 ms (band 21.00 to 29.00)" in readme
    assert "provenance: fitted model" in readme


@pytest.mark.parametrize("name, charts", [("qwen3-32b-8xh200-vllm.yaml", 2), ("llama-3.1-70b-8xh100-disagg-vllm.yaml", 1),
                                           ("qwen3-32b-4xh100-sglang.yaml", 1)])
def test_readme_asks_to_pick_one_chart_only_when_there_are_two(name: str, charts: int):
    files = render(load_profile(EXAMPLES / name), ["helm"])
    assert sum(f.endswith("-values.yaml") for f in files) == charts
    assert ("Use one of the charts, not both." in files["README.md"]) == (charts > 1)


def test_readme_without_pinned_estimates_points_at_estimate_not_only_at_a_replan():
    """`plan --save` re-plans and may replace a hand-written configuration; `estimate --profile` gives
    this configuration's figures, so the README names it (and what the re-plan does)."""
    doc = _doc("qwen3-32b-8xh200-vllm.yaml")
    doc["plan"]["estimates"] = None
    readme = " ".join(render(profile_from_dict(doc), ["shell"])["README.md"].split())
    assert "`servewise estimate --profile <profile>` shows them for this configuration" in readme
    assert "re-plans (it may choose another configuration)" in readme


def test_served_name_that_looks_like_a_flag_is_refused():
    doc = _doc("qwen3-32b-8xh200-vllm.yaml")
    doc["model"]["served_name"] = "--port"
    with pytest.raises(RenderError, match="must not start with '-'"):
        render(profile_from_dict(doc))


@pytest.mark.parametrize("name, port, clash", [
    ("llama-3.1-70b-8xh100-disagg-vllm.yaml", 5500, "prefill-0's --port and prefill-0's VLLM_NIXL_SIDE_CHANNEL_PORT"),
    ("llama-3.1-70b-8xh100-disagg-sglang.yaml", 8898,
     "prefill-0's --port and prefill-0's --disaggregation-bootstrap-port"),
    ("qwen3-32b-8xh200-dynamo-agg-vllm.yaml", 9090, "the frontend's --http-port and worker-0's DYN_SYSTEM_PORT"),
    ("llama-3.1-8b-4xh100-dynamo-disagg-vllm.yaml", 2379, "the frontend's --http-port and etcd"),
    ("llama-3.1-405b-2x8xh100-multinode-sglang.yaml", 20000, "worker-0's --port and worker-0's --dist-init-addr"),
])
def test_a_service_port_that_collides_on_one_host_is_refused(name: str, port: int, clash: str):
    """Shell scripts and compose services share each host's network; Kubernetes pods do not."""
    doc = _doc(name)
    doc["deploy"]["service_port"] = port
    with pytest.raises(RenderError, match=f"deploy.service_port: port .* would be both {clash}") as e:
        render(profile_from_dict(doc))
    assert str(e.value).count("\n") == 0
    assert render(profile_from_dict(doc), ["k8s"])
    doc["deploy"]["service_port"] = port + 1000
    render(profile_from_dict(doc))


@pytest.mark.parametrize("name", ["qwen3-32b-8xh200-vllm.yaml", "llama-3.1-70b-8xh100-disagg-sglang.yaml"])
def test_a_service_port_without_room_for_every_instance_is_refused(name: str):
    """Instances listen on consecutive ports from the service port (+100 when disaggregated); none may
    pass 65535, which scripts, compose and Kubernetes would all reject."""
    doc = _doc(name)
    prof = profile_from_dict(doc)
    p = prof.plan
    count = sum(p.replicas * w.workers for w in ([p.worker] if p.mode == "agg" else [p.prefill, p.decode]))
    assert count > 1
    top = 65535 - (count - 1) - (0 if p.mode == "agg" else 100)
    doc["deploy"]["service_port"] = top + 1
    with pytest.raises(RenderError, match=f"deploy.service_port: .* use at most {top}$"):
        render(profile_from_dict(doc))
    doc["deploy"]["service_port"] = top
    files = render(profile_from_dict(doc))
    ports = [int(x) for text in files.values() for x in re.findall(r"\b(6[0-9]{4})\b", text)]
    assert ports and max(ports) == 65535


def test_a_model_cache_smaller_than_the_checkpoint_is_refused_for_the_pvc_targets(tmp_path):
    """The PVC must hold the checkpoint as downloaded (405B in bf16: 756 GiB); shell and compose use the
    host's cache and are not concerned."""
    prof = str(EXAMPLES / "llama-3.1-405b-2x8xh100-multinode-vllm.yaml")
    small = ["--set", "deploy.model_cache_size=700Gi"]
    r = run_cli("render", "--profile", prof, "--out", str(tmp_path / "a"), *small, "--target", "k8s")
    assert r.code == 2 and "deploy.model_cache_size: 700Gi cannot hold the checkpoint" in r.err, r.err
    assert "at least 756Gi" in r.err and not (tmp_path / "a").exists()
    assert run_cli("render", "--profile", prof, "--out", str(tmp_path / "b"), *small, "--target", "shell").code == 0
    assert run_cli("render", "--profile", prof, "--out", str(tmp_path / "c"), "--set",
                   "deploy.model_cache_size=756Gi", "--target", "k8s").code == 0


def test_a_bf16_checkpoint_quantized_at_load_is_sized_as_downloaded():
    from servewise.estimator.resolve import checkpoint_gib

    prof = load_profile(EXAMPLES / "llama-3.1-8b-1xl4-vllm.yaml")
    assert prof.model.weights_dtype == "fp8"
    assert checkpoint_gib(prof.model) == 15, "the bf16 download, not the fp8 weights served"


def test_a_heterogeneous_prefill_pool_is_named_with_its_own_gpu(tmp_path):
    """With hardware.prefill_gpu the prefill scripts say which GPU they run on, and the README says where
    to place them (the scripts number GPUs per host)."""
    p = tmp_path / "p.yaml"
    assert run_cli("plan", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm", "--gpus", "4",
                   "--prefill-gpu", "h200-sxm", "--mode", "disagg", "--concurrency", "32", "--save", str(p)).code == 0
    r = run_cli("render", "--profile", str(p), "--out", str(tmp_path / "out"), "--target", "shell")
    assert r.code == 0, r.err
    shell = tmp_path / "out" / "shell"
    assert "prefill instance(s) of 1 x h200-sxm" in (shell / "serve_prefill.sh").read_text()
    assert "decode instance(s) of 1 x h100-sxm" in (shell / "serve_decode.sh").read_text()
    assert "the prefill pool on h200-sxm" in (tmp_path / "out" / "README.md").read_text()
