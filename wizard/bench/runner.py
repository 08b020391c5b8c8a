"""A bench run: probe the endpoint, then each load level (warm-up, then measured), summarised.

Each level opens its own connection pool sized to the load, sends a warm-up whose results
are dropped, then the measured requests, with every prompt built before the timed phase.
A level that stops because the endpoint is failing ends the sweep; the levels measured so
far are kept in ``BenchState`` (also on Ctrl-C) so they can be saved.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import httpx

from servewise.wizard.bench import loadgen, prompts
from servewise.wizard.bench.client import RequestRecord, RequestSpec, send
from servewise.wizard.bench.failures import summary
from servewise.wizard.bench.metrics import summarize
from servewise.wizard.bench.probe import ApiChoice, ProbeResult, probe
from servewise.wizard.bench.progress import Progress
from servewise.wizard.bench.prompts import PATHS, PromptPlan
from servewise.wizard.bench.results import LevelResult

CONNECT_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Level:
    concurrency: int | None = None
    request_rate: float | None = None
    requests: int = 1
    warmup: int = 0

    @property
    def label(self) -> str:
        return f"c={self.concurrency}" if self.concurrency is not None else f"{self.request_rate:g}/s"


@dataclass(frozen=True)
class Settings:
    url: str
    model: str
    api: ApiChoice
    isl: int
    osl: int
    gpus: int
    levels: tuple[Level, ...]
    timeout_s: float
    max_duration_s: float
    seed: int = 0
    vocab_size: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class BenchState:
    probe: ProbeResult | None = None
    levels: list[LevelResult] = field(default_factory=list)
    stopped: str | None = None


def _client(s: Settings, connections: int, timeout_s: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=s.url, headers=s.headers, trust_env=False,
                             timeout=httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s)),
                             limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections))


def _bodies(plan: PromptPlan, model: str, rng: random.Random, n: int) -> list[bytes]:
    return [prompts.encode(prompts.body(plan, model, rng)) for _ in range(n)]


def _sender(client: httpx.AsyncClient, plan: PromptPlan, bodies: list[bytes], timeout_s: float,
            index_offset: int = 0) -> loadgen.SendOne:
    max_events = 4 * plan.osl + 64

    async def send_one(index: int, deadline_s: float) -> RequestRecord:
        limit = max(1e-3, min(timeout_s, deadline_s - time.perf_counter()))
        spec = RequestSpec(PATHS[plan.api], bodies[index], limit, max_events)
        return await send(client, spec, index + index_offset)

    return send_one


async def run_level(s: Settings, plan: PromptPlan, level: Level, rng: random.Random,
                    progress: Progress) -> LevelResult:
    conc = level.concurrency or max(level.warmup, 1)
    connections = level.concurrency or level.requests
    warm_bodies = _bodies(plan, s.model, rng, level.warmup)
    bodies = _bodies(plan, s.model, rng, level.requests)
    async with _client(s, max(connections, level.warmup, 1) + 1, s.timeout_s) as client:
        warm: list[RequestRecord] = []
        if level.warmup:
            deadline = time.perf_counter() + s.max_duration_s
            watch = loadgen.Watch(limit=level.warmup)
            warm, _ = await loadgen.closed_loop(_sender(client, plan, warm_bodies, s.timeout_s, -level.warmup),
                                                min(conc, level.warmup), level.warmup, deadline, watch)
            if watch.reason:  # every warm-up request failed: the endpoint is down, not loaded
                return summarize([], osl=s.osl, gpus=s.gpus, url=s.url, concurrency=level.concurrency,
                                 request_rate=level.request_rate, warmup=warm,
                                 stopped=f"all {len(warm)} warm-up requests failed")
        progress.start(level.label, level.requests)
        watch = loadgen.Watch(limit=max(5, level.concurrency or 5), on_record=progress)
        deadline = time.perf_counter() + s.max_duration_s
        send_one = _sender(client, plan, bodies, s.timeout_s)
        if level.concurrency is not None:
            records, stopped = await loadgen.closed_loop(send_one, level.concurrency, level.requests, deadline, watch)
        else:
            assert level.request_rate is not None
            records, stopped = await loadgen.poisson(send_one, level.request_rate, level.requests, deadline, watch,
                                                     random.Random(rng.random()))
    return summarize(records, osl=s.osl, gpus=s.gpus, url=s.url, concurrency=level.concurrency,
                     request_rate=level.request_rate, warmup=warm, stopped=stopped)


async def run(s: Settings, state: BenchState, progress: Progress) -> BenchState:
    """Probe, then every level in order; fills ``state`` as it goes (raises EndpointError from the probe)."""
    async with _client(s, 2, min(s.timeout_s, PROBE_TIMEOUT_S)) as client:
        state.probe = await probe(client, s.url, s.model, s.api, s.isl, s.osl, s.vocab_size,
                                  min(s.timeout_s, PROBE_TIMEOUT_S), s.seed)
    rng = random.Random(s.seed + 1)
    for level in s.levels:
        lv = await run_level(s, state.probe.plan, level, rng, progress)
        state.levels.append(lv)
        ttft = f"TTFT mean {lv.ttft_ms.mean:.1f} ms" if lv.ttft_ms else "no TTFT"
        tpot = f"TPOT mean {lv.tpot_ms.mean:.2f} ms" if lv.tpot_ms else "no TPOT"
        errs = summary(lv.errors)
        progress.finish(f"{lv.completed}/{lv.requests} ok, {ttft}, {tpot}" + (f", {errs}" if errs else ""))
        if lv.stopped and "time limit" not in lv.stopped:
            state.stopped = f"{lv.label}: {lv.stopped}"
            break
    return state
