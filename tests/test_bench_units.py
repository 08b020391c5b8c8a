"""bench's pure parts: SSE token rules, prompts, statistics, load shapes, comparison, chart, flags."""

from __future__ import annotations

import asyncio
import random
import time

import numpy as np
import pytest

from servewise.perfdata.errors import UsageError
from servewise.profiles import load_profile, profile_from_dict
from servewise.wizard.bench import loadgen, prompts
from servewise.wizard.bench.chart import chart_row
from servewise.wizard.bench.client import RequestRecord, classify_status, server_message, token_event
from servewise.wizard.bench.compare import calibration_from, compare_level, predictions, sla_verdict
from servewise.wizard.bench.metrics import summarize
from servewise.wizard.bench.predict import Prediction
from servewise.wizard.commands.bench import default_sweep, normalize_url
from tests.bench_support import write_profile


# ----------------------------------------------------------------------------- SSE and errors
@pytest.mark.parametrize("doc,expected", [
    ({"choices": [{"text": " a", "finish_reason": None}]}, (True, None, None)),
    ({"choices": [{"text": "", "finish_reason": None}]}, (True, None, None)),      # a token still decoding
    ({"choices": [{"text": "", "finish_reason": "length"}]}, (False, None, None)),  # a bare finish event
    ({"choices": [{"delta": {"role": "assistant", "content": ""}}]}, (False, None, None)),
    ({"choices": [{"delta": {"role": "assistant"}}]}, (False, None, None)),
    ({"choices": [{"delta": {"content": "x"}, "finish_reason": "length"}]}, (True, None, None)),
    ({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}, (False, 3, 7)),
])
def test_which_events_are_tokens(doc, expected):
    assert token_event(doc) == expected


def test_status_classes_and_server_messages():
    msg = server_message(b'{"error": {"message": "The model `x` does not exist.", "code": 404}}')
    assert msg == "The model `x` does not exist."
    assert classify_status(404, msg) == "wrong_model"
    assert classify_status(404, "no route") == "http_4xx"
    assert classify_status(502, "bad gateway") == "http_5xx"
    assert server_message(b"<html>\n  oops</html>") == "<html> oops</html>"


def test_tpot_uses_the_reported_token_count():
    rec = RequestRecord(0, sent_s=0.0, first_token_s=0.1, token_times_s=[0.1, 0.2, 0.3], end_s=0.31,
                        output_tokens=5, usage_reported=True)
    assert rec.ttft_s == pytest.approx(0.1)
    assert rec.tpot_s == pytest.approx(0.2 / 4)  # 3 events carried 5 tokens
    assert rec.itl_s == pytest.approx([0.1, 0.1])


# ----------------------------------------------------------------------------- prompts
def test_token_id_prompts_are_exact_random_and_clear_of_special_tokens():
    plan = prompts.PromptPlan("completions", "token_ids", 300, 16, 128256)
    rng = random.Random(1)
    a, b = prompts.body(plan, "m", rng), prompts.body(plan, "m", rng)
    assert len(a["prompt"]) == 300 and a["prompt"][:8] != b["prompt"][:8]
    assert prompts.LOW_TOKEN_ID <= min(a["prompt"]) and max(a["prompt"]) < 0.9 * 128256
    assert (a["max_tokens"], a["min_tokens"], a["ignore_eos"], a["stream"]) == (16, 16, True, True)
    assert a["stream_options"] == {"include_usage": True}


def test_text_prompts_and_the_fitted_length_law():
    rng = random.Random(2)
    t1, t2 = prompts.random_text(rng, 500), prompts.random_text(rng, 500)
    assert len(t1) == len(t2) == 500 and t1[:20] != t2[:20]
    ratio, overhead = prompts.fit_text_ratio([(1000, 9 + 1000 / 3.5), (2000, 9 + 2000 / 3.5), (700, 9 + 200)])
    assert ratio == pytest.approx(3.5) and overhead == pytest.approx(9.0)
    plan = prompts.PromptPlan("chat", "text", 1000, 8, 0, chars_per_token=3.5, overhead_tokens=9.0)
    assert plan.text_chars() == round(991 * 3.5)
    chat = prompts.body(plan, "m", rng)
    assert len(chat["messages"][0]["content"]) == plan.text_chars() and "prompt" not in chat
    with pytest.raises(ValueError):
        prompts.fit_text_ratio([(100, 50), (200, 40)])


# ----------------------------------------------------------------------------- statistics
def _rec(i, sent, ttft, n, gap, error=None):
    if error:
        return RequestRecord(i, sent, end_s=sent + 0.01, error=error, message="x")
    times = [sent + ttft + k * gap for k in range(n)]
    return RequestRecord(i, sent, first_token_s=times[0], token_times_s=times, end_s=times[-1], output_tokens=n,
                         usage_reported=True, prompt_tokens=64)


def test_summary_statistics_match_their_definitions():
    recs = [_rec(i, 0.5 * i, 0.1 + 0.01 * i, 8, 0.01 + 0.001 * i) for i in range(10)]
    recs.append(_rec(10, 0.2, 0, 0, 0, error="http_5xx"))
    recs.append(_rec(11, 0.3, 0.05, 4, 0.01))  # a short answer
    lv = summarize(recs, osl=8, gpus=2, url="http://h", concurrency=2)
    ok = [r for r in recs if r.ok]
    ttfts = np.array([r.ttft_s for r in ok]) * 1e3
    assert lv.ttft_ms.mean == pytest.approx(ttfts.mean(), abs=1e-3)
    assert lv.ttft_ms.p90 == pytest.approx(np.percentile(ttfts, 90), abs=1e-3)
    assert lv.tpot_ms.mean == pytest.approx(np.mean([(r.token_times_s[-1] - r.token_times_s[0]) /
                                                     (r.output_tokens - 1) for r in ok]) * 1e3, abs=1e-3)
    span = max(r.end_s for r in ok) - min(r.sent_s for r in recs)
    assert lv.output_tokens_per_s == pytest.approx(sum(r.output_tokens for r in ok) / span, rel=1e-4)
    assert lv.output_tokens_per_s_per_gpu == pytest.approx(lv.output_tokens_per_s / 2, rel=1e-4)
    assert (lv.requests, lv.completed, lv.failed, lv.errors) == (12, 11, 1, {"http_5xx": 1})
    assert lv.short_outputs == 1 and lv.input_tokens_mean == 64
    assert lv.error_examples == ["HTTP 5xx at http://h: x; the server failed while answering; check its logs"]


# ----------------------------------------------------------------------------- load shapes
def _sender(log, delay=0.005, fail=lambda i: False):
    state = {"in": 0, "max": 0}

    async def send_one(i, deadline):
        state["in"] += 1
        state["max"] = max(state["max"], state["in"])
        t = time.perf_counter()
        await asyncio.sleep(delay)
        state["in"] -= 1
        log.append(i)
        return RequestRecord(i, t, end_s=time.perf_counter(), error="http_5xx" if fail(i) else None)

    return send_one, state


def test_closed_loop_holds_the_concurrency_and_sends_each_request_once():
    log: list[int] = []
    send_one, state = _sender(log)
    recs, stopped = asyncio.run(loadgen.closed_loop(send_one, 3, 10, time.perf_counter() + 30, loadgen.Watch(5)))
    assert sorted(log) == list(range(10)) and [r.index for r in recs] == list(range(10))
    assert state["max"] == 3 and stopped is None


def test_a_failing_endpoint_stops_the_level_and_the_deadline_bounds_it():
    log: list[int] = []
    send_one, _ = _sender(log, fail=lambda i: True)
    recs, stopped = asyncio.run(loadgen.closed_loop(send_one, 1, 100, time.perf_counter() + 30, loadgen.Watch(4)))
    assert len(recs) == 4 and stopped == "stopped after 4 failed requests in a row"
    send_one, _ = _sender(log, delay=0.02)
    t = time.perf_counter()
    recs, stopped = asyncio.run(loadgen.closed_loop(send_one, 2, 10_000, t + 0.1, loadgen.Watch(5)))
    assert time.perf_counter() - t < 1.0 and len(recs) < 20 and stopped.startswith("time limit reached")


def test_poisson_arrivals_do_not_wait_for_answers():
    log: list[int] = []
    send_one, state = _sender(log, delay=0.05)
    t = time.perf_counter()
    recs, stopped = asyncio.run(loadgen.poisson(send_one, 200.0, 20, t + 30, loadgen.Watch(5), random.Random(3)))
    assert len(recs) == 20 and stopped is None and state["max"] > 1
    assert time.perf_counter() - t < 0.05 * 20  # far quicker than one request after another


# ----------------------------------------------------------------------------- comparison and SLA
def _level(c, ttft, tpot, thr=100.0):
    recs = [_rec(i, 0.2 * i, ttft / 1e3, 8, tpot / 1e3) for i in range(4)]
    return summarize(recs, osl=8, gpus=1, url="u", concurrency=c).model_copy(update={"output_tokens_per_s": thr})


def _pred(ttft, tpot, thr=100.0, source="model"):
    return Prediction(source, ttft, (0.8 * ttft, 1.2 * ttft), tpot, (0.8 * tpot, 1.2 * tpot), thr, (80.0, 120.0))


def test_comparison_errors_bands_and_missing_predictions():
    c = compare_level(_level(2, 130, 10), _pred(100, 10))
    ttft = c.get("ttft")
    assert ttft.error_pct == pytest.approx(30.0, abs=0.1) and ttft.within_band is False
    assert c.get("tpot").within_band is True and c.source == "model"
    none = compare_level(_level(2, 130, 10), None)
    assert none.source is None and none.get("ttft").predicted is None and none.get("ttft").error_pct is None


def test_pinned_estimates_stand_in_at_the_planned_load(tmp_path):
    prof = load_profile(write_profile(tmp_path / "p.yaml", concurrency=2))
    doc = prof.model_dump(mode="json")
    doc["plan"]["estimates"] = {"ttft_ms": 90.0, "ttft_ms_range": [70.0, 120.0], "tpot_ms": 9.0}
    prof = profile_from_dict(doc)
    levels = [_level(1, 80, 8), _level(2, 95, 9)]
    notes: list[str] = []
    pairs = predictions(prof, levels, lambda p, c, r: None, False, notes)
    assert pairs[0] == (None, None)
    assert pairs[1][0].source == "pinned plan estimates" and pairs[1][0].ttft_ms == 90.0
    cal = calibration_from(levels, [raw for raw, _ in pairs], source="s", deployment="d", sidecar=None, isl=64,
                           osl=8)
    assert [(p.metric, p.concurrency) for p in cal.points] == [("ttft", 2.0), ("tpot", 2.0)]

    def broken(p, c, r):
        raise ZeroDivisionError("float division by zero")

    pairs = predictions(prof, levels[:1], broken, False, notes)
    assert pairs == [(None, None)] and notes == ["c=1: no prediction (ZeroDivisionError: float division by zero)"]


def test_a_load_the_model_gives_no_figures_for_says_why(tmp_path):
    """A request rate beyond what the plan sustains has no model prediction: the report says so and
    why, instead of leaving the prediction columns blank without a word."""
    from servewise.wizard.bench.predict import NoPrediction, model_predictor

    prof = load_profile(write_profile(tmp_path / "p.yaml", concurrency=2))
    with pytest.raises(NoPrediction, match="more than this plan sustains"):
        model_predictor(prof, None, 1e4)
    lv = _level(1, 80, 8).model_copy(update={"concurrency": None, "request_rate": 1e4})
    notes: list[str] = []
    assert predictions(prof, [lv], model_predictor, False, notes) == [(None, None)]
    assert len(notes) == 1 and notes[0].startswith(f"{lv.label}: no prediction: ") and "sustains" in notes[0]


def test_sla_verdict_at_the_planned_load(tmp_path):
    prof = load_profile(write_profile(tmp_path / "p.yaml", concurrency=2, ttft_ms=100, tpot_ms=9.5))
    v = sla_verdict(prof, [_level(1, 80, 8), _level(2, 95, 10)])
    assert v.met is False and v.level == "c=2" and v.ttft_measured_ms == pytest.approx(95, abs=0.01)
    assert v.message == "SLA MISSED at concurrency 2: TTFT mean 95.0 ms <= 100 ms, TPOT mean 10.0 ms > 9.5 ms"
    assert sla_verdict(prof, [_level(1, 80, 8)]).met is None
    assert "was not measured" in sla_verdict(prof, [_level(1, 80, 8)]).message
    free = load_profile(write_profile(tmp_path / "q.yaml", concurrency=2, ttft_ms=None, tpot_ms=None))
    assert sla_verdict(free, [_level(2, 95, 10)]).message == "the profile sets no SLA"


# ----------------------------------------------------------------------------- chart and flags
def test_chart_row_draws_measured_prediction_band_and_target():
    row = chart_row(100.0, measured=50.0, predicted=70.0, band=(60.0, 80.0), target=90.0)
    assert len(row) == 48 and row.startswith("#" * 24) and row.index("|") == 33
    assert row[28] == "[" and row[38] == "]" and row[42] == ":"


def test_default_sweep_and_url_normalisation():
    assert default_sweep(1) == [1] and default_sweep(4) == [1, 2, 4] and default_sweep(12) == [1, 2, 4, 8, 12]
    assert normalize_url("http://h:8000/v1/") == "http://h:8000"
    assert normalize_url("https://h/prefix/v1") == "https://h/prefix"
    with pytest.raises(UsageError):
        normalize_url("h:8000")


def test_progress_bar_on_a_terminal_and_lines_elsewhere():
    import io

    from servewise.wizard.bench.progress import Progress

    out = io.StringIO()
    bar = Progress("bar", out)
    bar.start("c=2", 4)
    for i in range(4):
        bar(RequestRecord(i, 0.0, error="timeout" if i == 1 else None))
    bar.finish("4/4 done")
    text = out.getvalue()
    assert "\r\x1b[2Kc=2 [" in text and "4/4, 1 failed" in text and text.endswith("c=2: 4/4 done\n")
    lines = io.StringIO()
    plain = Progress("lines", lines)
    plain.start("c=1", 1)
    plain(RequestRecord(0, 0.0))
    plain.finish("ok")
    assert lines.getvalue() == "c=1: ok\n"
