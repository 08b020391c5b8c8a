"""Per-iteration performance model: the time of one engine step from per-op costs.

One step of an engine worker processes ``P`` prefill tokens (new prompt tokens, possibly a chunk of a
longer prompt) and ``D`` decode sequences (one new token each). Its time is the sum over the model's
ops, each roofline-bounded::

    t_op = smoothmax(flops / (peak x gemm_efficiency), bytes / (bandwidth x memory_efficiency))

with ``smoothmax(a, b) = (a^p + b^p)^(1/p)`` (``p = roofline_sharpness``; p -> inf is the plain max),
plus communication over the GPU's links and per-step engine overheads. The efficiencies and overheads
are fitted to measured serving data (``benchmarks/calibrate.py`` -> ``perfdata/calibration.yaml``).

Every function broadcasts over numpy arrays: the parallel sizes (``tp``, ``pp``, ``dp`` = attention
data-parallel ranks, ``ep``) and the token counts may be arrays of any compatible shape, so the search
evaluates a whole candidate grid in one call. Token counts are per attention-DP rank and per step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from servewise.estimator.arch import ModelArch
from servewise.estimator.quant import ModuleKind, QuantScheme, WeightFormat, plain_scheme
from servewise.perfdata.engines import ServingBehaviour
from servewise.perfdata.gpus import GpuSpec, Link

ArrayLike = int | float | np.ndarray
ACT_BYTES = 2.0            # activations travel in 16-bit
ELEMENTWISE_PASSES = 8.0   # per layer: 2 norms (read+write), residual adds, activation, rope -> ~8 h-sized passes
CUDA_GRAPH_MAX_BATCH = 512  # decode batches above the engines' default capture sizes run eagerly


@dataclass(frozen=True)
class PerfTarget:
    """Everything a step time depends on besides the broadcast axes: model, formats, GPU, engine."""

    arch: ModelArch
    scheme: QuantScheme        # serving format and which module kinds it quantizes
    kv_bytes_per_element: float
    gpu: GpuSpec
    scale_up_gpus: int         # GPUs that reach each other over ``intra_link`` (a node, or an NVL72 rack)
    intra_link: Link           # GPU-to-GPU link inside the scale-up domain (NVLink, or PCIe without it)
    engine: str
    coef: Mapping[str, float]  # resolved calibration coefficients for (GPU generation, engine)
    serving: ServingBehaviour  # the engine version's scheduling facts (perfdata/engines/<engine>.yaml)

    @property
    def generation(self) -> str:
        return self.gpu.architecture

    @property
    def weights(self) -> WeightFormat:
        return self.scheme.format

    def linear(self, kind: ModuleKind) -> tuple[float, float, str]:
        """(bytes per parameter, tensor peak FLOP/s, efficiency coefficient) of a module kind's GEMMs:
        the serving format where the checkpoint quantizes the kind, 16-bit otherwise."""
        if self.scheme.is_quantized(kind):
            f = self.scheme.format
            return f.bytes_per_param, gemm_peak_flops(self.gpu, f), gemm_efficiency_key(self.gpu, f)
        return self.scheme.high_precision_bytes, self.gpu.peak_flops("bf16"), "gemm_efficiency"


@dataclass(frozen=True)
class Parallel:
    """Parallel layout of one worker (arrays broadcast together)."""

    tp: np.ndarray
    pp: np.ndarray
    dp: np.ndarray
    ep: np.ndarray

    @classmethod
    def of(cls, tp: ArrayLike = 1, pp: ArrayLike = 1, dp: ArrayLike = 1, ep: ArrayLike = 1) -> Parallel:
        return cls(*(np.asarray(x, dtype=np.float64) for x in (tp, pp, dp, ep)))

    @property
    def gpus(self) -> np.ndarray:
        return self.tp * self.pp * self.dp


@dataclass(frozen=True)
class StepTime:
    """Seconds of one step, with its terms (arrays of the broadcast shape)."""

    gemm_compute_s: np.ndarray   # GEMMs where the compute bound dominates
    weights_read_s: np.ndarray   # GEMMs where streaming the weights dominates
    attention_s: np.ndarray
    communication_s: np.ndarray
    elementwise_s: np.ndarray
    overhead_s: np.ndarray

    @property
    def total_s(self) -> np.ndarray:
        return (self.gemm_compute_s + self.weights_read_s + self.attention_s + self.communication_s
                + self.elementwise_s + self.overhead_s)

    def terms(self) -> dict[str, np.ndarray]:
        return {"GEMM compute": self.gemm_compute_s, "weight reads": self.weights_read_s,
                "attention": self.attention_s, "communication": self.communication_s,
                "norms/elementwise": self.elementwise_s, "engine overhead": self.overhead_s}


def smoothmax(a: np.ndarray, b: np.ndarray, p: float) -> np.ndarray:
    """(a^p + b^p)^(1/p): a roofline max whose knee is rounded (real kernels are slower at the ridge)."""
    m = np.maximum(np.maximum(a, b), 1e-30)
    return m * ((a / m) ** p + (b / m) ** p) ** (1.0 / p)


def gemm_peak_flops(gpu: GpuSpec, weights: WeightFormat) -> float:
    """Tensor FLOP/s a linear layer runs at: the weights' math format where the GPU has it (FP8 on
    Hopper+, FP4 on Blackwell, INT8); 4-bit integer and FP4-on-older-GPU formats are weight-only
    (dequantised to 16-bit), so they get the 16-bit peak (GpuSpec.peak_flops otherwise)."""
    dt = weights.compute_dtype
    if dt in gpu.flops:
        return gpu.flops[dt]
    if weights.bits <= 4:
        return gpu.peak_flops("bf16")
    return gpu.peak_flops(dt)


def gemm_efficiency_key(gpu: GpuSpec, weights: WeightFormat) -> str:
    """Which fitted GEMM efficiency applies: 8-bit and 4-bit tensor-core kernels (FP8/INT8, FP4) reach a
    different fraction of their peak than 16-bit ones, so each has its own coefficient."""
    dt = weights.compute_dtype
    if dt in ("fp8", "int8") and dt in gpu.flops:
        return "gemm_efficiency_8bit"
    if dt == "fp4" and "fp4" in gpu.flops:
        return "gemm_efficiency_4bit"
    return "gemm_efficiency"


def _roofline(flops, bytes_, peak, bw, c, eff: str = "gemm_efficiency") -> tuple[np.ndarray, np.ndarray]:
    """Time of one op and the part attributed to compute (the rest to memory), by the larger bound."""
    tc = flops / (peak * c[eff])
    tm = bytes_ / (bw * c["memory_efficiency"])
    t = smoothmax(tc, tm, c["roofline_sharpness"])
    return t, np.where(tc >= tm, t, 0.0)


def linear_params_per_gpu(a: ModelArch, tp: np.ndarray) -> dict[str, np.ndarray]:
    """Parameters of each linear-layer group on one GPU of a TP group (per layer; lm_head once).

    GQA: qkv = h x (q/tp + 2 ceil(kv_heads/tp) head_dim), o = (q/tp) x h. MLA: the latent
    down-projections are replicated, the up-projections split by TP. MLP: gated 3 h i / tp.
    Shared experts split by TP; one routed expert is returned whole (``expert``).
    """
    h = a.hidden_size
    if a.mla:
        m = a.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        q_rep = h * m.q_lora_rank if m.q_lora_rank else 0.0
        q_split = (m.q_lora_rank or h) * a.num_attention_heads * qk
        kv_rep = h * (m.kv_lora_rank + m.qk_rope_head_dim)
        kv_split = m.kv_lora_rank * a.num_attention_heads * (m.qk_nope_head_dim + m.v_head_dim)
        qkv = q_rep + kv_rep + (q_split + kv_split) / tp
        if a.indexer:   # DSA lightning indexer projections, replicated
            qkv = qkv + a.indexer.params(h, m.q_lora_rank or h)
    else:
        qkv = h * (a.q_proj_size / tp + 2.0 * np.ceil(a.num_kv_heads / tp) * a.head_dim)
    inter = a.moe.dense_intermediate if (a.moe and a.moe.dense_intermediate) else a.intermediate_size
    out = {"qkv": qkv, "o": a.attn_out_size * h / tp, "dense_mlp": a.dense_mlp_params(inter) / tp,
           "lm_head": a.vocab_size * h / tp + 0 * tp,
           "linear_mixer": (float(a.linear.params(h)) if a.linear else 0.0) / tp}
    if a.moe:
        out["shared"] = (a.dense_mlp_params(a.moe.shared_intermediate) if a.moe.shared_intermediate else 0.0) / tp
        out["expert"] = a.expert_params() + 0 * tp
    return out


def attention_time_s(t: PerfTarget, tp, prefill_tokens, prefill_ctx, decode_seqs, decode_ctx, window):
    """One attention layer's core (softmax(QK^T)V) on one GPU.

    Prefill: 4 x heads/tp x head_dim x P x ctx FLOPs (MLA, not absorbed: 2 x heads/tp x (qk + v) x P x ctx),
    with ``ctx`` the mean attended length (causal: prior context + half the new tokens). Decode reads
    D x ctx cached tokens: GQA ceil(kv_heads/tp) x 2 x head_dim elements per token, MLA the replicated
    latent (kv_lora + rope); absorbed MLA decode does 2 x heads/tp x (2 kv_lora + rope) FLOPs per
    cached token. Sliding layers attend to at most ``window`` tokens. With a DSA indexer (DeepSeek-V3.2,
    GLM-5) the attention reads only the ``topk`` tokens the indexer picks, and the indexer scores the whole
    context (fp8 keys: ``indexer_bytes_per_token_per_layer`` per token). 16-bit tensor peak.
    """
    a, c = t.arch, t.coef
    hq = a.num_attention_heads / tp
    cp = np.minimum(prefill_ctx, window) if window else prefill_ctx
    cd = np.minimum(decode_ctx, window) if window else decode_ctx
    extra = 0.0
    if a.indexer:
        ix = a.indexer
        ix_flops = 2.0 * ix.n_heads * ix.head_dim * (prefill_tokens * cp + decode_seqs * cd)
        ix_bytes = decode_seqs * cd * a.indexer_bytes_per_token_per_layer()
        extra = smoothmax(ix_flops / (t.gpu.peak_flops("fp8") * c["attention_efficiency"]),
                          ix_bytes / (t.gpu.memory_bandwidth_bytes_per_s * c["kv_read_efficiency"]),
                          c["roofline_sharpness"])
        cp, cd = np.minimum(cp, ix.topk), np.minimum(cd, ix.topk)
    if a.mla:
        m = a.mla
        f_pre = 2.0 * hq * (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim) * prefill_tokens * cp
        f_dec = 2.0 * hq * (2 * m.kv_lora_rank + m.qk_rope_head_dim) * decode_seqs * cd
        kv_el = float(m.kv_lora_rank + m.qk_rope_head_dim)
    else:
        f_pre = 4.0 * hq * a.head_dim * prefill_tokens * cp
        f_dec = 4.0 * hq * a.head_dim * decode_seqs * cd
        kv_el = 2.0 * np.ceil(a.num_kv_heads / tp) * a.head_dim
    peak = t.gpu.peak_flops("bf16") * c["attention_efficiency"] * (c["mla_efficiency"] if a.mla else 1.0)
    bw = t.gpu.memory_bandwidth_bytes_per_s
    pre = f_pre / peak
    dec_bytes = decode_seqs * cd * kv_el * t.kv_bytes_per_element
    dec = smoothmax(f_dec / peak, dec_bytes / (bw * c["kv_read_efficiency"]),
                    c["roofline_sharpness"])
    return pre + dec + extra


def linear_attention_time_s(t: PerfTarget, tp, prefill_tokens, decode_seqs) -> np.ndarray:
    """One linear-attention (Gated DeltaNet) layer's recurrence on one GPU: each decode step reads and
    writes every sequence's conv and recurrent state (fp32); a prompt token costs ~4 x key_dim x
    value_head_dim FLOPs of state update (chunked delta rule). Heads are split by TP."""
    a, c = t.arch, t.coef
    la = a.linear
    state = (la.recurrent_state_elements() + la.conv_state_elements()) / tp
    dec_bytes = 2.0 * 4.0 * decode_seqs * state
    flops = 4.0 * la.key_dim * la.value_head_dim * (prefill_tokens + decode_seqs) / tp
    return smoothmax(flops / (t.gpu.peak_flops("bf16") * c["attention_efficiency"]),
                     dec_bytes / (t.gpu.memory_bandwidth_bytes_per_s * c["kv_read_efficiency"]),
                     c["roofline_sharpness"])


def allreduce_time_s(t: PerfTarget, n_gpus, message_bytes, link_bw) -> np.ndarray:
    """Ring all-reduce: latency + 2 (n-1)/n x message / (link bandwidth x efficiency); 0 for n = 1."""
    c = t.coef
    n = np.asarray(n_gpus, dtype=np.float64)
    body = 2.0 * (n - 1.0) / n * message_bytes / (link_bw * c["allreduce_efficiency"])
    return np.where(n > 1, c["allreduce_latency_s"] + body, 0.0)


def alltoall_time_s(t: PerfTarget, ep, token_bytes_routed, link_bw) -> np.ndarray:
    """EP dispatch + combine: each routed token's hidden state goes to (ep-1)/ep remote ranks and back."""
    c = t.coef
    body = 2.0 * token_bytes_routed * (ep - 1.0) / ep / (link_bw * c["alltoall_efficiency"])
    return np.where(ep > 1, 2.0 * c["alltoall_latency_s"] + body, 0.0)


def link_bandwidth(t: PerfTarget, span_gpus) -> np.ndarray:
    """Per-direction bandwidth of the link a group of ``span_gpus`` communicates over: the scale-up link
    inside a node, the scale-out network (or the host PCIe link) across nodes."""
    inter = t.gpu.inter_node or t.gpu.host_link
    return np.where(np.asarray(span_gpus) <= t.scale_up_gpus, t.intra_link.bandwidth_bytes_per_s,
                    inter.bandwidth_bytes_per_s)


def step_time(t: PerfTarget, par: Parallel, prefill_tokens: ArrayLike = 0.0, prefill_ctx: ArrayLike = 0.0,
              decode_seqs: ArrayLike = 0.0, decode_ctx: ArrayLike = 0.0,
              prefill_seqs: ArrayLike | None = None) -> StepTime:
    """Time of one engine step of a worker (per attention-DP rank; all ranks step together).

    ``prefill_tokens``: new prompt tokens in the step; ``prefill_ctx``: mean context each attends to;
    ``decode_seqs``: sequences decoding one token; ``decode_ctx``: their mean context length;
    ``prefill_seqs``: prompts in the step (logits rows and per-sequence overhead), default
    ``ceil(prefill_tokens / prefill_ctx_full)`` approximated by ``prefill_tokens > 0``.
    With pipeline parallelism the step's sequences are split into ``m = min(pp, sequences)`` micro-batches
    that fill the stages, so a round in which every sequence advances once costs the whole model at the
    tokens of one micro-batch plus ``pp - 1`` stage-to-stage sends. A sequence is in one micro-batch at a
    time (the engines do not split one prompt, or its chunks, over the stages: vllm-project/vllm#41682),
    so a micro-batch holds at least a whole prompt chunk: ``P / min(pp, prompts)`` prompt tokens beside
    ``D / m`` decodes. A lone prompt thus passes the stages one after another -- pipelining gives
    throughput across sequences, never a shorter prefill of one (SGLang's chunked pipeline parallelism,
    which overlaps the chunks of one long prompt, is not modelled).
    """
    a, c, gpu = t.arch, t.coef, t.gpu
    tp, pp, dp, ep = par.tp, par.pp, par.dp, par.ep
    n_pre = (np.asarray(prefill_tokens) > 0).astype(np.float64) if prefill_seqs is None else \
        np.asarray(prefill_seqs, dtype=np.float64)
    mb = np.clip(np.asarray(decode_seqs, dtype=np.float64) + n_pre, 1.0, pp)   # micro-batches
    P = np.asarray(prefill_tokens, dtype=np.float64) / np.clip(n_pre, 1.0, pp)
    D = np.asarray(decode_seqs, dtype=np.float64) / mb
    T = P + D
    bw = gpu.memory_bandwidth_bytes_per_s
    W = linear_params_per_gpu(a, tp)
    n = a.layer_counts
    h = a.hidden_size
    act = 2.0 * T * h * ACT_BYTES

    def gemm(params, tokens, kind):
        bpp, pk, eff = t.linear(kind)
        return _roofline(2.0 * tokens * params, params * bpp + act, pk, bw, c, eff)

    total, comp = 0.0, 0.0
    attn_layers = n.full + n.sliding
    for params, count, kind in ((W["qkv"] + W["o"], attn_layers, "attention"), (W["dense_mlp"], n.dense_mlp, "mlp"),
                                (W["linear_mixer"], n.linear, "attention")):
        if count:
            tt, cc = gemm(params, T, kind)
            total, comp = total + count * tt, comp + count * cc
    comm = 0.0
    span = tp * dp
    if a.moe and n.moe:
        m = a.moe
        t_engine = T * dp                              # tokens all attention ranks send to the experts
        assign = t_engine * m.top_k
        touched = 1.0 - (1.0 - m.top_k / m.num_experts) ** t_engine
        bpp, pk, eff = t.linear("experts")
        e_bytes = m.num_experts * touched * W["expert"] * bpp / span
        e_flops = 2.0 * assign * W["expert"] / span
        te, ce = _roofline(e_flops, e_bytes + act, pk, bw, c, eff)
        te, ce = te / c["moe_efficiency"], ce / c["moe_efficiency"]   # grouped/fused expert kernels
        imb = np.where(ep > 1, c["moe_imbalance"], 1.0)
        tt, cc = gemm(W["shared"], T, "shared_experts") if m.shared_intermediate else (0.0, 0.0)
        total = total + n.moe * (te * imb + tt)
        comp = comp + n.moe * (ce * imb + cc)
        # With attention data parallel (dp > 1) each rank's tokens are dispatched to the experts' ranks and
        # combined back (all-to-all); with attention TP the tokens are already on every rank, so each rank
        # runs its experts (EP) or expert slices (TP) on all of them and one all-reduce combines the output.
        routed = assign / dp * h * ACT_BYTES            # per GPU of the attention rank's tokens
        a2a = alltoall_time_s(t, np.where(dp > 1, ep, 1.0), routed / tp, link_bandwidth(t, span))
        ar = allreduce_time_s(t, tp, T * h * ACT_BYTES, link_bandwidth(t, tp))
        comm = comm + n.moe * np.where(dp > 1, a2a, ar)
    # TP all-reduce after attention (and linear mixers) and after each dense MLP
    ar_layers = attn_layers + n.linear + n.dense_mlp
    comm = comm + ar_layers * allreduce_time_s(t, tp, T * h * ACT_BYTES, link_bandwidth(t, tp))
    comm = comm + (pp - 1.0) * (T * h * ACT_BYTES / link_bandwidth(t, tp * pp) + c["allreduce_latency_s"])
    rows = D + n_pre / np.clip(n_pre, 1.0, pp)
    bpp, pk, eff = t.linear("lm_head")
    t_head, c_head = _roofline(2.0 * rows * W["lm_head"], W["lm_head"] * bpp + rows * h * ACT_BYTES, pk, bw, c, eff)
    ctx_p = np.asarray(prefill_ctx, dtype=np.float64)
    ctx_d = np.asarray(decode_ctx, dtype=np.float64)
    attn = n.full * attention_time_s(t, tp, P, ctx_p, D, ctx_d, None)
    if n.sliding:
        attn = attn + n.sliding * attention_time_s(t, tp, P, ctx_p, D, ctx_d, a.sliding_window)
    if n.linear and a.linear:
        attn = attn + n.linear * linear_attention_time_s(t, tp, P, D)
    elem = a.num_layers * T * h * ACT_BYTES * ELEMENTWISE_PASSES / (bw * c["memory_efficiency"])
    graph = (P == 0) & (D * mb <= CUDA_GRAPH_MAX_BATCH)
    per_layer = np.where(graph, c["layer_overhead_graph_s"], c["layer_overhead_eager_s"])
    overhead = c["step_overhead_s"] + c["seq_overhead_s"] * (D * mb + n_pre) + a.num_layers * per_layer
    total = total + t_head
    comp = comp + c_head
    shape = np.broadcast_shapes(*(np.shape(x) for x in (total, comm, attn, overhead)))
    b = lambda x: np.broadcast_to(np.asarray(x, dtype=np.float64), shape)  # noqa: E731
    return StepTime(gemm_compute_s=b(comp), weights_read_s=b(total - comp), attention_s=b(attn),
                    communication_s=b(comm), elementwise_s=b(elem), overhead_s=b(overhead))


def make_target(arch: ModelArch, weights: WeightFormat | QuantScheme, gpu: GpuSpec, engine: str,
                kv_dtype: str = "auto", gpus_per_node: int | None = None, intra_link: Link | None = None,
                coef: Mapping[str, float] | None = None, engine_version: str | None = None) -> PerfTarget:
    """A PerfTarget with the calibrated coefficients of (GPU generation, engine) unless ``coef`` is given,
    and the scheduling facts of ``engine_version`` (default: the engine's default version).
    ``weights``: a format applied to every decoder linear layer, or a checkpoint's QuantScheme."""
    from servewise.estimator.quant import kv_bytes_per_element
    from servewise.perfdata import get_engine
    from servewise.perfdata.calibration import load_calibration

    if coef is None:
        coef = load_calibration().coefficients(gpu.architecture, engine)
    scheme = weights if isinstance(weights, QuantScheme) else plain_scheme(weights)
    node = gpus_per_node or gpu.gpus_per_node
    # rack-scale NVLink (GB200/GB300 NVL72) spans more GPUs than one node; otherwise the node is the domain
    domain = gpu.scale_up_domain_gpus if gpu.scale_up_domain_gpus > gpu.gpus_per_node else node
    return PerfTarget(arch=arch, scheme=scheme, kv_bytes_per_element=kv_bytes_per_element(kv_dtype), gpu=gpu,
                      scale_up_gpus=domain, intra_link=intra_link or gpu.interconnect, engine=engine, coef=dict(coef),
                      serving=get_engine(engine).version(engine_version).serving)
