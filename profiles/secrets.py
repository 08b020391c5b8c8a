"""Secret-looking values: servewise never stores one in a profile, plan.json or artifact.

Artifacts reference secrets by name only (the ``HF_TOKEN`` environment variable, a Kubernetes
Secret); a value that looks like a credential in a profile, a ``--set`` or an extra engine
argument is refused with the field that holds it. The patterns follow the documented token
formats of each issuer (Hugging Face ``hf_``, GitHub ``ghp_``/``github_pat_``, NVIDIA ``nvapi-``,
OpenAI ``sk-``, AWS ``AKIA``, Slack ``xox?-``, GitLab ``glpat-``, Google ``AIza``), PEM private keys,
JSON Web Tokens, credentials in URLs and ``token=...``-style assignments.
"""

from __future__ import annotations

import re

TOKEN_PATTERNS: dict[str, re.Pattern[str]] = {
    "a Hugging Face token": re.compile(r"\b(hf_[A-Za-z0-9]{30,}|api_org_[A-Za-z0-9]{30,})"),
    "a GitHub token": re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})"),
    "an NVIDIA API key": re.compile(r"\bnvapi-[A-Za-z0-9_-]{30,}"),
    "an OpenAI-style API key": re.compile(r"\bsk-(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{20,}"),
    "an AWS access key": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "a GitLab token": re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"),
    "a Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY"),
    "a JSON Web Token": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\."),
    "credentials in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"),
    "a secret assignment": re.compile(
        r"(?i)\b(token|secret|password|passwd|api[_-]?key|access[_-]?key|auth)['\"]?\s*[:=]\s*['\"]?[^\s'\"$]{8,}"),
}

# Engine flags that take a secret as their value (vLLM/SGLang --api-key, vLLM --hf-token, ...).
SECRET_FLAG = re.compile(r"(?i)^--?[a-z0-9_-]*(token|secret|password|passwd|api[_-]?key|credential)[a-z0-9_-]*$")


def token_kind(text: str) -> str | None:
    """What kind of secret ``text`` contains, or None."""
    for kind, pattern in TOKEN_PATTERNS.items():
        if pattern.search(text):
            return kind
    return None


def redact(text: str) -> str:
    """``text`` with every token-like value replaced by ``[redacted]`` (for what servewise records
    from outside, such as an endpoint's error messages)."""
    for pattern in TOKEN_PATTERNS.values():
        text = pattern.sub("[redacted]", text)
    return text


def secret_flag_with_value(args: list[str]) -> tuple[int, str] | None:
    """The first ``--api-key VALUE`` / ``--api-key=VALUE`` in an argument list, as (index, flag)."""
    for i, arg in enumerate(args):
        flag, eq, _ = arg.partition("=")
        if not SECRET_FLAG.match(flag):
            continue
        if eq or (i + 1 < len(args) and not args[i + 1].startswith("-")):
            return i, flag
    return None
