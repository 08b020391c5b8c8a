"""Memory an engine needs besides weights and KV cache: the activation peak of its start-up
profile, CUDA-graph memory, and non-torch memory (CUDA context growth, NCCL buffers).

All functions broadcast over numpy arrays (tp, ep, max_num_seqs, max_num_batched_tokens).
Coefficients and per-version rules come from ``perfdata/memory_calibration.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servewise.estimator.arch import ModelArch
from servewise.estimator.memory import VOCAB_PADDING, ArrayLike, round_up
from servewise.perfdata.memory_rules import MemoryCalibration, VllmRules

BF16 = 2.0


@dataclass(frozen=True)
class Activation:
    """Peak transient memory of the start-up profile, and its two candidates."""

    total: np.ndarray
    forward: np.ndarray
    sampler: np.ndarray


def forward_bytes_per_token(a: ModelArch, tp: ArrayLike, ep: ArrayLike = 1) -> np.ndarray:
    """Live bytes per batched token at the largest layer of a forward pass (bf16).

    Dense layer: 3 x hidden (residual, normed input, output) + max(attention: (q + 2 kv + o)
    widths / tp, MLP: 3 x intermediate / tp for gate_up and act outputs).
    MoE layer (fused MoE): 3 x hidden + top_k x (3 x expert_intermediate / tp + hidden) + router
    logits in fp32 (2 x experts in bf16 units).
    """
    tp = np.asarray(tp, dtype=np.float64)
    h = a.hidden_size
    kv_w = 2 * np.ceil(a.num_kv_heads / tp) * a.head_dim if not a.mla else a.mla.kv_lora_rank + a.mla.qk_rope_head_dim
    attn = (a.q_size + a.attn_out_size) / tp + kv_w
    dense_i = a.moe.dense_intermediate if (a.moe and a.moe.dense_intermediate) else a.intermediate_size
    per = 3 * h + np.maximum(attn, 3 * dense_i / tp)
    if a.moe:
        m = a.moe
        width = np.where(np.asarray(ep) > 1, m.expert_intermediate, m.expert_intermediate / tp)
        moe = 3 * h + m.top_k * (3 * width + h) + 2 * m.num_experts
        if m.shared_intermediate:
            moe = moe + 3 * m.shared_intermediate / tp
        per = np.maximum(per, moe)
    return per * BF16


def sampler_rows(max_num_seqs: ArrayLike, max_num_batched_tokens: ArrayLike) -> np.ndarray:
    """vLLM's dummy run spreads max_num_batched_tokens over min(tokens, max_num_seqs) requests and
    samples one row per request (gpu_model_runner._dummy_run)."""
    return np.minimum(np.asarray(max_num_seqs), np.asarray(max_num_batched_tokens))


def padded_vocab(a: ModelArch) -> int:
    """Logit columns after the all-gather: the vocabulary padded to a multiple of 64."""
    return int(round_up(a.vocab_size, VOCAB_PADDING))


def profile_activation(a: ModelArch, cal: MemoryCalibration, sampler_bytes_per_logit: float, tp: ArrayLike,
                       ep: ArrayLike, rows: ArrayLike, tokens: ArrayLike) -> Activation:
    """Torch peak increase of a start-up profile: max(forward, sampler) + hidden states held + base.

    forward = tokens x forward_bytes_per_token x forward_scale;
    sampler = rows x padded vocab x sampler_bytes_per_logit (full vocabulary on every TP rank:
    the logits are all-gathered before sampling);
    the dummy forward's output (tokens x hidden x 2 bytes) stays alive during the sampler pass.
    """
    tokens = np.asarray(tokens, dtype=np.float64)
    fwd = tokens * forward_bytes_per_token(a, tp, ep) * cal.coefficient("forward_scale")
    samp = np.asarray(rows, dtype=np.float64) * padded_vocab(a) * sampler_bytes_per_logit
    held = tokens * a.hidden_size * BF16
    total = np.maximum(fwd, samp) + held + cal.coefficient("activation_base_bytes")
    return Activation(total, fwd, samp)


def non_torch_bytes(cal: MemoryCalibration, tp: ArrayLike, pp: ArrayLike = 1, dp: ArrayLike = 1) -> np.ndarray:
    """CUDA context growth and library workspaces + NCCL / custom all-reduce buffers:
    base + nccl x log2(tp x pp x dp) (0 extra on a single GPU)."""
    ranks = np.asarray(tp, dtype=np.float64) * np.asarray(pp) * np.asarray(dp)
    return cal.coefficient("non_torch_base_bytes") + cal.coefficient("non_torch_nccl_bytes") * np.log2(ranks)


def vllm_graph_counts(rules: VllmRules, max_num_seqs: ArrayLike, max_num_batched_tokens: ArrayLike
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(piecewise graphs, FULL decode graphs) vLLM captures by default.

    Sizes up to M = min(2 x max_num_seqs, cap, max_num_batched_tokens): v0.11: 1, 2, 4 and
    multiples of 8; v0.21+: 1, 2, 4, multiples of 8 below 256 and of 16 from 256. The default
    FULL_AND_PIECEWISE mode (v1 default since 0.11, config/compilation.py) adds a FULL graph for
    every size up to max_num_seqs (uniform decode batches).
    """
    seqs = np.asarray(max_num_seqs)
    m = np.minimum(np.minimum(2 * seqs, rules.cuda_graph_max_capture), np.asarray(max_num_batched_tokens))

    def count(limit: np.ndarray) -> np.ndarray:
        small = (limit >= 1).astype(np.int64) + (limit >= 2) + (limit >= 4)
        if rules.cuda_graph_sizes == "v0.11":
            return small + np.maximum(limit // 8, 0)
        below = np.minimum(np.maximum(limit, 0), 255) // 8
        above = np.where(limit >= 256, (limit - 256) // 16 + 1, 0)
        return small + below + above

    piecewise = count(m)
    return piecewise, count(np.minimum(seqs, m))


def vllm_cuda_graph_bytes(a: ModelArch, cal: MemoryCalibration, rules: VllmRules, tp: ArrayLike, ep: ArrayLike,
                          pp: ArrayLike, max_num_seqs: ArrayLike, max_num_batched_tokens: ArrayLike) -> np.ndarray:
    """Graph pool + per-graph cost: largest capture x forward bytes per token + graphs x layers on
    the stage x cuda_graph_bytes_per_graph_layer."""
    pw, full = vllm_graph_counts(rules, max_num_seqs, max_num_batched_tokens)
    largest = np.minimum(np.minimum(2 * np.asarray(max_num_seqs), rules.cuda_graph_max_capture),
                         np.asarray(max_num_batched_tokens))
    layers = np.ceil(a.num_layers / np.asarray(pp, dtype=np.float64))
    pool = largest * forward_bytes_per_token(a, tp, ep)
    return pool + (pw + full) * layers * cal.coefficient("cuda_graph_bytes_per_graph_layer")
