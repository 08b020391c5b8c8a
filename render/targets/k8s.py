"""``k8s/``: plain manifests (native runtime) or a DynamoGraphDeployment (Dynamo runtime).

Native: a PersistentVolumeClaim for the model cache; aggregated = one Deployment (or a
LeaderWorkerSet when one worker spans nodes) + Service; disaggregated = one Deployment + Service
per prefill/decode instance (the router needs each instance's address) and the router
Deployment + Service. Pods get GPU limits, a memory-backed /dev/shm, startup/readiness/liveness
probes and HF_TOKEN from the Secret ``deploy.hf_token_secret`` (key HF_TOKEN), never its value.
"""

from __future__ import annotations

from typing import Any

from servewise.render import engines
from servewise.render.command import Command, Expr
from servewise.render.context import RenderContext
from servewise.render.engines import Site
from servewise.render.targets import kube
from servewise.render.targets.dgd import render_dgd
from servewise.render.yamlout import comment_safe, dump_yaml_documents

LWS_API = "leaderworkerset.x-k8s.io/v1"


def _meta(rc: RenderContext, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": rc.profile.deploy.namespace, "labels": kube.labels(rc, component)}


def pvc(rc: RenderContext) -> dict[str, Any]:
    shared = len(rc.instances) > 1 or any(i.multinode for i in rc.instances) or rc.runtime == "dynamo"
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _meta(rc, rc.profile.deploy.model_cache_pvc, "model-cache"),
            "spec": {"accessModes": ["ReadWriteMany" if shared else "ReadWriteOnce"],
                     "resources": {"requests": {"storage": rc.profile.deploy.model_cache_size}}}}


def container(rc: RenderContext, cmd: Command, gpus: int | None, port: int | None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": rc.engine_name if gpus else "router", "image": rc.image if gpus else
                         engines.module(rc).ROUTER_IMAGE or rc.image,
                         "command": list(cmd.program), "args": [kube.kube_escape(a) for a in cmd.after_program]}
    env: list[dict[str, Any]] = []
    if gpus:
        env = [kube.hf_token_env(rc), {"name": "HF_HOME", "value": kube.HF_CACHE_IN_POD}]
    env += kube.env_list(cmd, pod_ip_vars=("VLLM_NIXL_SIDE_CHANNEL_HOST",))
    if env:
        c["env"] = env
    if port is not None:
        c["ports"] = [{"name": "http", "containerPort": port}]
    if gpus:
        c["resources"] = kube.gpu_resources(gpus)
        mounts = [kube.model_volume(rc)[1], kube.shm_volume()[1]]
        cfg = kube.config_volume(rc)
        if cfg:
            mounts.append(cfg[1])
        c["volumeMounts"] = mounts
    if port is not None:
        c.update(kube.http_probes(port))
    return c


def pod_spec(rc: RenderContext, c: dict[str, Any], gpu: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [c]}
    if gpu:
        vols = [kube.model_volume(rc)[0], kube.shm_volume()[0]]
        cfg = kube.config_volume(rc)
        if cfg:
            vols.append(cfg[0])
        spec["volumes"] = vols
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return spec


def _site(rc: RenderContext, inst, rank: int | str, head: str) -> Site:  # type: ignore[no-untyped-def]
    return Site(model=kube.pod_model(rc), port=inst.port, node_rank=rank, head=head,
                host_ip="status.podIP" if rc.mode == "disagg" else None, config_dir=kube.CONFIG_IN_POD)


def deployment(rc: RenderContext, name: str, component: str, replicas: int, spec: dict[str, Any],
               selector: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(rc, name, component),
            "spec": {"replicas": replicas, "strategy": {"type": "Recreate"},
                     "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": {**kube.labels(rc, component), **selector}},
                                  "spec": spec}}}


def service(rc: RenderContext, name: str, component: str, selector: dict[str, str],
            ports: list[tuple[str, int, int]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(rc, name, component),
            "spec": {"type": "ClusterIP", "selector": selector,
                     "ports": [{"name": n, "port": p, "targetPort": t, "protocol": "TCP"} for n, p, t in ports]}}


def leaderworkerset(rc: RenderContext, name: str, component: str, insts: list) -> dict[str, Any]:  # type: ignore[type-arg]
    """One group per instance; the leader is node 0 and serves HTTP, workers join it."""
    inst = insts[0]
    head = Expr("$(LWS_LEADER_ADDRESS)")
    leader_cmd = engines.worker_command(rc, inst, _site(rc, inst, 0, head))
    worker_cmd = engines.worker_command(rc, inst, _site(rc, inst, Expr("$(LWS_WORKER_INDEX)"), head))
    leader = container(rc, leader_cmd, inst.gpus_per_node, inst.port)
    worker = container(rc, worker_cmd, inst.gpus_per_node, None)
    labels = kube.labels(rc, component)
    return {"apiVersion": LWS_API, "kind": "LeaderWorkerSet", "metadata": _meta(rc, name, component),
            "spec": {"replicas": len(insts), "startupPolicy": "LeaderCreated",
                     "leaderWorkerTemplate": {
                         "size": inst.nnodes, "restartPolicy": "RecreateGroupOnPodRestart",
                         "leaderTemplate": {"metadata": {"labels": {**labels, "role": "leader"}},
                                            "spec": pod_spec(rc, leader, True)},
                         "workerTemplate": {"metadata": {"labels": {**labels, "role": "worker"}},
                                            "spec": pod_spec(rc, worker, True)}}}}


def _pool(rc: RenderContext, role: str, component: str, insts: list, *, per_instance: bool) -> list[dict[str, Any]]:  # type: ignore[type-arg]
    """Workload + Service objects of one role."""
    docs: list[dict[str, Any]] = []
    groups = [[i] for i in insts] if per_instance else [insts]
    for group in groups:
        inst = group[0]
        name = f"{rc.name}-{inst.name}" if per_instance else rc.name
        ports = [("http", inst.port, inst.port)]
        if rc.engine_name == "sglang" and role == "prefill":
            bp = engines.module(rc).bootstrap_port(inst)
            ports.append(("bootstrap", bp, bp))
        if inst.multinode:
            docs.append(leaderworkerset(rc, name, component, group))
            selector = {"leaderworkerset.sigs.k8s.io/name": name, "role": "leader"}
        else:
            selector = {"app.kubernetes.io/instance": name}
            cmd = engines.worker_command(rc, inst, _site(rc, inst, 0, "127.0.0.1"))
            c = container(rc, cmd, inst.worker.gpus_per_worker, inst.port)
            docs.append(deployment(rc, name, component, len(group), pod_spec(rc, c, True), selector))
        svc_name = name if per_instance else rc.name
        if not per_instance:
            ports = [("http", rc.service_port, inst.port)]
        docs.append(service(rc, svc_name, component, selector, ports))
    return docs


def _router(rc: RenderContext) -> list[dict[str, Any]]:
    def url(inst) -> str:  # type: ignore[no-untyped-def]
        return f"http://{rc.name}-{inst.name}:{inst.port}"

    cmd = engines.router_command(rc, [(url(i), i) for i in rc.role_instances("prefill")],
                                 [url(i) for i in rc.role_instances("decode")], rc.service_port)
    name = f"{rc.name}-router"
    selector = {"app.kubernetes.io/instance": name}
    c = container(rc, cmd, None, rc.service_port)
    c.pop("startupProbe", None)
    spec = pod_spec(rc, c, False)
    cfg = kube.config_volume(rc)
    if cfg and rc.engine_name == "trtllm":
        c["volumeMounts"] = [cfg[1]]
        spec["volumes"] = [cfg[0]]
    return [deployment(rc, name, "router", 1, spec, selector),
            service(rc, rc.name, "router", selector, [("http", rc.service_port, rc.service_port)])]


def _router_config(rc: RenderContext) -> dict[str, str]:
    """The ``trtllm-serve disaggregated`` configuration, with each instance's Service address."""
    if not (rc.engine_name == "trtllm" and rc.mode == "disagg" and rc.runtime == "native"):
        return {}
    from servewise.render.engines import trtllm
    from servewise.render.yamlout import dump_yaml

    def addr(inst) -> str:  # type: ignore[no-untyped-def]
        return f"{rc.name}-{inst.name}:{inst.port}"

    doc = trtllm.disagg_config(rc, [addr(i) for i in rc.role_instances("prefill")],
                               [addr(i) for i in rc.role_instances("decode")], rc.service_port)
    return {trtllm.DISAGG_CONFIG: dump_yaml(doc)}


def render_k8s(rc: RenderContext) -> dict[str, str]:
    d = rc.profile.deploy
    head = (f"{comment_safe(rc.model_id)}: {rc.label}, "
            f"{'aggregated' if rc.mode == 'agg' else 'disaggregated prefill/decode'}. Generated by servewise.\n")
    files = {"k8s/model-cache-pvc.yaml": dump_yaml_documents([pvc(rc)], header=head + f"kubectl apply -n "
                                                             f"{d.namespace} -f model-cache-pvc.yaml")}
    cm = kube.configmap(rc, _router_config(rc))
    if cm:
        files["k8s/engine-configmap.yaml"] = dump_yaml_documents([cm], header=head)
    if rc.runtime == "dynamo":
        files.update(render_dgd(rc, head))
        return files
    if rc.mode == "agg":
        insts = rc.role_instances("agg")
        rel = "k8s/leaderworkerset.yaml" if insts[0].multinode else "k8s/deployment.yaml"
        files[rel] = dump_yaml_documents(_pool(rc, "agg", "engine", insts, per_instance=False), header=head)
    else:
        for role in ("prefill", "decode"):
            files[f"k8s/{role}.yaml"] = dump_yaml_documents(
                _pool(rc, role, role, rc.role_instances(role), per_instance=True), header=head)
        files["k8s/router.yaml"] = dump_yaml_documents(_router(rc), header=head)
    return files
