"""What an engine picks itself when a memory-relevant knob is not given: batch limits and, for
SGLang, the memory fraction. Facts per engine version from ``perfdata/memory_calibration.yaml``.

servewise speaks vLLM's names for the batch limits and maps them per engine:
- ``max_num_seqs``: vLLM ``--max-num-seqs``; SGLang the decode CUDA-graph batch
  (``cuda_graph_max_bs``, what its memory rule budgets); TensorRT-LLM ``--max_batch_size``;
- ``max_num_batched_tokens``: vLLM ``--max-num-batched-tokens``; SGLang ``--chunked-prefill-size``;
  TensorRT-LLM ``--max_num_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servewise.perfdata.gpus import GpuSpec
from servewise.perfdata.memory_rules import BatchTier, SglangRules, memory_calibration, rules_for

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class BatchDefaults:
    max_num_seqs: int
    max_num_batched_tokens: int
    source: str


def _tier(tiers: list[BatchTier], gpu: GpuSpec, memory_bytes: int) -> tuple[int, BatchTier]:
    gib = memory_bytes / GIB
    name = gpu.name.lower()
    for i, t in enumerate(tiers):
        if gib < t.min_memory_gib:
            continue
        if any(x in name or x in gpu.id for x in t.exclude_names):
            continue
        if gpu.compute_capability in t.exclude_compute_capability:
            continue
        return i, t
    return len(tiers) - 1, tiers[-1]


def batch_defaults(engine: str, version: str, gpu: GpuSpec, memory_bytes: int, tp: int = 1,
                   max_model_len: int | None = None) -> BatchDefaults:
    """The engine's own batch limits for an OpenAI-compatible server on this GPU."""
    cal = memory_calibration()
    if engine == "vllm":
        rules = rules_for(cal.vllm, version)
        _, t = _tier(rules.batch_defaults, gpu, memory_bytes)
        tokens = t.max_num_batched_tokens
        if max_model_len and rules.batched_tokens_capped_by_max_model_len:
            tokens = min(tokens, t.max_num_seqs * max_model_len)
        return BatchDefaults(min(t.max_num_seqs, tokens), tokens, rules.sources.get("batch_defaults", ""))
    if engine == "sglang":
        s = rules_for(cal.sglang, version)
        i, t = _tier(s.chunked_prefill_tiers, gpu, memory_bytes)
        seqs = s.decode_graph_max_bs_tp4[i] if tp >= 4 else t.max_num_seqs
        return BatchDefaults(seqs, t.max_num_batched_tokens, s.sources["fraction_rule"])
    if engine == "trtllm":
        r = rules_for(cal.trtllm, version)
        return BatchDefaults(r.max_batch_size, r.max_num_tokens, r.sources["defaults"])
    raise ValueError(f"unknown engine {engine!r}")


_SGLANG_PREFILL_BS = np.array([*range(4, 33, 4), *range(48, 257, 16), *range(288, 513, 32), *range(576, 1025, 64),
                               *range(1280, 4097, 256), *range(4608, 262145, 512)])


def sglang_prefill_graph_count(max_bs):
    """Prefill CUDA-graph sizes SGLang captures up to ``max_bs`` tokens: 4..32 step 4, 48..256
    step 16, 288..512 step 32, 576..1024 step 64, 1280..4096 step 256, 4608.. step 512
    (cuda_graph_hook.generate_prefill_cuda_graph_batch_sizes)."""
    n = np.searchsorted(_SGLANG_PREFILL_BS, np.asarray(max_bs), side="right")
    return int(n) if np.ndim(n) == 0 else n


def sglang_reserved_bytes(s: SglangRules, memory_bytes: int, tp: int, pp: int, chunked_prefill: int,
                          decode_max_bs: int, mla: bool) -> float:
    """SGLang's reserve outside mem_fraction_static (memory_hook.handle_gpu_memory_settings), in bytes:
    512 + 1.5 x max(chunk, 2048) + tp x pp x 128 + 2 x decode max_bs + 8 per prefill graph
    (1,536 with MLA) MiB, at least 10 GiB on GPUs over 60 GiB."""
    activation_tokens = max(chunked_prefill, s.reserve_min_activation_tokens)
    mib = s.reserve_base_mib + s.reserve_per_activation_token_mib * activation_tokens
    mib += s.reserve_per_tp_pp_mib * tp * pp + s.reserve_per_decode_graph_bs_mib * decode_max_bs
    if mla:
        mib += s.reserve_mla_prefill_graph_mib
    else:
        mib += s.reserve_per_prefill_graph_mib * sglang_prefill_graph_count(chunked_prefill)
    if memory_bytes > 60 * GIB:
        mib = max(mib, s.reserve_floor_mib)
    return mib * MIB


def default_memory_fraction(engine: str, version: str, knob_default: float | None, memory_bytes: int,
                            tp: int = 1, pp: int = 1, chunked_prefill: int = 8192, decode_max_bs: int = 256,
                            mla: bool = False) -> float:
    """The engine's memory fraction when none is given: its documented default, or for SGLang the
    automatic mem_fraction_static = (gpu memory - reserve) / gpu memory, rounded to 3 decimals
    (GPU memory as CUDA reports it; SGLang reads nvidia-smi, ~0.5 GiB more on an H100: <0.001 apart)."""
    if knob_default is not None:
        return float(knob_default)
    if engine != "sglang":
        return 0.9
    s = rules_for(memory_calibration().sglang, version)
    reserved = sglang_reserved_bytes(s, memory_bytes, tp, pp, chunked_prefill, decode_max_bs, mla)
    return round((memory_bytes - reserved) / memory_bytes, 3)


_SGLANG_DECODE_BS = np.array(sorted({1, 2, 4, 8, 12, *range(16, 257, 8), *range(272, 512, 16), *range(512, 8193, 32)}))


def sglang_decode_graph_count(max_bs) -> np.ndarray:
    """Decode CUDA graphs SGLang captures up to ``max_bs``: 1, 2, 4, 8, 12, 16..256 step 8,
    272..496 step 16, 512.. step 32, plus max_bs itself (cuda_graph_hook.generate_decode_cuda_graph_batch_sizes)."""
    bs = np.asarray(max_bs)
    listed = np.searchsorted(_SGLANG_DECODE_BS, bs, side="right")
    return listed + ~np.isin(bs, _SGLANG_DECODE_BS)


def trtllm_graph_count(max_batch_size) -> np.ndarray:
    """CUDA graphs TensorRT-LLM's PyTorch backend captures by default: 1, 2, 4 and multiples of 8
    up to cuda_graph_config.max_batch_size (128 when unset; engine_flags/trtllm-1.2.1.json)."""
    m = np.minimum(np.asarray(max_batch_size), 128)
    return (m >= 1).astype(np.int64) + (m >= 2) + (m >= 4) + m // 8
