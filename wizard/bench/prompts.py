"""Request bodies of fixed input and output length, random per request (no prefix-cache hits).

Token-id prompts (a list of ints as ``prompt``, which vLLM and SGLang accept on
/v1/completions) have exactly ISL tokens. Otherwise the prompt is random text whose length
in characters comes from a characters-per-token ratio fitted on the server's own
``usage.prompt_tokens`` (``fit_text_ratio``). ``max_tokens`` with ``ignore_eos`` (and
``min_tokens``) asks for exactly OSL output tokens; the count returned is checked later.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from typing import Any, Literal

Api = Literal["completions", "chat"]
PromptKind = Literal["token_ids", "text"]
PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}

# Token ids are drawn away from both ends of the vocabulary, where tokenizers keep their
# special and reserved tokens (Llama 3: 128000+, Qwen: 151643+, Gemma: the first ~100).
LOW_TOKEN_ID = 1000
HIGH_FRACTION = 0.9
_LETTERS = string.ascii_lowercase


@dataclass(frozen=True)
class PromptPlan:
    """How prompts are made: the API, the prompt kind, and for text the fitted length law
    ``tokens = overhead_tokens + chars / chars_per_token``."""

    api: Api
    kind: PromptKind
    isl: int
    osl: int
    vocab_size: int
    chars_per_token: float | None = None
    overhead_tokens: float = 0.0
    exact_output: bool = True     # send ignore_eos / min_tokens

    def text_chars(self) -> int:
        """Characters of text that tokenize to ISL tokens under the fitted law."""
        assert self.chars_per_token is not None
        return max(1, round((self.isl - self.overhead_tokens) * self.chars_per_token))


def token_ids(rng: random.Random, n: int, vocab_size: int) -> list[int]:
    high = max(LOW_TOKEN_ID + 1, int(vocab_size * HIGH_FRACTION))
    return rng.choices(range(LOW_TOKEN_ID, high), k=n)


def random_text(rng: random.Random, chars: int) -> str:
    """Random lowercase words of 2-9 letters: no two prompts share a prefix of any length."""
    words: list[str] = []
    size = 0
    while size < chars:
        w = "".join(rng.choices(_LETTERS, k=rng.randint(2, 9)))
        words.append(w)
        size += len(w) + 1
    return " ".join(words)[:chars]


def body(plan: PromptPlan, model: str, rng: random.Random, *, max_tokens: int | None = None,
         chars: int | None = None) -> dict[str, Any]:
    """One streaming request body with a fresh random prompt."""
    n_out = max_tokens or plan.osl
    if plan.kind == "token_ids":
        prompt: Any = token_ids(rng, plan.isl, plan.vocab_size)
    else:
        prompt = random_text(rng, chars if chars is not None else plan.text_chars())
    doc: dict[str, Any] = {"model": model, "max_tokens": n_out, "stream": True,
                           "stream_options": {"include_usage": True}, "temperature": 0.0}
    if plan.api == "chat":
        doc["messages"] = [{"role": "user", "content": prompt}]
    else:
        doc["prompt"] = prompt
    if plan.exact_output:
        doc["ignore_eos"] = True
        doc["min_tokens"] = n_out
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    """The request body as sent (serialised ahead of the timed phase)."""
    return json.dumps(doc, separators=(",", ":")).encode()


def fit_text_ratio(samples: list[tuple[int, int]]) -> tuple[float, float]:
    """(chars_per_token, overhead_tokens) from (characters, prompt tokens) samples.

    Least squares on tokens = overhead + chars / ratio over two or more prompt sizes; the
    overhead is the chat template (0 for plain completions, clamped at 0).
    """
    if len(samples) < 2:
        c, t = samples[0]
        return c / max(t, 1), 0.0
    n = len(samples)
    mx = sum(c for c, _ in samples) / n
    my = sum(t for _, t in samples) / n
    sxx = sum((c - mx) ** 2 for c, _ in samples)
    sxy = sum((c - mx) * (t - my) for c, t in samples)
    slope = sxy / sxx if sxx else 0.0
    if slope <= 0:
        raise ValueError("prompt tokens do not grow with prompt length")
    overhead = max(0.0, my - slope * mx)
    return 1.0 / slope, overhead
