"""One clear line per kind of endpoint failure (the text of exit 6)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from servewise.wizard.bench.client import RequestRecord

HINTS = {
    "refused": "nothing accepts connections there; is the server up and the host/port right?",
    "timeout": "the server did not answer in time; raise --timeout if it is just slow, else check its logs",
    "http_4xx": "the server rejected the request",
    "http_5xx": "the server failed while answering; check its logs",
    "wrong_model": "the server does not serve that model name; pass --model NAME or set model.served_name",
    "not_streaming": "TTFT and TPOT need a server-sent-event stream (an OpenAI-compatible server with stream=true)",
    "stream_error": "the answer stream broke off or was malformed",
}

LABELS = {
    "refused": "connection refused",
    "timeout": "timed out",
    "http_4xx": "HTTP 4xx",
    "http_5xx": "HTTP 5xx",
    "wrong_model": "wrong model name",
    "not_streaming": "not streaming",
    "stream_error": "broken stream",
}


def describe(rec: RequestRecord, url: str) -> str:
    """``<what happened> at <url>: <server's words>; <what to do>``."""
    kind = rec.error or "stream_error"
    http = rec.status is not None and rec.status != 200
    if kind in ("http_4xx", "http_5xx") and http:
        label = f"HTTP {rec.status}"
    else:
        label = LABELS[kind] + (f" (HTTP {rec.status})" if http else "")
    detail = f": {rec.message}" if rec.message else ""
    return f"{label} at {url}{detail}; {HINTS[kind]}"


def counts(records: Iterable[RequestRecord]) -> dict[str, int]:
    """Failed requests by kind, in a stable order."""
    c = Counter(r.error for r in records if r.error)
    return {k: c[k] for k in LABELS if c[k]}


def summary(errors: dict[str, int]) -> str:
    return ", ".join(f"{n} {LABELS.get(k, k)}" for k, n in errors.items())
