"""A checkpoint's quantization, detected from ``quantization_config`` (config.json) or
``hf_quant_config.json`` (NVIDIA ModelOpt), and the exact weight bytes it implies.

Detected methods use the engine-neutral names of ``perfdata.engines.QuantMethod``; each engine
version says (``EngineVersion.quantization``) whether it reads the method from the checkpoint
or needs a flag. An unknown or unsupported method is refused with its name, never guessed.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from servewise.estimator.arch import ModelArch, UnsupportedArchitectureError
from servewise.estimator.linear_modules import Module, modules
from servewise.estimator.quant import FORMATS, WeightFormat


class UnsupportedQuantizationError(UnsupportedArchitectureError):
    """A quantization_config servewise cannot size correctly."""


@dataclass(frozen=True)
class CheckpointQuant:
    method: str          # fp8 | compressed-tensors | awq | gptq | bitsandbytes | mxfp4 | modelopt_fp8 | modelopt_fp4
    weights_dtype: str   # servewise format: fp8, int8, int4-awq, int4-gptq, nvfp4, mxfp4, bnb-4bit
    fmt: WeightFormat                    # storage of one quantized weight, scales included
    excluded: tuple[str, ...] = ()       # module patterns kept in 16-bit
    kv_cache_dtype: str | None = None    # a KV-cache quantization the checkpoint ships (ModelOpt FP8 KV)
    detail: str = ""                     # one line for humans: "FP8 E4M3, 128x128 block scales"
    source: str = "config.json"          # config.json | hf_quant_config.json
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def quantizes(self, name: str) -> bool:
        return not any(_matches(name, pat) for pat in self.excluded)


def _matches(name: str, pattern: str) -> bool:
    """One exclusion pattern: ``re:<regex>`` (compressed-tensors), a glob with ``*`` (ModelOpt,
    gpt-oss), else a dotted-name fragment (AWQ/FP8 ``modules_to_not_convert``: ``lm_head``,
    ``self_attn``, ``mlp.gate``)."""
    if pattern.startswith("re:"):
        return re.match(pattern[3:], name) is not None
    if "*" in pattern or "?" in pattern:
        return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, pattern + ".*")
    frag = pattern.strip(".")
    return f".{frag}." in f".{name}."


def _fmt(name: str, bits: float, group: int, scale_bits: float, zero_bits: float = 0.0,
         compute: str = "bf16") -> WeightFormat:
    return WeightFormat(name, bits, group=group, scale_bits=scale_bits, zero_bits=zero_bits, compute_dtype=compute)


def _list(v: Any) -> tuple[str, ...]:
    return tuple(str(x) for x in v) if isinstance(v, list | tuple) else ()


def _int(q: Mapping[str, Any], *keys: str, default: int | None = None) -> int:
    for k in keys:
        v = q.get(k)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, int):
                raise UnsupportedQuantizationError(f"quantization_config field {k!r} must be an integer, got {v!r}")
            return v
    if default is None:
        raise UnsupportedQuantizationError(f"quantization_config has no {keys[0]!r}")
    return default


def _fp8(q: Mapping[str, Any]) -> CheckpointQuant:
    block = q.get("weight_block_size")
    if block:
        if not (isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and b > 0 for b in block)):
            raise UnsupportedQuantizationError(f"quantization_config weight_block_size {block!r} is not [rows, cols]")
        fmt = _fmt("fp8", 8, block[0] * block[1], 32, compute="fp8")
        detail = f"FP8 E4M3 weights, {block[0]}x{block[1]} block scales"
    else:
        fmt, detail = FORMATS["fp8"], "FP8 E4M3 weights, per-tensor scales"
    return CheckpointQuant("fp8", "fp8", fmt, _list(q.get("modules_to_not_convert")), detail=detail, raw=q)


def _awq(q: Mapping[str, Any]) -> CheckpointQuant:
    bits = _int(q, "bits", "w_bit")
    group = _int(q, "group_size", "q_group_size", default=128)
    if bits != 4:
        raise UnsupportedQuantizationError(f"AWQ with {bits}-bit weights is not sized by servewise (4-bit only)")
    zero = bool(q.get("zero_point", True))
    fmt = _fmt("int4-awq", 4, group if group > 0 else 0, 16, 4 if zero else 0)
    return CheckpointQuant("awq", "int4-awq", fmt, _list(q.get("modules_to_not_convert")),
                       detail=f"AWQ INT4, group {group}, {'zero point' if zero else 'symmetric'}", raw=q)


def _gptq(q: Mapping[str, Any]) -> CheckpointQuant:
    bits = _int(q, "bits")
    group = _int(q, "group_size", default=128)
    if bits != 4:
        raise UnsupportedQuantizationError(f"GPTQ with {bits}-bit weights has no servewise weights format "
                                           f"(int4-gptq only)")
    # GPTQ checkpoints store packed zero points (qzeros) per group whether or not sym is set.
    fmt = _fmt("int4-gptq", 4, group if group > 0 else 0, 16, 4)
    return CheckpointQuant("gptq", "int4-gptq", fmt, _list(q.get("modules_to_not_convert")),
                       detail=f"GPTQ INT4, group {group}, desc_act {q.get('desc_act', 'unset')}", raw=q)


def _compressed_tensors(q: Mapping[str, Any]) -> CheckpointQuant:
    groups = q.get("config_groups")
    if not isinstance(groups, Mapping) or not groups:
        raise UnsupportedQuantizationError("compressed-tensors quantization_config has no config_groups")
    schemes = []
    for g in groups.values():
        w = (g or {}).get("weights") or {}
        bits, kind = w.get("num_bits"), w.get("type")
        group = w.get("group_size") or 0
        sym = w.get("symmetric", True)
        if kind == "float" and bits == 8:
            block = w.get("block_structure")
            size = block[0] * block[1] if isinstance(block, list) and len(block) == 2 else 0
            schemes.append(("fp8", _fmt("fp8", 8, size, 32 if size else 0, compute="fp8"),
                            f"FP8 weights ({w.get('strategy', 'channel')} scales)"))
        elif kind == "float" and bits == 4 and group == 16:
            schemes.append(("nvfp4", FORMATS["nvfp4"], "NVFP4 weights (FP8 scale per 16)"))
        elif kind == "int" and bits == 8:
            schemes.append(("int8", FORMATS["int8"], "INT8 W8A8 weights"))
        elif kind == "int" and bits == 4:
            schemes.append(("int4-gptq", _fmt("int4-gptq", 4, group, 16, 0 if sym else 4),
                            f"INT4 W4A16, group {group}, {'symmetric' if sym else 'zero point'}"))
        else:
            raise UnsupportedQuantizationError(
                f"compressed-tensors weights of {bits}-bit {kind} are not sized by servewise")
    if len({s[0] for s in schemes}) != 1:
        raise UnsupportedQuantizationError(
            "compressed-tensors config_groups mix weight formats; not sized by servewise")
    dtype, fmt, detail = schemes[0]
    return CheckpointQuant("compressed-tensors", dtype, fmt, _list(q.get("ignore")), detail=detail, raw=q)


def _mxfp4(q: Mapping[str, Any]) -> CheckpointQuant:
    return CheckpointQuant("mxfp4", "mxfp4", FORMATS["mxfp4"], _list(q.get("modules_to_not_convert")),
                       detail="MXFP4 weights (E8M0 scale per 32)", raw=q)


def _bitsandbytes(q: Mapping[str, Any]) -> CheckpointQuant:
    if q.get("load_in_8bit"):
        raise UnsupportedQuantizationError("bitsandbytes 8-bit (LLM.int8) checkpoints are not sized by servewise")
    if not q.get("load_in_4bit"):
        raise UnsupportedQuantizationError(
            "bitsandbytes quantization_config sets neither load_in_4bit nor load_in_8bit")
    double = bool(q.get("bnb_4bit_use_double_quant"))
    # 4-bit NF4/FP4 values, one absmax per 64 weights: fp32, or 8-bit with double quantization.
    fmt = _fmt("bnb-4bit", 4, 64, 8.5 if double else 32)
    return CheckpointQuant("bitsandbytes", "bnb-4bit", fmt, _list(q.get("llm_int8_skip_modules")),
                       detail=f"bitsandbytes {q.get('bnb_4bit_quant_type', 'fp4')} 4-bit, blocks of 64", raw=q)


def _modelopt(q: Mapping[str, Any], source: str) -> CheckpointQuant:
    inner = q.get("quantization") if isinstance(q.get("quantization"), Mapping) else q
    algo = str(inner.get("quant_algo") or "").upper()
    kv = "fp8" if str(inner.get("kv_cache_quant_algo") or "").upper() == "FP8" else None
    excluded = _list(inner.get("exclude_modules") or inner.get("ignore"))
    if algo == "FP8":
        return CheckpointQuant("modelopt_fp8", "fp8", FORMATS["fp8"], excluded, kv,
                               "ModelOpt FP8 weights and activations", source, q)
    if algo == "NVFP4":
        group = _int(inner, "group_size", default=16)
        if group != 16:
            raise UnsupportedQuantizationError(f"ModelOpt NVFP4 with group {group} (expected 16)")
        return CheckpointQuant("modelopt_fp4", "nvfp4", FORMATS["nvfp4"], excluded, kv,
                               "ModelOpt NVFP4 (FP8 scale per 16)", source, q)
    raise UnsupportedQuantizationError(f"ModelOpt quant_algo {algo or 'unset'!r} is not sized by servewise "
                                       f"(FP8 and NVFP4 are)")


_DETECTORS = {"fp8": _fp8, "fbgemm_fp8": _fp8, "awq": _awq, "gptq": _gptq, "compressed-tensors": _compressed_tensors,
              "compressed_tensors": _compressed_tensors, "mxfp4": _mxfp4, "bitsandbytes": _bitsandbytes}


def detect(quantization_config: Mapping[str, Any] | None, hf_quant_config: Mapping[str, Any] | None = None
           ) -> CheckpointQuant | None:
    """The checkpoint's scheme; None for an unquantized checkpoint."""
    if hf_quant_config:
        return _modelopt(hf_quant_config, "hf_quant_config.json")
    if not quantization_config:
        return None
    if not isinstance(quantization_config, Mapping):
        raise UnsupportedQuantizationError("quantization_config is not a JSON object")
    if "producer" in quantization_config and "quantization" in quantization_config:
        return _modelopt(quantization_config, "hf_quant_config.json")
    method = str(quantization_config.get("quant_method") or "").lower()
    if method == "modelopt":
        return _modelopt(quantization_config, "config.json")
    if method not in _DETECTORS:
        raise UnsupportedQuantizationError(
            f"quant_method {method or 'unset'!r} is not one servewise sizes (known: "
            f"{', '.join(sorted(set(_DETECTORS) | {'modelopt'}))})")
    return _DETECTORS[method](quantization_config)


@dataclass(frozen=True)
class WeightSplit:
    """Whole-model parameters by storage, and the bytes they take."""

    quantized_params: int
    high_precision_params: int
    weight_bytes: float
    quantized_roles: frozenset[str]

    @property
    def total_params(self) -> int:
        return self.quantized_params + self.high_precision_params


def weight_split(arch: ModelArch, scheme: CheckpointQuant | None, high_precision_bytes: float = 2.0,
                 uniform: WeightFormat | None = None) -> WeightSplit:
    """Bytes of every weight: quantized linear matrices x the format's bytes per weight (scales
    included), everything else (biases, norms, routers, embeddings, LM head, vision) at 16 bit.

    ``scheme`` applies its exclusions module by module; ``uniform`` instead quantizes every linear
    matrix of the decoder in one format (what serving a 16-bit checkpoint as that format stores).
    """
    fmt = uniform or (scheme.fmt if scheme else None)
    q = hp = 0
    roles: set[str] = set()
    for m in modules(arch):
        hp += m.bias_params
        if fmt is not None and m.linear and (uniform is not None or (scheme and scheme.quantizes(m.name))):
            q += m.weight_params
            roles.add(m.role)
        else:
            hp += m.weight_params
    qbytes = q * fmt.bytes_per_param if fmt else 0.0
    return WeightSplit(q, hp, qbytes + hp * high_precision_bytes, frozenset(roles))


def module_total(arch: ModelArch) -> int:
    """Sum over ``modules``: equals ``arch.total_params()`` (a test keeps them in step)."""
    return sum(m.weight_params + m.bias_params for m in modules(arch))


__all__ = ["Module", "CheckpointQuant", "UnsupportedQuantizationError", "WeightSplit", "detect", "module_total",
           "weight_split"]
