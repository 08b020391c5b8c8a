"""NVIDIA Dynamo as the runtime: ``dynamo.frontend`` plus ``dynamo.<engine>`` workers.

Release facts (images, pinned engine versions, ports) come from ``perfdata/runtimes/dynamo``; flags
from ``render/flags/dynamo-<version>.json``. ``dynamo.vllm`` passes vLLM *engine* flags through (no
--host/--port) and takes the model as ``--model``; ``dynamo.sglang`` passes SGLang server flags
through; ``dynamo.trtllm`` has its own flags and reads other LLM API options from
``--extra-engine-args FILE.yaml``. Workers take the role as ``--disaggregation-mode prefill|decode``
(Dynamo 1.4 removed --is-prefill-worker). Local runs need etcd and NATS (dynamo
``deploy/docker-compose.yml``: nats:2.11.4 with JetStream, bitnamilegacy/etcd:3.6.1).
"""

from __future__ import annotations

import importlib

from servewise.perfdata import get_dynamo
from servewise.perfdata.engines import EngineVersion
from servewise.profiles.schema import Profile
from servewise.render.command import Command, text
from servewise.render.errors import RenderError

RELEASE = get_dynamo()
VERSION = RELEASE.version
FLAGS = RELEASE.flags_reference
PASSTHROUGH = {name: e.flags[0] for name, e in RELEASE.engines.items() if not e.flags[0].startswith(FLAGS)}
WORKING_DIR = {"vllm": "/workspace/examples/backends/vllm", "sglang": "/workspace/examples/backends/sglang",
               "trtllm": "/workspace"}   # dynamo examples/backends/*/deploy (the runtime images' layout)
ETCD_IMAGE = "bitnamilegacy/etcd:3.6.1"
NATS_IMAGE = "nats:2.11.4"
ETCD_PORT = 2379
NATS_PORT = 4222


def pinned_version(engine: str) -> str:
    return RELEASE.engines[engine].version


def check_pinned(profile: Profile, engine: EngineVersion) -> str:
    """The engine version must be the one the Dynamo release pins; returns the runtime image.

    TensorRT-LLM is the exception: ``dynamo.trtllm`` takes Dynamo's own flags (checked against the
    Dynamo list) and its YAML keys are checked against the catalogued TensorRT-LLM version, since the
    pinned release candidate is not catalogued."""
    name = profile.engine.name
    pinned = RELEASE.engines[name]
    if name != "trtllm" and engine.version != pinned.version:
        raise RenderError(f"deploy.runtime dynamo: Dynamo {VERSION} runs {name} {pinned.version}, but the profile pins "
                          f"{engine.version}; set engine.version: {pinned.version} (and re-plan) or use "
                          "deploy.runtime native")
    return profile.engine.image or pinned.image


def frontend_command(rc, port: int | str) -> Command:  # type: ignore[no-untyped-def]
    args = ["--http-port", text(port), "--router-mode", "round-robin"]
    return Command(("python3", "-m", RELEASE.frontend_module), (), tuple(args), f"{FLAGS}:frontend", port=None)


def system_port(rc, inst) -> int:  # type: ignore[no-untyped-def]
    """DYN_SYSTEM_PORT: each worker's health server, unique per host."""
    return RELEASE.worker_system_port + rc.instances.index(inst)


def worker_command(rc, inst, site) -> Command:  # type: ignore[no-untyped-def]
    mod = importlib.import_module(f"servewise.render.engines.{rc.engine_name}")
    env = [("DYN_SYSTEM_PORT", str(system_port(rc, inst)))]
    if rc.engine_name == "vllm":
        args = ["--model", site.model, *mod.engine_args(rc, inst)]
        if inst.role != "agg":
            args += ["--disaggregation-mode", inst.role]
        if inst.multinode and not site.orchestrated:
            args += mod.multinode_args(inst, site.node_rank, site.head)
            if not mod.is_head(site.node_rank):
                args += ["--headless"]
        env += mod.worker_env(rc, inst, site)
    elif rc.engine_name == "sglang":
        args = mod.server_args(rc, inst, site, dynamo=True)
    else:
        args = mod.dynamo_args(rc, inst, site)
    reserved = mod.DYNAMO_PLAN_FLAGS if rc.engine_name == "trtllm" else (*mod.PLAN_FLAGS, "--disaggregation-mode")
    return Command(("python3", "-m", RELEASE.engines[rc.engine_name].module), (), tuple(args),
                   f"{FLAGS}:{rc.engine_name}", tuple(env), port=None, reserved=reserved)
