"""The CLI contract: exit codes, JSON on stdout only, one-line errors, byte-identical replay."""

from __future__ import annotations

import json

import pytest

from .conftest import example_profiles, run_cli

ESTIMATE_8B = ["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm", "--gpus", "1",
               "--max-model-len", "16000", "--json"]
MEMORY_KEYS = {"weights_bytes", "kv_cache_bytes", "activation_bytes", "cuda_graph_bytes", "other_bytes",
               "total_bytes", "budget_bytes", "kv_cache_tokens", "max_concurrency"}
PERF_KEYS = ("ttft_ms", "tpot_ms", "output_tokens_per_s", "output_tokens_per_s_per_gpu", "tokens_per_s_per_user",
             "requests_per_s", "concurrency")


def test_estimate_json_has_the_contract_keys():
    r = run_cli(*ESTIMATE_8B)
    assert r.code == 0, r.err
    assert r.err == ""
    doc = json.loads(r.out)
    assert doc["feasible"] is True
    assert MEMORY_KEYS <= set(doc["memory"])
    assert "perf" in doc and "assumptions" in doc and "provenance" in doc
    for key in PERF_KEYS:
        assert doc["perf"][key] > 0, key
        low, high = doc["perf"][f"{key}_range"]
        assert low <= doc["perf"][key] <= high, key


def test_estimate_states_the_workload_its_performance_assumes():
    doc = json.loads(run_cli(*ESTIMATE_8B).out)
    assert any("2048 input + 256 output tokens per request" in a for a in doc["assumptions"]), doc["assumptions"]
    r = run_cli(*ESTIMATE_8B[:-1], "--max-model-len", "1000")
    assert r.code == 0 and "- performance: 875 input + 125 output tokens per request" in r.out, r.out


@pytest.mark.parametrize("argv, expect", [
    (["--model", "meta-llama/Llama-3.1-8B-Instruc"], "meta-llama/Llama-3.1-8B-Instruct"),
    (["--gpu", "h100"], "h100-sxm"),
])
def test_unknown_ids_exit_3_with_suggestions(argv, expect):
    base = {"--model": "meta-llama/Llama-3.1-8B-Instruct", "--gpu": "h100-sxm"}
    base.update(dict(zip(argv[::2], argv[1::2])))
    r = run_cli("estimate", *[x for kv in base.items() for x in kv], "--json")
    assert r.code == 3
    assert r.out == ""
    assert r.err.count("\n") == 1 and expect in r.err


def test_bad_flag_is_one_line_usage_error():
    r = run_cli("estimate", "--model", "x", "--gpus", "zero")
    assert r.code == 2 and r.err.count("\n") == 1 and "--gpus" in r.err


def test_no_tty_prints_a_hint_and_exits_2():
    r = run_cli()
    assert r.code == 2 and "terminal" in r.err


@pytest.mark.parametrize("path", example_profiles(), ids=lambda p: p.name)
def test_replay_is_byte_identical_and_refuses_overwrite(tmp_path, path):
    a, b = tmp_path / "a", tmp_path / "b"
    r = run_cli("--profile", str(path), "--out", str(a))
    assert r.code == 0, r.err
    assert run_cli("--profile", str(path), "--out", str(b)).code == 0
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    names = {str(f) for f in files_a}
    assert {"plan.json", "README.md"} <= names
    assert any(n.startswith("shell/serve") for n in names) and any(n.startswith("compose/docker-compose") for n in names)
    for f in files_a:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    before = {f: (a / f).stat().st_mtime_ns for f in files_a}
    r = run_cli("--profile", str(path), "--out", str(a))
    assert r.code == 2 and "--force" in r.err
    assert {f: (a / f).stat().st_mtime_ns for f in files_a} == before
    assert run_cli("--profile", str(path), "--out", str(a), "--force").code == 0
    assert all((a / f).stat().st_mode & 0o111 for f in files_a if f.suffix == ".sh")


def test_every_positional_argument_says_what_it_is():
    """`--help` of every (sub)command explains its positional arguments (`profile diff -` reads stdin)."""
    import argparse

    from servewise.wizard.cli import build_parser

    def parsers(p: argparse.ArgumentParser):
        yield p
        for act in p._actions:
            if isinstance(act, argparse._SubParsersAction):
                for child in act.choices.values():
                    yield from parsers(child)

    bare = [f"{p.prog} {a.dest}" for p in parsers(build_parser()) for a in p._actions
            if not a.option_strings and not isinstance(a, argparse._SubParsersAction) and not a.help]
    assert bare == []
