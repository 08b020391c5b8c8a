"""Each engine's rule for how much memory the KV cache gets, and the per-worker breakdown.

- vLLM: ``gpu_memory_utilization`` x total memory is the budget for everything the engine
  allocates; KV = budget - weights - activation peak - non-torch (- CUDA-graph estimate where
  the version budgets it).
- SGLang: ``mem_fraction_static`` x total holds the weights and the KV pool; activations and
  CUDA graphs must fit in the rest.
- TensorRT-LLM: ``free_gpu_memory_fraction`` x the memory still free after the weights are
  loaded and warm-up allocations are made.
"""

from __future__ import annotations

import numpy as np

from servewise.estimator import memory as mem
from servewise.estimator.context import Context
from servewise.estimator.results import MemoryEstimate, Overflow
from servewise.profiles.schema import Worker

GIB = mem.GIB


def memory_terms(ctx: Context, tp, pp, ep, dp, max_num_seqs, max_num_batched_tokens, fraction,
                 gpu_memory_bytes: int | None = None) -> mem.MemoryTerms:
    """Vectorised breakdown for the context's engine (arrays broadcast together)."""
    rm, eng = ctx.model, ctx.engine
    total = float(gpu_memory_bytes or ctx.hardware.memory_bytes)
    weights = mem.weight_bytes_per_gpu(rm, tp, pp, ep, dp)
    act = mem.activation_peak_bytes(rm, tp, max_num_batched_tokens, max_num_seqs)
    other = mem.non_torch_bytes(tp)
    graphs = np.zeros_like(act)
    fraction = np.asarray(fraction, dtype=np.float64)
    if eng.memory_knob.of == "total":
        budget = total * fraction
        if ctx.engine_name == "sglang":
            kv = budget - weights
        else:
            kv = budget - weights - act - other - (graphs if eng.cuda_graph_memory_budgeted else 0.0)
    else:
        free_after_load = total - weights - act - other - graphs
        budget = weights + act + other + graphs + fraction * np.maximum(free_after_load, 0.0)
        kv = fraction * free_after_load
    per_token = mem.kv_bytes_per_token_per_gpu(rm, tp, pp, ctx.kv_dtype)
    block = eng.block_size_tokens
    tokens = np.where(kv > 0, np.floor(np.maximum(kv, 0) / (per_token * block)) * block, 0)
    return mem.MemoryTerms(weights, act, graphs, other, budget, kv, per_token, tokens.astype(np.int64), block)


def memory_estimate(ctx: Context, w: Worker, gpu_memory_bytes: int | None = None) -> MemoryEstimate:
    """The scalar breakdown of one worker, with feasibility and the overflowing term."""
    t = memory_terms(ctx, w.tp, w.pp, w.ep, w.dp, w.max_num_seqs, w.max_num_batched_tokens,
                     w.gpu_memory_utilization, gpu_memory_bytes)
    total_mem = int(gpu_memory_bytes or ctx.hardware.memory_bytes)
    f = lambda x: float(np.asarray(x))  # noqa: E731
    weights, act, other, graphs, budget, kv = (f(x) for x in (t.weights_bytes, t.activation_bytes, t.other_bytes,
                                                               t.cuda_graph_bytes, t.budget_bytes, t.kv_cache_bytes))
    tokens, per_token = int(np.asarray(t.kv_cache_tokens)), f(t.kv_bytes_per_token)
    mml = ctx.max_model_len
    wl = ctx.profile.workload
    overflow = None
    if weights > budget and ctx.engine.memory_knob.of == "total":
        overflow = Overflow(term="weights", bytes=int(weights - budget),
                            message=f"weights need {weights / GIB:.2f} GiB per GPU but the budget is "
                                    f"{budget / GIB:.2f} GiB")
    elif weights > total_mem:
        overflow = Overflow(term="weights", bytes=int(weights - total_mem),
                            message=f"weights need {weights / GIB:.2f} GiB per GPU; the GPU has "
                                    f"{total_mem / GIB:.2f} GiB")
    elif kv <= 0:
        overflow = Overflow(term="kv_cache", bytes=int(-kv),
                            message=f"no memory left for the KV cache (short by {-kv / GIB:.2f} GiB)")
    elif tokens < mml:
        overflow = Overflow(term="kv_cache", bytes=int((mml - tokens) * per_token),
                            message=f"the KV cache holds {tokens} tokens, fewer than one max_model_len "
                                    f"({mml}) request")
    est_mml = None
    if tokens < mml:
        est_mml = int(tokens)
    return MemoryEstimate(
        weights_bytes=int(weights), kv_cache_bytes=int(kv), activation_bytes=int(act), cuda_graph_bytes=int(graphs),
        other_bytes=int(other), total_bytes=int(weights + act + other + graphs + max(kv, 0)),
        budget_bytes=int(budget), gpu_memory_bytes=total_mem, memory_fraction=w.gpu_memory_utilization,
        memory_fraction_of=ctx.engine.memory_knob.of, kv_bytes_per_token=per_token,
        block_size_tokens=t.block_size_tokens, kv_cache_tokens=tokens,
        max_concurrency=round(tokens / mml, 3), max_concurrency_at_workload=round(tokens / (wl.isl + wl.osl), 3),
        max_context_tokens=min(tokens, ctx.model.arch.max_position_embeddings), estimated_max_model_len=est_mml,
        feasible=overflow is None, overflow=overflow)
