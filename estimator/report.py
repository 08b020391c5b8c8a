"""The scalar memory breakdown of one worker: ``MemoryEstimate`` with feasibility and, when it
does not fit, which term overflows and by how much."""

from __future__ import annotations

import numpy as np

from servewise.estimator.budget import OVERFLOW_TERMS, MemoryRequest, MemoryTerms, memory_terms, residency
from servewise.estimator.context import Context
from servewise.estimator.kvcache import kv_bytes_per_token_layer
from servewise.estimator.memory import weight_breakdown
from servewise.estimator.results import MemoryEstimate, Overflow
from servewise.perfdata import get_gpu
from servewise.profiles.schema import Worker

GIB = 1024**3


def _gib(x: float) -> str:
    return f"{x / GIB:.2f} GiB"


def budget_rule(req: MemoryRequest, fraction: float, cuda_graph_in_budget: bool) -> str:
    """One sentence saying how this engine version sizes the KV cache."""
    if req.engine == "vllm":
        graphs = ("- CUDA-graph estimate (profiled before KV sizing)" if cuda_graph_in_budget
                  else "(CUDA graphs captured afterwards, outside the budget)")
        return (f"vLLM {req.version}: KV = {fraction} x total - weights - activation peak - non-torch {graphs}")
    if req.engine == "sglang":
        return (f"SGLang {req.version}: KV = mem_fraction_static {fraction} x memory free at start - weights; "
                "activations and CUDA graphs use the rest")
    return (f"TensorRT-LLM {req.version}: KV = free_gpu_memory_fraction {fraction} x (total - weights - "
            "activation peak - non-torch); CUDA graphs use the rest")


def _overflow(t: MemoryTerms, req: MemoryRequest, i: int) -> Overflow | None:
    code = int(np.asarray(t.overflow).ravel()[i])
    if code == 0:
        return None
    v = {k: float(np.asarray(getattr(t, k)).ravel()[i]) for k in (
        "weights_bytes", "activation_bytes", "other_bytes", "cuda_graph_bytes", "budget_bytes", "kv_cache_bytes",
        "overflow_bytes", "total_bytes")}
    term, short = OVERFLOW_TERMS[code], v["overflow_bytes"]
    if term == "weights":
        limit = "the GPU's memory" if req.engine == "trtllm" else f"the {_gib(v['budget_bytes'])} budget"
        msg = f"weights need {_gib(v['weights_bytes'])} per GPU, {_gib(short)} more than {limit}"
    elif term == "kv_cache" and v["kv_cache_bytes"] <= 0:
        msg = (f"no memory left for the KV cache: weights {_gib(v['weights_bytes'])} + activation "
               f"{_gib(v['activation_bytes'])} + non-torch {_gib(v['other_bytes'])}"
               + (f" + CUDA graphs {_gib(v['cuda_graph_bytes'])}" if t.cuda_graph_in_budget else "")
               + f" exceed the {_gib(v['budget_bytes'])} budget by {_gib(short)}")
    elif term == "kv_cache":
        msg = (f"one {req.max_model_len}-token request needs {_gib(short)} more KV cache than the "
               f"{_gib(v['kv_cache_bytes'])} available")
    else:
        msg = (f"{term.replace('_', ' ')} memory does not fit outside the budget: short by {_gib(short)} "
               f"(the engine would hold {_gib(v['total_bytes'])} of {_gib(req.memory_bytes)})")
    return Overflow(term=term, bytes=int(round(short)), message=msg)


def memory_estimate(ctx: Context, w: Worker, gpu_memory_bytes: int | None = None) -> MemoryEstimate:
    """The scalar breakdown of one worker, with feasibility and the overflowing term."""
    role_gpu = get_gpu(w.gpu) if w.gpu and w.gpu != ctx.hardware.gpu.id else None
    req = MemoryRequest.from_context(ctx, gpu_memory_bytes, role_gpu)
    t = memory_terms(req, w.tp, w.pp, w.ep, w.dp, w.max_num_seqs, w.max_num_batched_tokens, w.gpu_memory_utilization)

    def f(x) -> float:
        return float(np.asarray(x).ravel()[0])

    tokens = int(f(t.kv_cache_tokens))
    mml = req.max_model_len
    wl = ctx.profile.workload
    parts = weight_breakdown(req.model, w.tp, w.pp, w.ep, residency(req)).bytes
    lay_counts = {**ctx.model.arch.kv_layers(), "linear": ctx.model.arch.num_linear_layers}
    max_ctx = int(f(t.max_context_tokens))
    overflow = _overflow(t, req, 0)
    per_token = f(t.kv_bytes_per_token)
    per_layer = f(kv_bytes_per_token_layer(req.model, w.tp, req.kv_dtype, req.engine))
    return MemoryEstimate(
        weights_bytes=int(round(f(t.weights_bytes))), kv_cache_bytes=max(0, int(round(f(t.kv_cache_bytes)))),
        activation_bytes=int(round(f(t.activation_bytes))), cuda_graph_bytes=int(round(f(t.cuda_graph_bytes))),
        other_bytes=int(round(f(t.other_bytes))), total_bytes=int(round(f(t.total_bytes))),
        budget_bytes=int(round(f(t.budget_bytes))), gpu_memory_bytes=req.memory_bytes,
        memory_fraction=w.gpu_memory_utilization, memory_fraction_of=ctx.engine.memory_knob.of,
        budget_rule=budget_rule(req, w.gpu_memory_utilization, t.cuda_graph_in_budget),
        cuda_graph_in_budget=t.cuda_graph_in_budget,
        activation_forward_bytes=int(round(f(t.activation_forward_bytes))),
        activation_sampler_bytes=int(round(f(t.activation_sampler_bytes))),
        max_num_seqs=w.max_num_seqs, max_num_batched_tokens=w.max_num_batched_tokens,
        weights_by_module={k: int(round(float(np.asarray(v).ravel()[0]))) for k, v in parts.items()
                           if float(np.asarray(v).ravel()[0]) > 0},
        kv_bytes_per_token=per_token, kv_bytes_per_token_per_layer=per_layer,
        kv_layers={k: int(np.ceil(v / w.pp)) for k, v in lay_counts.items()},
        sliding_window=ctx.model.arch.sliding_window, block_size_tokens=int(f(t.block_size_tokens)),
        state_bytes_per_seq=f(t.state_bytes_per_seq),
        kv_cache_blocks=int(f(t.kv_cache_blocks)), kv_cache_tokens=tokens,
        max_concurrency=round(f(t.max_concurrency), 3),
        max_concurrency_at_workload=round(tokens / (wl.isl + wl.osl), 3),
        max_context_tokens=max_ctx, estimated_max_model_len=max_ctx if 0 < max_ctx < mml else None,
        headroom_bytes=int(round(req.memory_bytes - f(t.total_bytes))), feasible=overflow is None, overflow=overflow)

