"""Bytes per weight for each serving format, scales included, and which modules a checkpoint quantizes.

A format stores ``bits`` per weight plus one scale (and, for asymmetric int4, one zero point)
per ``group`` weights, and optionally one scale per output channel. Only linear layers are
quantized; embeddings, norms and MoE routers stay in the checkpoint's 16-bit dtype, and a
checkpoint may keep more modules in 16 bits (its ``ignore`` / ``modules_to_not_convert`` list,
e.g. gpt-oss keeps attention, router, embeddings and LM head in BF16). ``QuantScheme`` records
both: the format of the quantized linear layers and the set of module kinds it applies to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

WEIGHTS_DTYPES = ("auto", "bf16", "fp16", "fp8", "int8", "int4-awq", "int4-gptq", "nvfp4", "mxfp4")
KV_DTYPES = ("auto", "bf16", "fp16", "fp8")

ModuleKind = Literal["attention", "mlp", "shared_experts", "experts", "router", "embedding", "lm_head"]
MODULE_KINDS: tuple[ModuleKind, ...] = ("attention", "mlp", "shared_experts", "experts", "router", "embedding",
                                        "lm_head")
# What a quantized checkpoint quantizes when it says nothing else: every decoder linear layer
# (vLLM / transformers create the router and the LM head unquantized unless told otherwise).
DEFAULT_QUANTIZED: frozenset[ModuleKind] = frozenset({"attention", "mlp", "shared_experts", "experts"})


@dataclass(frozen=True)
class WeightFormat:
    """Storage of one weight: ``bits`` + (``scale_bits`` + ``zero_bits``) per ``group`` weights
    + ``channel_scale_bits`` per output row."""

    name: str
    bits: float
    group: int = 0               # 0: no group scales
    scale_bits: float = 0.0
    zero_bits: float = 0.0
    channel_scale_bits: float = 0.0  # per output channel (W8A8 / FP8 channel-wise scales)
    compute_dtype: str = "bf16"  # tensor-core math format used when the GPU supports it

    @property
    def bytes_per_param(self) -> float:
        """(bits + (scale_bits + zero_bits) / group) / 8; channel scales are added per linear layer."""
        over = (self.scale_bits + self.zero_bits) / self.group if self.group else 0.0
        return (self.bits + over) / 8.0

    @property
    def is_16bit(self) -> bool:
        return self.bits >= 16


FORMATS: dict[str, WeightFormat] = {
    "bf16": WeightFormat("bf16", 16),
    "fp16": WeightFormat("fp16", 16, compute_dtype="fp16"),
    "fp32": WeightFormat("fp32", 32, compute_dtype="tf32"),
    # FP8 E4M3 with a per-tensor scale (online --quantization fp8, ModelOpt FP8); block-scaled
    # checkpoints (weight_block_size [128, 128]) get an fp32 scale per 16,384 weights below.
    "fp8": WeightFormat("fp8", 8, compute_dtype="fp8"),
    # W8A8 int8 with an fp32 scale per output channel.
    "int8": WeightFormat("int8", 8, channel_scale_bits=32, compute_dtype="int8"),
    # AWQ: 4-bit weights, fp16 scale and packed 4-bit zero point per group (default 128).
    "int4-awq": WeightFormat("int4-awq", 4, group=128, scale_bits=16, zero_bits=4),
    # GPTQ: 4-bit weights, fp16 scale and packed 4-bit zero per group (default 128).
    "int4-gptq": WeightFormat("int4-gptq", 4, group=128, scale_bits=16, zero_bits=4),
    # NVFP4: E2M1 values, one FP8 E4M3 scale per 16 (plus one fp32 global scale per tensor).
    "nvfp4": WeightFormat("nvfp4", 4, group=16, scale_bits=8, compute_dtype="fp4"),
    # MXFP4 (OCP microscaling): E2M1 values, one E8M0 scale per 32.
    "mxfp4": WeightFormat("mxfp4", 4, group=32, scale_bits=8, compute_dtype="fp4"),
}


def weight_format(dtype: str, group_size: int | None = None) -> WeightFormat:
    """The storage format of ``dtype``; ``group_size`` overrides AWQ/GPTQ's default of 128."""
    if dtype not in FORMATS:
        raise ValueError(f"unknown weights format {dtype!r} (known: {', '.join(sorted(FORMATS))})")
    fmt = FORMATS[dtype]
    if group_size and fmt.group and dtype.startswith("int4"):
        return replace(fmt, group=group_size)
    return fmt


@dataclass(frozen=True)
class QuantScheme:
    """How a checkpoint stores its weights at serving time."""

    format: WeightFormat
    quantized: frozenset[ModuleKind] = DEFAULT_QUANTIZED
    method: str | None = None      # quant_method of the checkpoint, "online" or None for 16-bit
    high_precision_bytes: float = 2.0  # the 16-bit dtype of everything not quantized

    def bytes_per_param(self, kind: ModuleKind) -> float:
        return self.format.bytes_per_param if self.is_quantized(kind) else self.high_precision_bytes

    def is_quantized(self, kind: ModuleKind) -> bool:
        return not self.format.is_16bit and kind in self.quantized


def plain_scheme(fmt: WeightFormat) -> QuantScheme:
    """A 16-bit checkpoint (bf16/fp16/fp32 served as 16-bit) or an online-quantized one."""
    if fmt.is_16bit:
        return QuantScheme(format=FORMATS["bf16"] if fmt.name == "fp32" else fmt, quantized=frozenset())
    return QuantScheme(format=fmt, quantized=DEFAULT_QUANTIZED, method="online")


# ----------------------------------------------------------------------------- checkpoint parsing
def _kind_of_pattern(pattern: str) -> ModuleKind | None:
    """The module kind a ``modules_to_not_convert`` / ``ignore`` entry names, or None when it names
    one layer only (``model.layers.3.mlp``) or nothing servewise distinguishes."""
    p = pattern.removeprefix("re:").lower()
    if re.search(r"layers?[._]\d+[._]", p):
        return None
    if "lm_head" in p:
        return "lm_head"
    if "embed" in p:
        return "embedding"
    if "shared_expert" in p:
        return "shared_experts"
    if re.search(r"(mlp|moe)\W*(router|gate)\b", p) or p.endswith(".gate") or "router" in p:
        return "router"
    if "expert" in p:
        return "experts"
    if "attn" in p or "attention" in p:
        return "attention"
    if "mlp" in p or "ffn" in p:
        return "mlp"
    return None


def excluded_kinds(patterns: Iterable[str] | None) -> frozenset[ModuleKind]:
    """Module kinds a checkpoint keeps in 16 bits, from its ignore list."""
    kinds = (_kind_of_pattern(str(p)) for p in (patterns or []))
    return frozenset(k for k in kinds if k is not None)


def _int_or(v: Any, default: int) -> int:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) and v > 0 else default


def scheme_from_quantization_config(qcfg: Mapping[str, Any] | None, dtype: str) -> QuantScheme:
    """The scheme of a pre-quantized checkpoint from its ``quantization_config`` (config.json) or
    ``hf_quant_config.json`` ``quantization`` block; ``dtype`` is the servewise weights format.

    Read: group size (AWQ ``group_size``/``q_group_size``, GPTQ ``group_size``, compressed-tensors
    ``config_groups.*.weights.group_size``, ModelOpt ``group_size``), FP8 ``weight_block_size``
    (fp32 scale per block), per-channel strategies, and the ignore list (``ignore``,
    ``modules_to_not_convert``, ``ignored_layers``, ``exclude_modules``).
    """
    fmt = weight_format(dtype)
    if fmt.is_16bit:
        return plain_scheme(fmt)
    q = dict(qcfg or {})
    if isinstance(q.get("quantization"), Mapping):  # hf_quant_config.json (ModelOpt)
        q = {**q, **q["quantization"]}
    method = str(q.get("quant_method") or q.get("quant_algo") or dtype).lower()
    group = _int_or(q.get("group_size", q.get("q_group_size")), 0)
    strategy = None
    for g in (q.get("config_groups") or {}).values():
        w = g.get("weights") if isinstance(g, Mapping) else None
        if isinstance(w, Mapping):
            group = _int_or(w.get("group_size"), group)
            strategy = w.get("strategy")
            if w.get("block_structure"):
                bs = w["block_structure"]
                group = int(bs[0]) * int(bs[1]) if isinstance(bs, list) and len(bs) == 2 else group
    if dtype in ("int4-awq", "int4-gptq"):
        fmt = weight_format(dtype, group or None)
        if dtype == "int4-gptq" and q.get("sym", True) and method != "awq":
            fmt = replace(fmt, zero_bits=0.0)  # symmetric GPTQ: the Marlin kernels drop the zero points
    elif dtype == "fp8":
        block = q.get("weight_block_size")
        if isinstance(block, list) and len(block) == 2:
            fmt = replace(fmt, group=int(block[0]) * int(block[1]), scale_bits=32)
        elif strategy == "block" and group:
            fmt = replace(fmt, group=group, scale_bits=32)
        elif strategy == "channel":
            fmt = replace(fmt, channel_scale_bits=32)
    elif dtype == "nvfp4" and group:
        fmt = replace(fmt, group=group)
    ignore: list[str] = []
    for key in ("ignore", "modules_to_not_convert", "ignored_layers", "exclude_modules"):
        v = q.get(key)
        if isinstance(v, list):
            ignore += [str(x) for x in v]
    return QuantScheme(format=fmt, quantized=DEFAULT_QUANTIZED - excluded_kinds(ignore), method=method)


# ----------------------------------------------------------------------------- KV cache
def kv_bytes_per_element(kv_dtype: str, weights_dtype: str = "bf16") -> float:
    """KV-cache element size: fp8 = 1 byte; ``auto`` follows the model's 16-bit activation dtype
    (vLLM ``--kv-cache-dtype auto``; fp32 checkpoints are served in 16 bits)."""
    if kv_dtype == "fp8":
        return 1.0
    if kv_dtype in ("bf16", "fp16", "auto"):
        return 2.0
    raise ValueError(f"unknown KV-cache dtype {kv_dtype!r} (known: {', '.join(KV_DTYPES)})")


def dtype_from_quantization_config(qcfg: Mapping[str, Any] | None) -> str | None:
    """The servewise weights format a ``quantization_config`` describes, or None when unknown.

    quant_method mxfp4 -> mxfp4; awq -> int4-awq; gptq -> int4-gptq; fp8 / FP8 ModelOpt -> fp8;
    NVFP4 ModelOpt -> nvfp4; compressed-tensors: float 8-bit -> fp8, int 8-bit -> int8,
    4-bit int -> int4-gptq (pack-quantized), 4-bit float -> nvfp4.
    """
    if not qcfg:
        return None
    q = dict(qcfg)
    if isinstance(q.get("quantization"), Mapping):
        q = {**q, **q["quantization"]}
    method = str(q.get("quant_method") or q.get("quant_algo") or "").lower()
    algo = str(q.get("quant_algo") or "").lower()
    if method.startswith("modelopt") or algo in ("fp8", "nvfp4"):
        return "nvfp4" if "fp4" in method + algo else "fp8"
    if method == "compressed-tensors":
        for g in (q.get("config_groups") or {}).values():
            w = g.get("weights") if isinstance(g, Mapping) else None
            if isinstance(w, Mapping):
                bits, kind = int(w.get("num_bits", 0) or 0), str(w.get("type", "int"))
                if bits == 8:
                    return "fp8" if kind == "float" else "int8"
                if bits == 4:
                    return "nvfp4" if kind == "float" else "int4-gptq"
        return None
    return {"mxfp4": "mxfp4", "awq": "int4-awq", "gptq": "int4-gptq", "fp8": "fp8", "nvfp4": "nvfp4",
            "w8a8_int8": "int8"}.get(method)
