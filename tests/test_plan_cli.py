"""``servewise plan``: the acceptance scenarios end to end (JSON shape, infeasible SLA with advice, save and
replay without drift), the human summary, and the imports the hot path must not pay for."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from servewise.profiles import load_profile

from .conftest import run_cli

SCENARIO_A = ["plan", "--model", "Qwen/Qwen3-32B", "--gpu", "h200-sxm", "--gpus", "8", "--isl", "4000", "--osl", "500",
              "--ttft-ms", "300", "--tpot-ms", "10", "--engine", "trtllm"]
SCENARIO_B = ["plan", "--model", "meta-llama/Llama-3.1-70B-Instruct", "--gpu", "h100-sxm", "--gpus", "16",
              "--isl", "2048", "--osl", "256", "--ttft-ms", "500", "--tpot-ms", "30", "--engine", "vllm"]
RANGED = ("ttft_ms", "tpot_ms", "output_tokens_per_s_per_gpu", "tokens_per_s_per_user")


def test_scenario_a_json_has_both_modes_front_and_verdict():
    r = run_cli(*SCENARIO_A, "--json")
    assert r.code == 0 and r.err == ""
    doc = json.loads(r.out)
    assert doc["feasible"] and doc["load"]["kind"] == "max_throughput"
    assert doc["sla"] == {"ttft_ms": 300.0, "tpot_ms": 10.0, "percentile": "mean",
                          "statistic": doc["sla"]["statistic"]}
    for mode in ("agg", "disagg"):
        best = doc["best"][mode]
        assert best is not None and best["meets_sla"], mode
        plan = best["plan"]
        workers = [plan["worker"]] if mode == "agg" else [plan["prefill"], plan["decode"]]
        for w in workers:
            assert {"tp", "pp", "dp", "ep", "workers", "max_num_seqs", "max_num_batched_tokens",
                    "gpu_memory_utilization"} <= set(w)
        perf = best["perf"]
        for k in RANGED:
            lo, hi = perf[f"{k}_range"]
            assert lo <= perf[k] <= hi, (mode, k)
        assert perf["ttft_ms"] <= 300 and perf["tpot_ms"] <= 10
        assert best["gpus_used"] <= 8 and best["output_tokens_per_s_per_gpu_charged"] == best["score"]
    assert doc["pareto"] and all(c["perf"] for c in doc["pareto"])
    assert re.search(r"(aggregated|disaggregated) wins: \d+\.\d\dx", doc["verdict"])
    assert doc["comparison"]["winner"] in ("agg", "disagg")
    assert doc["chosen"] == doc["best"][doc["comparison"]["winner"]]
    assert doc["chosen_estimate"]["plan"] == doc["chosen"]["plan"]


def test_impossible_sla_exits_1_with_checked_advice():
    r = run_cli(*[a if a != "10" else "1" for a in SCENARIO_A], "--json")
    assert r.code == 1 and r.err == ""
    doc = json.loads(r.out)
    assert not doc["feasible"] and doc["chosen"] is None and "TPOT 1 ms" in doc["reason"]
    kinds = {a["kind"]: a for a in doc["advice"]}
    assert "relax_tpot" in kinds
    relax = kinds["relax_tpot"]
    assert relax["value"] > 1 and re.search(r"TPOT target of [\d.]+ ms", relax["message"])
    assert relax["best"]["perf"]["tpot_ms"] <= relax["value"]
    # the advice holds when followed
    again = run_cli(*[a if a != "10" else f"{relax['value']:g}" for a in SCENARIO_A], "--json")
    assert again.code == 0 and json.loads(again.out)["feasible"]


def test_save_then_replay_renders_without_drift(tmp_path):
    saved = tmp_path / "p.yaml"
    r = run_cli(*SCENARIO_B, "--save", str(saved), "--json")
    assert r.code == 0 and r.err == ""
    chosen = json.loads(r.out)["chosen"]
    p = load_profile(saved)
    assert p.engine.version == json.loads(r.out)["engine_version"]
    assert p.plan.model_dump(mode="json", exclude={"estimates"}) == {k: v for k, v in chosen["plan"].items()
                                                                     if k != "estimates"}
    est = p.plan.estimates
    assert est.tpot_ms == chosen["perf"]["tpot_ms"] and est.ttft_ms_range == list(chosen["perf"]["ttft_ms_range"])
    assert est.output_tokens_per_s_per_gpu == chosen["perf"]["output_tokens_per_s_per_gpu"]
    out = tmp_path / "d"
    rep = run_cli("--profile", str(saved), "--out", str(out), "--strict")
    assert rep.code == 0, rep.err
    assert "drift" not in rep.err and (out / "plan.json").is_file()


def test_human_summary_has_bands_verdict_chart_and_advice():
    r = run_cli(*SCENARIO_A, "--gpu-hour-usd", "3.5")
    assert r.code == 0
    for text in ("aggregated", "disaggregated", "TTFT ms", "tok/s/GPU", "$ / M output tokens", "verdict:",
                 "chosen:", "Pareto front", "tokens/s per user"):
        assert text in r.out, text
    assert re.search(r"TPOT ms\s+[\d.]+ \([\d.]+-[\d.]+\)", r.out)
    assert r.out.isascii() and "\x1b" not in r.out          # plain text, no colour codes
    bad = run_cli(*[a if a != "10" else "1" for a in SCENARIO_A])
    assert bad.code == 1 and "advice (each checked by re-running the search):" in bad.out


def test_human_summary_shows_the_chosen_memory_breakdown_as_estimate_does(tmp_path):
    """The plan prints the chosen configuration's per-GPU memory table, the same rows `estimate` prints
    for that configuration when its profile is replayed."""
    saved = tmp_path / "p.yaml"
    r = run_cli(*SCENARIO_A, "--save", str(saved))
    assert r.code == 0
    est = run_cli("estimate", "--profile", str(saved))
    assert est.code == 0
    table = est.out.split("\nMemory\n", 1)[1].split("\n\n", 1)[0]
    assert "activation peak" in table and "CUDA graphs" in table and "non-torch" in table
    assert table in r.out


def test_gpu_hour_price_gives_cost_per_candidate():
    priced = json.loads(run_cli(*SCENARIO_A, "--gpu-hour-usd", "3.5", "--json").out)
    assert priced["gpu_hour_usd"] == 3.5
    assert all(c["cost_per_million_tokens_usd"] > 0 for cs in priced["candidates"].values() for c in cs)
    plain = json.loads(run_cli(*SCENARIO_A, "--json").out)
    assert all(c["cost_per_million_tokens_usd"] is None for cs in plain["candidates"].values() for c in cs)


@pytest.mark.parametrize("flag, kind", [("--concurrency", "concurrency"), ("--request-rate", "request_rate")])
def test_the_load_is_explicit(flag, kind):
    doc = json.loads(run_cli(*SCENARIO_B, flag, "8", "--json").out)
    assert doc["load"]["kind"] == kind and doc["load"]["value"] == 8.0 and doc["load"]["meaning"]


def test_memory_fraction_flag_fixes_the_fraction():
    doc = json.loads(run_cli(*SCENARIO_B, "--gpu-memory-utilization", "0.85", "--json").out)
    fracs = {w["gpu_memory_utilization"] for cs in doc["candidates"].values() for c in cs
             for w in ([c["plan"]["worker"]] if c["mode"] == "agg" else [c["plan"]["decode"]])}
    assert fracs == {0.85}


def test_plan_json_imports_no_pandas_scipy_or_textual():
    """The whole `servewise plan --json` process (a fresh interpreter) never loads them."""
    code = ("import sys, io, contextlib\n"
            "from servewise.wizard.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    rc = main({SCENARIO_A + ['--json']!r})\n"
            "print(rc, sorted(m for m in ('pandas', 'scipy', 'textual') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0 []"


def test_text_chart_edges():
    from servewise.wizard.textchart import scatter

    assert scatter([]) == ["(no points to draw)"]
    one = scatter([(10.0, 5.0, "*")], width=20, height=4, vline=10.0)
    assert one[0].endswith("*") and all(len(line) <= 27 for line in one)
    lines = scatter([(1, 1, "a"), (2, 3, "A"), (3, 2, "*")], width=20, height=5, vline=2.5, x_label="x")
    assert "A" in lines[0] and ":" in lines[1] and lines[-1].strip() == "x"


@pytest.mark.parametrize("mode", ["agg", "disagg"])
def test_mode_restricts_the_search_and_is_saved(tmp_path, mode):
    """``--mode`` (a common flag) searches one mode only, records it in ``search.modes`` and applies on
    top of ``--profile`` too."""
    saved = tmp_path / "p.yaml"
    r = run_cli(*SCENARIO_A, "--mode", mode, "--json", "--save", str(saved))
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert set(doc["best"]) == {mode} and doc["chosen"]["mode"] == mode
    prof = load_profile(saved)
    assert prof.search.modes == [mode] and prof.plan.mode == mode
    other = "disagg" if mode == "agg" else "agg"
    r = run_cli("plan", "--profile", str(saved), "--mode", other, "--json")
    assert r.code == 0, r.err
    assert set(json.loads(r.out)["best"]) == {other}


def test_mode_agg_with_a_prefill_gpu_is_refused_naming_the_flag():
    r = run_cli("plan", "--model", "Qwen/Qwen3-0.6B", "--gpu", "h100-sxm", "--gpus", "2", "--mode", "agg",
                "--prefill-gpu", "h200-sxm")
    assert r.code == 2 and r.err.startswith("servewise: --prefill-gpu:"), r.err


def test_saved_profile_sizes_the_model_cache_for_the_checkpoint(tmp_path):
    """The default 200Gi PVC cannot hold Llama-3.1-405B (756 GiB in bf16): ``plan --save`` raises it so
    the saved profile's Kubernetes artifacts render; a model that fits keeps the default."""
    big = tmp_path / "big.yaml"
    r = run_cli("plan", "--model", "meta-llama/Llama-3.1-405B-Instruct", "--gpu", "h100-sxm", "--gpus", "16",
                "--isl", "2000", "--osl", "200", "--ttft-ms", "3000", "--tpot-ms", "50", "--save", str(big))
    assert r.code == 0, r.err
    assert load_profile(big).deploy.model_cache_size == "756Gi"
    assert run_cli("--profile", str(big), "--out", str(tmp_path / "out"), "--strict").code == 0
    small = tmp_path / "small.yaml"
    assert run_cli(*SCENARIO_A, "--save", str(small)).code == 0
    assert load_profile(small).deploy.model_cache_size == "200Gi"


def test_disaggregated_only_on_one_gpu_says_why_nothing_was_searched():
    """--mode disagg on one GPU searches nothing: the reason is the GPU count (not memory, which was never
    checked), and without targets the summary does not speak of an SLA."""
    argv = ["plan", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm", "--mode", "disagg"]
    r = run_cli(*argv, "--json")
    doc = json.loads(r.out)
    assert r.code == 1 and r.err == "" and not doc["feasible"]
    assert doc["reason"] == "disaggregated not searched: it needs at least 2 GPUs"
    assert any(a["kind"] == "more_gpus" and a["value"] == 2 for a in doc["advice"])
    human = run_cli(*argv).out
    assert "no configuration is feasible: disaggregated not searched: it needs at least 2 GPUs" in human
    assert "meets the SLA" not in human


def test_saving_a_plan_for_an_engine_version_render_cannot_check_says_so(tmp_path):
    r = run_cli("plan", "--model", "Qwen/Qwen3-0.6B", "--gpu", "h100-sxm", "--engine-version", "0.11.0",
                "--save", str(tmp_path / "p.yaml"))
    assert r.code == 0 and "note: vllm 0.11.0 is planned but cannot be rendered" in r.err, r.err
    r = run_cli("plan", "--model", "Qwen/Qwen3-0.6B", "--gpu", "h100-sxm", "--save", str(tmp_path / "q.yaml"))
    assert r.code == 0 and "note:" not in r.err
