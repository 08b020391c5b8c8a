"""Each engine's rule for how much memory the KV cache gets, per GPU of one worker.

- vLLM: requested = gpu_memory_utilization x total memory; KV = requested - weights - activation
  peak of the start-up profile - non-torch memory (- the CUDA-graph estimate from v0.21, when it
  is profiled and subtracted; before that graphs are captured after KV sizing, outside the budget).
- SGLang: mem_fraction_static x the memory free at start (total - non-torch) holds the weights and
  the KV pool; activations and CUDA graphs must fit in the rest.
- TensorRT-LLM: free_gpu_memory_fraction x the memory still free after the weights are loaded and
  the estimation run (activations, non-torch) has peaked; CUDA graphs use the remaining fraction.

``memory_terms`` broadcasts over numpy arrays of (tp, pp, ep, dp, max_num_seqs,
max_num_batched_tokens, fraction) for the search; ``memory_estimate`` (report.py) is the scalar view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servewise.estimator import kvcache as kvc
from servewise.estimator import overheads as oh
from servewise.estimator.context import Context
from servewise.estimator.memory import Residency, weight_breakdown
from servewise.estimator.resolve import ResolvedModel
from servewise.perfdata.gpus import GpuSpec
from servewise.perfdata.memory_rules import MemoryCalibration, memory_calibration, rules_for

GIB = 1024**3
OVERFLOW_TERMS = ("none", "weights", "kv_cache", "activation", "cuda_graph")
"""Codes of ``MemoryTerms.overflow``: which term does not fit (0 = everything fits)."""


@dataclass(frozen=True)
class MemoryRequest:
    """The fixed facts of one sizing question (scalars); the parallel and batch sizes vary."""

    model: ResolvedModel
    gpu: GpuSpec
    memory_bytes: int            # CUDA-visible total per GPU
    engine: str                  # vllm | sglang | trtllm
    version: str
    block_size: int
    kv_dtype: str
    max_model_len: int

    @classmethod
    def from_context(cls, ctx: Context, gpu_memory_bytes: int | None = None) -> MemoryRequest:
        return cls(ctx.model, ctx.hardware.gpu, int(gpu_memory_bytes or ctx.hardware.memory_bytes), ctx.engine_name,
                   ctx.engine.version, ctx.engine.block_size_tokens, ctx.kv_dtype, ctx.max_model_len)


@dataclass(frozen=True)
class MemoryTerms:
    """Per-GPU memory of one worker (arrays broadcast over the candidate grid), bytes."""

    weights_bytes: np.ndarray
    activation_bytes: np.ndarray
    activation_forward_bytes: np.ndarray
    activation_sampler_bytes: np.ndarray
    cuda_graph_bytes: np.ndarray
    cuda_graph_in_budget: bool
    other_bytes: np.ndarray          # non-torch: CUDA context growth, NCCL buffers
    budget_bytes: np.ndarray         # what the engine's fraction grants (vLLM/SGLang) or uses (TRT-LLM)
    kv_cache_bytes: np.ndarray       # may be negative: the other terms exceed the budget
    kv_bytes_per_token: np.ndarray
    kv_cache_blocks: np.ndarray
    kv_cache_tokens: np.ndarray      # floored to whole blocks, 0 when kv_cache_bytes <= 0
    max_concurrency: np.ndarray      # requests of max_model_len tokens
    max_context_tokens: np.ndarray   # longest single request the KV cache holds
    total_bytes: np.ndarray          # everything the engine holds on the GPU
    overflow: np.ndarray             # index into OVERFLOW_TERMS
    overflow_bytes: np.ndarray
    block_size_tokens: int
    memory_bytes: int

    @property
    def feasible(self) -> np.ndarray:
        return self.overflow == 0


def residency(req: MemoryRequest) -> Residency:
    """How the engine holds the weights beyond their checkpoint bytes. vLLM MXFP4 MoE (0.11
    quantization/mxfp4.py): Hopper runs the Triton kernels and keeps the loaded block scales next to
    the converted ones and fp32 biases; Blackwell (FlashInfer) pads expert width and hidden to 256;
    older GPUs (Marlin) pad the width to 128 and hidden to 256."""
    if req.engine != "vllm" or req.model.scheme.format.name != "mxfp4":
        return Residency()
    cc = float(req.gpu.compute_capability)
    if cc >= 10:
        return Residency(expert_intermediate_multiple=256, expert_hidden_multiple=256)
    if cc >= 9:
        return Residency(block_scale_copies=memory_calibration().coefficient("mxfp4_resident_scale_copies"),
                         expert_bias_bytes=4.0)
    return Residency(expert_intermediate_multiple=128, expert_hidden_multiple=256)


def memory_terms(req: MemoryRequest, tp, pp, ep, dp, max_num_seqs, max_num_batched_tokens, fraction,
                 cal: MemoryCalibration | None = None) -> MemoryTerms:
    """Vectorised per-GPU breakdown under the request's engine rule (arrays broadcast together);
    ``cal`` replaces the shipped coefficients (leave-one-out fits)."""
    a = req.model.arch
    cal = cal or memory_calibration()
    tp, pp, ep, dp, seqs, tokens = np.broadcast_arrays(*(np.asarray(x, dtype=np.int64) for x in (
        tp, pp, ep, dp, max_num_seqs, max_num_batched_tokens)))
    fraction = np.asarray(fraction, dtype=np.float64)
    total = float(req.memory_bytes)
    weights = weight_breakdown(req.model, tp, pp, ep, residency(req)).total_bytes
    other = oh.non_torch_bytes(cal, tp, pp, dp)
    lay = kvc.kv_layout(req.model, tp, pp, req.kv_dtype)
    mml, maxpos = req.max_model_len, a.max_position_embeddings
    zero = np.zeros(np.broadcast_shapes(tp.shape, fraction.shape))
    if req.engine == "vllm":
        rules = rules_for(cal.vllm, req.version)
        act = oh.profile_activation(a, cal, rules.sampler_bytes_per_logit.value, tp, ep,
                                    oh.sampler_rows(seqs, tokens), tokens)
        graphs = oh.vllm_cuda_graph_bytes(a, cal, rules, tp, ep, pp, seqs, tokens)
        in_budget = rules.cuda_graph_budgeted
        budget = total * fraction + zero
        kv = budget - weights - act.total - other - (graphs if in_budget else 0.0)
        cap = kvc.vllm_capacity(lay, kv, req.block_size, mml, tokens, maxpos)
        held = budget + (0.0 if in_budget else graphs)
        room = total - held                           # graphs outside the budget must fit here
        headroom_term, headroom_short = 4, np.maximum(-room, 0.0)
    elif req.engine == "sglang":
        s = rules_for(cal.sglang, req.version)
        act = oh.profile_activation(a, cal, s.sampler_bytes_per_logit.value, tp, ep, seqs, tokens)
        graphs = _graph_bytes(a, cal, pp, 4 + seqs // 8)
        in_budget = False
        start = total - other                         # free when SGLang measures "before loading"
        budget = start * fraction + zero
        kv = budget - weights
        cap = kvc.sglang_capacity(lay, kv, mml, s.swa_full_tokens_ratio, maxpos)
        held = budget + other + act.total + graphs
        room = start * (1.0 - fraction) - act.total - graphs
        headroom_term, headroom_short = 3, np.maximum(-room, 0.0)
    elif req.engine == "trtllm":
        r = rules_for(cal.trtllm, req.version)
        rows = np.maximum(tokens // max(mml, 1), 1)
        act = oh.profile_activation(a, cal, r.sampler_bytes_per_logit.value, tp, ep, rows, tokens)
        graphs = _graph_bytes(a, cal, pp, 4 + np.minimum(seqs, 128) // 8)
        in_budget = False
        free = total - weights - act.total - other
        kv = fraction * free
        budget = weights + act.total + other + np.maximum(kv, 0.0)
        cap = kvc.paged_capacity(lay, kv, req.block_size, mml, maxpos)
        held = budget + graphs
        room = (1.0 - fraction) * free - graphs
        headroom_term, headroom_short = 4, np.maximum(-room, 0.0)
    else:
        raise ValueError(f"unknown engine {req.engine!r}")
    weights_over = weights - (budget if req.engine != "trtllm" else total)
    kv_short = np.where(kv <= 0, -kv, _short_of_one_request(lay, kv, cap, mml, req.block_size))
    overflow = np.select([weights_over > 0, (kv <= 0) | (cap.max_context < mml), headroom_short > 0],
                         [1, 2, headroom_term], 0)
    over_bytes = np.select([overflow == 1, overflow == 2, overflow >= 3], [weights_over, kv_short, headroom_short], 0.0)
    tokens_out = np.where(kv > 0, cap.tokens, 0)
    f = np.float64
    return MemoryTerms(
        weights_bytes=weights + zero, activation_bytes=act.total + zero, activation_forward_bytes=act.forward + zero,
        activation_sampler_bytes=act.sampler + zero, cuda_graph_bytes=graphs + zero, cuda_graph_in_budget=in_budget,
        other_bytes=other + zero, budget_bytes=np.asarray(budget, f), kv_cache_bytes=np.asarray(kv, f) + zero,
        kv_bytes_per_token=lay.bytes_per_token + zero, kv_cache_blocks=np.where(kv > 0, cap.blocks, 0) + zero,
        kv_cache_tokens=(tokens_out + zero).astype(np.int64), max_concurrency=np.where(kv > 0, cap.max_concurrency, 0.0)
        + zero, max_context_tokens=(np.where(kv > 0, cap.max_context, 0) + zero).astype(np.int64),
        total_bytes=np.maximum(held, 0.0) + zero, overflow=overflow.astype(np.int64) + zero.astype(np.int64),
        overflow_bytes=np.asarray(over_bytes, f) + zero, block_size_tokens=req.block_size, memory_bytes=req.memory_bytes)


def _graph_bytes(a, cal, pp, graphs) -> np.ndarray:
    layers = np.ceil(a.num_layers / np.asarray(pp, dtype=np.float64))
    return np.asarray(graphs) * layers * cal.coefficient("cuda_graph_bytes_per_graph_layer")


def _short_of_one_request(lay: kvc.KvLayout, kv: np.ndarray, cap: kvc.KvCapacity, mml: int, block: int) -> np.ndarray:
    """Bytes missing for one max_model_len request (0 when it fits): mml tokens over every full
    layer and the window over every sliding layer, in whole blocks."""
    sw = np.minimum(lay.window + block, mml) if lay.window else 0
    need = lay.bytes_per_token_layer * (lay.full_layers * mml + lay.sliding_layers * sw)
    return np.where(cap.max_context < mml, np.maximum(need - np.maximum(kv, 0), 0.0), 0.0)


def memory_estimate(ctx: Context, w, gpu_memory_bytes: int | None = None):
    """The scalar breakdown of one worker (``servewise.estimator.report.memory_estimate``)."""
    from servewise.estimator.report import memory_estimate as scalar

    return scalar(ctx, w, gpu_memory_bytes)
