"""SGLang (0.5.21, 0.5.23): plan fields -> ``python3 -m sglang.launch_server`` arguments.

Flags: SGLang ``srt/server_args.py`` and ``srt/arg_groups/fields/*.py`` as listed per version in
``render/flags/sglang-<version>.json``. SGLang binds 127.0.0.1 by default, so ``--host 0.0.0.0`` is
always given. Parallel sizes: without attention DP, ``--dp-size`` runs dp engine replicas of
``--tp-size`` GPUs each (tp x dp GPUs). With attention DP the data-parallel ranks live inside one
TP group of tp x dp GPUs: ``--tp-size tp*dp`` and the DP degree as 0.5.23 spells it
(``--attn-dp-size``) or, where the version lacks that flag, ``--dp-size N --enable-dp-attention``.
P/D: ``--disaggregation-mode``, ``--disaggregation-transfer-backend`` and a bootstrap port on each
prefill server; ``sglang_router.launch_router --pd-disaggregation`` pairs them
(sglang docs advanced_features/pd_disaggregation.md).
"""

from __future__ import annotations

from servewise.render.command import Command, suffixed, text
from servewise.render.context import RenderContext
from servewise.render.engines.common import checkpoint_args, num, path
from servewise.render.errors import RenderError
from servewise.render.flagindex import load_index
from servewise.render.topology import BOOTSTRAP_BASE, Instance

ROUTER_FLAGS = "sglang-router-0.3.2"
ROUTER_IMAGE = None   # the engine image ships sglang_router (sglang docs: launch_router in the same install)

# What server_args derives from the plan and profile, emitted or left at the default; not for
# deploy.extra_args.
PLAN_FLAGS = ("--model-path", "--served-model-name", "--host", "--port", "--tp-size", "--dp-size", "--attn-dp-size",
              "--enable-dp-attention", "--pp-size", "--ep-size", "--context-length", "--max-running-requests",
              "--chunked-prefill-size", "--mem-fraction-static", "--kv-cache-dtype", "--quantization", "--revision",
              "--disaggregation-mode", "--disaggregation-transfer-backend", "--disaggregation-bootstrap-port",
              "--dist-init-addr", "--nnodes", "--node-rank")


def bootstrap_port(inst: Instance) -> int:
    """Each prefill server's bootstrap port (default 8998, one per prefill instance on a host)."""
    return BOOTSTRAP_BASE + inst.index


def _has(rc: RenderContext, flag: str) -> bool:
    return flag in load_index(rc.engine.flags_reference or "").flags


def parallel_args(rc: RenderContext, inst: Instance) -> list[str]:
    w = inst.worker
    if w.attention_dp:
        args = ["--tp-size", str(w.tp * w.dp)]
        args += ["--attn-dp-size", str(w.dp)] if _has(rc, "--attn-dp-size") else \
            ["--dp-size", str(w.dp), "--enable-dp-attention"]
    else:
        args = ["--tp-size", str(w.tp)] + (["--dp-size", str(w.dp)] if w.dp > 1 else [])
    if w.pp > 1:
        args += ["--pp-size", str(w.pp)]
    if w.ep > 1:
        if w.ep > w.tp * w.dp:
            raise RenderError(f"{path(inst)}.ep: SGLang's expert-parallel size cannot exceed tp x dp")
        args += ["--ep-size", str(w.ep)]
    return args


def server_args(rc: RenderContext, inst: Instance, site, *, dynamo: bool = False) -> list[str]:  # type: ignore[no-untyped-def]
    """SGLang server arguments (also what ``dynamo.sglang`` passes through)."""
    w, p = inst.worker, rc.profile
    args = ["--model-path", site.model, "--served-model-name", rc.served_name]
    if not dynamo:
        args += ["--host", "0.0.0.0", "--port", text(site.port)]
    args += parallel_args(rc, inst)
    if p.model.max_model_len:
        args += ["--context-length", str(p.model.max_model_len)]
    # With attention DP, SGLang reads both limits as totals over the DP ranks and divides them by the DP
    # size (server_args._handle_data_parallelism for the chunk; the scheduler's max_running_requests //
    # dp_size); the plan's values are per rank, as vLLM and TensorRT-LLM read theirs.
    ranks = w.dp if w.attention_dp else 1
    args += ["--max-running-requests", str(w.max_num_seqs * ranks),
             "--chunked-prefill-size", str(w.max_num_batched_tokens * ranks),
             "--mem-fraction-static", num(w.gpu_memory_utilization)]
    args += checkpoint_args(rc)
    if inst.role != "agg":
        args += ["--disaggregation-mode", inst.role,
                 "--disaggregation-transfer-backend", p.deploy.kv_transfer]
        if inst.role == "prefill":
            args += ["--disaggregation-bootstrap-port", str(bootstrap_port(inst))]
    if inst.multinode and not site.orchestrated:
        args += ["--dist-init-addr", suffixed(site.head, f":{inst.dist_port}"), "--nnodes", str(inst.nnodes),
                 "--node-rank", text(site.node_rank)]
    return args


def worker_command(rc: RenderContext, inst: Instance, site) -> Command:  # type: ignore[no-untyped-def]
    return Command(("python3", "-m", "sglang.launch_server"), (), tuple(server_args(rc, inst, site)),
                   rc.engine.flags_reference or "", port=inst.port, reserved=PLAN_FLAGS)


def router_command(rc: RenderContext, prefill: list[tuple[str, Instance]], decode: list[str],
                   port: int | str) -> Command:
    """``python3 -m sglang_router.launch_router --pd-disaggregation`` (PyPI sglang-router 0.3.2): one
    ``--prefill URL BOOTSTRAP_PORT`` per prefill server and one ``--decode URL`` per decode server."""
    args = ["--pd-disaggregation"]
    for url, inst in prefill:
        args += ["--prefill", url, str(bootstrap_port(inst))]
    for url in decode:
        args += ["--decode", url]
    args += ["--prefill-policy", "cache_aware", "--decode-policy", "power_of_two", "--host", "0.0.0.0",
             "--port", text(port)]
    return Command(("python3", "-m", "sglang_router.launch_router"), (), tuple(args), ROUTER_FLAGS,
                   port=port if isinstance(port, int) else None)
