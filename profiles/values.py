"""Checks on every value of a profile, whatever field holds it: strings without control or
invisible characters and without credentials, numbers finite. Cross-field failures name their
field through ``FieldValueError``."""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from pydantic import BaseModel

from servewise.profiles.secrets import token_kind

# Unicode categories refused in every string: control, format (bidi overrides, zero-width
# characters), surrogates, private use, line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


class FieldValueError(ValueError):
    """A cross-field check that failed on ``field`` (a dotted path from where it was raised)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def _leaves(value: Any, path: str):  # type: ignore[no-untyped-def]
    """Every string and number in a profile (keys of free-form mappings included) with its field path."""
    if isinstance(value, str | float):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _leaves(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}", k
            yield from _leaves(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")


def check_values(part: BaseModel, prefix: str = "") -> None:
    """No string in a profile (or a part of one, at field path ``prefix``) holds a control / format
    character (bidi overrides, zero-width characters) or a value that looks like a credential, and
    no number is NaN or infinite (free-form mappings such as ``model.architecture`` included)."""
    for path, value in _leaves(part, prefix):
        if isinstance(value, float):
            if not math.isfinite(value):
                raise FieldValueError(path, f"must be a finite number, not {value}")
            continue
        text = str(value)
        bad = next((c for c in text if unicodedata.category(c) in _REFUSED_CATEGORIES), None)
        if bad is not None:
            raise FieldValueError(path, f"contains the invisible or control character U+{ord(bad):04X} "
                                        f"({unicodedata.name(bad, 'unnamed')}); remove it")
        kind = token_kind(text)
        if kind:
            raise FieldValueError(path, f"looks like {kind}; servewise never stores secrets in a profile: "
                                        "keep it in the environment (HF_TOKEN) or a Kubernetes Secret "
                                        "(deploy.hf_token_secret) and remove it here")
