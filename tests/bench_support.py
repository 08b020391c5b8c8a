"""Shared pieces of the bench tests: a small profile, a fake server fixture, a predictor double."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from servewise.estimator.results import PerfEstimate
from servewise.wizard.bench.predict import Prediction
from tests.fake_openai import FakeConfig, FakeServer, linear, piecewise

ROOT = Path(__file__).resolve().parent.parent
BASE_PROFILE = ROOT / "profiles" / "examples" / "llama-3.1-8b-1xl4-vllm.yaml"
ISL, OSL = 64, 8
LEVELS = [1, 2, 4, 8]


def write_profile(path: Path, *, concurrency: int = 4, ttft_ms: float | None = 250.0, tpot_ms: float | None = 15.0,
                  served_name: str = "fake-model", **workload) -> Path:
    doc = yaml.safe_load(BASE_PROFILE.read_text())
    doc["workload"] = {"isl": workload.get("isl", ISL), "osl": workload.get("osl", OSL),
                       "load": workload.get("load", {"concurrency": concurrency})}
    doc["sla"] = {"ttft_ms": ttft_ms, "tpot_ms": tpot_ms, "percentile": "mean"}
    doc["model"]["served_name"] = served_name
    doc["model"]["weights_dtype"] = "auto"  # the checkpoint's bf16, whatever the example chose
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def law(ttft_base_s: float, ttft_slope: float, tpot_base_s: float, tpot_slope: float) -> dict:
    """Fake-server delays growing linearly with load."""
    return dict(ttft_s=linear(ttft_base_s, ttft_slope, LEVELS), tpot_s=linear(tpot_base_s, tpot_slope, LEVELS))


class LawPredictor:
    """A predictor double: TTFT and TPOT from a delay law, throughput from the closed loop
    (c x OSL / end-to-end), bands +-20 %."""

    def __init__(self, cfg: FakeConfig, osl: int = OSL) -> None:
        self.cfg, self.osl = cfg, osl
        self.calls: list[tuple[int | None, float | None]] = []

    def perf(self, c: float) -> PerfEstimate:
        ttft = piecewise(self.cfg.ttft_s, c) * 1e3
        tpot = piecewise(self.cfg.tpot_s, c) * 1e3
        thr = c * self.osl / ((ttft + (self.osl - 1) * tpot) / 1e3)
        b = lambda v: (0.8 * v, 1.2 * v)  # noqa: E731
        return PerfEstimate(ttft_ms=ttft, ttft_ms_range=b(ttft), tpot_ms=tpot, tpot_ms_range=b(tpot),
                            output_tokens_per_s=thr, output_tokens_per_s_range=b(thr),
                            output_tokens_per_s_per_gpu=thr, output_tokens_per_s_per_gpu_range=b(thr),
                            tokens_per_s_per_user=1e3 / tpot, tokens_per_s_per_user_range=(1e3 / tpot / 1.2,
                                                                                            1e3 / tpot / 0.8),
                            requests_per_s=thr / self.osl, requests_per_s_range=b(thr / self.osl), concurrency=c,
                            provenance="law double")

    def __call__(self, profile, concurrency, request_rate) -> Prediction | None:
        self.calls.append((concurrency, request_rate))
        if concurrency is None:
            return None
        p = self.perf(concurrency)
        return Prediction("law double", p.ttft_ms, p.ttft_ms_range, p.tpot_ms, p.tpot_ms_range,
                          p.output_tokens_per_s, p.output_tokens_per_s_range)


@pytest.fixture
def fake():
    """Start a fake server (``fake(cfg)``); GIL hand-offs are made fast so the in-process
    server keeps time while the client parses."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    servers: list[FakeServer] = []

    def start(cfg: FakeConfig | None = None) -> FakeServer:
        srv = FakeServer(cfg).__enter__()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.__exit__(None, None, None)
    sys.setswitchinterval(old)


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then closed)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def report_of(out: str) -> dict:
    return json.loads(out)
