"""Kubernetes building blocks shared by the ``k8s`` and ``helm`` targets (plain data, no YAML text)."""

from __future__ import annotations

from typing import Any

from servewise.profiles.schema import quantity_bytes
from servewise.render.command import Command, Expr
from servewise.render.context import RenderContext

HF_CACHE_IN_POD = "/root/.cache/huggingface"
LOCAL_MODELS_IN_POD = "/models"
SHM_SIZE = "16Gi"
HF_TOKEN_KEY = "HF_TOKEN"     # key inside the Secret deploy.hf_token_secret
CONFIG_IN_POD = "/config"


def kube_escape(text: str) -> str:
    """Kubernetes expands ``$(VAR)`` in command, args and env values; ``$$`` is a literal ``$``."""
    return str(text) if isinstance(text, Expr) else str(text).replace("$", "$$")


def pod_model(rc: RenderContext) -> str:
    """The model argument inside a pod: the Hub id, or the local folder's copy on the model-cache PVC."""
    if rc.local_model_dir:
        return f"{LOCAL_MODELS_IN_POD}/{local_basename(rc)}"
    return rc.model_id


def local_basename(rc: RenderContext) -> str:
    return (rc.local_model_dir or "").rstrip("/").rsplit("/", 1)[-1] or "model"


def labels(rc: RenderContext, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": rc.name, "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": "servewise"}


def hf_token_env(rc: RenderContext) -> dict[str, Any]:
    return {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": rc.profile.deploy.hf_token_secret,
                                                                "key": HF_TOKEN_KEY, "optional": True}}}


def env_list(cmd: Command, pod_ip_vars: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k, v in cmd.env:
        if k in pod_ip_vars:
            out.append({"name": k, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
        else:
            out.append({"name": k, "value": kube_escape(v)})
    return out


def http_probes(port: int, path: str = "/health") -> dict[str, Any]:
    """Startup allows an hour for downloading and loading weights; then readiness and liveness."""
    get = {"path": path, "port": port}
    return {"startupProbe": {"httpGet": get, "periodSeconds": 30, "failureThreshold": 120},
            "readinessProbe": {"httpGet": get, "periodSeconds": 10, "failureThreshold": 3},
            "livenessProbe": {"httpGet": get, "periodSeconds": 30, "failureThreshold": 5, "timeoutSeconds": 10}}


def model_volume(rc: RenderContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """(volume, mount) of the model-cache PVC: the HF cache for Hub models, /models for a local folder."""
    pvc = rc.profile.deploy.model_cache_pvc
    mount = LOCAL_MODELS_IN_POD if rc.local_model_dir else HF_CACHE_IN_POD
    return ({"name": "model-cache", "persistentVolumeClaim": {"claimName": pvc}},
            {"name": "model-cache", "mountPath": mount})


def shm_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    return ({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
            {"name": "shm", "mountPath": "/dev/shm"})


def config_volume(rc: RenderContext) -> tuple[dict[str, Any], dict[str, Any]] | None:
    from servewise.render import engines

    if not engines.config_files(rc):
        return None
    return ({"name": "engine-config", "configMap": {"name": f"{rc.name}-config"}},
            {"name": "engine-config", "mountPath": CONFIG_IN_POD, "readOnly": True})


def configmap(rc: RenderContext, extra: dict[str, str] | None = None) -> dict[str, Any] | None:
    from servewise.render import engines

    files = {**engines.config_files(rc), **(extra or {})}
    if not files:
        return None
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{rc.name}-config", "namespace": rc.profile.deploy.namespace,
                         "labels": labels(rc, "config")},
            "data": dict(sorted(files.items()))}


def gpu_resources(gpus: int) -> dict[str, Any]:
    n = str(gpus)
    return {"limits": {"nvidia.com/gpu": n}, "requests": {"nvidia.com/gpu": n}}



def check_model_cache(rc: RenderContext) -> None:
    """A model-cache PVC smaller than the checkpoint fails the pod at download time; refuse it here."""
    from servewise.estimator.resolve import checkpoint_gib
    from servewise.render.errors import RenderError

    d = rc.profile.deploy
    need_gib = checkpoint_gib(rc.profile.model)
    if need_gib is not None and quantity_bytes(d.model_cache_size) < need_gib * 1024**3:
        raise RenderError(f"{d.model_cache_size} cannot hold the checkpoint of {rc.profile.model.id} "
                          f"({need_gib} GiB as stored); set it to at least {need_gib}Gi",
                          field="deploy.model_cache_size")
