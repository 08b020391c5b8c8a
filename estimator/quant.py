"""Bytes per parameter for each weights / KV-cache format, scales included.

A format stores ``bits`` per weight plus one scale (and for asymmetric int4 one zero point)
per ``group`` weights. Only the linear layers of the decoder are quantized; embeddings,
the LM head, norms and MoE routers stay in the checkpoint's 16-bit dtype unless the
checkpoint says otherwise (``QuantScheme.quantized_embeddings``).
"""

from __future__ import annotations

from dataclasses import dataclass

WEIGHTS_DTYPES = ("auto", "bf16", "fp16", "fp8", "int8", "int4-awq", "int4-gptq", "nvfp4", "mxfp4")
KV_DTYPES = ("auto", "bf16", "fp16", "fp8")


@dataclass(frozen=True)
class WeightFormat:
    """Storage of one quantized weight: ``bits`` + ``scale_bits`` (+ ``zero_bits``) per ``group``."""

    name: str
    bits: float
    group: int = 0            # 0: per-channel / per-tensor scales (negligible per weight)
    scale_bits: float = 0.0
    zero_bits: float = 0.0
    compute_dtype: str = "bf16"  # tensor-core math format used when the GPU supports it

    @property
    def bytes_per_param(self) -> float:
        """(bits + (scale_bits + zero_bits) / group) / 8."""
        over = (self.scale_bits + self.zero_bits) / self.group if self.group else 0.0
        return (self.bits + over) / 8.0


FORMATS: dict[str, WeightFormat] = {
    "bf16": WeightFormat("bf16", 16),
    "fp16": WeightFormat("fp16", 16, compute_dtype="fp16"),
    "fp32": WeightFormat("fp32", 32, compute_dtype="tf32"),
    # FP8 E4M3 with per-tensor/per-channel scales, or 128x128 block scales (fp32 per 16384 weights).
    "fp8": WeightFormat("fp8", 8, compute_dtype="fp8"),
    # W8A8 int8 with per-channel scales.
    "int8": WeightFormat("int8", 8, compute_dtype="int8"),
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
    fmt = FORMATS[dtype]
    if group_size and fmt.group and dtype.startswith("int4"):
        return WeightFormat(fmt.name, fmt.bits, group_size, fmt.scale_bits, fmt.zero_bits, fmt.compute_dtype)
    return fmt


def kv_bytes_per_element(kv_dtype: str, weights_dtype: str = "bf16") -> float:
    """KV-cache element size: fp8 = 1 byte; ``auto`` follows the model's activation dtype (16-bit)."""
    if kv_dtype == "fp8":
        return 1.0
    if kv_dtype in ("bf16", "fp16", "auto"):
        return 2.0
    raise ValueError(f"unknown KV-cache dtype {kv_dtype!r}")
