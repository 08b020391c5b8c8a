"""Model catalog: one YAML per model in ``perfdata/models/<org>/``.

Each entry carries the architecture fields of the model's Hugging Face ``config.json``
verbatim (trimmed to what servewise uses, under ``config``) plus metadata. The estimator
reads ``config`` through the same parser it uses for a live ``config.json``, so catalog
and Hub models follow one code path.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from servewise.perfdata.errors import UnknownIdError
from servewise.perfdata.loader import read_yaml_dir


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$",
                    description="Hugging Face repo id; the catalog id")
    family: str = Field(description="short family name for search, e.g. llama3.1, qwen3-moe")
    params: float = Field(gt=0, description="published parameter count of what the checkpoint holds")
    params_source: str
    params_note: str | None = Field(default=None, description="what the count includes (MTP, vision tower)")
    params_rounding: float | None = Field(
        default=None, gt=0, description="half-width of the rounding of a published count given to few digits "
        "(1T -> 0.05e12); only where no more precise count is published")
    dtype: Literal["bf16", "fp16", "fp32", "fp8", "int8", "int4-awq", "int4-gptq", "nvfp4", "mxfp4"] = Field(
        description="weights format of the checkpoint as published")
    license: str
    gated: bool
    base_model: str | None = Field(default=None, description="the model a quantized/fine-tuned repo derives from")
    aliases: list[str] = Field(default_factory=list, description="other ids the same checkpoint is known by")
    config: dict[str, Any] = Field(description="config.json fields, verbatim names")
    quantization_config: dict[str, Any] | None = Field(
        default=None, description="config.json quantization_config (or hf_quant_config.json), verbatim")
    source: str = Field(description="repo@revision path of the config this entry was transcribed from")
    tags: list[str] = Field(default_factory=list)


@cache
def all_models() -> dict[str, ModelEntry]:
    """Every catalog model, by Hugging Face id."""
    return {d["id"]: ModelEntry.model_validate(d) for d in read_yaml_dir("models")}


def find_model(model_id: str) -> ModelEntry | None:
    """Exact id, else a case-insensitive id match (HF ids are case-insensitive on the Hub)."""
    models = all_models()
    if model_id in models:
        return models[model_id]
    low = model_id.lower()
    for k, v in models.items():
        if k.lower() == low or low in (a.lower() for a in v.aliases):
            return v
    return None


def get_model(model_id: str) -> ModelEntry:
    entry = find_model(model_id)
    if entry is None:
        raise UnknownIdError("model", model_id, all_models(),
                             hint="(list them with `servewise models`, or pass a local checkpoint folder)")
    return entry


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([mbt])$", re.IGNORECASE)
_SCALE = {"m": 1e6, "b": 1e9, "t": 1e12}


def _token_matches(entry: ModelEntry, token: str) -> bool:
    """A size (``70b``, ``0.6B``, ``1t``: published count within 10%) or a substring of the id,
    family or a tag (case-insensitive)."""
    low = token.lower()
    if any(low in f.lower() for f in (entry.id, entry.family, *entry.tags, *entry.aliases)):
        return True
    size = _SIZE.match(low)
    if size:
        wanted = float(size.group(1)) * _SCALE[size.group(2)]
        return abs(entry.params - wanted) <= 0.1 * wanted
    return False


def search_models(query: str | None = None) -> list[ModelEntry]:
    """Catalog models matching every word of ``query`` (all of them when empty), sorted by id."""
    words = (query or "").split()
    return sorted((m for m in all_models().values() if all(_token_matches(m, w) for w in words)),
                  key=lambda m: m.id.lower())
