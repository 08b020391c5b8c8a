"""``shell/docker-run.sh``: one aggregated instance in one container (``docker run``)."""

from __future__ import annotations

import csv
import io

from servewise.render import engines
from servewise.render.command import Command, Expr
from servewise.render.context import CONTAINER_MODEL_DIR, RenderContext
from servewise.render.engines import Site
from servewise.render.shellwords import arg_lines, array_item, quote
from servewise.render.templates_env import render_template
from servewise.render.yamlout import comment_safe

HF_CACHE_IN_CONTAINER = "/root/.cache/huggingface"


def image_command(rc: RenderContext, cmd: Command) -> list[str]:
    """What follows the image in ``docker run`` / a compose ``command``: the vLLM image's entrypoint
    is ``vllm serve`` (vllm docs deployment/docker.md), the others have none."""
    if cmd.program == ("vllm", "serve") and rc.runtime == "native":
        return cmd.after_program
    return cmd.argv


def docker_run_argv(rc: RenderContext, gpus: str, publish: str, name: str, model_mount: str | None,
                    cmd: Command) -> list[str]:
    """``gpus``/``publish``/``name``/``model_mount`` come fully formed (literals or shell expressions)."""
    argv = ["docker", "run", "--rm", "--name", name, "--gpus", gpus, "--ipc=host",
            "--ulimit", "memlock=-1", "--ulimit", "stack=67108864", "-p", publish,
            "-v", Expr('"${HF_HOME:-$HOME/.cache/huggingface}:' + HF_CACHE_IN_CONTAINER + '"'), "-e", "HF_TOKEN"]
    if model_mount is not None:
        argv += ["--mount", model_mount]
    for k, v in cmd.env:
        argv += ["-e", f"{k}={v}"]
    return argv + [rc.image, *image_command(rc, cmd)]


def model_mount(rc: RenderContext) -> str | None:
    """``--mount`` of the local model folder, read-only. Docker reads the value as one CSV record,
    so a path with commas, quotes or colons stays one field (unlike ``-v a:b:ro``)."""
    if not rc.local_model_dir:
        return None
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(["type=bind", f"source={rc.local_model_dir}",
                                                 f"target={CONTAINER_MODEL_DIR}", "readonly"])
    return buf.getvalue()


def one_liner(rc: RenderContext) -> str:
    """The README's copy-and-paste form for instance 0 (literal values)."""
    inst = rc.instances[0]
    cmd = engines.worker_command(rc, inst, Site(model=rc.container_model, port=inst.port))
    mount = model_mount(rc)
    argv = docker_run_argv(rc, '"device=' + ",".join(map(str, inst.gpus)) + '"', f"{inst.port}:{inst.port}",
                           f"{rc.name}-0", mount, cmd)
    return " ".join(quote(a) for a in argv)


def render_docker_run(rc: RenderContext) -> dict[str, str]:
    insts = rc.role_instances("agg")
    n = len(insts)
    slices = [",".join(map(str, i.gpus)) for i in insts]
    ports = [str(i.port) for i in insts]
    cmd = engines.worker_command(rc, insts[0], Site(model=rc.container_model, port=Expr('"${PORT}"')))
    mount = model_mount(rc)
    argv = docker_run_argv(rc, Expr('"\\"device=${GPUS}\\""'), Expr('"${PORT}:${PORT}"'),
                           Expr(f'"{rc.name}-${{INSTANCE}}"'), mount, cmd)
    pre = [f"# Which instance to start (0-based, {n} in the plan); each gets its own GPUs and port.",
           'INSTANCE="${INSTANCE:-0}"',
           f"if (( INSTANCE < 0 || INSTANCE >= {n} )); then",
           f'  echo "INSTANCE must be between 0 and {n - 1}" >&2',
           "  exit 2",
           "fi",
           "GPU_SLICES=(" + " ".join(array_item(s) for s in slices) + ")",
           "PORTS=(" + " ".join(array_item(p) for p in ports) + ")",
           'GPUS="${GPU_SLICES[$INSTANCE]}"',
           'PORT="${PORTS[$INSTANCE]}"']
    image_at = argv.index(rc.image)
    lines = arg_lines(argv[2:image_at]) + [quote(rc.image)] + arg_lines(argv[image_at + 1:])
    title = f"{rc.model_id}: {rc.label}, one aggregated instance in a container ({rc.image})"
    text = render_template("shell/docker-run.sh.j2", title=comment_safe(title),
                           generator=rc.profile.generator.servewise, pre_lines=pre, args_lines=lines)
    return {"shell/docker-run.sh": text}
