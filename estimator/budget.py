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
from servewise.estimator.engine_defaults import (
    sglang_decode_graph_count, sglang_prefill_graph_count, trtllm_graph_count,
)
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
    def from_context(cls, ctx: Context, gpu_memory_bytes: int | None = None, gpu: GpuSpec | None = None
                     ) -> MemoryRequest:
        """The request of a context; ``gpu`` for a role on another GPU (heterogeneous disaggregation)."""
        spec = gpu or ctx.hardware.gpu
        mem = gpu_memory_bytes or (ctx.hardware.memory_bytes if gpu is None else spec.memory_bytes)
        return cls(ctx.model, spec, int(mem), ctx.engine_name, ctx.engine.version, ctx.engine.block_size_tokens,
                   ctx.kv_dtype, ctx.max_model_len)


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
    block_size_tokens: np.ndarray    # tokens per block the allocator used (vLLM enlarges it for hybrids)
    state_bytes_per_seq: np.ndarray  # linear-attention state one sequence holds (0 without such layers)
    memory_bytes: int

    @property
    def feasible(self) -> np.ndarray:
        return self.overflow == 0


def residency(req: MemoryRequest) -> Residency:
    """How the engine holds the weights beyond their checkpoint bytes. vLLM MXFP4 MoE (0.11
    quantization/mxfp4.py): Hopper runs the Triton kernels and keeps the loaded block scales next to
    the converted ones and fp32 biases; Blackwell (FlashInfer) pads expert width and hidden to 256;
    older GPUs (Marlin) pad the width to 128 and hidden to 256. vLLM MLA (attention/backends/mla):
    a quantized kv_b_proj is dequantized once into the absorbed W_UK / W_UV (16-bit, kept)."""
    if req.engine != "vllm":
        return Residency()
    if req.model.scheme.format.name != "mxfp4":
        return Residency(mla_dequantized_kv_b=req.model.arch.is_mla)
    cc = float(req.gpu.compute_capability)
    if cc >= 10:
        return Residency(expert_intermediate_multiple=256, expert_hidden_multiple=256)
    if cc >= 9:
        return Residency(block_scale_copies=memory_calibration().coefficient("mxfp4_resident_scale_copies"),
                         expert_bias_bytes=4.0)
    return Residency(expert_intermediate_multiple=128, expert_hidden_multiple=256)


@dataclass(frozen=True)
class _Rule:
    """One engine rule's outcome before feasibility: the terms it sizes and the room left outside."""

    act: oh.Activation
    graphs: np.ndarray
    in_budget: bool
    budget: np.ndarray
    kv: np.ndarray
    cap: kvc.KvCapacity
    held: np.ndarray                # what the engine would hold; beyond the budget when the fixed terms overrun it
    outside_short: np.ndarray       # bytes the memory outside the budget lacks (0 when it fits)
    outside_term: int               # which OVERFLOW_TERMS index that shortfall is


def _vllm(req, cal, a, tp, pp, ep, seqs, tokens, fraction, weights, other, lay) -> _Rule:
    """requested = fraction x total; KV = requested - weights - profile peak - non-torch
    (- CUDA-graph estimate from v0.21); before v0.21 graphs are captured outside the budget."""
    rules = rules_for(cal.vllm, req.version)
    act = oh.profile_activation(a, cal, rules.sampler_bytes_per_logit.value, tp, ep,
                                oh.sampler_rows(seqs, tokens), tokens)
    graphs = oh.vllm_cuda_graph_bytes(a, cal, rules, tp, ep, pp, seqs, tokens)
    budget = req.memory_bytes * fraction
    kv = budget - weights - act.total - other - (graphs if rules.cuda_graph_budgeted else 0.0)
    cap = kvc.vllm_capacity(lay, kv, req.block_size, req.max_model_len, tokens, a.max_position_embeddings,
                            rules.kv_tokens_reported, rules.hybrid_group_size)
    held = budget + (0.0 if rules.cuda_graph_budgeted else graphs)
    return _Rule(act, graphs, rules.cuda_graph_budgeted, budget, kv, cap, held + np.maximum(-kv, 0.0),
                 np.maximum(held - req.memory_bytes, 0.0), 4)


def _sglang(req, cal, a, tp, pp, ep, seqs, tokens, fraction, weights, other, lay) -> _Rule:
    """static = mem_fraction_static x memory free at start (total - non-torch); KV pool = static -
    weights (- linear-attention state of max_num_seqs sequences); activations and CUDA graphs
    must fit in the rest."""
    s = rules_for(cal.sglang, req.version)
    act = oh.profile_activation(a, cal, s.sampler_bytes_per_logit.value, tp, ep, seqs, tokens)
    # decode graphs, plus SGLang's own 8 MiB of non-torch memory per prefill graph (memory_hook.py)
    graphs = _graph_bytes(a, cal, pp, sglang_decode_graph_count(seqs)) \
        + sglang_prefill_graph_count(tokens) * s.reserve_per_prefill_graph_mib * 2**20
    start = req.memory_bytes - other
    budget = start * fraction
    kv = budget - weights
    cap = kvc.sglang_capacity(lay, kv - seqs * lay.state_bytes_per_seq, req.max_model_len,
                              s.swa_full_tokens_ratio, a.max_position_embeddings)
    outside = start * (1.0 - fraction) - act.total - graphs
    return _Rule(act, graphs, False, budget, kv, cap, budget + np.maximum(-kv, 0.0) + other + act.total + graphs,
                 np.maximum(-outside, 0.0), 3)


def _trtllm(req, cal, a, tp, pp, ep, seqs, tokens, fraction, weights, other, lay) -> _Rule:
    """KV = free_gpu_memory_fraction x (total - weights - estimation-run peak - non-torch) (- linear
    state of max_batch_size sequences); CUDA graphs use the remaining fraction."""
    r = rules_for(cal.trtllm, req.version)
    rows = np.maximum(tokens // max(req.max_model_len, 1), 1)
    act = oh.profile_activation(a, cal, r.sampler_bytes_per_logit.value, tp, ep, rows, tokens)
    graphs = _graph_bytes(a, cal, pp, trtllm_graph_count(seqs))
    free = req.memory_bytes - weights - act.total - other
    kv = fraction * free
    budget = weights + act.total + other + np.maximum(kv, 0.0)
    cap = kvc.paged_capacity(lay, kv - seqs * lay.state_bytes_per_seq, req.block_size, req.max_model_len,
                             a.max_position_embeddings)
    outside = (1.0 - fraction) * free - graphs
    return _Rule(act, graphs, False, budget, kv, cap, budget + graphs, np.maximum(-outside, 0.0), 4)


_RULES = {"vllm": _vllm, "sglang": _sglang, "trtllm": _trtllm}


def memory_terms(req: MemoryRequest | Context, tp, pp, ep, dp, max_num_seqs, max_num_batched_tokens, fraction,
                 cal: MemoryCalibration | None = None, gpu_memory_bytes: int | None = None) -> MemoryTerms:
    """Vectorised per-GPU breakdown under the request's engine rule (arrays broadcast together);
    ``cal`` replaces the shipped coefficients (leave-one-out fits).

    Feasibility, in order: the weights alone exceed the budget (vLLM, SGLang) or the GPU
    (TRT-LLM) -> ``weights``; no KV memory, or less than one max_model_len request -> ``kv_cache``
    (vLLM refuses to start); what lives outside the budget does not fit -> ``activation`` (SGLang)
    or ``cuda_graph``.
    """
    if isinstance(req, Context):
        req = MemoryRequest.from_context(req, gpu_memory_bytes)
    if req.engine not in _RULES:
        raise ValueError(f"unknown engine {req.engine!r}")
    a = req.model.arch
    cal = cal or memory_calibration()
    tp, pp, ep, dp, seqs, tokens = np.broadcast_arrays(*(np.asarray(x, dtype=np.int64) for x in (
        tp, pp, ep, dp, max_num_seqs, max_num_batched_tokens)))
    fraction = np.asarray(fraction, dtype=np.float64)
    zero = np.zeros(np.broadcast_shapes(tp.shape, fraction.shape))
    weights = weight_breakdown(req.model, tp, pp, ep, residency(req)).total_bytes + zero
    other = oh.non_torch_bytes(cal, tp, pp, dp) + zero
    lay = kvc.kv_layout(req.model, tp, pp, req.kv_dtype, req.engine)
    r = _RULES[req.engine](req, cal, a, tp, pp, ep, seqs, tokens, fraction, weights, other, lay)
    kv, cap = r.kv + zero, r.cap
    weights_over = weights - (r.budget if req.engine != "trtllm" else req.memory_bytes)
    kv_short = np.where(kv <= 0, -kv, np.maximum(cap.request_bytes - kv, 0.0))
    overflow = np.select([weights_over > 0, (kv <= 0) | (cap.max_context < req.max_model_len), r.outside_short > 0],
                         [1, 2, r.outside_term], 0)
    over_bytes = np.select([overflow == 1, overflow == 2, overflow >= 3], [weights_over, kv_short, r.outside_short],
                           0.0)
    live = kv > 0
    return MemoryTerms(
        weights_bytes=weights, activation_bytes=r.act.total + zero, activation_forward_bytes=r.act.forward + zero,
        activation_sampler_bytes=r.act.sampler + zero, cuda_graph_bytes=r.graphs + zero,
        cuda_graph_in_budget=r.in_budget, other_bytes=other, budget_bytes=r.budget + zero, kv_cache_bytes=kv,
        kv_bytes_per_token=lay.bytes_per_token + zero, kv_cache_blocks=np.where(live, cap.blocks, 0) + zero,
        kv_cache_tokens=(np.where(live, cap.tokens, 0) + zero).astype(np.int64),
        max_concurrency=np.where(live, cap.max_concurrency, 0.0) + zero,
        max_context_tokens=(np.where(live, cap.max_context, 0) + zero).astype(np.int64),
        total_bytes=np.maximum(r.held, 0.0) + zero, overflow=overflow.astype(np.int64) + zero.astype(np.int64),
        overflow_bytes=np.asarray(over_bytes, np.float64) + zero,
        block_size_tokens=(cap.block_size + zero).astype(np.int64), state_bytes_per_seq=lay.state_bytes_per_seq + zero,
        memory_bytes=req.memory_bytes)


def _graph_bytes(a, cal, pp, graphs) -> np.ndarray:
    """Graphs x decoder layers on the stage x cuda_graph_bytes_per_graph_layer."""
    layers = np.ceil(a.num_layers / np.asarray(pp, dtype=np.float64))
    return np.asarray(graphs) * layers * cal.coefficient("cuda_graph_bytes_per_graph_layer")


def memory_estimate(ctx: Context, w, gpu_memory_bytes: int | None = None):
    """The scalar breakdown of one worker (``servewise.estimator.report.memory_estimate``)."""
    from servewise.estimator.report import memory_estimate as scalar

    return scalar(ctx, w, gpu_memory_bytes)
