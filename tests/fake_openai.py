"""A fake OpenAI-compatible streaming server for the bench tests (loopback only).

It behaves like an inference engine under load: the time to the first token and the gap
between tokens are functions of the *load* n, the requests the engine is serving. A
request that finishes leaves its slot occupied for ``linger_s`` unless the next request
takes it, the way a closed-loop client re-sends at once; and the first-token time is
decided ``admit_s`` after arrival (an engine step), so a burst of c requests sees load c.
In a closed loop at concurrency c the load is therefore c, and TTFT and TPOT are
``ttft_s(c)`` and ``tpot_s(c)`` (piecewise linear in n through the configured points),
each delay multiplied by ``1 + U(-jitter, jitter)``.

Failures are injected deterministically by arrival number (``fail_every``), and the
server can be made to refuse token-id prompts, not stream, hang, or ignore ``ignore_eos``.
Each request is logged (``FakeServer.log``) so tests can compare with what was applied.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

SPIN_S = 0.0011


def piecewise(points: list[tuple[float, float]], n: float) -> float:
    """Linear interpolation through (n, seconds) points, held flat outside them."""
    xs = [p[0] for p in points]
    if n <= xs[0]:
        return points[0][1]
    if n >= xs[-1]:
        return points[-1][1]
    i = bisect.bisect_right(xs, n)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (n - x0) / (x1 - x0)


@dataclass
class FakeConfig:
    model: str = "fake-model"
    ttft_s: list[tuple[float, float]] = field(default_factory=lambda: [(1, 0.030), (8, 0.060)])
    tpot_s: list[tuple[float, float]] = field(default_factory=lambda: [(1, 0.004), (8, 0.008)])
    jitter: float = 0.1
    admit_s: float = 0.002
    linger_s: float = 0.05
    seed: int = 0
    fail_every: int = 0                 # every k-th arrival fails (0: never)
    fail_kind: str = "status"           # status | midstream
    fail_status: int = 500
    all_status: int = 0                 # every completion request answers this status (0: off)
    accept_token_ids: bool = True
    streaming: bool = True
    report_usage: bool = True
    honor_ignore_eos: bool = True
    eos_after: int = 3                  # tokens before a natural end when ignore_eos is not honoured
    hang_s: float = 0.0                 # sleep this long before answering anything
    chars_per_token: float = 3.7        # the fake tokenizer of text prompts
    api_key: str | None = None          # when set, requests must carry "authorization: Bearer <key>"
    chat_template_tokens: int = 7


@dataclass
class Applied:
    arrival: int
    path: str
    load: float
    ttft_s: float
    mean_gap_s: float | None
    prompt_tokens: int
    output_tokens: int
    failed: str | None = None
    arrived_s: float = 0.0        # time.perf_counter() at arrival (one clock with the client's)
    first_token_s: float = 0.0    # when the first token was written
    last_token_s: float = 0.0     # when the last token was written

    @property
    def delivered_ttft_s(self) -> float:
        """Arrival -> first token written, as this server actually kept time."""
        return self.first_token_s - self.arrived_s

    @property
    def delivered_tpot_s(self) -> float | None:
        return (self.last_token_s - self.first_token_s) / (self.output_tokens - 1) if self.output_tokens > 1 else None


class _Http:
    """Minimal HTTP/1.1 over asyncio streams: keep-alive, content-length bodies, chunked responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received = (0.0, 0.0)

    async def read_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        self.received = asyncio.get_running_loop().time(), time.perf_counter()  # the engine's clock starts here
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return method, path, headers, body

    async def json(self, status: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await self.writer.drain()

    async def start_stream(self) -> None:
        self.writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n")
        await self.writer.drain()

    async def event(self, doc: Any) -> None:
        data = b"data: " + (doc if isinstance(doc, bytes) else json.dumps(doc).encode()) + b"\n\n"
        self.writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await self.writer.drain()

    async def end_stream(self) -> None:
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()


class FakeServer:
    """Run with ``with FakeServer(cfg) as srv:``; ``srv.url`` is http://127.0.0.1:<ephemeral port>."""

    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = config or FakeConfig()
        self.log: list[Applied] = []
        self.injected = 0
        self._arrivals = 0
        self._in_flight = 0
        self._ghosts: deque[float] = deque()
        self._rng = random.Random(self.config.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(10)

    def reconfigure(self, config: FakeConfig) -> None:
        """Swap the behaviour between runs (no request may be in flight)."""
        self.config, self.log, self.injected = config, [], 0
        self._rng = random.Random(config.seed)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    # ------------------------------------------------------------------ load
    def load(self) -> int:
        now = time.monotonic()
        while self._ghosts and self._ghosts[0] <= now:
            self._ghosts.popleft()
        return self._in_flight + len(self._ghosts)

    def _jit(self) -> float:
        j = self.config.jitter
        return 1.0 + self._rng.uniform(-j, j) if j else 1.0

    # ------------------------------------------------------------------ HTTP
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        http = _Http(reader, writer)
        try:
            for _ in range(100_000):
                req = await http.read_request()
                if req is None:
                    break
                method, path, headers, body = req
                key = self.config.api_key
                if key and headers.get("authorization") != f"Bearer {key}":
                    await http.json(401, {"error": {"message": "invalid API key", "type": "Unauthorized"}})
                    continue
                if not await self._route(http, method, path.split("?")[0], body):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # the server is stopping with a request still in flight
            pass
        finally:
            writer.close()

    async def _route(self, http: _Http, method: str, path: str, body: bytes) -> bool:
        cfg = self.config
        if cfg.hang_s:
            await asyncio.sleep(cfg.hang_s)
        if method == "GET" and path == "/v1/models":
            await http.json(200, {"object": "list", "data": [{"id": cfg.model, "object": "model"}]})
            return True
        if method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
            return await self._completion(http, path, json.loads(body or b"{}"))
        await http.json(404, {"error": {"message": f"no route {path}", "type": "NotFound", "code": 404}})
        return True

    async def _completion(self, http: _Http, path: str, req: dict) -> bool:
        cfg = self.config
        chat = path.endswith("chat/completions")
        if req.get("model") != cfg.model:
            await http.json(404, {"error": {"message": f"The model `{req.get('model')}` does not exist.",
                                            "type": "NotFoundError", "code": 404}})
            return True
        if cfg.all_status:
            await http.json(cfg.all_status, {"error": {"message": "injected failure", "type": "Injected",
                                                       "code": cfg.all_status}})
            return True
        prompt_tokens = self._prompt_tokens(req, chat)
        if prompt_tokens is None:
            await http.json(400, {"error": {"message": "prompt must be a string", "type": "BadRequestError",
                                            "code": 400}})
            return True
        self._arrivals += 1
        arrival = self._arrivals
        max_tokens = int(req.get("max_tokens") or 16)
        n_out = max_tokens if (req.get("ignore_eos") and cfg.honor_ignore_eos) else min(cfg.eos_after, max_tokens)
        failing = cfg.fail_every and arrival % cfg.fail_every == 0
        if failing and cfg.fail_kind == "status":
            self.injected += 1
            self.log.append(Applied(arrival, path, self.load(), 0.0, None, prompt_tokens, 0, "status"))
            await http.json(cfg.fail_status, {"error": {"message": "injected failure", "type": "Injected",
                                                        "code": cfg.fail_status}})
            return True
        self._in_flight += 1
        if self._ghosts:
            self._ghosts.popleft()
        try:
            return await self._serve(http, req, chat, arrival, prompt_tokens, n_out, bool(failing))
        finally:
            self._in_flight -= 1
            self._ghosts.append(time.monotonic() + cfg.linger_s)

    def _prompt_tokens(self, req: dict, chat: bool) -> int | None:
        cfg = self.config
        if chat:
            text = "".join(str(m.get("content", "")) for m in req.get("messages", []))
            return math.ceil(len(text) / cfg.chars_per_token) + cfg.chat_template_tokens
        prompt = req.get("prompt")
        if isinstance(prompt, list):
            return len(prompt) if cfg.accept_token_ids and all(isinstance(t, int) for t in prompt) else None
        return math.ceil(len(str(prompt)) / cfg.chars_per_token) if isinstance(prompt, str) else None

    async def _serve(self, http: _Http, req: dict, chat: bool, arrival: int, prompt_tokens: int, n_out: int,
                     failing: bool) -> bool:
        cfg = self.config
        loop = asyncio.get_running_loop()
        t0, arrived = http.received  # reading and parsing the body count towards TTFT
        await asyncio.sleep(cfg.admit_s)
        n = self.load()
        ttft = piecewise(cfg.ttft_s, n) * self._jit()
        record = Applied(arrival, "chat" if chat else "completions", n, ttft, None, prompt_tokens, n_out,
                         arrived_s=arrived)
        self.log.append(record)
        if not cfg.streaming or not req.get("stream"):
            await asyncio.sleep(max(0.0, t0 + ttft - loop.time()))
            text = " tok" * n_out
            choice = {"index": 0, "message": {"role": "assistant", "content": text}} if chat else \
                {"index": 0, "text": text}
            await http.json(200, {"object": "chat.completion" if chat else "text_completion", "model": cfg.model,
                                  "choices": [choice], "usage": {"prompt_tokens": prompt_tokens,
                                                                 "completion_tokens": n_out}})
            return True
        await http.start_stream()
        obj = "chat.completion.chunk" if chat else "text_completion"
        if chat:  # the role announcement, before any token (a client must not take it for one)
            await http.event({"object": obj, "model": cfg.model,
                              "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        due = t0 + ttft
        gaps = 0.0
        for k in range(n_out):
            if k:
                gap = piecewise(cfg.tpot_s, self.load()) * self._jit()
                due += gap
                gaps += gap
            await _sleep_until(loop, due, precise=not k)
            if failing and k == n_out // 2:
                self.injected += 1
                record.failed = "midstream"
                return False  # drop the connection mid-stream
            last = k == n_out - 1
            finish = "length" if last and n_out == int(req.get("max_tokens") or 16) else ("stop" if last else None)
            choice = {"index": 0, "delta": {"content": " tok"}, "finish_reason": finish} if chat else \
                {"index": 0, "text": " tok", "finish_reason": finish}
            await http.event({"object": obj, "model": cfg.model, "choices": [choice]})
            record.last_token_s = time.perf_counter()
            if not k:  # later tokens are spaced from when the first one actually left
                record.first_token_s = record.last_token_s
                due = loop.time()
        record.mean_gap_s = gaps / (n_out - 1) if n_out > 1 else None
        if cfg.report_usage and (req.get("stream_options") or {}).get("include_usage"):
            await http.event({"object": obj, "model": cfg.model, "choices": [],
                              "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n_out,
                                        "total_tokens": prompt_tokens + n_out}})
        await http.event(b"[DONE]")
        await http.end_stream()
        return True


async def _sleep_until(loop: asyncio.AbstractEventLoop, due: float, precise: bool) -> None:
    """Sleep until ``due``; ``precise`` spins through the last millisecond, which the event loop's
    millisecond-granular wake-ups would otherwise overshoot (used for the first token only)."""
    await asyncio.sleep(max(0.0, due - loop.time() - (SPIN_S if precise else 0.0)))
    for _ in range(100_000):
        if not precise or loop.time() >= due:
            return
        await asyncio.sleep(0)


def linear(base_s: float, slope: float, levels: list[int]) -> list[tuple[float, float]]:
    """(n, base * (1 + slope * (n - 1))) points: a delay growing linearly with load."""
    return [(float(n), base_s * (1.0 + slope * (n - 1))) for n in levels]


def main() -> None:
    """``python -m tests.fake_openai '<FakeConfig JSON>'``: serve until stdin closes; prints the port."""
    import sys

    cfg = FakeConfig(**json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))
    with FakeServer(cfg) as srv:
        print(srv.port, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
