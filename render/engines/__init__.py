"""Per-engine, per-version mapping from a plan's instances to command lines.

Each engine module turns an :class:`Instance` placed at a :class:`Site` (what the target says
about where the process runs) into a :class:`Command`. The modelled values are the emitted
values: batch limits, memory fraction, maximum length and parallel sizes come straight from
the plan. ``validate`` builds every command once at a neutral site and checks it (and the
profile's extra arguments) against the pinned version's accepted-flags list, so an artifact
that an engine would reject is never written.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace

from servewise.render.command import Command, Expr
from servewise.render.context import RenderContext
from servewise.render.errors import RenderError
from servewise.render.flagindex import check_command, check_extra_args, load_index
from servewise.render.topology import Instance


@dataclass(frozen=True)
class Site:
    """Where a process runs, in the target's own terms."""

    model: str                          # model argument: HF id, container path, or an Expr
    port: int | str                     # HTTP port to bind
    node_rank: int | str = 0            # node of a multi-node instance this process is
    head: str = "127.0.0.1"             # address of the instance's first node
    host_ip: str | None = None          # this host's address for KV side channels (None: engine default)
    config_dir: str = "/config"         # where the TensorRT-LLM YAML files are
    orchestrated: bool = False          # an operator (Dynamo) adds the multi-node flags itself


def module(rc: RenderContext):  # type: ignore[no-untyped-def]
    """The engine's mapping module (``render/engines/<engine>.py``)."""
    return importlib.import_module(f"servewise.render.engines.{rc.engine_name}")


def worker_command(rc: RenderContext, inst: Instance, site: Site) -> Command:
    """The command of one instance (one node of it when it spans nodes)."""
    from servewise.render.engines import dynamo

    cmd = dynamo.worker_command(rc, inst, site) if rc.runtime == "dynamo" else \
        module(rc).worker_command(rc, inst, site)
    return replace(cmd, extra_args=tuple(getattr(rc.profile.deploy.extra_args, inst.role)))


def router_command(rc: RenderContext, prefill: list[tuple[str, Instance]], decode: list[str],
                   port: int | str) -> Command:
    """The front door of a disaggregated plan: the engine's P/D router (native runtime)."""
    return module(rc).router_command(rc, prefill, decode, port)


def frontend_command(rc: RenderContext, port: int | str) -> Command:
    from servewise.render.engines import dynamo

    return dynamo.frontend_command(rc, port)


def config_files(rc: RenderContext) -> dict[str, str]:
    """Engine configuration files every target ships beside its commands (TensorRT-LLM YAML)."""
    return module(rc).config_files(rc) if hasattr(module(rc), "config_files") else {}


_LABELS = {"vllm": "vLLM", "sglang": "SGLang", "trtllm": "TensorRT-LLM", "dynamo": "Dynamo",
           "vllm-router": "vllm-router", "sglang-router": "sglang-router"}


def flags_label(key: str) -> str:
    """``vllm-0.33.0`` -> ``vLLM 0.33.0``; ``dynamo-1.6.1:vllm`` -> ``dynamo.vllm (Dynamo 1.6.1)``."""
    stem, _, command = key.partition(":")
    name, _, version = stem.rpartition("-")
    label = f"{_LABELS.get(name, name)} {version}"
    if command:
        prog = {"serve": "trtllm-serve", "disaggregated": "trtllm-serve disaggregated"}.get(command,
                                                                                          f"dynamo.{command}")
        label = f"{prog} ({label})"
    return label


def flag_index(key: str):  # type: ignore[no-untyped-def]
    """The accepted-flags list of a command; Dynamo workers also accept the pinned engine's flags."""
    from servewise.render.engines import dynamo

    index = load_index(key, flags_label(key))
    stem, _, command = key.partition(":")
    if stem == dynamo.FLAGS and command in dynamo.PASSTHROUGH:
        index = index.merged(load_index(dynamo.PASSTHROUGH[command]), flags_label(key))
    return index


def check(cmd: Command, where: str, extra_where: str = "") -> None:
    index = flag_index(cmd.flags)
    check_command(index, list(cmd.args), where)
    if cmd.extra_args:
        check_extra_args(index, list(cmd.extra_args), list(cmd.args), extra_where, cmd.reserved)


def validate(rc: RenderContext) -> None:
    """Check every command the plan produces against the pinned flag lists (RenderError on failure)."""
    for inst in rc.instances:
        for rank in range(inst.nnodes):
            site = Site(model="org/model", port=8000, node_rank=rank, head="10.0.0.1", host_ip="10.0.0.2")
            cmd = worker_command(rc, inst, site)
            check(cmd, f"{inst.name} command", f"deploy.extra_args.{inst.role}")
    if rc.runtime == "dynamo":
        check(frontend_command(rc, 8000), "frontend command")
    elif rc.mode == "disagg":
        prefill = [(f"http://10.0.0.1:{i.port}", i) for i in rc.role_instances("prefill")]
        decode = [f"http://10.0.0.1:{i.port}" for i in rc.role_instances("decode")]
        check(router_command(rc, prefill, decode, 8000), "router command")


# Ports a process binds, by the flag or environment variable that sets them.
_PORT_FLAGS = ("--port", "--http-port", "--disaggregation-bootstrap-port", "--master-port", "--data-parallel-rpc-port")
_PORT_ENV = ("VLLM_NIXL_SIDE_CHANNEL_PORT", "VLLM_MOONCAKE_BOOTSTRAP_PORT", "DYN_SYSTEM_PORT")


def _bound_ports(cmd: Command, dp: int = 1) -> list[tuple[int, str]]:
    """(port, what sets it) for every port ``cmd`` binds; a NIXL side channel takes one port per DP rank."""
    out = [(int(cmd.args[i + 1]), flag) for i, flag in enumerate(cmd.args[:-1]) if flag in _PORT_FLAGS]
    out += [(int(cmd.args[i + 1].rsplit(":", 1)[1]), flag) for i, flag in enumerate(cmd.args[:-1])
            if flag == "--dist-init-addr"]     # SGLang's rendezvous HOST:PORT
    for name, value in cmd.env:
        if name in _PORT_ENV:
            n = dp if name == "VLLM_NIXL_SIDE_CHANNEL_PORT" else 1
            out += [(int(value) + k, name) for k in range(n)]
    return out


def check_ports(rc: RenderContext) -> None:
    """No two processes of the plan bind one port on one host (the scripts and compose services share
    each host's network): the HTTP ports that start at ``deploy.service_port`` must stay clear of the
    fixed ones (NIXL side channels from 5600, bootstrap ports from 8998, Dynamo's system ports from 9090,
    etcd and NATS, rendezvous ports from 20000)."""
    from servewise.render.engines import dynamo

    taken: dict[tuple[int, int], str] = {}

    def take(node: int, port: int, what: str) -> None:
        other = taken.setdefault((node, port), what)
        if other != what:
            raise RenderError(f"port {port} on node {node} would be both {other} and {what}; choose another "
                              "service port", field="deploy.service_port")

    port = rc.service_port
    if rc.runtime == "dynamo":
        take(0, port, "the frontend's --http-port")
        for fixed, what in ((dynamo.ETCD_PORT, "etcd"), (dynamo.ETCD_PORT + 1, "etcd (peers)"),
                            (dynamo.NATS_PORT, "NATS")):
            take(0, fixed, what)
    elif rc.mode == "disagg":
        take(0, port, "the router's --port")
    for inst in rc.instances:
        for rank in range(inst.nnodes):
            site = Site(model="org/model", port=inst.port, node_rank=rank, head="10.0.0.1", host_ip="10.0.0.2")
            for p, what in _bound_ports(worker_command(rc, inst, site), inst.worker.dp):
                take(inst.first_node + rank, p, f"{inst.name}'s {what}")


def ref(name: str) -> Expr:
    """A shell variable reference (used for values the script computes)."""
    return Expr(f'"${{{name}}}"')


__all__ = ["Command", "RenderError", "Site", "config_files", "frontend_command", "router_command", "validate",
           "worker_command"]
