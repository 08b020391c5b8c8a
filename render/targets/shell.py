"""``shell/``: serve scripts to run the plan directly on GPU hosts."""

from __future__ import annotations

from servewise.profiles.schema import AggPlan
from servewise.render.context import RenderContext
from servewise.render.engines import vllm
from servewise.render.errors import RenderError
from servewise.render.shellwords import ShellVar, arg_lines, quote
from servewise.render.templates_env import render_template


def gpu_slices(gpus_per_worker: int, workers: int, gpus_per_node: int) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each worker, packed onto nodes in order (node-local indices)."""
    out = []
    per_node = max(1, gpus_per_node // gpus_per_worker)
    for i in range(workers):
        start = (i % per_node) * gpus_per_worker
        out.append(",".join(str(g) for g in range(start, start + gpus_per_worker)))
    return out


def render_shell(rc: RenderContext) -> dict[str, str]:
    p = rc.profile
    if not isinstance(rc.plan, AggPlan) or p.engine.name != "vllm":
        raise RenderError(f"shell scripts for {p.engine.name} {rc.plan.mode} are not available yet")
    w = rc.plan.worker
    base_port = rc.engine.port
    slices = gpu_slices(w.gpus_per_worker, rc.plan.replicas * w.workers, p.hardware.gpus_per_node)
    ports = [str(base_port + i) for i in range(len(slices))]
    env_lines = [
        "# Which replica this host runs (0-based); each gets its own GPUs and port.",
        'REPLICA="${REPLICA:-0}"',
        "GPU_SLICES=(" + " ".join(quote(s) for s in slices) + ")",
        "PORTS=(" + " ".join(ports) + ")",
        'if (( REPLICA < 0 || REPLICA >= ${#GPU_SLICES[@]} )); then',
        '  echo "REPLICA must be between 0 and $(( ${#GPU_SLICES[@]} - 1 ))" >&2',
        "  exit 2",
        "fi",
        'export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-${GPU_SLICES[$REPLICA]}}"',
        'PORT="${PORT:-${PORTS[$REPLICA]}}"',
    ]
    args = vllm.serve_args(rc, w, port=0)
    args[args.index("--port") + 1] = ShellVar("PORT")
    args += list(p.deploy.extra_args.agg)
    title = (f"{rc.model_ref} on {w.gpus_per_worker} x {p.hardware.gpu_id} per replica, "
             f"{rc.plan.replicas} replica(s), vLLM {rc.engine.version}, aggregated")
    text = render_template("shell/serve.sh.j2", title=title.replace("\n", " "), generator=p.generator.servewise,
                           model_q=quote(rc.model_ref), env_lines=env_lines, command_q="vllm serve",
                           args_lines=arg_lines(args))
    return {"shell/serve.sh": text}
