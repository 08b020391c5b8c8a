"""Load shapes: a closed loop at a concurrency, or Poisson arrivals at a request rate.

Both are bounded in count (``total`` requests) and in time (``deadline_s``: no request is
sent after it, and each request's own timeout is cut so it ends by then), and both stop
early when the endpoint is plainly failing (``Watch``), so a dead server is not hammered.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from servewise.wizard.bench.client import RequestRecord

SendOne = Callable[[int, float], Awaitable[RequestRecord]]   # (index, deadline_s) -> record
OnRecord = Callable[[RequestRecord], None]


@dataclass
class Watch:
    """Stops a phase after ``limit`` failures in a row (the endpoint is failing, not flaky)."""

    limit: int
    on_record: OnRecord | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    in_a_row: int = 0
    reason: str | None = None

    def __call__(self, rec: RequestRecord) -> None:
        self.in_a_row = self.in_a_row + 1 if rec.error else 0
        if self.in_a_row >= self.limit and not self.stop.is_set():
            self.reason = f"stopped after {self.in_a_row} failed requests in a row"
            self.stop.set()
        if self.on_record:
            self.on_record(rec)


async def closed_loop(send_one: SendOne, concurrency: int, total: int, deadline_s: float,
                      watch: Watch) -> tuple[list[RequestRecord], str | None]:
    """``concurrency`` workers, each sending its next request as soon as the last one ends."""
    records: list[RequestRecord] = []
    counter = iter(range(total))
    timed_out = False

    async def worker() -> None:
        nonlocal timed_out
        for index in counter:  # shared iterator: each index is sent once, ``total`` at most
            if watch.stop.is_set():
                return
            if time.perf_counter() >= deadline_s:
                timed_out = True
                return
            rec = await send_one(index, deadline_s)
            records.append(rec)
            watch(rec)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    records.sort(key=lambda r: r.index)
    return records, watch.reason or (_time_limit(len(records), total) if timed_out else None)


async def poisson(send_one: SendOne, rate_per_s: float, total: int, deadline_s: float, watch: Watch,
                  rng: random.Random) -> tuple[list[RequestRecord], str | None]:
    """Open loop: requests sent at exponentially distributed gaps (mean 1 / rate), not waiting on answers."""
    tasks: list[asyncio.Task[RequestRecord]] = []
    due = time.perf_counter()
    timed_out = False
    for index in range(total):
        due += rng.expovariate(rate_per_s)
        if due >= deadline_s:
            timed_out = True
            break
        try:
            await asyncio.wait_for(watch.stop.wait(), max(0.0, due - time.perf_counter()))
            break  # stopped while waiting for the next send
        except TimeoutError:
            pass

        async def one(i: int = index) -> RequestRecord:
            rec = await send_one(i, deadline_s)
            watch(rec)
            return rec

        tasks.append(asyncio.create_task(one()))
    records = list(await asyncio.gather(*tasks))
    return records, watch.reason or (_time_limit(len(records), total) if timed_out else None)


def _time_limit(sent: int, total: int) -> str:
    return f"time limit reached after {sent} of {total} requests (--max-duration)"
