"""vLLM: plan fields -> ``vllm serve`` arguments (flag names checked against the pinned version's list)."""

from __future__ import annotations

from servewise.estimator.resolve import resolve_model
from servewise.profiles.schema import Worker
from servewise.render.context import RenderContext
from servewise.render.errors import RenderError


def _num(x: float) -> str:
    return f"{x:.4f}".rstrip("0").rstrip(".")


def online_quantization(rc: RenderContext) -> str | None:
    """The ``--quantization`` value, only when the engine cannot infer it from the checkpoint
    (a 16-bit checkpoint served as fp8 is quantized online)."""
    rm = resolve_model(rc.profile.model)
    return rm.engine_quantization


def serve_args(rc: RenderContext, w: Worker, *, port: int) -> list[str]:
    """Arguments after ``vllm serve MODEL`` (the image's entrypoint is ``vllm serve``)."""
    p = rc.profile
    args = ["--host", "0.0.0.0", "--port", str(port), "--served-model-name", rc.served_name,
            "--tensor-parallel-size", str(w.tp)]
    if w.pp > 1:
        args += ["--pipeline-parallel-size", str(w.pp)]
    if w.dp > 1:
        args += ["--data-parallel-size", str(w.dp)]
    if w.ep > 1:
        args += ["--enable-expert-parallel"]
    mml = p.model.max_model_len
    if mml:
        args += ["--max-model-len", str(mml)]
    args += ["--max-num-seqs", str(w.max_num_seqs), "--max-num-batched-tokens", str(w.max_num_batched_tokens),
             "--gpu-memory-utilization", _num(w.gpu_memory_utilization)]
    kv = p.model.kv_cache_dtype
    if kv != "auto":
        spelling = rc.engine.kv_cache_dtypes.get(kv)
        if spelling is None:
            raise RenderError(f"vLLM {rc.engine.version} has no {kv} KV cache (model.kv_cache_dtype)")
        args += ["--kv-cache-dtype", spelling]
    q = online_quantization(rc)
    if q:
        args += ["--quantization", q]
    if p.model.revision:
        args += ["--revision", p.model.revision]
    return args
