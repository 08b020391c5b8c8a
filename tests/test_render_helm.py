"""Helm values: the saved chart schemas (check-jsonschema), strict project schemas (the chart
schemas accept unknown keys), and the commands the charts will run."""

from __future__ import annotations

import jsonschema
import yaml

from .validators.argv import parse_and_check
from .validators.artifacts import examples
from .validators.commands import container_argv
from .validators.owned_schemas import LLM_D, VLLM_STACK
from .validators.tools import check_jsonschema

CHART_SET = {"--host", "--port", "--tensor-parallel-size", "--max-model-len", "--max-num-seqs",
             "--gpu-memory-utilization", "--gpu_memory_utilization", "--enable-chunked-prefill",
             "--enable-prefix-caching", "--no-enable-prefix-caching"}


def _values(name: str):  # type: ignore[no-untyped-def]
    return [(r, p) for r in examples().values() for p in r.paths("helm/", name)]


def test_chart_schemas(shared_dir):
    stack = [p for _, p in _values("vllm-stack-values.yaml")]
    llmd = [p for _, p in _values("llm-d-modelservice-values.yaml")]
    assert stack and llmd
    for schema, files in (("production-stack.values.schema.json", stack),
                          ("llm-d-modelservice.values.schema.json", llmd)):
        proc = check_jsonschema(shared_dir / "schemas" / schema, files)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_strict_project_schemas():
    for _, p in _values("vllm-stack-values.yaml"):
        jsonschema.validate(yaml.safe_load(p.read_text()), VLLM_STACK)
    for _, p in _values("llm-d-modelservice-values.yaml"):
        jsonschema.validate(yaml.safe_load(p.read_text()), LLM_D)


def test_llm_d_commands_pass_the_flag_lists(shared_dir):
    for r, p in _values("llm-d-modelservice-values.yaml"):
        v = yaml.safe_load(p.read_text())
        for pool in ("decode", "prefill"):
            if v[pool].get("create"):
                c = v[pool]["containers"][0]
                parsed = parse_and_check(shared_dir, container_argv(c), r.versions)
                port = c["ports"][0]["containerPort"]
                assert parsed.flags.get("--port", [[str(port)]])[0][0] == str(port)
                gpus = int(c["resources"]["limits"]["nvidia.com/gpu"])
                inst_role = "agg" if r.profile.plan.mode == "agg" else pool
                w = r.profile.plan.worker if inst_role == "agg" else getattr(r.profile.plan, inst_role)
                assert gpus == w.gpus_per_worker
        if v["routing"]["proxy"]["enabled"]:
            assert v["decode"]["containers"][0]["ports"][0]["containerPort"] == v["routing"]["proxy"]["targetPort"]


def test_vllm_stack_extra_args_complete_the_plan(shared_dir):
    """The chart adds model, host, port, TP, max length, max seqs and memory; extraArgs carry the rest
    and never repeat a flag the chart sets."""
    for r, p in _values("vllm-stack-values.yaml"):
        spec = yaml.safe_load(p.read_text())["servingEngineSpec"]["modelSpec"][0]
        extra = spec["vllmConfig"]["extraArgs"]
        assert not CHART_SET & {a for a in extra if a.startswith("-")}
        parsed = parse_and_check(shared_dir, ["vllm", "serve", spec["modelURL"], *extra], r.versions)
        w = r.profile.plan.worker
        assert parsed.flags["--max-num-batched-tokens"] == [[str(w.max_num_batched_tokens)]]
        assert spec["vllmConfig"]["maxNumSeqs"] == w.max_num_seqs
        assert spec["requestGPU"] == w.gpus_per_worker and spec["replicaCount"] == r.profile.plan.replicas
