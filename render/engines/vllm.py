"""vLLM (0.31, 0.33): plan fields -> ``vllm serve`` / ``python3 -m dynamo.vllm`` arguments.

Flag names and spellings: vLLM ``vllm/engine/arg_utils.py`` (EngineArgs.add_cli_args) and
``entrypoints/common/cli_args.py``, as listed per version in ``render/flags/vllm-<version>.json``.
"""

from __future__ import annotations

import json

from servewise.render.command import Command, text
from servewise.render.engines.common import checkpoint_args, num, path
from servewise.render.context import RenderContext
from servewise.render.errors import RenderError
from servewise.render.topology import Instance

# vLLM KV connectors servewise emits per deploy.kv_transfer (vllm docs features/nixl_connector_usage.md;
# llm-d guides/pd-disaggregation for Mooncake). NIXL ignores kv_role; the router assigns the roles.
MOONCAKE_BOOTSTRAP_BASE = 8998   # VLLM_MOONCAKE_BOOTSTRAP_PORT default

# What engine_args / multinode_args derive from the plan, emitted or left at the default, and the
# model argument (vllm serve refuses --model beside the positional one); not for deploy.extra_args.
PLAN_FLAGS = ("--model", "--served-model-name", "--host", "--port", "--tensor-parallel-size",
              "--pipeline-parallel-size", "--data-parallel-size", "--enable-expert-parallel", "--max-model-len",
              "--max-num-seqs", "--max-num-batched-tokens", "--gpu-memory-utilization", "--kv-cache-dtype",
              "--quantization", "--revision", "--kv-transfer-config", "--headless", "--nnodes", "--node-rank",
              "--master-addr", "--master-port", "--data-parallel-size-local", "--data-parallel-address",
              "--data-parallel-rpc-port", "--data-parallel-start-rank")


def kv_transfer_config(rc: RenderContext, role: str) -> str:
    if rc.profile.deploy.kv_transfer == "mooncake":
        cfg = {"kv_connector": "MooncakeConnector",
               "kv_role": "kv_producer" if role == "prefill" else "kv_consumer"}
    else:
        cfg = {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
    return json.dumps(cfg, separators=(",", ":"))


def engine_args(rc: RenderContext, inst: Instance) -> list[str]:
    """Engine-scope flags (accepted by ``vllm serve`` and passed through by ``dynamo.vllm``)."""
    w, p = inst.worker, rc.profile
    if w.ep > 1 and w.ep != w.tp * w.dp:
        raise RenderError(f"{path(inst)}.ep: vLLM's expert-parallel size is tp x dp = {w.tp * w.dp}, "
                          f"not {w.ep}")
    args = ["--served-model-name", rc.served_name, "--tensor-parallel-size", str(w.tp)]
    if w.pp > 1:
        args += ["--pipeline-parallel-size", str(w.pp)]
    if w.dp > 1:
        args += ["--data-parallel-size", str(w.dp)]
    if w.ep > 1:
        args += ["--enable-expert-parallel"]
    if p.model.max_model_len:
        args += ["--max-model-len", str(p.model.max_model_len)]
    args += ["--max-num-seqs", str(w.max_num_seqs), "--max-num-batched-tokens", str(w.max_num_batched_tokens),
             "--gpu-memory-utilization", num(rc.memory_fraction(w))]
    args += checkpoint_args(rc)
    if inst.role != "agg":
        args += ["--kv-transfer-config", kv_transfer_config(rc, inst.role)]
    return args


def multinode_args(inst: Instance, rank: int | str, head: str) -> list[str]:
    """Flags of one node of an instance spanning nodes (vLLM multiprocessing backend, no Ray).

    TP x PP across nodes: ``--nnodes N --node-rank R --master-addr HEAD`` (+ ``--headless`` on R > 0),
    vllm docs serving/parallelism_scaling.md (PR #30509). DP across nodes (each TP x PP group within a
    node, a whole node included): ``--data-parallel-size-local`` with
    ``--data-parallel-address/-rpc-port/-start-rank`` (docs serving/data_parallel_deployment.md).
    """
    w = inst.worker
    if w.tp * w.pp > inst.gpus_per_node:
        if w.dp > 1:
            raise RenderError(f"{path(inst)}: vLLM cannot combine data parallel with a TP x PP group that "
                              "spans nodes; use replicas")
        return ["--nnodes", str(inst.nnodes), "--node-rank", text(rank), "--master-addr", head,
                "--master-port", str(inst.dist_port)]
    local = inst.gpus_per_node // (w.tp * w.pp)
    if isinstance(rank, int):
        start = str(rank * local)
    elif inst.nnodes == 2:
        start = str(local)       # the only non-head node of a two-node instance
    else:
        raise RenderError(f"{path(inst)}: data parallel across more than two nodes needs per-node start "
                          "ranks, which a shared worker template cannot express")
    return ["--data-parallel-size-local", str(local), "--data-parallel-address", head,
            "--data-parallel-rpc-port", str(inst.dist_port), "--data-parallel-start-rank", start]


def is_head(rank: int | str) -> bool:
    return rank == 0 or rank == "0"


def worker_command(rc: RenderContext, inst: Instance, site) -> Command:  # type: ignore[no-untyped-def]
    args = ["--host", "0.0.0.0", "--port", text(site.port), *engine_args(rc, inst)]
    if inst.multinode and not site.orchestrated:
        args += multinode_args(inst, site.node_rank, site.head)
        if not is_head(site.node_rank):
            args += ["--headless"]
    return Command(("vllm", "serve"), (site.model,), tuple(args), rc.engine.flags_reference or "",
                   tuple(worker_env(rc, inst, site)), port=inst.port, reserved=PLAN_FLAGS)


def worker_env(rc: RenderContext, inst: Instance, site) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    if inst.role == "agg":
        return []
    if rc.profile.deploy.kv_transfer == "mooncake":
        env = [("VLLM_MOONCAKE_BOOTSTRAP_PORT", str(MOONCAKE_BOOTSTRAP_BASE + inst.index))] \
            if inst.role == "prefill" else []
        return env
    env = [("VLLM_NIXL_SIDE_CHANNEL_PORT", str(inst.side_port))]
    if site.host_ip is not None:
        env.append(("VLLM_NIXL_SIDE_CHANNEL_HOST", site.host_ip))
    return env


def router_command(rc: RenderContext, prefill: list[tuple[str, Instance]], decode: list[str],
                   port: int | str) -> Command:
    """``vllm-router --vllm-pd-disaggregation`` (PyPI vllm-router 0.1.17, vllm-project/router
    docs/model-routing/pd-disaggregation.md): one --prefill URL [BOOTSTRAP_PORT] / --decode URL each."""
    mooncake = rc.profile.deploy.kv_transfer == "mooncake"
    args = ["--vllm-pd-disaggregation"]
    for url, inst in prefill:
        args += ["--prefill", url] + ([str(MOONCAKE_BOOTSTRAP_BASE + inst.index)] if mooncake else [])
    for url in decode:
        args += ["--decode", url]
    args += ["--kv-connector", "mooncake" if mooncake else "nixl", "--prefill-policy", "cache_aware",
             "--decode-policy", "power_of_two", "--host", "0.0.0.0", "--port", text(port)]
    return Command(("vllm-router",), (), tuple(args), ROUTER_FLAGS, port=port if isinstance(port, int) else None)


ROUTER_FLAGS = "vllm-router-0.1.17"
ROUTER_IMAGE = "vllm/vllm-router:v0.1.17"  # vllm-project/router .buildkite/scripts/publish-release-images.sh
