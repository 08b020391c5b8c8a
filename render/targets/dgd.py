"""``k8s/dynamographdeployment.yaml``: the plan as a Dynamo DynamoGraphDeployment.

``deploy.dynamo_api`` picks the API version. v1beta1 (default; Dynamo >= 1.2, what the 1.6.1 wheel's
planner uses): ``spec.components[]`` of ``{name, type: frontend|worker|prefill|decode, replicas,
podTemplate, multinode}`` with the engine container named ``main`` (dynamo ``examples/backends/*/deploy/
v1beta1``). v1alpha1 (deprecated): ``spec.services{}`` with ``componentType``/``subComponentType``,
``resources.limits.gpu``, ``envFromSecret`` and ``extraPodSpec.mainContainer``. The operator adds the
multi-node flags and the worker health port itself, so neither appears here.
"""

from __future__ import annotations

from typing import Any

from servewise.render import engines
from servewise.render.context import RenderContext
from servewise.render.engines import Site
from servewise.render.engines import dynamo as dyn
from servewise.render.targets import kube
from servewise.render.yamlout import dump_yaml_documents

_OPERATOR_ENV = {"DYN_SYSTEM_PORT"}


def _commands(rc: RenderContext) -> list[tuple[str, str, Any, list[Any]]]:
    """(component name, type, first instance, instances) per worker pool."""
    pools = [("worker", "worker", "agg")] if rc.mode == "agg" else \
        [("prefill", "prefill", "prefill"), ("decode", "decode", "decode")]
    out = []
    for name, typ, role in pools:
        insts = rc.role_instances(role)
        out.append((name, typ, insts[0], insts))
    return out


def _worker_cmd(rc: RenderContext, inst: Any):  # type: ignore[no-untyped-def]
    site = Site(model=kube.pod_model(rc), port=inst.port, host_ip="status.podIP" if rc.mode == "disagg" else None,
                config_dir=kube.CONFIG_IN_POD, orchestrated=True)
    return engines.worker_command(rc, inst, site)


def _env(rc: RenderContext, cmd: Any) -> list[dict[str, Any]]:
    env = [kube.hf_token_env(rc), {"name": "HF_HOME", "value": kube.HF_CACHE_IN_POD}]
    kept = type(cmd)(cmd.program, cmd.positional, cmd.args, cmd.flags,
                     tuple((k, v) for k, v in cmd.env if k not in _OPERATOR_ENV))
    return env + kube.env_list(kept, pod_ip_vars=("VLLM_NIXL_SIDE_CHANNEL_HOST",))


def _main(rc: RenderContext, cmd: Any, worker: bool) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "main", "image": rc.image, "workingDir": dyn.WORKING_DIR[rc.engine_name],
                         "command": list(cmd.program), "args": [kube.kube_escape(a) for a in cmd.after_program]}
    if worker:
        c["env"] = _env(rc, cmd)
        mounts = [kube.model_volume(rc)[1]]
        cfg = kube.config_volume(rc)
        if cfg:
            mounts.append(cfg[1])
        c["volumeMounts"] = mounts
    return c


def _volumes(rc: RenderContext) -> list[dict[str, Any]]:
    vols = [kube.model_volume(rc)[0]]
    cfg = kube.config_volume(rc)
    if cfg:
        vols.append(cfg[0])
    return vols


def _v1beta1(rc: RenderContext) -> dict[str, Any]:
    front = engines.frontend_command(rc, rc.service_port)
    components: list[dict[str, Any]] = [{"name": "frontend", "type": "frontend", "replicas": 1,
                                         "podTemplate": {"spec": {"containers": [_main(rc, front, False)]}}}]
    for name, typ, inst, insts in _commands(rc):
        main = _main(rc, _worker_cmd(rc, inst), True)
        main["resources"] = kube.gpu_resources(inst.gpus_per_node)
        comp: dict[str, Any] = {"name": name, "type": typ, "replicas": len(insts),
                                "podTemplate": {"spec": {"containers": [main], "volumes": _volumes(rc)}}}
        if inst.multinode:
            comp["multinode"] = {"nodeCount": inst.nnodes}
        components.append(comp)
    return {"apiVersion": "nvidia.com/v1beta1", "kind": "DynamoGraphDeployment",
            "metadata": {"name": rc.name, "namespace": rc.profile.deploy.namespace,
                         "labels": kube.labels(rc, "graph")},
            "spec": {"components": components}}


def _v1alpha1(rc: RenderContext) -> dict[str, Any]:
    front = engines.frontend_command(rc, rc.service_port)
    services: dict[str, Any] = {"frontend": {"componentType": "frontend", "replicas": 1,
                                             "extraPodSpec": {"mainContainer": _main(rc, front, False)}}}
    for name, typ, inst, insts in _commands(rc):
        gpus = str(inst.gpus_per_node)
        svc: dict[str, Any] = {"componentType": "worker", "replicas": len(insts),
                               "resources": {"requests": {"gpu": gpus}, "limits": {"gpu": gpus}},
                               "envFromSecret": rc.profile.deploy.hf_token_secret,
                               "sharedMemory": {"size": kube.SHM_SIZE},
                               "extraPodSpec": {"volumes": _volumes(rc),
                                                "mainContainer": _main(rc, _worker_cmd(rc, inst), True)}}
        if typ != "worker":
            svc["subComponentType"] = typ
        if inst.multinode:
            svc["multinode"] = {"nodeCount": inst.nnodes}
        services[name] = svc
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
            "metadata": {"name": rc.name, "namespace": rc.profile.deploy.namespace,
                         "labels": kube.labels(rc, "graph")},
            "spec": {"backendFramework": rc.engine_name, "services": services}}


def render_dgd(rc: RenderContext, head: str) -> dict[str, str]:
    doc = _v1alpha1(rc) if rc.profile.deploy.dynamo_api == "v1alpha1" else _v1beta1(rc)
    note = (f"Dynamo {dyn.VERSION} ({doc['apiVersion']}); needs the Dynamo platform (operator) installed.\n"
            f"kubectl apply -n {rc.profile.deploy.namespace} -f dynamographdeployment.yaml")
    return {"k8s/dynamographdeployment.yaml": dump_yaml_documents([doc], header=head + note)}
