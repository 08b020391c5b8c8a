"""Mappings every engine shares: the KV-cache dtype and quantization in the engine's spelling,
refused (not emitted) when the pinned version lacks them."""

from __future__ import annotations

from servewise.estimator.resolve import resolve_model
from servewise.perfdata import get_gpu
from servewise.profiles.schema import CustomGpu
from servewise.render.context import RenderContext
from servewise.render.errors import RenderError
from servewise.render.topology import Instance


def num(x: float) -> str:
    """A fraction as the shortest exact decimal (0.9, 0.92)."""
    return f"{x:.4f}".rstrip("0").rstrip(".")


def path(inst: Instance) -> str:
    """The plan field of an instance's worker, for messages."""
    return "plan.worker" if inst.role == "agg" else f"plan.{inst.role}"


def kv_dtype(rc: RenderContext) -> str | None:
    """The engine's spelling of ``model.kv_cache_dtype`` (None for auto)."""
    kv = rc.profile.model.kv_cache_dtype
    if kv == "auto":
        return None
    spelling = rc.engine.kv_cache_dtypes.get(kv)
    if spelling is None:
        have = ", ".join(k for k in rc.engine.kv_cache_dtypes if k != "auto")
        raise RenderError(f"model.kv_cache_dtype: {rc.label} has no {kv} KV cache (it offers {have or 'only auto'})")
    return spelling


def quantization(rc: RenderContext) -> str | None:
    """The engine's quantization value, when it must be given: online quantization of a 16-bit
    checkpoint, or a checkpoint method the engine does not detect itself. Refuses methods the pinned
    version cannot serve (perfdata/engines/<engine>.yaml ``quantization``)."""
    rm = resolve_model(rc.profile.model)
    q = rc.engine.quantization
    if rm.engine_quantization or rm.quant.method == "online":
        value = q.online.get(rm.weights.name)  # type: ignore[call-overload]
        if value is None:
            raise RenderError(f"model.weights_dtype: {rc.label} cannot quantize a {rm.checkpoint_dtype} checkpoint to "
                              f"{rm.weights.name} at load time; use a pre-quantized {rm.weights.name} checkpoint")
        return value
    method = rm.quant.method
    if method is None:
        return None
    if method not in q.checkpoint:
        raise RenderError(f"model.id: {rc.label} cannot serve {method} checkpoints ({rm.id})")
    return q.flag_value(method, compute_capability=oldest_compute_capability(rc))


def oldest_compute_capability(rc: RenderContext) -> str:
    """The lowest compute capability among the plan's GPUs (a pinned kernel must run on all of them)."""
    hw = rc.profile.hardware
    ccs = [hw.gpu.compute_capability if isinstance(hw.gpu, CustomGpu) else get_gpu(hw.gpu).compute_capability]
    if hw.prefill_gpu:
        ccs.append(get_gpu(hw.prefill_gpu).compute_capability)
    return min(ccs, key=lambda c: tuple(int(x) for x in c.split(".")))


def checkpoint_args(rc: RenderContext) -> list[str]:
    """The flags vLLM and SGLang share for what is loaded: KV-cache dtype (in the engine's spelling),
    quantization (only where it must be given) and the Hub revision."""
    args: list[str] = []
    kv = kv_dtype(rc)
    if kv:
        args += ["--kv-cache-dtype", kv]
    q = quantization(rc)
    if q:
        args += ["--quantization", q]
    if rc.profile.model.revision:
        args += ["--revision", rc.profile.model.revision]
    return args
