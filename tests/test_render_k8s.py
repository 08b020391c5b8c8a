"""Kubernetes manifests: kubernetes-validate --strict (k8s 1.30 and 1.37) on every object and on
every embedded pod template wrapped in a v1/PodTemplate; custom resources against their CRD schemas
and strict project schemas; names; and the containers' command lines against the flag lists."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml

from .validators.argv import parse_and_check
from .validators.artifacts import examples, scratch
from .validators.commands import container_argv, llmd_pod_templates, pod_templates, workload_containers
from .validators.owned_schemas import DGD_V1ALPHA1, DGD_V1BETA1, LWS
from .validators.tools import check_jsonschema, kubernetes_validate

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
CRD_KINDS = {"LeaderWorkerSet", "DynamoGraphDeployment"}


def _manifests() -> list[tuple[object, Path]]:
    return [(r, p) for r in examples().values() for p in r.paths("k8s/", ".yaml") + r.paths("helm/", "configmap.yaml")]


@cache
def _docs() -> list[tuple[object, Path, dict]]:  # type: ignore[type-arg]
    return [(r, p, d) for r, p in _manifests() for d in yaml.safe_load_all(p.read_text()) if d]


@cache
def _wrapped_templates() -> Path:
    """Every pod template servewise embeds (LWS, DGD, llm-d chart values), as v1/PodTemplate objects."""
    docs = []
    for _, _, d in _docs():
        if d["kind"] in CRD_KINDS:
            docs += [t for _, t in pod_templates(d)]
    for r in examples().values():
        for p in r.paths("helm/", "llm-d-modelservice-values.yaml"):
            docs += [t for _, t in llmd_pod_templates(yaml.safe_load(p.read_text()))]
    out = scratch() / "wrapped-pod-templates.yaml"
    out.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return out


@pytest.mark.parametrize("version", ["1.30.0", "1.37.0"])
def test_kubernetes_validate_strict(version: str):
    files = [p for _, p in _manifests()] + [_wrapped_templates()]
    proc = kubernetes_validate(version, files)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    out = proc.stdout + proc.stderr
    wrapped = sum(1 for d in yaml.safe_load_all(_wrapped_templates().read_text()) if d)
    assert out.count("passed for resource podtemplate/") == wrapped
    core = sum(1 for _, _, d in _docs() if d["kind"] not in CRD_KINDS)
    assert out.count(" passed for resource ") == core + wrapped


def test_custom_resources_against_their_crd_schemas(shared_dir):
    by_schema: dict[str, list[Path]] = {}
    for i, (_, p, d) in enumerate(_docs()):
        if d["kind"] == "LeaderWorkerSet":
            key = "lws.leaderworkerset.v1.schema.json"
        elif d["kind"] == "DynamoGraphDeployment" and d["apiVersion"] == "nvidia.com/v1alpha1":
            key = "dynamo.dynamographdeployment.v1alpha1-2025-08.schema.json"
        else:
            continue
        f = scratch() / "crd-docs" / f"{i}-{p.parent.parent.name}-{d['kind']}.yaml"
        f.parent.mkdir(exist_ok=True)
        f.write_text(yaml.safe_dump(d))
        by_schema.setdefault(key, []).append(f)
    assert set(by_schema) == {"lws.leaderworkerset.v1.schema.json",
                              "dynamo.dynamographdeployment.v1alpha1-2025-08.schema.json"}
    for schema, files in by_schema.items():
        proc = check_jsonschema(shared_dir / "schemas" / schema, files)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_custom_resources_against_strict_project_schemas():
    seen = set()
    for _, _, d in _docs():
        if d["kind"] == "LeaderWorkerSet":
            jsonschema.validate(d, LWS)
        elif d["kind"] == "DynamoGraphDeployment":
            jsonschema.validate(d, DGD_V1BETA1 if d["apiVersion"].endswith("v1beta1") else DGD_V1ALPHA1)
        else:
            continue
        seen.add((d["kind"], d["apiVersion"]))
    assert seen == {("LeaderWorkerSet", "leaderworkerset.x-k8s.io/v1"),
                    ("DynamoGraphDeployment", "nvidia.com/v1beta1"),
                    ("DynamoGraphDeployment", "nvidia.com/v1alpha1")}


def test_names_namespaces_and_secret_references():
    for r, p, d in _docs():
        meta = d["metadata"]
        assert DNS1123_SUBDOMAIN.match(meta["name"]) and len(meta["name"]) <= 63, (p, meta["name"])
        assert meta["namespace"] == r.profile.deploy.namespace
        if d["kind"] == "Service":
            assert DNS1035.match(meta["name"]), meta["name"]
        assert d["kind"] != "Secret", "servewise references the token Secret, never creates it"
        for _, c in workload_containers(d):
            for e in c.get("env", []):
                if e["name"] == "HF_TOKEN":
                    assert e["valueFrom"]["secretKeyRef"]["name"] == r.profile.deploy.hf_token_secret


def test_container_commands_pass_the_flag_lists(shared_dir):
    checked = 0
    for r, _, d in _docs():
        for _, c in workload_containers(d):
            parse_and_check(shared_dir, container_argv(c), r.versions)
            checked += 1
    assert checked >= len(examples())


def test_workloads_request_the_planned_gpus():
    for _, _, d in _docs():
        for where, c in workload_containers(d):
            limits = c.get("resources", {}).get("limits", {})
            if "nvidia.com/gpu" in limits:
                assert limits == c["resources"]["requests"]
                assert int(limits["nvidia.com/gpu"]) >= 1
                assert any(m["mountPath"] == "/dev/shm" for m in c.get("volumeMounts", [])) or \
                    d["kind"] == "DynamoGraphDeployment", where
