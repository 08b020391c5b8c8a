"""bench against the fake engine: TTFT and TPOT within 5 % at every level, exact token counts,
injected failures reported as they were injected, open loop, chat with text prompts."""

from __future__ import annotations

import csv
import json

import pytest

from tests.bench_support import ISL, OSL, fake, law, report_of, write_profile  # noqa: F401 (fixture)
from tests.conftest import run_cli
from tests.fake_openai import FakeConfig, piecewise


def _bench(profile, url, *extra):
    return run_cli("bench", "--profile", str(profile), "--url", url, "--json", *extra)


def _delivered(srv, levels, requests):
    """The fake's own timing of each level's measured requests (arrival order: the probe, then
    per level its warm-up and its measured requests)."""
    log = [a for a in srv.log if a.failed is None]
    i, out = 1, {}
    for c in levels:
        i += c
        out[c] = log[i:i + requests]
        i += requests
    return out


def _mean(xs):
    return sum(xs) / len(xs)


def test_ttft_and_tpot_within_5_percent_at_each_level(tmp_path, fake):
    # delays large enough that the client's own send cost (~1 ms, more on a busy machine) stays small
    cfg = FakeConfig(**law(0.200, 0.25, 0.010, 0.15), jitter=0.05)
    srv = fake(cfg)
    prof = write_profile(tmp_path / "p.yaml", concurrency=4, ttft_ms=500, tpot_ms=30)
    r = _bench(prof, srv.url, "--requests", "4")
    assert r.code == 0, r.err
    assert r.err == ""  # --json off a terminal: no progress, nothing on stderr
    rep = report_of(r.out)
    assert [lv["concurrency"] for lv in rep["levels"]] == [1, 2, 4]  # the default sweep up to the plan's 4
    assert rep["prompt"] == "token_ids" and rep["api"] == "completions"
    delivered = _delivered(srv, [1, 2, 4], 4)
    for lv in rep["levels"]:
        c = lv["concurrency"]
        served = delivered[c]
        assert {a.load for a in served} == {c}  # the engine saw exactly the client's concurrency
        # what the server did, as bench measured it from the client side
        assert lv["ttft_ms"]["mean"] == pytest.approx(_mean([a.delivered_ttft_s for a in served]) * 1e3, rel=0.05)
        assert lv["tpot_ms"]["mean"] == pytest.approx(_mean([a.delivered_tpot_s for a in served]) * 1e3, rel=0.05)
        # and what the server was configured to do at that load (its clock slips on a busy machine)
        assert lv["ttft_ms"]["mean"] == pytest.approx(piecewise(cfg.ttft_s, c) * 1e3, rel=0.1)
        assert lv["tpot_ms"]["mean"] == pytest.approx(piecewise(cfg.tpot_s, c) * 1e3, rel=0.1)
        assert lv["completed"] == lv["requests"] == 4 and lv["failed"] == 0
        assert lv["warmup_requests"] == c
        assert lv["output_tokens_mean"] == OSL and lv["short_outputs"] == 0
        assert lv["input_tokens_mean"] == ISL
        assert lv["mean_in_flight"] == pytest.approx(c, rel=0.15)
        # closed loop: throughput = c x OSL / end-to-end (Little's law)
        assert lv["output_tokens_per_s"] == pytest.approx(c * OSL / (lv["e2e_ms"]["mean"] / 1e3), rel=0.15)
    files = rep["files"]
    assert files == [str(tmp_path / "p.bench.json"), str(tmp_path / "p.bench.csv")]
    assert json.loads((tmp_path / "p.bench.json").read_text())["levels"] == rep["levels"]
    rows = list(csv.DictReader((tmp_path / "p.bench.csv").open()))
    assert [int(x["concurrency"]) for x in rows] == [1, 2, 4]
    assert float(rows[2]["tpot_ms_mean"]) == rep["levels"][2]["tpot_ms"]["mean"]


def test_injected_failures_are_counted_and_exit_6_with_results_kept(tmp_path, fake):
    srv = fake(FakeConfig(**law(0.02, 0.1, 0.002, 0.1), fail_every=5, jitter=0.0))
    prof = write_profile(tmp_path / "p.yaml", concurrency=2)
    r = _bench(prof, srv.url, "--requests", "10")
    assert r.code == 6
    assert r.err.count("\n") == 1 and "HTTP 500 at" in r.err and "results kept in" in r.err
    rep = report_of(r.out)  # the report is still printed and saved
    failed = sum(lv["failed"] + lv["warmup_failed"] for lv in rep["levels"])
    assert failed == srv.injected > 0
    assert all(set(lv["errors"]) <= {"http_5xx"} for lv in rep["levels"])
    assert sum(lv["errors"].get("http_5xx", 0) for lv in rep["levels"]) == sum(lv["failed"] for lv in rep["levels"])
    assert all(lv["completed"] + lv["failed"] == lv["requests"] for lv in rep["levels"])
    assert (tmp_path / "p.bench.json").exists() and (tmp_path / "p.bench.csv").exists()


def test_broken_streams_are_reported_as_such(tmp_path, fake):
    srv = fake(FakeConfig(**law(0.01, 0.0, 0.002, 0.0), fail_every=4, fail_kind="midstream", jitter=0.0))
    prof = write_profile(tmp_path / "p.yaml", concurrency=1)
    r = _bench(prof, srv.url, "--requests", "8", "--warmup", "0")
    assert r.code == 6 and "broken stream" in r.err
    lv = report_of(r.out)["levels"][0]
    assert lv["errors"] == {"stream_error": srv.injected} and srv.injected == 2


def test_open_loop_poisson_rate(tmp_path, fake):
    srv = fake(FakeConfig(**law(0.02, 0.1, 0.002, 0.1), jitter=0.0))
    prof = write_profile(tmp_path / "p.yaml", load={"request_rate": 20.0})
    r = _bench(prof, srv.url, "--requests", "30")
    assert r.code == 0, r.err
    (lv,) = report_of(r.out)["levels"]
    assert lv["request_rate"] == 20.0 and lv["concurrency"] is None and lv["completed"] == 30
    # Little's law: requests in flight = rate x end-to-end, within Poisson noise of 30 arrivals
    assert lv["mean_in_flight"] == pytest.approx(20.0 * lv["e2e_ms"]["mean"] / 1e3, rel=0.5)
    assert lv["requests_per_s"] == pytest.approx(20.0, rel=0.5)


def test_chat_with_text_prompts_sized_by_the_servers_token_counts(tmp_path, fake):
    cfg = FakeConfig(**law(0.04, 0.0, 0.004, 0.0), accept_token_ids=False, chars_per_token=3.3,
                     chat_template_tokens=9, jitter=0.0)
    srv = fake(cfg)
    prof = write_profile(tmp_path / "p.yaml", concurrency=1, isl=500)
    r = _bench(prof, srv.url, "--api", "chat", "--requests", "4")
    assert r.code == 0, r.err
    rep = report_of(r.out)
    assert rep["api"] == "chat" and rep["prompt"] == "text"
    assert rep["chars_per_token"] == pytest.approx(3.3, rel=0.05)
    lv = rep["levels"][0]
    assert lv["input_tokens_mean"] == pytest.approx(500, rel=0.02)
    # the role chunk the fake sends before any token is not taken for the first token
    served = [a for a in srv.log if a.path == "chat"][-4:]
    assert lv["ttft_ms"]["mean"] == pytest.approx(_mean([a.delivered_ttft_s for a in served]) * 1e3, rel=0.25)
    assert lv["ttft_ms"]["mean"] > 0.9 * 40


def test_token_ids_refused_falls_back_to_text_on_completions(tmp_path, fake):
    srv = fake(FakeConfig(**law(0.01, 0.0, 0.002, 0.0), accept_token_ids=False, jitter=0.0))
    prof = write_profile(tmp_path / "p.yaml", concurrency=1)
    r = _bench(prof, srv.url, "--requests", "3")
    assert r.code == 0, r.err
    rep = report_of(r.out)
    assert (rep["api"], rep["prompt"]) == ("completions", "text")
    assert any("token-id prompts refused" in n for n in rep["notes"])
    assert rep["levels"][0]["input_tokens_mean"] == pytest.approx(ISL, abs=2)


def test_outputs_shorter_than_asked_are_flagged(tmp_path, fake):
    srv = fake(FakeConfig(**law(0.01, 0.0, 0.002, 0.0), honor_ignore_eos=False, eos_after=3, jitter=0.0))
    prof = write_profile(tmp_path / "p.yaml", concurrency=1)
    r = _bench(prof, srv.url, "--requests", "3")
    rep = report_of(r.out)
    assert rep["levels"][0]["short_outputs"] == 3 and rep["levels"][0]["output_tokens_mean"] == 3
    assert any(f"exactly {OSL} output tokens" in n for n in rep["notes"])


def test_progress_goes_to_stderr_one_line_per_level_without_json(tmp_path, fake):
    srv = fake(FakeConfig(**law(0.01, 0.0, 0.002, 0.0), jitter=0.0))
    prof = write_profile(tmp_path / "p.yaml", concurrency=2)
    r = run_cli("bench", "--profile", str(prof), "--url", srv.url + "/v1/", "--requests", "2")
    assert r.code == 0, r.err
    assert [ln.split(":")[0] for ln in r.err.splitlines()] == ["c=1", "c=2"]
    assert "TTFT ms mean/p50/p90/p99" in r.out and "SLA met at concurrency 2" in r.out
    assert "results: " in r.out


def test_without_usage_reports_token_events_are_counted(tmp_path, fake):
    srv = fake(FakeConfig(**law(0.01, 0.0, 0.002, 0.0), report_usage=False, jitter=0.0))
    r = _bench(write_profile(tmp_path / "p.yaml", concurrency=1), srv.url, "--requests", "3")
    assert r.code == 0, r.err
    lv = report_of(r.out)["levels"][0]
    assert lv["output_tokens_mean"] == OSL and lv["input_tokens_mean"] is None and lv["short_outputs"] == 0
