"""NVIDIA Dynamo 1.6.1 as the runtime: ``dynamo.frontend`` plus ``dynamo.<engine>`` workers.

Facts (PyPI wheel ai-dynamo 1.6.1; flags in ``render/flags/dynamo-1.6.1.json``):
- the release pins vLLM 0.31.0, SGLang 0.5.21 and TensorRT-LLM 1.3.0rc29 (``pinned_engine_versions``);
- ``dynamo.vllm`` passes vLLM *engine* flags through (no --host/--port), takes the model as ``--model``
  and the role as ``--disaggregation-mode prefill|decode`` (1.4 removed --is-prefill-worker);
- ``dynamo.sglang`` passes SGLang server flags through; ``dynamo.trtllm`` has its own flags and reads
  other LLM API options from ``--extra-engine-args FILE.yaml``;
- images ``nvcr.io/nvidia/ai-dynamo/{vllm,sglang,tensorrtllm}-runtime:<dynamo version>`` (NGC catalog).
Local runs need etcd (discovery) and NATS (dynamo ``deploy/docker-compose.yml``: nats:2.11.4 with
JetStream, bitnamilegacy/etcd:3.6.1).
"""

from __future__ import annotations

from servewise.perfdata.engines import EngineVersion
from servewise.profiles.schema import Profile
from servewise.render.command import Command, text
from servewise.render.errors import RenderError

VERSION = "1.6.1"
PINNED = {"vllm": "0.31.0", "sglang": "0.5.21", "trtllm": "1.3.0rc29"}
RUNTIME_IMAGE = {"vllm": f"nvcr.io/nvidia/ai-dynamo/vllm-runtime:{VERSION}",
                 "sglang": f"nvcr.io/nvidia/ai-dynamo/sglang-runtime:{VERSION}",
                 "trtllm": f"nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:{VERSION}"}
WORKING_DIR = {"vllm": "/workspace/examples/backends/vllm", "sglang": "/workspace/examples/backends/sglang",
               "trtllm": "/workspace"}
ETCD_IMAGE = "bitnamilegacy/etcd:3.6.1"
NATS_IMAGE = "nats:2.11.4"
ETCD_PORT = 2379
NATS_PORT = 4222
SYSTEM_PORT_BASE = 9090        # DYN_SYSTEM_PORT: worker health/metrics server (/live, /health)
FLAGS = f"dynamo-{VERSION}"
PASSTHROUGH = {"vllm": "vllm-0.31.0", "sglang": "sglang-0.5.21"}  # engine flag lists the workers pass on


def check_pinned(profile: Profile, engine: EngineVersion) -> str:
    """The engine version must be the one Dynamo pins; returns the runtime image to use."""
    name = profile.engine.name
    want = PINNED[name]
    if engine.version != want:
        raise RenderError(f"deploy.runtime dynamo: Dynamo {VERSION} runs {name} {want}, but the profile pins "
                          f"{engine.version}; set engine.version: {want} (and re-plan) or use deploy.runtime native")
    return profile.engine.image or engine.dynamo_runtime_image or RUNTIME_IMAGE[name]


def frontend_command(rc, port: int | str) -> Command:  # type: ignore[no-untyped-def]
    args = ["--http-port", text(port), "--router-mode", "round-robin"]
    return Command(("python3", "-m", "dynamo.frontend"), (), tuple(args), f"{FLAGS}:frontend", port=None)


def worker_command(rc, inst, site) -> Command:  # type: ignore[no-untyped-def]
    import importlib

    mod = importlib.import_module(f"servewise.render.engines.{rc.engine_name}")
    role_args = [] if inst.role == "agg" else ["--disaggregation-mode", inst.role]
    env = [("DYN_SYSTEM_PORT", str(SYSTEM_PORT_BASE + rc.instances.index(inst)))]
    if rc.engine_name == "vllm":
        args = ["--model", site.model, *mod.engine_args(rc, inst), *role_args]
        if inst.multinode and not site.orchestrated:
            args += mod.multinode_args(inst, site.node_rank, site.head)
            if not mod.is_head(site.node_rank):
                args += ["--headless"]
        env += mod.worker_env(rc, inst, site)
    elif rc.engine_name == "sglang":
        args = mod.server_args(rc, inst, site, dynamo=True)
    else:
        args = mod.dynamo_args(rc, inst, site)
    return Command(("python3", "-m", f"dynamo.{rc.engine_name}"), (), tuple(args),
                   f"{FLAGS}:{rc.engine_name}", tuple(env), port=None)
