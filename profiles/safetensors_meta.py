"""Exact weight bytes from safetensors metadata: local file headers or the Hub's parameter counts.

A safetensors file starts with an 8-byte little-endian header length and a JSON header naming
every tensor's dtype, shape and byte range; reading the header gives exact bytes without
reading weights. Tensors of multi-token-prediction layers (``model.layers.{i}`` with ``i`` at or
beyond ``num_hidden_layers``, or ``mtp.*``) are counted apart: engines do not load them for
plain serving.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servewise.perfdata.errors import DataError

DTYPE_BYTES: dict[str, float] = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
    "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F6_E2M3": 0.75, "F6_E3M2": 0.75,
    "F4": 0.5,
}
MAX_HEADER_BYTES = 100 * 1024 * 1024
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


@dataclass(frozen=True)
class SafetensorsSummary:
    total_bytes: int
    params_by_dtype: dict[str, int]
    source: str                          # local headers | hub safetensors metadata | index total_size
    extra_bytes: int = 0                 # MTP tensors present in the files, not loaded for serving
    tensors: int | None = None
    files: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def served_bytes(self) -> int:
        return self.total_bytes - self.extra_bytes

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"total_bytes": self.total_bytes, "served_bytes": self.served_bytes,
                               "params_by_dtype": dict(sorted(self.params_by_dtype.items())), "source": self.source}
        if self.notes:
            rec["notes"] = list(self.notes)
        return rec


def _num_layers(config: dict[str, Any] | None) -> int | None:
    if not config:
        return None
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    n = text.get("num_hidden_layers")
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def _is_extra(name: str, num_layers: int | None) -> bool:
    if name.startswith(("mtp.", "model.mtp.")):
        return True
    m = _LAYER.search(name)
    return bool(num_layers is not None and m and int(m.group(1)) >= num_layers)


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of one .safetensors file (checked for size and shape/offset consistency)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise DataError(f"{path}: truncated safetensors file (no header)")
            (n,) = struct.unpack("<Q", head)
            if n <= 0 or n > MAX_HEADER_BYTES:
                raise DataError(f"{path}: safetensors header length {n} is out of range")
            raw = f.read(n)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(raw) < n:
        raise DataError(f"{path}: truncated safetensors header")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataError(f"{path}: safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise DataError(f"{path}: safetensors header is not a JSON object")
    return header


def _tensor_bytes(path: Path, name: str, t: Any) -> tuple[str, int, int]:
    if not isinstance(t, dict) or "dtype" not in t or "shape" not in t:
        raise DataError(f"{path}: tensor {name!r} has no dtype/shape in the header")
    dtype, shape = t["dtype"], t["shape"]
    if dtype not in DTYPE_BYTES:
        raise DataError(f"{path}: tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise DataError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
    numel = 1
    for d in shape:
        numel *= d
    nbytes = int(numel * DTYPE_BYTES[dtype])
    off = t.get("data_offsets")
    if off is not None and (not isinstance(off, list) or len(off) != 2 or off[1] - off[0] != nbytes):
        raise DataError(f"{path}: tensor {name!r} data_offsets {off!r} disagree with {dtype} {shape}")
    return dtype, numel, nbytes


def summarize_local(folder: Path, config: dict[str, Any] | None = None) -> SafetensorsSummary | None:
    """Exact bytes from every *.safetensors header in ``folder``; the index's ``total_size`` when the
    shards are absent; None when the folder has no safetensors at all (weights then come from the
    architecture)."""
    files = sorted(folder.glob("*.safetensors"))
    index = folder / "model.safetensors.index.json"
    if not files:
        if index.is_file():
            try:
                total = json.loads(index.read_text())["metadata"]["total_size"]
            except (OSError, ValueError, KeyError, TypeError):
                raise DataError(f"{index}: no metadata.total_size and no .safetensors shards beside it") from None
            if not isinstance(total, int) or total <= 0:
                raise DataError(f"{index}: metadata.total_size {total!r} is not a positive integer")
            return SafetensorsSummary(total, {}, "index total_size", notes=["shards absent: total size only"])
        return None
    num_layers = _num_layers(config)
    params: dict[str, int] = {}
    total = extra = count = 0
    for path in files:
        for name, t in read_header(path).items():
            if name == "__metadata__":
                continue
            dtype, numel, nbytes = _tensor_bytes(path, name, t)
            params[dtype] = params.get(dtype, 0) + numel
            total += nbytes
            count += 1
            if _is_extra(name, num_layers):
                extra += nbytes
    notes = ["includes multi-token-prediction tensors the engine does not load"] if extra else []
    return SafetensorsSummary(total, params, "local headers", extra, count, len(files), notes)


def summarize_params(params: dict[str, int], source: str) -> SafetensorsSummary:
    """Bytes from parameter counts by safetensors dtype (the Hub's metadata)."""
    unknown = sorted(set(params) - set(DTYPE_BYTES))
    if unknown:
        raise DataError(f"safetensors metadata names unknown dtypes {', '.join(unknown)}")
    total = int(sum(n * DTYPE_BYTES[d] for d, n in params.items()))
    return SafetensorsSummary(total, dict(params), source,
                              notes=["whole checkpoint, multi-token-prediction tensors included if present"])
