"""Check an endpoint before loading it, and find how to send fixed-length prompts to it.

In order: the model list (is the server up, does it serve the model name), then one
streaming request with a token-id prompt on /v1/completions (exact input length); when the
server refuses token ids, text prompts sized by a characters-per-token law fitted on the
server's own ``usage.prompt_tokens``. A fatal answer raises ``EndpointError`` (exit 6).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

import httpx

from servewise.perfdata.errors import EndpointError
from servewise.wizard.bench import prompts
from servewise.wizard.bench.client import RequestRecord, RequestSpec, send, server_message
from servewise.wizard.bench.failures import describe
from servewise.wizard.bench.prompts import PATHS, PromptPlan

ApiChoice = Literal["auto", "completions", "chat"]
PROBE_OUTPUT_TOKENS = 4
TEXT_TOLERANCE = 0.02  # the fitted text length must give ISL within 2 % (or 2 tokens)


@dataclass
class ProbeResult:
    plan: PromptPlan
    served_models: list[str] | None
    notes: list[str] = field(default_factory=list)


async def served_models(client: httpx.AsyncClient, url: str, model: str) -> list[str] | None:
    """The ids /v1/models lists (None when the server has no such route); checks ``model`` is one."""
    try:
        resp = await client.get("/v1/models")
    except httpx.ConnectError as e:
        raise EndpointError(describe(RequestRecord(0, 0.0, error="refused", message=_short(e)), url)) from None
    except httpx.TimeoutException:
        raise EndpointError(describe(RequestRecord(0, 0.0, error="timeout", message="GET /v1/models"), url)) \
            from None
    except httpx.HTTPError as e:
        raise EndpointError(describe(RequestRecord(0, 0.0, error="stream_error", message=_short(e)), url)) \
            from None
    if resp.status_code in (404, 405):
        return None
    if resp.status_code != 200:
        kind = "http_5xx" if resp.status_code >= 500 else "http_4xx"
        rec = RequestRecord(0, 0.0, error=kind, status=resp.status_code,
                            message=f"GET /v1/models: {server_message(resp.content)}")
        raise EndpointError(describe(rec, url))
    try:
        ids = [str(m["id"]) for m in resp.json().get("data", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if ids and model not in ids:
        shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
        rec = RequestRecord(0, 0.0, error="wrong_model", message=f"it serves {shown}, not {model!r}")
        raise EndpointError(describe(rec, url))
    return ids


async def probe(client: httpx.AsyncClient, url: str, model: str, api: ApiChoice, isl: int, osl: int,
                vocab_size: int | None, timeout_s: float, seed: int) -> ProbeResult:
    models = await served_models(client, url, model)
    rng = random.Random(seed)
    notes: list[str] = []
    apis: list[prompts.Api] = ["completions", "chat"] if api == "auto" else [api]
    last: RequestRecord | None = None
    for a in apis:
        if a == "completions" and vocab_size:
            plan = PromptPlan(a, "token_ids", isl, osl, vocab_size)
            rec, plan = await _try(client, plan, model, rng, timeout_s, notes)
            if rec.ok:
                return ProbeResult(plan, models, notes + _input_note(rec, isl))
            _fatal(rec, url)
            last = rec
            if rec.status == 404:
                continue
            notes.append(f"token-id prompts refused ({rec.message}); using text prompts")
        plan = PromptPlan(a, "text", isl, osl, vocab_size or 0, chars_per_token=4.0)
        rec, plan = await _try(client, plan, model, rng, timeout_s, notes, chars=max(1, isl))
        if rec.ok:
            plan = await _fit_text(client, plan, model, rng, timeout_s, url, rec)
            return ProbeResult(plan, models, notes)
        _fatal(rec, url)
        last = rec
        if rec.status != 404 or api != "auto":
            break
    assert last is not None
    raise EndpointError(describe(last, url))


async def _try(client: httpx.AsyncClient, plan: PromptPlan, model: str, rng: random.Random, timeout_s: float,
               notes: list[str], chars: int | None = None) -> tuple[RequestRecord, PromptPlan]:
    """One short request; when the server rejects ``ignore_eos``/``min_tokens``, once more without them."""
    rec = await _request(client, plan, model, rng, timeout_s, chars)
    low = (rec.message or "").lower()
    if rec.error == "http_4xx" and ("ignore_eos" in low or "min_tokens" in low or "extra" in low):
        plan = PromptPlan(plan.api, plan.kind, plan.isl, plan.osl, plan.vocab_size, plan.chars_per_token,
                          plan.overhead_tokens, exact_output=False)
        notes.append("the server refuses ignore_eos/min_tokens: outputs may end early (counts are checked)")
        rec = await _request(client, plan, model, rng, timeout_s, chars)
    return rec, plan


async def _request(client: httpx.AsyncClient, plan: PromptPlan, model: str, rng: random.Random,
                   timeout_s: float, chars: int | None) -> RequestRecord:
    doc = prompts.body(plan, model, rng, max_tokens=min(PROBE_OUTPUT_TOKENS, plan.osl), chars=chars)
    spec = RequestSpec(PATHS[plan.api], prompts.encode(doc), timeout_s, max_events=4 * PROBE_OUTPUT_TOKENS + 16)
    return await send(client, spec, index=-1)


def _fatal(rec: RequestRecord, url: str) -> None:
    """Failures no other prompt or route can fix."""
    if rec.error in ("refused", "timeout", "wrong_model", "not_streaming", "http_5xx", "stream_error") or \
            rec.status in (401, 403, 429):
        raise EndpointError(describe(rec, url))


def _input_note(rec: RequestRecord, isl: int) -> list[str]:
    if rec.prompt_tokens is not None and rec.prompt_tokens != isl:
        return [f"the server counts {rec.prompt_tokens} prompt tokens for {isl} token ids"]
    return []


async def _fit_text(client: httpx.AsyncClient, plan: PromptPlan, model: str, rng: random.Random,
                    timeout_s: float, url: str, first: RequestRecord) -> PromptPlan:
    """Fit tokens = overhead + chars / ratio on two prompt sizes, then check (and refit) at ISL."""
    if first.prompt_tokens is None:
        raise EndpointError(f"no token usage reported at {url}: text prompts cannot be sized to {plan.isl} "
                            "tokens; use a server that reports usage with stream_options.include_usage")
    samples = [(max(1, plan.isl), first.prompt_tokens)]
    chars = max(2, 2 * plan.isl)
    for attempt in range(3):
        rec = await _request(client, plan, model, rng, timeout_s, chars)
        if not rec.ok or rec.prompt_tokens is None:
            raise EndpointError(describe(rec, url) if not rec.ok else f"no token usage reported at {url}")
        samples.append((chars, rec.prompt_tokens))
        if attempt and abs(rec.prompt_tokens - plan.isl) <= max(2.0, TEXT_TOLERANCE * plan.isl):
            break  # the fitted length gives ISL
        try:
            ratio, overhead = prompts.fit_text_ratio(samples)
        except ValueError as e:
            raise EndpointError(f"cannot size text prompts at {url}: {e}") from None
        plan = PromptPlan(plan.api, "text", plan.isl, plan.osl, plan.vocab_size, ratio, overhead, plan.exact_output)
        chars = plan.text_chars()
    return plan


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__
