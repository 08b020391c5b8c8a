"""One streaming request to an OpenAI-compatible endpoint, timed token by token.

Timing follows ARCHITECTURE.md section 3: TTFT is send -> first output token; each later
token event gives an inter-token latency; TPOT is (last token - first token) / (tokens - 1),
with the token count the server reports in ``usage`` (one event may carry several tokens).
Every failure becomes an ``error`` kind on the record instead of an exception.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

ErrorKind = Literal["refused", "timeout", "http_4xx", "http_5xx", "wrong_model", "not_streaming", "stream_error"]
ERROR_BODY_BYTES = 4096
JSON_HEADERS = {"content-type": "application/json"}


@dataclass
class RequestRecord:
    """What one request did; times are seconds on the ``time.perf_counter`` clock."""

    index: int
    sent_s: float
    first_token_s: float | None = None
    token_times_s: list[float] = field(default_factory=list)
    end_s: float | None = None
    output_tokens: int = 0            # usage.completion_tokens when reported, else token events
    usage_reported: bool = False
    prompt_tokens: int | None = None
    error: ErrorKind | None = None
    status: int | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_s is None else self.first_token_s - self.sent_s

    @property
    def tpot_s(self) -> float | None:
        """Mean gap between output tokens after the first: (t_last - t_first) / (n - 1)."""
        if self.first_token_s is None or self.output_tokens < 2 or not self.token_times_s:
            return None
        return (self.token_times_s[-1] - self.first_token_s) / (self.output_tokens - 1)

    @property
    def itl_s(self) -> list[float]:
        t = self.token_times_s
        return [b - a for a, b in zip(t, t[1:])]

    @property
    def e2e_s(self) -> float | None:
        return None if self.end_s is None else self.end_s - self.sent_s


@dataclass(frozen=True)
class RequestSpec:
    """Where and what to send; ``content`` is the serialised JSON body (prompt included)."""

    path: str
    content: bytes
    timeout_s: float
    max_events: int


def server_message(body: bytes) -> str:
    """The error message of an OpenAI-style error body, else its first line."""
    text = body[:ERROR_BODY_BYTES].decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:200] or "(empty body)"
    err = doc.get("error", doc) if isinstance(doc, dict) else doc
    msg = err.get("message") or err.get("detail") if isinstance(err, dict) else None
    return " ".join(str(msg or text).split())[:200]


def classify_status(status: int, message: str) -> ErrorKind:
    """HTTP status -> error kind; a 404 or 400 that names the model means the model is not served."""
    low = message.lower()
    if status in (400, 404) and "model" in low and ("not exist" in low or "not found" in low
                                                     or "does not" in low or "unknown" in low):
        return "wrong_model"
    return "http_5xx" if status >= 500 else "http_4xx"


def token_event(doc: dict[str, Any]) -> tuple[bool, int | None, int | None]:
    """(is an output token, usage completion tokens, usage prompt tokens) of one SSE event.

    A chunk counts as a token when its choice carries text (completions) or delta content
    (chat); an empty chunk that only announces the role or the finish reason does not.
    """
    usage = doc.get("usage") or {}
    out, prompt = usage.get("completion_tokens"), usage.get("prompt_tokens")
    choices = doc.get("choices") or []
    if not choices:
        return False, out, prompt
    c = choices[0]
    delta = c.get("delta") or {}
    text = c.get("text") if "text" in c else delta.get("content")
    if text is None:
        return False, out, prompt
    if text == "" and (c.get("finish_reason") is not None or "role" in delta):
        return False, out, prompt
    return True, out, prompt


async def send(client: httpx.AsyncClient, spec: RequestSpec, index: int) -> RequestRecord:
    """Send one streaming request; never raises for endpoint trouble (see ``RequestRecord.error``).

    The request is built before the clock starts, so TTFT holds the network and the server only.
    """
    request = client.build_request("POST", spec.path, content=spec.content, headers=JSON_HEADERS)
    rec = RequestRecord(index=index, sent_s=time.perf_counter())
    try:
        async with asyncio.timeout(spec.timeout_s):
            await _exchange(client, request, spec, rec)
    except TimeoutError:
        rec.error, rec.message = "timeout", f"no complete answer within {spec.timeout_s:g} s"
    except httpx.TimeoutException:
        rec.error, rec.message = "timeout", f"no answer within {spec.timeout_s:g} s"
    except httpx.ConnectError as e:
        rec.error, rec.message = "refused", " ".join(str(e).split())[:200] or "connection refused"
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
        rec.error, rec.message = "stream_error", "connection closed mid-answer: " + (" ".join(str(e).split())[:160]
                                                                                     or type(e).__name__)
    except httpx.HTTPError as e:
        rec.error, rec.message = "stream_error", f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"
    if rec.end_s is None or rec.error:
        rec.end_s = time.perf_counter()
    return rec


async def _exchange(client: httpx.AsyncClient, request: httpx.Request, spec: RequestSpec, rec: RequestRecord) -> None:
    resp = await client.send(request, stream=True)
    try:
        rec.status = resp.status_code
        if resp.status_code != 200:
            body = b""
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) >= ERROR_BODY_BYTES:
                    break
            rec.message = server_message(body)
            rec.error = classify_status(resp.status_code, rec.message)
            return
        ctype = resp.headers.get("content-type", "")
        if "text/event-stream" not in ctype:
            rec.error, rec.message = "not_streaming", f"content-type {ctype or '(none)'} instead of text/event-stream"
            return
        await _read_events(resp, spec, rec)
    finally:
        await resp.aclose()


async def _read_events(resp: httpx.Response, spec: RequestSpec, rec: RequestRecord) -> None:
    events = 0
    done = False
    async for line in resp.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        now = time.perf_counter()
        events += 1
        if events > spec.max_events:
            rec.error, rec.message = "stream_error", f"more than {spec.max_events} events for the tokens asked"
            return
        if done or data == "[DONE]":
            # read on to the end of the body, so the connection is reused for the next request
            done = True
            continue
        try:
            doc = json.loads(data)
        except ValueError:
            rec.error, rec.message = "stream_error", f"an event is not JSON: {data[:80]!r}"
            return
        if isinstance(doc, dict) and doc.get("error"):
            rec.error, rec.message = "stream_error", "error event: " + server_message(data.encode())
            return
        is_token, out, prompt = token_event(doc) if isinstance(doc, dict) else (False, None, None)
        rec.end_s = now
        if is_token:
            if rec.first_token_s is None:
                rec.first_token_s = now
            rec.token_times_s.append(now)
        if out is not None:
            rec.output_tokens, rec.usage_reported = int(out), True
        if prompt is not None:
            rec.prompt_tokens = int(prompt)
    if not rec.usage_reported:
        rec.output_tokens = len(rec.token_times_s)
    if not done:
        rec.error, rec.message = "stream_error", "the stream ended without [DONE]"
    elif rec.first_token_s is None:
        rec.error, rec.message = "stream_error", "the stream carried no output token"
