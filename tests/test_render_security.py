"""Hostile strings reach the engine as one argv element and round-trip exactly in YAML; invalid
Kubernetes names are refused; no token or secret value appears in any artifact."""

from __future__ import annotations

import csv
import io
import re

import pytest
import yaml

from servewise.profiles import load_profile
from servewise.profiles.store import profile_from_dict, profile_to_dict
from servewise.render import render
from servewise.profiles.secrets import TOKEN_PATTERNS, token_kind
from servewise.render.errors import RenderError

from .conftest import EXAMPLES, ROOT, run_cli
from .validators.argv import parse_and_check
from .validators.artifacts import render_to, scratch
from .validators.commands import compose_argv, container_argv
from .validators.stubs import run_script
from .validators.tools import compose_config

MARKER = "PWNED-BY-SERVEWISE-TEST"
HOSTILE_DIR = (f"/srv/models/it's a \"model\" $(touch /tmp/{MARKER}) `touch /tmp/{MARKER}` "
               "x: [y] {z} & #h *a !t %p @q ,c ;e |p > ~ \\b")
HOSTILE_NAME = "o'brien \"llm\" $(id) `id` -- --port 1: [a, b] {c} #x ${HOME} \\n $$"


def hostile_profile():  # type: ignore[no-untyped-def]
    doc = profile_to_dict(load_profile(EXAMPLES / "llama-3.1-8b-local-folder-vllm.yaml"))
    doc["model"]["id"] = HOSTILE_DIR
    doc["model"]["served_name"] = HOSTILE_NAME
    doc["model"]["revision"] = "main; rm -rf / #"
    return profile_from_dict(doc)


def test_hostile_strings_are_one_argv_element_in_scripts(shared_dir):
    r = render_to(hostile_profile(), "hostile")
    for rel in ("shell/serve.sh", "shell/docker-run.sh"):
        cap = run_script(r.root / rel, {"INSTANCE": "1"}, f"hostile-{rel.replace('/', '-')}")
        argv = cap.argv
        if argv[0] == "docker":
            mount = argv[argv.index("--mount") + 1]
            fields = next(csv.reader(io.StringIO(mount)))
            assert fields == ["type=bind", f"source={HOSTILE_DIR}", "target=/models/model", "readonly"]
            argv = ["vllm", "serve", *argv[argv.index("vllm/vllm-openai:v0.33.0") + 1:]]
            expected_model = "/models/model"
        else:
            expected_model = HOSTILE_DIR
        parsed = parse_and_check(shared_dir, argv, {"vllm": "0.33.0"})
        assert parsed.positional == [expected_model]
        assert parsed.flags["--served-model-name"] == [[HOSTILE_NAME]]
        assert parsed.flags["--revision"] == [["main; rm -rf / #"]]
    assert not list(scratch().glob(f"**/{MARKER}"))
    import os

    assert not os.path.exists(f"/tmp/{MARKER}")


def test_hostile_strings_round_trip_in_compose_and_kubernetes(shared_dir):
    r = render_to(hostile_profile(), "hostile-yaml")
    cfg = compose_config(r.root / "compose" / "docker-compose.yaml")
    svc = cfg["services"]["worker-0"]
    argv = compose_argv(svc)
    assert argv[argv.index("--served-model-name") + 1] == HOSTILE_NAME
    sources = [v["source"].replace("$$", "$") for v in svc["volumes"] if v["target"] == "/models/model"]
    assert sources == [HOSTILE_DIR]
    dep = next(d for d in yaml.safe_load_all((r.root / "k8s" / "deployment.yaml").read_text())
               if d["kind"] == "Deployment")
    argv = container_argv(dep["spec"]["template"]["spec"]["containers"][0])
    parsed = parse_and_check(shared_dir, argv, {"vllm": "0.33.0"})
    assert parsed.flags["--served-model-name"] == [[HOSTILE_NAME]]
    basename = HOSTILE_DIR.rsplit("/", 1)[1]
    assert parsed.positional == [f"/models/{basename}"]
    values = yaml.safe_load((r.root / "helm" / "llm-d-modelservice-values.yaml").read_text())
    assert values["modelArtifacts"]["name"] == HOSTILE_NAME
    c = values["decode"]["containers"][0]
    assert container_argv(c)[container_argv(c).index("--served-model-name") + 1] == HOSTILE_NAME
    plan = (r.root / "plan.json").read_text()
    import json

    assert json.loads(plan)["model"]["id"] == HOSTILE_DIR


def test_newlines_are_refused_by_the_profile_and_harmless_in_render(shared_dir):
    doc = profile_to_dict(load_profile(EXAMPLES / "llama-3.1-8b-local-folder-vllm.yaml"))
    doc["model"]["served_name"] = "two\nlines"
    with pytest.raises(Exception, match="model.served_name"):
        profile_from_dict(doc)
    # Defence in depth: a profile built in code without validation still renders safely.
    p = load_profile(EXAMPLES / "llama-3.1-8b-local-folder-vllm.yaml")
    p = p.model_copy(update={"model": p.model.model_copy(update={"served_name": "two\nlines $(id)"})})
    r = render_to(p, "newline")
    cap = run_script(r.root / "shell" / "serve.sh", {}, "newline")
    assert cap.argv[cap.argv.index("--served-model-name") + 1] == "two\nlines $(id)"
    for rel, text in r.files.items():
        for line in text.splitlines():
            if line.lstrip().startswith("#"):
                assert "lines $(id)" not in line or "two" in line, (rel, line)


@pytest.mark.parametrize("setting, message", [
    ("deploy.name=3-model", "deploy.name '3-model' must start with a letter"),
    ("deploy.name=Model_A", "deploy.name"),
    ("deploy.namespace=Prod_NS", "deploy.namespace"),
    ("deploy.hf_token_secret=hf token", "deploy.hf_token_secret"),
    ("deploy.model_cache_pvc=" + "x" * 70, "deploy.model_cache_pvc"),
])
def test_invalid_kubernetes_names_are_refused(tmp_path, setting: str, message: str):
    r = run_cli("render", "--profile", str(EXAMPLES / "qwen3-32b-8xh200-vllm.yaml"), "--out", str(tmp_path / "o"),
                "--set", setting)
    assert r.code == 2 and message in r.err and r.err.count("\n") == 1, r.err
    assert not (tmp_path / "o").exists()


def test_no_token_in_any_golden_artifact():
    files = [p for p in (ROOT / "tests" / "golden").rglob("*") if p.is_file()]
    assert len(files) > 50
    for p in files:
        text = p.read_text()
        for kind, pat in TOKEN_PATTERNS.items():
            assert not pat.search(text), f"{p}: {kind}"
        assert not re.search(r"HF_TOKEN=(?!\.\.\.)[^\s\"'$]", text), p


@pytest.mark.parametrize("value", [
    "hf_" + "aB3" * 12, "ghp_" + "x1" * 18, "nvapi-" + "Z9" * 20, "sk-proj-" + "a1b2" * 6, "AKIAIOSFODNN7EXAMPLE",
    "-----BEGIN RSA PRIVATE KEY-----", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig",
    "https://user:pass@example.com/x", "api_key=0123456789abcdef",
])
def test_the_token_patterns_recognise_each_issuer(value: str):
    """The patterns the golden check uses (and the profile loader refuses with) catch each format."""
    assert token_kind(value) is not None


@pytest.mark.parametrize("value", [
    "meta-llama/Llama-3.1-8B-Instruct", "sha256:" + "0" * 64, "hf-internal-testing/tiny-random-gpt2",
    "sk-learn-compatible", "${HF_TOKEN}", "secretKeyRef", "/srv/models/task-abc123def456ghi789jkl0",
])
def test_the_token_patterns_leave_ordinary_values_alone(value: str):
    assert token_kind(value) is None


def test_a_token_in_the_environment_never_reaches_an_artifact(monkeypatch):
    secret = "hf_" + "Q" * 34
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", secret)
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for text in render(load_profile(path)).values():
            assert secret not in text


def test_helm_refuses_template_syntax_in_user_strings():
    doc = profile_to_dict(load_profile(EXAMPLES / "llama-3.1-8b-local-folder-vllm.yaml"))
    doc["model"]["served_name"] = "{{ .Values.secret }}"
    with pytest.raises(RenderError, match="Helm would evaluate"):
        render(profile_from_dict(doc), ["helm"])
