"""``compose/``: the plan with docker compose, one file per node it uses.

One service per engine instance (``worker-0``, ``prefill-0``, ``decode-0`` ...), the router (or, with
the Dynamo runtime, ``frontend`` plus ``etcd`` and ``nats``). Images are pinned, GPUs reserved by device
id, ``ipc: host``, the Hugging Face cache mounted, a local model folder mounted read-only, HF_TOKEN
taken from the environment, and a healthcheck on every HTTP server. Compose interpolates ``$`` in
values, so literal text has it doubled; only deliberate references (``${NODE1_ADDRESS:?...}``) keep one.
Disaggregated, Dynamo and multi-node plans use host networking (NIXL/UCX and NCCL need the hosts'
interfaces); a single-node aggregated plan publishes its ports instead.
"""

from __future__ import annotations

from typing import Any

from servewise.render import engines
from servewise.render.command import Command, Expr
from servewise.render.context import CONTAINER_MODEL_DIR, RenderContext
from servewise.render.engines import Site
from servewise.render.engines import dynamo as dyn
from servewise.render.errors import RenderError
from servewise.render.targets.docker_run import HF_CACHE_IN_CONTAINER, image_command
from servewise.render.topology import Instance, nodes_used
from servewise.render.yamlout import comment_safe, compose_escape, dump_yaml

CONFIG_IN_CONTAINER = "/config"


def _esc(text: str) -> str:
    return str(text) if isinstance(text, Expr) else compose_escape(str(text))


def _node_addr(k: int) -> Expr:
    return Expr(f"${{NODE{k}_ADDRESS:?set NODE{k}_ADDRESS to the address of node {k}}}")


def healthcheck(port: int, path: str = "/health") -> dict[str, Any]:
    # python3 is in every image used here; curl is not guaranteed.
    probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=5)"
    return {"test": ["CMD", "python3", "-c", compose_escape(probe)], "interval": "30s", "timeout": "10s",
            "retries": 5, "start_period": "30m"}


def _host_network(rc: RenderContext) -> bool:
    return rc.mode == "disagg" or rc.runtime == "dynamo" or nodes_used(list(rc.instances)) > 1


def _volumes(rc: RenderContext) -> list[dict[str, Any]]:
    vols: list[dict[str, Any]] = [{"type": "bind", "source": "${HF_HOME:-~/.cache/huggingface}",
                                   "target": HF_CACHE_IN_CONTAINER}]
    if rc.local_model_dir:
        vols.append({"type": "bind", "source": compose_escape(rc.local_model_dir), "target": CONTAINER_MODEL_DIR,
                     "read_only": True})
    for rel in engines.config_files(rc):
        vols.append({"type": "bind", "source": f"./{rel}", "target": f"{CONFIG_IN_CONTAINER}/{rel}",
                     "read_only": True})
    return vols


def _environment(rc: RenderContext, cmd: Command, node: int) -> list[str]:
    env = ["HF_TOKEN", f"HF_HOME={HF_CACHE_IN_CONTAINER}"]
    if rc.runtime == "dynamo":
        infra = "127.0.0.1" if node == 0 else _node_addr(0)
        env += [f"ETCD_ENDPOINTS=http://{infra}:{dyn.ETCD_PORT}", f"NATS_SERVER=nats://{infra}:{dyn.NATS_PORT}"]
    env += [f"{k}={_esc(v)}" for k, v in cmd.env]
    return env


def _service(rc: RenderContext, cmd: Command, image: str, gpus: tuple[int, ...] | None, publish: int | None,
             health_port: int | None, node: int = 0) -> dict[str, Any]:
    svc: dict[str, Any] = {"image": image, "command": [_esc(a) for a in image_command(rc, cmd)]}
    if rc.runtime == "dynamo":
        svc["working_dir"] = dyn.WORKING_DIR[rc.engine_name]
    if _host_network(rc):
        svc["network_mode"] = "host"
    elif publish is not None:
        svc["ports"] = [f"{publish}:{publish}"]
    if gpus is not None:
        svc["ipc"] = "host"
        svc["ulimits"] = {"memlock": -1, "stack": 67108864}
        svc["environment"] = _environment(rc, cmd, node)
        svc["volumes"] = _volumes(rc)
        svc["deploy"] = {"resources": {"reservations": {"devices": [
            {"driver": "nvidia", "device_ids": [str(g) for g in gpus], "capabilities": ["gpu"]}]}}}
    elif cmd.env or rc.runtime == "dynamo":
        svc["environment"] = _environment(rc, cmd, node)
    if health_port is not None:
        svc["healthcheck"] = healthcheck(health_port)
    svc["restart"] = "unless-stopped"
    return svc


def _worker_site(rc: RenderContext, inst: Instance, node: int) -> Site:
    head = "127.0.0.1" if nodes_used(list(rc.instances)) == 1 else _node_addr(inst.first_node)
    host_ip = _node_addr(node) if nodes_used(list(rc.instances)) > 1 and rc.mode == "disagg" else None
    return Site(model=rc.container_model, port=inst.port, node_rank=node - inst.first_node, head=head,
                host_ip=host_ip, config_dir=CONFIG_IN_CONTAINER)


def _url(rc: RenderContext, inst: Instance) -> str:
    host = "127.0.0.1" if inst.first_node == 0 else _node_addr(inst.first_node)
    text = f"http://{host}:{inst.port}"
    return Expr(text) if isinstance(host, Expr) else text


def _node_services(rc: RenderContext, node: int) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = {}
    if node == 0 and rc.runtime == "dynamo":
        services["etcd"] = {"image": dyn.ETCD_IMAGE, "network_mode": "host",
                            "environment": ["ALLOW_NONE_AUTHENTICATION=yes",
                                            f"ETCD_LISTEN_CLIENT_URLS=http://0.0.0.0:{dyn.ETCD_PORT}",
                                            f"ETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:{dyn.ETCD_PORT}"],
                            "restart": "unless-stopped"}
        services["nats"] = {"image": dyn.NATS_IMAGE, "network_mode": "host", "command": ["-js"],
                            "restart": "unless-stopped"}
    workers: list[str] = []
    for inst in rc.instances:
        if node not in inst.nodes:
            continue
        cmd = engines.worker_command(rc, inst, _worker_site(rc, inst, node))
        head = node == inst.first_node
        http = head and (rc.runtime == "native")
        name = inst.name if not inst.multinode else f"{inst.name}-node{node - inst.first_node}"
        svc = _service(rc, cmd, rc.image, inst.gpus, inst.port if http else None,
                       inst.port if http else None, node)
        if rc.runtime == "dynamo":
            svc["depends_on"] = {"etcd": {"condition": "service_started"}, "nats": {"condition": "service_started"}} \
                if node == 0 else {}
            if not svc["depends_on"]:
                del svc["depends_on"]
        services[name] = svc
        if http:
            workers.append(name)
    if node == 0 and (rc.mode == "disagg" or rc.runtime == "dynamo"):
        port = rc.service_port
        if rc.runtime == "dynamo":
            cmd = engines.frontend_command(rc, port)
            svc = _service(rc, cmd, rc.image, None, port, port)
            svc["depends_on"] = {"etcd": {"condition": "service_started"}, "nats": {"condition": "service_started"}}
            services["frontend"] = svc
        else:
            cmd = engines.router_command(rc, [(_url(rc, i), i) for i in rc.role_instances("prefill")],
                                         [_url(rc, i) for i in rc.role_instances("decode")], port)
            image = engines.module(rc).ROUTER_IMAGE or rc.image
            svc = _service(rc, cmd, image, None, port, port)
            svc["depends_on"] = {w: {"condition": "service_healthy"} for w in workers}
            if rc.engine_name == "trtllm":
                svc["configs"] = [{"source": "trtllm-disagg", "target": f"{CONFIG_IN_CONTAINER}/trtllm-disagg.yaml"}]
            services["router"] = svc
    return services


def _configs(rc: RenderContext) -> dict[str, Any]:
    """Files compose writes into containers from inline content (interpolated like the rest)."""
    if not (rc.engine_name == "trtllm" and rc.mode == "disagg" and rc.runtime == "native"):
        return {}
    from servewise.render.engines import trtllm

    def addr(i: Instance) -> str:
        return f"{'127.0.0.1' if i.first_node == 0 else _node_addr(i.first_node)}:{i.port}"

    doc = trtllm.disagg_config(rc, [addr(i) for i in rc.role_instances("prefill")],
                               [addr(i) for i in rc.role_instances("decode")], rc.service_port)
    return {"trtllm-disagg": {"content": dump_yaml(doc)}}


def compose_files(rc: RenderContext) -> list[tuple[str, int]]:
    n = nodes_used(list(rc.instances))
    if n == 1:
        return [("compose/docker-compose.yaml", 0)]
    return [(f"compose/docker-compose.node{k}.yaml", k) for k in range(n)]


def render_compose(rc: RenderContext) -> dict[str, str]:
    local = rc.local_model_dir
    if local and not local.startswith(("/", "~/")):
        raise RenderError(f"model.id {local!r}: docker compose resolves relative paths against the compose file's "
                          "folder; give the model folder as an absolute path (or ~/...)")
    files: dict[str, str] = {}
    entries = compose_files(rc)
    for rel, node in entries:
        header = [f"{comment_safe(rc.model_id)}: {rc.label}"
                  f"{' on Dynamo ' + dyn.VERSION if rc.runtime == 'dynamo' else ''}, "
                  f"{'aggregated' if rc.mode == 'agg' else 'disaggregated prefill/decode'}"
                  + (f", node {node} of {len(entries)}" if len(entries) > 1 else "") + ".",
                  "Generated by servewise from a profile. HF_TOKEN is taken from your environment.",
                  f"Run: HF_TOKEN=... docker compose -f {rel.split('/', 1)[1]} up -d"]
        if len(entries) > 1:
            header.append("Set NODE<k>_ADDRESS for every node this file names (node 0 is the head).")
        doc: dict[str, Any] = {"name": rc.name, "services": _node_services(rc, node)}
        if node == 0 and _configs(rc):
            doc["configs"] = _configs(rc)
        files[rel] = dump_yaml(doc, header="\n".join(header))
    for rel, text in engines.config_files(rc).items():
        files[f"compose/{rel}"] = text
    return files
