"""Strict JSON Schemas for exactly what servewise emits.

The saved chart and CRD schemas accept unknown keys (a typo passes), so every object servewise
writes is also checked against these, which reject any key servewise does not mean to write.
Pod templates inside them are checked separately, wrapped in a v1/PodTemplate, by
kubernetes-validate --strict.
"""

from __future__ import annotations

from typing import Any

STR = {"type": "string", "minLength": 1}
INT = {"type": "integer", "minimum": 0}
POS = {"type": "integer", "minimum": 1}
QTY = {"type": "string", "pattern": r"^[0-9]+(Ki|Mi|Gi|Ti)?$"}
ANY_OBJ = {"type": "object"}
STRS = {"type": "array", "items": {"type": "string"}}


def obj(required: list[str] | None = None, **props: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": required or list(props),
            "properties": props}


def opt(schema: dict[str, Any], *required: str) -> dict[str, Any]:
    return {**schema, "required": list(required)}


LABELS = {"type": "object", "additionalProperties": STR}
META = obj(["name", "namespace"], name=STR, namespace=STR, labels=LABELS)

_GPU_DEVICE = obj(driver={"const": "nvidia"},
                  device_ids={"type": "array", "minItems": 1, "items": {"pattern": "^[0-9]+$"}},
                  capabilities={"const": ["gpu"]})
_SERVICE = opt(obj(
    image={"type": "string", "pattern": r"^[^:]+(:[A-Za-z0-9._-]+)$", "not": {"pattern": ":latest$"}},
    command=STRS, working_dir=STR, network_mode={"const": "host"},
    ports={"type": "array", "items": {"type": "string", "pattern": r"^[0-9]+:[0-9]+$"}},
    ipc={"const": "host"}, ulimits=obj(memlock={"const": -1}, stack=POS),
    environment={"type": "array", "items": {"type": "string", "pattern": r"^[A-Z_][A-Z0-9_]*(=.*)?$"}},
    volumes={"type": "array", "items": opt(obj(type={"const": "bind"}, source=STR, target=STR,
                                               read_only={"const": True}), "type", "source", "target")},
    deploy=obj(resources=obj(reservations=obj(devices={"type": "array", "minItems": 1, "maxItems": 1,
                                                        "items": _GPU_DEVICE}))),
    healthcheck=obj(test=STRS, interval=STR, timeout=STR, retries=POS, start_period=STR),
    restart={"const": "unless-stopped"},
    depends_on={"type": "object", "additionalProperties": obj(condition={"enum": ["service_started",
                                                                                   "service_healthy"]})},
    configs={"type": "array", "items": obj(source=STR, target=STR)}),
    "image", "restart")
COMPOSE = opt(obj(name=STR, services={"type": "object", "minProperties": 1, "additionalProperties": _SERVICE},
                  configs={"type": "object", "additionalProperties": obj(content=STR)}), "name", "services")

VLLM_STACK = obj(
    ["servingEngineSpec", "routerSpec"],
    servingEngineSpec=obj(modelSpec={"type": "array", "minItems": 1, "maxItems": 1, "items": opt(obj(
        name=STR, repository=STR, tag=STR, modelURL=STR, modelRevision=STR, replicaCount=POS, requestCPU=POS,
        requestMemory=QTY, requestGPU=POS, pvcStorage=QTY,
        pvcAccessMode={"type": "array", "items": {"enum": ["ReadWriteOnce", "ReadWriteMany"]}},
        hf_token=obj(secretName=STR, secretKey=STR), shmSize=QTY,
        vllmConfig=opt(obj(tensorParallelSize=POS, maxModelLen=POS, maxNumSeqs=POS,
                           gpuMemoryUtilization={"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                           enablePrefixCaching={"type": "boolean"}, enableChunkedPrefill={"type": "boolean"},
                           extraArgs=STRS), "tensorParallelSize", "maxNumSeqs", "gpuMemoryUtilization", "extraArgs")),
        "name", "repository", "tag", "modelURL", "replicaCount", "requestGPU", "hf_token", "vllmConfig")}),
    routerSpec=obj(enableRouter={"const": True}, routingLogic=STR, serviceDiscovery={"const": "k8s"}),
)

_LLMD_CONTAINER = opt(obj(
    name=STR, image=STR, modelCommand={"const": "custom"}, command=STRS, args=STRS, env={"type": "array"},
    ports={"type": "array"}, resources=ANY_OBJ, mountModelVolume={"const": True}, volumeMounts={"type": "array"},
    startupProbe=ANY_OBJ, readinessProbe=ANY_OBJ, livenessProbe=ANY_OBJ),
    "name", "image", "modelCommand", "command", "args", "resources")
_LLMD_POOL = {"oneOf": [
    obj(create={"const": False}),
    opt(obj(create={"const": True}, replicas=POS, parallelism=obj(tensor=POS, data=POS),
            containers={"type": "array", "minItems": 1, "maxItems": 1, "items": _LLMD_CONTAINER},
            volumes={"type": "array"}), "create", "replicas", "containers")]}
LLM_D = obj(
    multinode={"const": False},
    modelArtifacts=opt(obj(name=STR, uri={"type": "string", "pattern": "^(hf|pvc)://.+"}, size=QTY, mountPath=STR),
                       "name", "uri", "size", "mountPath"),
    routing=obj(servicePort=POS, proxy=obj(enabled={"type": "boolean"}, image={"pattern": r":v[0-9]"},
                                           connector=STR, targetPort=POS, secure={"type": "boolean"})),
    decode=_LLMD_POOL, prefill=_LLMD_POOL,
)

LWS = obj(["apiVersion", "kind", "metadata", "spec"], apiVersion={"const": "leaderworkerset.x-k8s.io/v1"},
          kind={"const": "LeaderWorkerSet"}, metadata=META,
          spec=obj(replicas=POS, startupPolicy={"enum": ["LeaderCreated", "LeaderReady"]},
                   leaderWorkerTemplate=obj(size={"type": "integer", "minimum": 2},
                                            restartPolicy={"const": "RecreateGroupOnPodRestart"},
                                            leaderTemplate=ANY_OBJ, workerTemplate=ANY_OBJ)))

_MAIN_ONLY = {"type": "array", "minItems": 1, "maxItems": 1, "items": {
    "type": "object", "required": ["name", "image", "command", "args"], "properties": {"name": {"const": "main"}}}}
DGD_V1BETA1 = obj(
    ["apiVersion", "kind", "metadata", "spec"], apiVersion={"const": "nvidia.com/v1beta1"},
    kind={"const": "DynamoGraphDeployment"}, metadata=META,
    spec=obj(components={"type": "array", "minItems": 2, "items": opt(obj(
        name={"type": "string", "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$"},
        type={"enum": ["frontend", "worker", "prefill", "decode", "planner", "epp"]}, replicas=POS,
        multinode=obj(nodeCount={"type": "integer", "minimum": 2}),
        podTemplate=obj(["spec"], spec=opt(obj(containers=_MAIN_ONLY, volumes={"type": "array"}), "containers"))),
        "name", "type", "replicas", "podTemplate")}))

DGD_V1ALPHA1 = obj(
    ["apiVersion", "kind", "metadata", "spec"], apiVersion={"const": "nvidia.com/v1alpha1"},
    kind={"const": "DynamoGraphDeployment"}, metadata=META,
    spec=obj(backendFramework={"enum": ["vllm", "sglang", "trtllm"]},
             services={"type": "object", "minProperties": 2, "additionalProperties": opt(obj(
                 componentType={"enum": ["frontend", "worker"]}, subComponentType={"enum": ["prefill", "decode"]},
                 replicas=POS, resources=obj(requests=obj(gpu={"pattern": "^[0-9]+$"}),
                                             limits=obj(gpu={"pattern": "^[0-9]+$"})),
                 envFromSecret=STR, sharedMemory=obj(size=QTY),
                 multinode=obj(nodeCount={"type": "integer", "minimum": 2}),
                 extraPodSpec=opt(obj(volumes={"type": "array"}, mainContainer={
                     "type": "object", "required": ["name", "image", "command", "args"],
                     "properties": {"name": {"const": "main"}}}), "mainContainer")),
                 "componentType", "replicas", "extraPodSpec")}))

# TensorRT-LLM extra LLM API options as servewise writes them (TorchLlmArgs rejects unknown keys).
TRTLLM_OPTIONS = opt(obj(
    kv_cache_config=opt(obj(enable_block_reuse={"const": True}, dtype={"enum": ["auto", "fp8"]}), "enable_block_reuse"),
    cuda_graph_config=obj(enable_padding={"const": True},
                          batch_sizes={"type": "array", "minItems": 1, "uniqueItems": True, "items": POS}),
    enable_attention_dp={"const": True},
    cache_transceiver_config=obj(backend={"enum": ["NIXL", "UCX", "MOONCAKE"]}, max_tokens_in_buffer=POS),
    disable_overlap_scheduler={"const": True}), "kv_cache_config")

_TRT_SERVERS = obj(num_instances=POS, urls={"type": "array", "minItems": 1,
                                            "items": {"type": "string", "pattern": r"^[^:/\s]+:[0-9]+$"}})
TRTLLM_DISAGG = obj(hostname={"const": "0.0.0.0"}, port=POS, backend={"const": "pytorch"},
                    context_servers=_TRT_SERVERS, generation_servers=_TRT_SERVERS)
