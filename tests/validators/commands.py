"""Pull the engine command lines and pod templates out of compose, Kubernetes and Helm documents."""

from __future__ import annotations

import re
from typing import Any

LWS_ENV = {"LWS_LEADER_ADDRESS": "10.0.0.1", "LWS_WORKER_INDEX": "1", "LWS_GROUP_SIZE": "2"}
ENTRYPOINTS = {"vllm/vllm-openai": ["vllm", "serve"]}


def kube_expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of command/args/env: ``$$`` -> ``$``, ``$(VAR)`` -> its value when defined."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i):
            m = re.match(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", text[i:])
            if m and m.group(1) in env:
                out.append(env[m.group(1)])
                i += m.end()
            else:
                out.append("$(")
                i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def container_argv(c: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    env = {**LWS_ENV, **(env or {})}
    argv = list(c.get("command") or ENTRYPOINTS.get(c["image"].rsplit(":", 1)[0], [])) + list(c.get("args") or [])
    return [kube_expand(a, env) for a in argv]


def compose_argv(svc: dict[str, Any]) -> list[str]:
    """A service's process after compose interpolation (``config`` output, which writes a literal
    ``$`` as ``$$`` again so that its output is itself a valid compose file)."""
    entry = svc.get("entrypoint") or ENTRYPOINTS.get(svc["image"].rsplit(":", 1)[0], [])
    return [a.replace("$$", "$") for a in [*entry, *(svc.get("command") or [])]]


def _template(name: str, spec_tpl: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}, "template": spec_tpl}


def pod_templates(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, v1/PodTemplate) for every pod template embedded in a workload or custom resource."""
    kind, name = doc["kind"], doc["metadata"]["name"]
    out: list[tuple[str, dict[str, Any]]] = []
    if kind == "Deployment":
        out.append((f"{kind}/{name}", _template(name, doc["spec"]["template"])))
    elif kind == "LeaderWorkerSet":
        lwt = doc["spec"]["leaderWorkerTemplate"]
        for part in ("leaderTemplate", "workerTemplate"):
            if part in lwt:
                out.append((f"{kind}/{name}.{part}", _template(f"{name}-{part.lower()}", lwt[part])))
    elif kind == "DynamoGraphDeployment" and doc["apiVersion"].endswith("v1beta1"):
        for comp in doc["spec"]["components"]:
            out.append((f"{kind}/{name}.{comp['name']}", _template(f"{name}-{comp['name']}", comp["podTemplate"])))
    elif kind == "DynamoGraphDeployment":
        for sname, svc in doc["spec"]["services"].items():
            extra = dict(svc["extraPodSpec"])
            main = extra.pop("mainContainer")
            out.append((f"{kind}/{name}.{sname}",
                        _template(f"{name}-{sname.lower()}", {"spec": {**extra, "containers": [main]}})))
    return out


def llmd_pod_templates(values: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The pods the llm-d-modelservice chart builds from the values, approximately: the containers
    (minus the chart's own keys) with the pool's volumes."""
    out = []
    for pool in ("decode", "prefill"):
        spec = values.get(pool, {})
        if not spec.get("create"):
            continue
        containers = [{k: v for k, v in c.items() if k not in ("modelCommand", "mountModelVolume")}
                      for c in spec["containers"]]
        out.append((f"llm-d {pool}", _template(f"llmd-{pool}", {"spec": {"containers": containers,
                                                                          "volumes": spec.get("volumes", [])}})))
    return out


def workload_containers(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(where, c) for where, tpl in pod_templates(doc) for c in tpl["template"]["spec"]["containers"]]
