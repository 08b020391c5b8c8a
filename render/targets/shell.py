"""``shell/``: scripts that run the plan directly on GPU hosts (and a ``docker run`` variant).

One script per role (``serve.sh`` for an aggregated worker; ``serve_prefill.sh``, ``serve_decode.sh``
and ``serve_router.sh`` for disaggregated plans; ``serve_frontend.sh`` with the Dynamo runtime). A
script starts one instance of its role, chosen with ``INSTANCE`` (0-based): values that differ
between instances (GPUs, ports, side-channel ports) sit in arrays indexed by it. An instance that
spans nodes gets one script per node (``serve_node1.sh`` ...), each taking the head node's address.
"""

from __future__ import annotations

from servewise.render import engines
from servewise.render.command import Command, Expr
from servewise.render.context import RenderContext
from servewise.render.engines import Site
from servewise.render.engines import dynamo as dyn
from servewise.render.shellwords import arg_lines, array_item, quote, var_name
from servewise.render.templates_env import render_template
from servewise.render.topology import ROLE_LABEL, Instance, nodes_used
from servewise.render.yamlout import comment_safe

MODEL = Expr('"${MODEL}"')
HEAD = Expr('"${HEAD_ADDRESS}"')
HOST_IP = Expr('"${HOST_IP}"')
CONFIG_DIR = Expr('"${CONFIG_DIR}"')


def script_name(rc: RenderContext, role: str, rank: int | None = None) -> str:
    base = "serve" if role == "agg" and rc.runtime == "native" else f"serve_{ROLE_LABEL.get(role, role)}"
    return f"shell/{base}{'' if rank is None else f'_node{rank}'}.sh"


def _site(rc: RenderContext, inst: Instance, rank: int) -> Site:
    multi_host = nodes_used(list(rc.instances)) > 1
    return Site(model=MODEL, port=inst.port, node_rank=rank, head=HEAD,
                host_ip=HOST_IP if multi_host else None, config_dir=CONFIG_DIR)


def dynamo_env_lines(rc: RenderContext) -> list[str]:
    """Where Dynamo processes find etcd (discovery) and NATS (messaging), which run on node 0: this
    host when the plan has one node, else node 0's address (NODE0_ADDRESS, as in the compose files)."""
    if rc.runtime != "dynamo":
        return []
    host = "127.0.0.1"
    if nodes_used(list(rc.instances)) > 1:
        host = "${NODE0_ADDRESS:?set NODE0_ADDRESS to the address of node 0, where etcd and NATS run}"
    return [f'export ETCD_ENDPOINTS="${{ETCD_ENDPOINTS:-http://{host}:{dyn.ETCD_PORT}}}"',
            f'export NATS_SERVER="${{NATS_SERVER:-nats://{host}:{dyn.NATS_PORT}}}"']


def _vary(values: list[str], name: str, arrays: dict[str, list[str]]) -> str:
    """A literal when every instance agrees, else a reference into an INSTANCE-indexed array."""
    if all(v == values[0] for v in values):
        return values[0]
    key = name
    n = 2
    while key in arrays and arrays[key] != values:
        key, n = f"{name}_{n}", n + 1
    arrays[key] = values
    return Expr(f'"${{{key}[$INSTANCE]}}"')


def _merge(cmds: list[Command]) -> tuple[Command, dict[str, list[str]], list[tuple[str, str]]]:
    """One command line for all instances of a role, with per-instance values as arrays."""
    arrays: dict[str, list[str]] = {}
    first = cmds[0]
    if any(len(c.after_program) != len(first.after_program) for c in cmds):
        raise AssertionError("instances of one role must share their command shape")
    merged: list[str] = []
    for k, tok in enumerate(first.after_program):
        vals = [c.after_program[k] for c in cmds]
        prev = first.after_program[k - 1] if k else "arg"
        if isinstance(tok, Expr) or all(v == tok for v in vals):
            merged.append(tok)
        else:
            merged.append(_vary(vals, var_name(prev) + "S", arrays))
    env = []
    for j, (name, _) in enumerate(first.env):
        env.append((name, _vary([c.env[j][1] for c in cmds], name + "S", arrays)))
    return Command(first.program, (), tuple(merged), first.flags), arrays, env


def _script(rc: RenderContext, title: str, insts: list[Instance], cmds: list[Command], *,
            head_needed: bool, ip_needed: bool, gpu_slices: list[str] | None) -> str:
    cmd, arrays, env = _merge(cmds)
    pre: list[str] = []
    if gpu_slices is not None:
        arrays = {"GPU_SLICES": gpu_slices, **arrays}
    n = len(insts)
    pre.append(f"# Which instance of this role to start (0-based, {n} in the plan).")
    if nodes_used(list(rc.instances)) > 1 and not insts[0].multinode:
        pre.append("# Run it on its node: " + ", ".join(f"instance {k} on node {i.first_node}"
                                                       for k, i in enumerate(insts)) + ".")
    pre.append('INSTANCE="${INSTANCE:-0}"')
    if n > 1 or arrays:
        pre.append(f"if (( INSTANCE < 0 || INSTANCE >= {n} )); then")
        pre.append(f'  echo "INSTANCE must be between 0 and {n - 1}" >&2')
        pre.append("  exit 2")
        pre.append("fi")
    for name, values in arrays.items():
        pre.append(f"{name}=(" + " ".join(array_item(v) for v in values) + ")")
    if gpu_slices is not None:
        pre.append('export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-${GPU_SLICES[$INSTANCE]}}"')
    if head_needed:
        pre.append(": \"${HEAD_ADDRESS:?set HEAD_ADDRESS to the address of node 0 of this instance}\"")
    if ip_needed:
        pre.append(": \"${HOST_IP:?set HOST_IP to the address of this host that the other nodes reach}\"")
    pre += dynamo_env_lines(rc)
    for name, value in env:
        pre.append(f"export {name}={quote(value)}")
    uses_config = any("${CONFIG_DIR}" in a for a in cmd.args if isinstance(a, Expr))
    if uses_config:
        pre.insert(0, 'CONFIG_DIR="${CONFIG_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"')
    return render_template("shell/serve.sh.j2", title=comment_safe(title), generator=rc.profile.generator.servewise,
                           uses_model=True, model_q=quote(rc.model_id), pre_lines=pre,
                           command_q=" ".join(quote(p) for p in cmd.program),
                           args_lines=arg_lines(list(cmd.args)))


def _role_scripts(rc: RenderContext, role: str) -> dict[str, str]:
    insts = rc.role_instances(role)
    multi_host = nodes_used(list(rc.instances)) > 1
    first = insts[0]
    files: dict[str, str] = {}
    ranks = list(range(first.nnodes)) if first.multinode else [None]
    for rank in ranks:
        cmds = [engines.worker_command(rc, i, _site(rc, i, rank or 0)) for i in insts]
        gpus = None if first.multinode else [",".join(map(str, i.gpus)) for i in insts]
        hw = rc.profile.hardware
        gpu = first.worker.gpu or (hw.prefill_gpu if role == "prefill" else None) or hw.gpu_id
        what = f"{first.worker.gpus_per_worker} x {gpu}"
        title = (f"{rc.model_id}: {rc.label}{' on Dynamo' if rc.runtime == 'dynamo' else ''}, "
                 f"{ROLE_LABEL[role]} instance(s) of {what}" +
                 ("" if rank is None else f", node {rank} of {first.nnodes}"))
        files[script_name(rc, role, rank)] = _script(
            rc, title, insts, cmds, head_needed=first.multinode, ip_needed=multi_host and role != "agg",
            gpu_slices=gpus)
    return files


def _url_host(rc: RenderContext, inst: Instance) -> str:
    if nodes_used(list(rc.instances)) == 1:
        return "127.0.0.1"
    return f"${{NODES[{inst.first_node}]}}"


def _front_script(rc: RenderContext) -> dict[str, str]:
    port = rc.service_port
    multi_host = nodes_used(list(rc.instances)) > 1
    nodes_line = None
    if multi_host and rc.runtime == "native":
        nodes_line = ('read -r -a NODES <<< "${NODE_ADDRESSES:?set NODE_ADDRESSES to the addresses of nodes 0..'
                      f'{nodes_used(list(rc.instances)) - 1}, space separated}}"')
    if rc.runtime == "dynamo":
        cmd = engines.frontend_command(rc, port)
        role, title = "frontend", f"{rc.model_id}: Dynamo frontend (OpenAI API on port {port})"
    else:
        def url(i: Instance) -> str:
            host = _url_host(rc, i)
            text = f"http://{host}:{i.port}"
            return Expr(f'"{text}"') if "$" in host else text
        prefill = [(url(i), i) for i in rc.role_instances("prefill")]
        decode = [url(i) for i in rc.role_instances("decode")]
        role, title = "router", f"{rc.model_id}: {rc.label} prefill/decode router on port {port}"
        if rc.engine_name == "trtllm":
            cmd = engines.router_command(rc, prefill, decode, port)
            cmd = type(cmd)(cmd.program, (), ("-c", Expr('"${CONFIG_FILE}"')), cmd.flags)
            pre = ([nodes_line] if nodes_line else []) + _trtllm_config_lines(rc)
        else:
            cmd = engines.router_command(rc, prefill, decode, port)
            pre = [nodes_line] if nodes_line else []
    if rc.runtime == "dynamo":
        pre = ([nodes_line] if nodes_line else []) + dynamo_env_lines(rc)
    text = render_template("shell/serve.sh.j2", title=comment_safe(title), generator=rc.profile.generator.servewise,
                           uses_model=False, model_q="", pre_lines=pre,
                           command_q=" ".join(quote(p) for p in cmd.program), args_lines=arg_lines(list(cmd.args)))
    return {script_name(rc, role): text}


def _trtllm_config_lines(rc: RenderContext) -> list[str]:
    """Write the ``trtllm-serve disaggregated`` configuration (worker URLs on this plan's hosts) at start."""
    from servewise.render.engines import trtllm
    from servewise.render.yamlout import dump_yaml

    def addr(i: Instance) -> str:
        return f"{_url_host(rc, i)}:{i.port}"

    doc = trtllm.disagg_config(rc, [addr(i) for i in rc.role_instances("prefill")],
                               [addr(i) for i in rc.role_instances("decode")], rc.service_port)
    lines = ['CONFIG_FILE="${CONFIG_FILE:-$(mktemp --suffix=.yaml)}"', 'cat > "$CONFIG_FILE" <<EOF']
    return lines + dump_yaml(doc).splitlines() + ["EOF"]


def render_shell(rc: RenderContext) -> dict[str, str]:
    files: dict[str, str] = {}
    roles = ["agg"] if rc.mode == "agg" else ["prefill", "decode"]
    for role in roles:
        files.update(_role_scripts(rc, role))
    if rc.mode == "disagg" or rc.runtime == "dynamo":
        files.update(_front_script(rc))
    for rel, text in engines.config_files(rc).items():
        files[f"shell/{rel}"] = text
    local = rc.local_model_dir
    if rc.mode == "agg" and rc.runtime == "native" and not rc.instances[0].multinode and \
            (local is None or local.startswith("/")):
        from servewise.render.targets.docker_run import render_docker_run

        files.update(render_docker_run(rc))
    return files
