"""One line per error, naming where the problem is: ``FILE: FIELD: message`` for a profile, the flag
for a request given as flags, and exit codes from one mapping."""

from __future__ import annotations

import pytest
import yaml

from servewise.estimator.errors import ConfigError
from servewise.perfdata.errors import DataError, DeviceError, ServewiseError, UnknownIdError, located, one_line
from servewise.profiles import ProfileError
from servewise.render.errors import RenderError
from servewise.wizard.exitcodes import ExitCode, exit_code_for, exit_code_for_signal
from servewise.wizard.flags import flag_for

from .conftest import EXAMPLES, run_cli

PROFILE = EXAMPLES / "qwen3-32b-8xh200-vllm.yaml"
FLAGS = ["estimate", "--model", "Qwen/Qwen3-32B", "--gpu", "h200-sxm", "--gpus", "8"]


def _profile(tmp_path, **fields):  # type: ignore[no-untyped-def]
    doc = yaml.safe_load(PROFILE.read_text())
    for dotted, value in fields.items():
        node = doc
        *head, last = dotted.split("__")
        for k in head:
            node = node[k]
        node[last] = value
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(p)


@pytest.mark.parametrize("flags, profile_fields, flag_line, field_line", [
    (["--tp", "3"], {"plan__worker__tp": 3, "plan__replicas": 1},
     "--tp: tensor parallel 3 does not divide", "plan.worker.tp: tensor parallel 3 does not divide"),
    (["--max-model-len", "10000000"], {"model__max_model_len": 10_000_000},
     "--max-model-len: 10000000 exceeds the model's", "model.max_model_len: 10000000 exceeds the model's"),
    (["--engine-version", "0.0.1"], {"engine__version": "0.0.1"},
     "--engine-version: unknown vLLM version '0.0.1'", "engine.version: unknown vLLM version '0.0.1'"),
    (["--isl", "40000", "--osl", "1", "--max-model-len", "32768"], {"workload__isl": 40000},
     "--isl: isl + osl = 40001 exceeds max_model_len 32768", "workload.isl: isl + osl"),
])
def test_the_same_problem_names_the_flag_or_the_profile_field(tmp_path, flags, profile_fields, flag_line,
                                                              field_line):
    r = run_cli(*FLAGS, *flags)
    assert r.code in (2, 3) and r.err == f"servewise: {r.err[11:]}" and r.err.count("\n") == 1
    assert r.err.startswith(f"servewise: {flag_line}"), r.err
    p = _profile(tmp_path, **profile_fields)
    r = run_cli("estimate", "--profile", p)
    assert r.err.startswith(f"servewise: {p}: {field_line}"), r.err


def test_a_profile_problem_found_while_rendering_names_the_file(tmp_path):
    p = _profile(tmp_path, model__served_name="-rf")
    r = run_cli("render", "--profile", p, "--out", str(tmp_path / "out"))
    assert r.code == 2 and r.err.startswith(f"servewise: {p}: model.served_name '-rf' must not start with '-'")


def test_an_output_problem_names_the_output_not_the_profile(tmp_path):
    (tmp_path / "out").write_text("x")
    r = run_cli("render", "--profile", str(PROFILE), "--out", str(tmp_path / "out"))
    assert r.err == f"servewise: {tmp_path / 'out'}: exists and is not a directory\n"


def test_messages_are_one_printable_line():
    e = ServewiseError("two\nlines\tand an \x1b[31mescape\u202e", field="model.id", path="p.yaml")
    assert str(e) == "p.yaml: model.id: two lines and an \\x1b[31mescape\\u202e"
    assert one_line("a\r\nb") == "a b"


def test_located_fills_only_what_is_missing():
    with pytest.raises(ConfigError) as caught, located(path="p.yaml", field="plan"):
        raise ConfigError("x", field="plan.worker.tp")
    assert str(caught.value) == "p.yaml: plan.worker.tp: x"


def test_fields_map_to_the_flags_that_set_them():
    assert flag_for("plan.decode.tp") == "--decode-tp"
    assert flag_for("plan.prefill.max_num_seqs") == "--max-num-seqs"
    assert flag_for("model.architecture.hidden_size") == "--model"
    assert flag_for("deploy.namespace") is None


@pytest.mark.parametrize("flags, named", [
    (["--tp", "2"], "--tp/--pp/--dp/--replicas: uses 2 GPUs but"),
    (["--mode", "disagg"], "--prefill-tp/--prefill-workers/--decode-tp/--decode-workers/--replicas (plan): "
                           "uses 2 GPUs (1 x (prefill 1 + decode 1)) but"),
])
def test_a_plan_too_big_for_the_gpus_names_the_flags_of_its_mode(flags, named):
    r = run_cli("estimate", "--model", "Qwen/Qwen3-0.6B", "--gpu", "h100-sxm", "--gpus", "1", *flags)
    assert r.code == 2 and r.err.count("\n") == 1 and named in r.err, r.err


@pytest.mark.parametrize("err, code", [
    (ProfileError("x"), ExitCode.USAGE), (ConfigError("x"), ExitCode.USAGE), (RenderError("x"), ExitCode.USAGE),
    (DataError("x"), ExitCode.DATA), (UnknownIdError("GPU", "x", ["a"]), ExitCode.DATA),
    (DeviceError("x"), ExitCode.DEVICE), (KeyboardInterrupt(), ExitCode.INTERRUPT),
])
def test_one_mapping_from_error_to_exit_code(err, code):
    assert exit_code_for(err) == code


def test_signals_exit_128_plus_their_number():
    assert (exit_code_for_signal(2), exit_code_for_signal(15), exit_code_for_signal(1)) == (130, 143, 129)


def test_an_error_quoting_a_huge_value_stays_readable(monkeypatch):
    """The start (where) and the end (what to do) of the line survive; the middle of the value goes."""
    from servewise.perfdata.errors import UsageError
    from servewise.wizard import cli

    def huge(_args):  # type: ignore[no-untyped-def]
        raise UsageError(f"--x: {'v' * 50_000!r} is wrong; use a short value")

    monkeypatch.setattr(cli, "_dispatch", huge)
    r = run_cli("gpus")
    assert r.code == 2 and r.err.count("\n") == 1 and len(r.err) < 2100
    assert r.err.startswith("servewise: --x: 'vvv") and r.err.endswith("is wrong; use a short value\n")
    assert "characters cut" in r.err
