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
from servewise.perfdata.loader import read_yaml, read_yaml_dir

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


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


_LOADED: dict[str, ModelEntry] = {}   # one object per entry, whether read alone or with the whole catalog


@cache
def all_models() -> dict[str, ModelEntry]:
    """Every catalog model, by Hugging Face id."""
    out = {}
    for d in read_yaml_dir("models"):
        m = ModelEntry.model_validate(d)
        out[m.id] = _LOADED.setdefault(m.id, m)
    return out


def _exact(model_id: str) -> ModelEntry | None:
    """The entry whose file is ``models/<id>.yaml``, read alone (planning one model need not parse the
    whole catalog); None when there is no such file."""
    if model_id in _LOADED:
        return _LOADED[model_id]
    if not _ID.match(model_id):
        return None
    try:
        doc = read_yaml(f"models/{model_id}.yaml")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    entry = ModelEntry.model_validate(doc)
    return _LOADED.setdefault(model_id, entry) if entry.id == model_id else None


def find_model(model_id: str) -> ModelEntry | None:
    """Exact id, else a case-insensitive id match (HF ids are case-insensitive on the Hub)."""
    exact = _exact(model_id)
    if exact is not None:
        return exact
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
