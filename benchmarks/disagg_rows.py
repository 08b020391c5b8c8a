"""The disaggregated rows of the measured sample that record worker counts, as performance-model inputs.

Of the sample's 1,602 disaggregated rows, 274 give the prefill and decode worker counts and the decode
batch (DATA_DICTIONARY.md); the others give only the client concurrency and cannot be modelled. Each
usable row becomes an xPyD system for ``estimator.disagg.disaggregated``:

- prefill / decode layouts from ``prefill_*`` / ``decode_*`` (``tp_size``, ``attention_dp_size`` as DP
  ranks, ``moe_ep_size``), PP 1 (the sample has no other);
- ``x = prefill_num_workers``, ``y = decode_num_workers``; the decode batch limit is ``decode_batch_size``
  per DP rank, and the client concurrency is ``silicon_concurrency`` (= decode batch x workers x DP ranks
  on every row that states both);
- the prefill step budget is the engine's default for the prefill layout (the sample records none;
  ``prefill_batch_size`` is 1 on every row, which the sample's generator uses for one prompt per step);
- the decode KV capacity per rank from the memory model at the engine's defaults;
- the KV-transfer link: NVLink when the whole system fits in one scale-up domain, else the scale-out
  network (``performance.pools_link_bandwidth``).

Rows are kept with ``usable = False`` and a reason when the model, GPU or layout cannot be modelled.
"""

from __future__ import annotations

import numpy as np

from benchmarks.silicon import _layout_problem, subject
from servewise.estimator.budget import MemoryRequest, memory_terms
from servewise.estimator.disagg import disaggregated
from servewise.estimator.engine_defaults import batch_defaults, default_memory_fraction
from servewise.estimator.perf import Parallel
from servewise.perfdata import all_gpus, get_engine

ROLES = ("prefill", "decode")


def _size(df, col: str) -> np.ndarray:
    return df[col].fillna(1).clip(lower=1).to_numpy(float)


def add_disagg_columns(df) -> None:
    """Per-role layouts, worker counts, concurrency, group and usability of the disaggregated rows (in place;
    ``df`` from ``silicon.load_rows``, whose aggregated columns are left as they are)."""
    dis = (df["mode"] == "disagg").to_numpy()
    for r in ROLES:
        df[f"{r}_tp"] = _size(df, f"{r}_tp_size")
        df[f"{r}_dp"] = _size(df, f"{r}_attention_dp_size")
        df[f"{r}_ep"] = _size(df, f"{r}_moe_ep_size")
    ddp = df["decode_dp"].to_numpy()
    stated = df["client_concurrency"].to_numpy()
    implied = (df["decode_batch_size"] * df["decode_num_workers"]).to_numpy(float) * ddp
    conc = np.where(np.isfinite(stated), stated, implied)
    df.loc[dis, "concurrency"] = conc[dis]
    layout = lambda r: (r[0] + "-tp" + df[f"{r}_tp"].astype(int).astype(str) + "dp"  # noqa: E731
                        + df[f"{r}_dp"].astype(int).astype(str) + "ep" + df[f"{r}_ep"].astype(int).astype(str))
    key = (df["model_path"] + "|" + df["system"] + "|" + df["backend"] + "|disagg|" + layout("prefill") + "|"
           + layout("decode") + "|" + df["weights_dtype"])
    df.loc[dis, "group"] = key[dis]
    reasons = []
    for i, row in enumerate(df.itertuples(index=False)):
        if not dis[i]:
            reasons.append(None)
            continue
        reasons.append(_why_not(row))
    for i in np.flatnonzero(dis):
        df.iat[i, df.columns.get_loc("reason")] = reasons[i]
    df["disagg_usable"] = dis & np.array([r is None for r in reasons])
    add_decode_kv_tokens(df)


def _why_not(row) -> str | None:
    if not np.isfinite(row.decode_num_workers) or not np.isfinite(row.decode_batch_size) \
            or not np.isfinite(row.prefill_num_workers):
        return "disagg row without worker counts or decode batch"
    if not isinstance(row.gpu, str) or row.gpu not in all_gpus():
        return f"GPU {row.system} not in the catalog"
    if row.family == "unknown":
        return f"model {row.catalog_model} not in the catalog or not modelled"
    key = (row.catalog_model, row.weights_dtype)
    for r in ROLES:
        why = _layout_problem(key, getattr(row, f"{r}_tp"), getattr(row, f"{r}_ep"), getattr(row, f"{r}_dp"))
        if why:
            return f"{r}: {why}"
    return None


def add_decode_kv_tokens(df) -> None:
    """KV-cache tokens per decode rank under the engine's default memory rule (the batch at its row's)."""
    df["decode_kv_tokens"] = np.nan
    keys = ["catalog_model", "gpu", "backend", "weights_dtype", "kv_dtype"]
    for key, g in df[df["disagg_usable"]].groupby(keys, sort=False):
        model_id, gpu_id, engine, wd, kd = key
        s = subject(model_id, gpu_id, engine, wd, kd)
        ev = get_engine(engine).version()
        gpu = s.target.gpu
        mml = int(min(s.model.arch.max_position_embeddings, (g["isl"] + g["osl"]).max() + 512))
        req = MemoryRequest(s.model, gpu, gpu.memory_bytes, engine, ev.version, ev.block_size_tokens, kd, mml)
        cols = ["decode_tp", "decode_dp", "decode_ep", "decode_batch_size"]
        for (tp, dp, ep, bs), sub in g.groupby(cols):
            d = batch_defaults(engine, ev.version, gpu, gpu.memory_bytes, int(tp), mml)
            seqs = int(max(bs, 1))
            tokens = max(d.max_num_batched_tokens, seqs)
            frac = default_memory_fraction(engine, ev.version, ev.memory_knob.default, gpu.memory_bytes, int(tp), 1,
                                           tokens, seqs, s.model.arch.is_mla)
            t = memory_terms(req, int(tp), 1, int(ep), int(dp), seqs, tokens, frac)
            df.loc[sub.index, "decode_kv_tokens"] = float(np.asarray(t.kv_cache_tokens).ravel()[0])
    bad = df["disagg_usable"] & ~(df["decode_kv_tokens"] > df["isl"] + df["osl"])
    df.loc[bad, "reason"] = "the decode KV cache of this configuration holds no request (memory model)"
    df.loc[bad, "disagg_usable"] = False


def _link_bandwidth(target, gpus: np.ndarray) -> np.ndarray:
    inter = target.gpu.inter_node or target.gpu.host_link
    return np.where(gpus <= target.scale_up_gpus, target.intra_link.bandwidth_bytes_per_s, inter.bandwidth_bytes_per_s)


def predict_disagg(df, coef_for=None, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Predicted TTFT and TPOT (seconds) of the usable disaggregated rows (``mask``: a subset), NaN elsewhere.
    ``coef_for(generation, engine)`` overrides the calibrated coefficients (held-out fold fits)."""
    ttft = np.full(len(df), np.nan)
    tpot = np.full(len(df), np.nan)
    use = df["disagg_usable"].to_numpy() & (True if mask is None else np.asarray(mask))
    keys = ["catalog_model", "gpu", "backend", "weights_dtype", "kv_dtype"]
    for key, g in df[use].groupby(keys, sort=False):
        model_id, gpu_id, engine, wd, kd = key
        gpu = all_gpus()[gpu_id]
        coef = coef_for(gpu.architecture, engine) if coef_for else None
        s = subject(model_id, gpu_id, engine, wd, kd, coef)
        col = lambda c: g[c].to_numpy(float)  # noqa: E731
        p_par = Parallel.of(col("prefill_tp"), 1, col("prefill_dp"), col("prefill_ep"))
        d_par = Parallel.of(col("decode_tp"), 1, col("decode_dp"), col("decode_ep"))
        x, y = col("prefill_num_workers"), col("decode_num_workers")
        gpus = x * p_par.gpus + y * d_par.gpus
        budget = np.array([batch_defaults(engine, get_engine(engine).default_version, gpu, gpu.memory_bytes, int(tp))
                           .max_num_batched_tokens for tp in col("prefill_tp")], dtype=np.float64)
        pt = disaggregated(s.target, s.target, p_par, d_par, col("isl"), col("osl"), col("concurrency"), x, y,
                           budget, np.maximum(col("decode_batch_size"), 1.0), col("decode_kv_tokens"),
                           _link_bandwidth(s.target, gpus))
        idx = df.index.get_indexer(g.index)
        ttft[idx], tpot[idx] = pt.ttft_s, pt.tpot_s
    return ttft, tpot

