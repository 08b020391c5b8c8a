"""Per-level statistics of measured requests (metric definitions: ARCHITECTURE.md section 3).

TTFT, TPOT and end-to-end latency are per request; their mean / p50 / p90 / p99 are over
the level's successful requests (percentiles by linear interpolation, as numpy and
``vllm bench`` compute them). Inter-token latencies are pooled over all requests. Output
throughput is the measured requests' output tokens over the span from the first send to
the last answer, the way aiperf and ``vllm bench`` report it.
"""

from __future__ import annotations

import numpy as np

from servewise.wizard.bench.client import RequestRecord
from servewise.wizard.bench.failures import counts, describe
from servewise.wizard.bench.results import LevelResult, Stat

MAX_EXAMPLES = 3


def stat_ms(values_s: list[float]) -> Stat | None:
    """mean / p50 / p90 / p99 in milliseconds (None when there is nothing to summarise)."""
    if not values_s:
        return None
    a = np.asarray(values_s, dtype=float) * 1e3
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return Stat(mean=round(float(a.mean()), 4), p50=round(float(p50), 4), p90=round(float(p90), 4),
                p99=round(float(p99), 4), n=int(a.size))


def mean_in_flight(records: list[RequestRecord]) -> float | None:
    """Time-averaged requests in flight over [first send, last answer] (Little's law check)."""
    done = [r for r in records if r.end_s is not None]
    if not done:
        return None
    t0, t1 = min(r.sent_s for r in done), max(r.end_s for r in done)  # type: ignore[type-var]
    span = t1 - t0
    if span <= 0:
        return None
    return sum(r.end_s - r.sent_s for r in done) / span  # type: ignore[operator]


def summarize(records: list[RequestRecord], *, osl: int, gpus: int, url: str, concurrency: int | None = None,
              request_rate: float | None = None, warmup: list[RequestRecord] | None = None,
              stopped: str | None = None) -> LevelResult:
    ok = [r for r in records if r.ok]
    warmup = warmup or []
    span = None
    if ok:
        span = max(r.end_s for r in ok) - min(r.sent_s for r in records)  # type: ignore[type-var]
    out_tokens = sum(r.output_tokens for r in ok)
    thr = out_tokens / span if span and span > 0 else None
    prompt = [r.prompt_tokens for r in ok if r.prompt_tokens is not None]
    failed = [r for r in records if not r.ok]
    examples: list[str] = []
    for r in failed + [r for r in warmup if not r.ok]:
        line = describe(r, url)
        if line not in examples:
            examples.append(line)
    return LevelResult(
        concurrency=concurrency, request_rate=request_rate, requests=len(records), completed=len(ok),
        failed=len(failed), errors=counts(records), warmup_requests=len(warmup),
        warmup_failed=sum(1 for r in warmup if not r.ok), warmup_errors=counts(warmup),
        error_examples=examples[:MAX_EXAMPLES], stopped=stopped,
        duration_s=None if span is None else round(span, 4),
        ttft_ms=stat_ms([r.ttft_s for r in ok if r.ttft_s is not None]),
        tpot_ms=stat_ms([r.tpot_s for r in ok if r.tpot_s is not None]),
        itl_ms=stat_ms([x for r in ok for x in r.itl_s]),
        e2e_ms=stat_ms([r.e2e_s for r in ok if r.e2e_s is not None]),
        output_tokens_per_s=None if thr is None else round(thr, 3),
        output_tokens_per_s_per_gpu=None if thr is None else round(thr / gpus, 3),
        requests_per_s=None if not span else round(len(ok) / span, 4),
        mean_in_flight=None if (m := mean_in_flight(records)) is None else round(m, 3),
        input_tokens_mean=round(float(np.mean(prompt)), 2) if prompt else None,
        output_tokens_mean=round(out_tokens / len(ok), 2) if ok else None,
        short_outputs=sum(1 for r in ok if r.output_tokens != osl))
