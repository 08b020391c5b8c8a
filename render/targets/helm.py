"""``helm/``: values files for existing charts (native runtime).

- ``vllm-stack-values.yaml`` for the vLLM production-stack chart (``vllm/vllm-stack`` 0.1.x), aggregated
  vLLM on a Hub model whose worker fits one node. Keys: production-stack ``helm/values.schema.json``;
  the chart emits ``vllm serve <modelURL> --host --port`` plus the vllmConfig flags, so the rest of the
  plan goes to ``vllmConfig.extraArgs``.
- ``llm-d-modelservice-values.yaml`` for ``llm-d-modelservice`` (v0.4.x), every engine, aggregated
  (a decode-only pool) or disaggregated (prefill and decode pools; the routing sidecar on decode pods).
  Containers use ``modelCommand: custom`` so the command is exactly servewise's (the chart would add
  its own flags with ``vllmServe``) and GPU limits are explicit (the chart counts data x tensor only).
"""

from __future__ import annotations

import re
from typing import Any

from servewise.render import engines
from servewise.render.context import RenderContext
from servewise.render.engines import Site
from servewise.render.errors import RenderError
from servewise.render.targets import kube
from servewise.render.yamlout import comment_safe, dump_yaml

ROUTING_SIDECAR_IMAGE = "ghcr.io/llm-d/llm-d-routing-sidecar:v0.4.0"  # llm-d routing sidecar of the v0.4 line
PROXY_TARGET_PORT = 8200     # chart default routing.proxy.targetPort (vLLM behind the decode sidecar)
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def _no_templates(rc: RenderContext) -> None:
    for what, text in (("model.id", rc.model_id), ("model.served_name", rc.served_name)):
        if "{{" in text or "}}" in text:
            raise RenderError(f"{what}: Helm would evaluate '{{{{' in chart values; rename the model or use the "
                              "k8s target")


def _vllm_stack(rc: RenderContext) -> tuple[dict[str, Any] | None, str]:
    """The values, or None with the reason it does not apply."""
    if rc.engine_name != "vllm" or rc.mode != "agg":
        return None, "the vllm-stack chart serves aggregated vLLM only"
    inst = rc.instances[0]
    if inst.multinode:
        return None, "a worker spanning nodes needs the chart's Ray mode; use k8s/leaderworkerset.yaml"
    if rc.local_model_dir or not _HUB_ID.match(rc.model_id):
        return None, "the vllm-stack chart loads Hugging Face ids (org/name) only"
    w = inst.worker
    cmd = engines.worker_command(rc, inst, Site(model=rc.model_id, port=8000))
    set_by_chart = {"--host", "--port", "--tensor-parallel-size", "--max-model-len", "--max-num-seqs",
                    "--gpu-memory-utilization"}
    extra: list[str] = []
    args = list(cmd.args) + list(cmd.extra_args)
    i = 0
    while i < len(args):
        tok = args[i]
        takes = i + 1 < len(args) and not args[i + 1].startswith("--")
        if tok in set_by_chart:
            i += 2 if takes else 1
            continue
        if tok == "--served-model-name" and args[i + 1] == rc.model_id:
            i += 2
            continue
        extra += [kube.kube_escape(a) for a in (args[i:i + 2] if takes else args[i:i + 1])]
        i += 2 if takes else 1
    repo, _, tag = rc.image.rpartition(":")
    vllm_config: dict[str, Any] = {"tensorParallelSize": w.tp}
    if rc.profile.model.max_model_len:
        vllm_config["maxModelLen"] = rc.profile.model.max_model_len
    vllm_config.update({"maxNumSeqs": w.max_num_seqs, "gpuMemoryUtilization": rc.memory_fraction(w),
                        "enablePrefixCaching": True, "enableChunkedPrefill": True, "extraArgs": extra})
    spec = {"name": rc.name, "repository": repo, "tag": tag, "modelURL": rc.model_id,
            "replicaCount": len(rc.instances), "requestCPU": 8, "requestMemory": "64Gi",
            "requestGPU": w.gpus_per_worker, "pvcStorage": rc.profile.deploy.model_cache_size,
            "pvcAccessMode": ["ReadWriteOnce"],
            "hf_token": {"secretName": rc.profile.deploy.hf_token_secret, "secretKey": kube.HF_TOKEN_KEY},
            "shmSize": kube.SHM_SIZE, "vllmConfig": vllm_config}
    if rc.profile.model.revision:
        spec["modelRevision"] = rc.profile.model.revision
    return {"servingEngineSpec": {"modelSpec": [spec]},
            "routerSpec": {"enableRouter": True, "routingLogic": "roundrobin", "serviceDiscovery": "k8s"}}, ""


def _llmd_container(rc: RenderContext, role: str, port: int) -> dict[str, Any]:
    inst = rc.role_instances(role)[0]
    cmd = engines.worker_command(rc, inst, Site(model=kube.pod_model(rc), port=port, host_ip="status.podIP",
                                                config_dir=kube.CONFIG_IN_POD))
    env = [kube.hf_token_env(rc)] + kube.env_list(cmd, pod_ip_vars=("VLLM_NIXL_SIDE_CHANNEL_HOST",))
    mounts = [kube.shm_volume()[1]]
    cfg = kube.config_volume(rc)
    if cfg:
        mounts.append(cfg[1])
    container: dict[str, Any] = {
        "name": rc.engine_name, "image": rc.image, "modelCommand": "custom",
        "command": list(cmd.program), "args": [kube.kube_escape(a) for a in cmd.after_program],
        "env": env, "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "resources": kube.gpu_resources(inst.worker.gpus_per_worker), "mountModelVolume": True,
        "volumeMounts": mounts}
    container.update(kube.http_probes(port))
    return container


def _llmd(rc: RenderContext) -> tuple[dict[str, Any] | None, str]:
    if any(i.multinode for i in rc.instances):
        return None, "workers spanning nodes: use k8s/ (LeaderWorkerSet)"
    if rc.mode == "disagg" and rc.engine_name != "vllm":
        return None, (f"the chart's routing sidecar (v0.4) pairs vLLM prefill/decode pools only; {rc.label} "
                      "disaggregation is in k8s/")
    d = rc.profile.deploy
    if rc.local_model_dir:
        uri = f"pvc://{d.model_cache_pvc}/{kube.local_basename(rc)}"
    else:
        uri = f"hf://{rc.model_id}"
    artifacts: dict[str, Any] = {"name": rc.served_name, "uri": uri, "size": d.model_cache_size,
                                 "mountPath": kube.LOCAL_MODELS_IN_POD if rc.local_model_dir else
                                 kube.HF_CACHE_IN_POD}
    disagg = rc.mode == "disagg"
    values: dict[str, Any] = {"multinode": False, "modelArtifacts": artifacts,
                              "routing": {"servicePort": d.service_port,
                                          "proxy": {"enabled": disagg, "image": ROUTING_SIDECAR_IMAGE,
                                                    "connector": "nixlv2", "targetPort": PROXY_TARGET_PORT,
                                                    "secure": False}}}
    vols = [kube.shm_volume()[0]]
    cfg = kube.config_volume(rc)
    if cfg:
        vols.append(cfg[0])
    for role, pool in (("decode", "decode" if disagg else "agg"), ("prefill", "prefill")):
        if pool not in {i.role for i in rc.instances}:
            values[role] = {"create": False}
            continue
        insts = rc.role_instances(pool)
        port = PROXY_TARGET_PORT if role == "decode" and disagg else d.service_port
        w = insts[0].worker
        values[role] = {"create": True, "replicas": len(insts),
                        "parallelism": {"tensor": w.tp, "data": w.dp},
                        "containers": [_llmd_container(rc, pool, port)], "volumes": vols}
    return values, ""


def render_helm(rc: RenderContext) -> dict[str, str]:
    if rc.runtime == "dynamo":
        return {}
    _no_templates(rc)
    files: dict[str, str] = {}
    title = comment_safe(rc.model_id)
    stack, why = _vllm_stack(rc)
    if stack is not None:
        files["helm/vllm-stack-values.yaml"] = dump_yaml(stack, header=(
            f"{title}: {rc.label} on the vLLM production-stack chart.\n"
            "helm repo add vllm https://vllm-project.github.io/production-stack\n"
            f"helm install {rc.name} vllm/vllm-stack -n {rc.profile.deploy.namespace} -f vllm-stack-values.yaml\n"
            f"The Hugging Face token is read from the Secret {rc.profile.deploy.hf_token_secret} "
            f"(key {kube.HF_TOKEN_KEY})."))
    llmd, why2 = _llmd(rc)
    if llmd is not None:
        files["helm/llm-d-modelservice-values.yaml"] = dump_yaml(llmd, header=(
            f"{title}: {rc.label} on the llm-d-modelservice chart (v0.4.x).\n"
            f"helm install {rc.name} llm-d-modelservice/llm-d-modelservice -n {rc.profile.deploy.namespace} "
            "-f llm-d-modelservice-values.yaml\n"
            "Disaggregated pools need the llm-d router (inference scheduler) in front of them."))
        cm = kube.configmap(rc)
        if cm:
            files["helm/engine-configmap.yaml"] = dump_yaml(cm, header="Apply before installing the chart.")
    del why, why2
    return files


def skipped(rc: RenderContext) -> list[str]:
    """Charts that do not apply to this plan, with the reason (for the README)."""
    if rc.runtime == "dynamo":
        return ["Helm: the Dynamo platform chart installs only the operator; apply k8s/ instead"]
    out = []
    stack, why = _vllm_stack(rc)
    if stack is None:
        out.append(f"vllm-stack values: {why}")
    llmd, why2 = _llmd(rc)
    if llmd is None:
        out.append(f"llm-d-modelservice values: {why2}")
    return out
