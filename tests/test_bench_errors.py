"""Bad endpoints get one clear line per kind and exit 6; bad flags exit 2. All on loopback."""

from __future__ import annotations

import pytest

from tests.bench_support import closed_port, fake, law, report_of, write_profile  # noqa: F401 (fixture)
from tests.conftest import run_cli
from tests.fake_openai import FakeConfig

QUICK = law(0.005, 0.0, 0.001, 0.0)


def _bench(profile, url, *extra):
    return run_cli("bench", "--profile", str(profile), "--url", url, "--requests", "2", *extra)


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("servewise: "), err
    return err


def test_connection_refused(tmp_path):
    prof = write_profile(tmp_path / "p.yaml")
    r = _bench(prof, f"http://127.0.0.1:{closed_port()}", "--json")
    assert r.code == 6 and r.out == ""
    assert "connection refused at http://127.0.0.1:" in _one_line(r.err) and "is the server up" in r.err
    assert not (tmp_path / "p.bench.json").exists()  # nothing measured, nothing written


def test_wrong_model_name_names_what_is_served(tmp_path, fake):
    srv = fake(FakeConfig(**QUICK, model="other-model"))
    prof = write_profile(tmp_path / "p.yaml")
    r = _bench(prof, srv.url)
    assert r.code == 6
    assert "wrong model name" in _one_line(r.err) and "it serves other-model, not 'fake-model'" in r.err
    assert "--model NAME" in r.err
    assert run_cli("bench", "--profile", str(prof), "--url", srv.url, "--model", "other-model", "--requests", "1",
                   "--concurrency-sweep", "1").code == 0


def test_non_streaming_server(tmp_path, fake):
    srv = fake(FakeConfig(**QUICK, streaming=False))
    r = _bench(write_profile(tmp_path / "p.yaml"), srv.url)
    assert r.code == 6 and "not streaming" in _one_line(r.err) and "application/json" in r.err


def test_timeout(tmp_path, fake):
    srv = fake(FakeConfig(**law(5.0, 0.0, 0.001, 0.0)))
    r = _bench(write_profile(tmp_path / "p.yaml"), srv.url, "--timeout", "0.3")
    assert r.code == 6 and "timed out" in _one_line(r.err) and "--timeout" in r.err


@pytest.mark.parametrize("status,label", [(500, "HTTP 500 at"), (503, "HTTP 503 at"),
                                          (401, "HTTP 401 at")])
def test_failing_status_codes(tmp_path, fake, status, label):
    srv = fake(FakeConfig(**QUICK, all_status=status))
    r = _bench(write_profile(tmp_path / "p.yaml"), srv.url)
    assert r.code == 6 and label in _one_line(r.err) and "injected failure" in r.err


def test_endpoint_failing_mid_sweep_keeps_the_levels_measured(tmp_path, fake):
    """The server starts answering 500 after the first level: the sweep stops, the first level is kept."""
    srv = fake(FakeConfig(**QUICK, jitter=0.0))
    prof = write_profile(tmp_path / "p.yaml", concurrency=4)
    original = srv._completion

    async def flaky(http, path, req):
        if srv._arrivals >= 1 + 1 + 2:  # probe, warm-up and measured requests of c=1
            srv.config.all_status = 500
        return await original(http, path, req)

    srv._completion = flaky
    r = run_cli("bench", "--profile", str(prof), "--url", srv.url, "--requests", "2", "--json")
    assert r.code == 6 and "results kept in" in r.err
    rep = report_of(r.out)
    assert rep["partial"] is True and rep["stopped"].startswith("c=2: all 2 warm-up requests failed")
    assert [lv["concurrency"] for lv in rep["levels"]] == [1, 2]
    assert rep["levels"][0]["completed"] == 2 and rep["levels"][1]["warmup_errors"] == {"http_5xx": 2}
    assert report_of((tmp_path / "p.bench.json").read_text())["levels"][0]["completed"] == 2


@pytest.mark.parametrize("argv,needle", [
    (["--url", "ftp://x"], "--url: expected http(s)://host[:port]"),
    (["--url", "http://x:99999"], "--url: bad port"),
    (["--url", "http://127.0.0.1:1", "--concurrency-sweep", "1,0"], "--concurrency-sweep"),
    (["--url", "http://127.0.0.1:1", "--request-rate", "-1"], "--request-rate"),
    (["--url", "http://127.0.0.1:1", "--concurrency-sweep", "1", "--request-rate", "2"], "not allowed with"),
    (["--url", "http://127.0.0.1:1", "--results", "x.txt"], "--results: expected a .json path"),
    (["--url", "http://127.0.0.1:1", "--timeout", "0"], "--timeout"),
])
def test_bad_flags_exit_2(tmp_path, argv, needle):
    r = run_cli("bench", "--profile", str(write_profile(tmp_path / "p.yaml")), *argv)
    assert r.code == 2 and needle in _one_line(r.err)


def test_missing_profile_exit_2(tmp_path):
    r = run_cli("bench", "--profile", str(tmp_path / "none.yaml"), "--url", "http://127.0.0.1:1")
    assert r.code == 2 and "no such file" in r.err


def test_bearer_token_from_the_environment(tmp_path, fake, monkeypatch):
    srv = fake(FakeConfig(**QUICK, api_key="s3cret"))
    prof = write_profile(tmp_path / "p.yaml", concurrency=1)
    r = _bench(prof, srv.url)
    assert r.code == 6 and "HTTP 401 at" in _one_line(r.err) and "invalid API key" in r.err
    monkeypatch.setenv("SERVING_KEY", "s3cret")
    assert _bench(prof, srv.url, "--api-key-env", "SERVING_KEY").code == 0


def test_text_prompts_need_the_servers_token_counts(tmp_path, fake):
    srv = fake(FakeConfig(**QUICK, accept_token_ids=False, report_usage=False))
    r = _bench(write_profile(tmp_path / "p.yaml"), srv.url)
    assert r.code == 6 and "no token usage reported" in _one_line(r.err)
