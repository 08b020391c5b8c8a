"""Hostile inputs at every front door: each exits with its typed code and one stderr line that names
the culprit, shows no traceback, runs nothing and writes nothing (cases: tests/hostile_cases.py)."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from .conftest import EXAMPLES, run_cli, run_cli_subprocess
from .hostile_cases import ALL, MB, Case, listing
from .validators.stubs import stub_bin


@pytest.mark.parametrize("case", ALL, ids=lambda c: f"{c.category.replace(' ', '-')}:{c.id}")
def test_hostile_input(case: Case, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # anything a payload managed to run would land here
    argv = case.setup(work, monkeypatch)
    before = listing(work)
    r = run_cli(*argv)
    assert r.code == case.code, r.err
    assert r.err.count("\n") == 1 and r.err.endswith("\n"), r.err
    assert r.err.startswith("servewise: ") and "Traceback" not in r.err
    assert case.needle in r.err, r.err
    assert r.err.isprintable() or r.err[:-1].isprintable(), repr(r.err)
    assert listing(work) == before, "a hostile input must leave nothing behind"
    assert not list(tmp_path.rglob("PWNED"))


def test_the_suite_covers_every_category_with_fifty_cases():
    counts = Counter(c.category for c in ALL)
    assert len(ALL) >= 50 and len({c.id for c in ALL}) == len(ALL)
    assert set(counts) == {"profile file", "profile field", "flag", "checkpoint", "nvml"}
    assert min(counts.values()) >= 8, counts


def test_a_100_mb_profile_is_refused_by_the_real_process_without_reading_it(tmp_path):
    p = tmp_path / "big.yaml"
    with open(p, "wb") as f:
        f.truncate(100 * MB)
    r = run_cli_subprocess("--profile", str(p), "--out", str(tmp_path / "out"), timeout=60)
    assert r.code == 2 and r.err.count("\n") == 1 and "larger than 128 KiB" in r.err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["big.yaml"]


def test_internal_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch):
    from servewise.wizard import cli

    def bug(_args):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("a bug\nwith a second line")

    monkeypatch.setattr(cli, "_dispatch", bug)
    r = run_cli("gpus")
    assert r.code == 70 and r.err.count("\n") == 1 and "ZeroDivisionError: a bug with a second line" in r.err
    assert "--debug" in r.err
    with pytest.raises(ZeroDivisionError):
        run_cli("--debug", "gpus")


# ----------------------------------------------------------------------------- acceptance: "x; rm -rf ~"
SHELL_ID = "x; rm -rf ~"


def _profile_with_model_id(tmp_path, model_id: str):  # type: ignore[no-untyped-def]
    doc = yaml.safe_load((EXAMPLES / "llama-3.1-8b-local-folder-vllm.yaml").read_text())
    doc["model"]["id"] = model_id
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def test_a_shell_command_as_model_id_is_refused_with_the_field_named(tmp_path):
    p = _profile_with_model_id(tmp_path, SHELL_ID)
    r = run_cli("--profile", str(p), "--out", str(tmp_path / "out"))
    assert r.code == 2 and r.err.count("\n") == 1
    assert f"{p}: model.id: 'x; rm -rf ~' is neither a Hugging Face id" in r.err
    assert not (tmp_path / "out").exists()


def test_a_shell_command_in_a_model_folder_reaches_the_engine_as_one_argument(tmp_path):
    """The same string inside a local folder path is legal; the scripts pass it intact and run nothing."""
    folder = f"/srv/models/{SHELL_ID}"
    p = _profile_with_model_id(tmp_path, folder)
    out = tmp_path / "out"
    r = run_cli("--profile", str(p), "--out", str(out))
    assert r.code == 0, r.err
    home = tmp_path / "home"
    home.mkdir()
    (home / "canary").write_text("still here\n")
    for script in ("serve.sh", "docker-run.sh"):
        proc = subprocess.run(["bash", "-n", str(out / "shell" / script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        stub_out = tmp_path / f"{script}.argv"
        env = {"PATH": f"{stub_bin()}:/usr/bin:/bin", "HOME": str(home), "STUB_OUT": str(stub_out)}
        proc = subprocess.run(["bash", str(out / "shell" / script)], env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        argv = Path(f"{stub_out}.argv").read_bytes().split(b"\0")[:-1]
        if script == "serve.sh":
            assert argv[1:3] == [b"serve", folder.encode()]
        else:
            assert f"type=bind,source={folder},target=/models/model,readonly".encode() in argv
    assert (home / "canary").read_text() == "still here\n", "nothing was executed"
    compose = yaml.safe_load((out / "compose" / "docker-compose.yaml").read_text())
    volumes = [v for svc in compose["services"].values() for v in svc.get("volumes", [])]
    assert any(isinstance(v, dict) and v.get("source") == folder for v in volumes)
    assert json.loads((out / "plan.json").read_text())["model"]["id"] == folder


def test_bench_results_never_keep_a_token_an_endpoint_echoed(tmp_path, monkeypatch):
    import servewise.wizard.bench.report as report

    token = "hf_" + "Zq7" * 12
    monkeypatch.setattr(report, "json_text", lambda r: f'{{"error": "401: bad token {token}"}}\n')
    monkeypatch.setattr(report, "csv_text", lambda r: f"level,error\n1,Authorization: Bearer {token}\n")

    class Report:
        def model_copy(self, update):  # type: ignore[no-untyped-def]
            return self

    report.save_results(Report(), tmp_path / "r.json")
    for name in ("r.json", "r.csv"):
        text = (tmp_path / name).read_text()
        assert token not in text and "[redacted]" in text, text


def test_what_a_driver_reports_is_cleaned_before_it_is_printed_or_stored(tmp_path, monkeypatch):
    """A GPU name with an escape sequence, a bidi override and a newline, and a nonsense memory size:
    detection prints and records a clean, bounded name and treats the size as not reported."""
    import servewise.profiles.detect as detect_module

    from . import fake_nvml as fake

    name = "NVIDIA H100\x1b]0;owned\x07 \u202eXX\n$(id)" + "N" * 500
    scenario = fake.FakeNvml([fake.FakeDevice(name, 10**12)])
    monkeypatch.setattr(detect_module, "_import_nvml", lambda: scenario)
    r = run_cli("detect", "--json")
    assert r.code == 0 and r.out.isascii() and "\\u001b" not in r.out and "\\u202e" not in r.out
    gpu = json.loads(r.out)["gpus"][0]
    assert gpu["name"].startswith("NVIDIA H100]0;owned XX $(id)NNN") and len(gpu["name"]) == 96
    assert gpu["memory_total_bytes"] is None
    r = run_cli("detect")
    assert r.code == 0 and (r.out + r.err).replace("\n", "").isprintable()
