"""Load the measured serving sample and turn its rows into performance-model inputs.

Reads ``$SERVEWISE_SHARED/calibration/aiconfigurator_silicon_sample.csv`` (default ``../shared``) at run
time; nothing from it is stored in the repository. Rows whose model, GPU or architecture servewise
cannot model are kept but marked ``usable = False`` with the reason. Column meanings:
benchmarks/DATA_DICTIONARY.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from servewise.estimator.budget import MemoryRequest, memory_terms
from servewise.estimator.engine_defaults import batch_defaults, default_memory_fraction
from servewise.estimator.perf import Parallel, PerfTarget, make_target
from servewise.estimator.quant import plain_scheme, weight_format
from servewise.estimator.resolve import ResolvedModel, resolve_model
from servewise.estimator.serving import aggregated
from servewise.perfdata import all_gpus, find_model, get_engine
from servewise.perfdata.errors import DataError
from servewise.profiles.schema import Model

ROOT = Path(__file__).resolve().parent.parent
CSV_NAME = "aiconfigurator_silicon_sample.csv"

# sample system name -> catalog GPU id
SYSTEMS = {"h100_sxm": "h100-sxm", "h200_sxm": "h200-sxm", "b200_sxm": "b200", "b300_sxm": "b300",
           "gb200": "gb200", "gb300": "gb300"}
GENERATIONS = {"h100_sxm": "hopper", "h200_sxm": "hopper", "b200_sxm": "blackwell", "b300_sxm": "blackwell",
               "gb200": "blackwell", "gb300": "blackwell"}
ALIASES = {"zhipuai/GLM-5": "zai-org/GLM-5"}
QUANT = {"fp8": "fp8", "fp8_block": "fp8", "nvfp4": "nvfp4", "int4_wo": "int4-gptq"}
VARIANT = {"nvfp4": "nvidia/{name}-NVFP4", "fp8": "{org}/{name}-FP8"}


def shared_dir() -> Path:
    return Path(os.environ.get("SERVEWISE_SHARED", ROOT.parent / "shared"))


@cache
def resolved(catalog_id: str, dtype: str) -> ResolvedModel:
    """The checkpoint served for a row: the catalog model, its quantized variant where the catalog has
    one (nvidia/*-NVFP4, *-FP8), or the 16-bit checkpoint quantized online."""
    rm = resolve_model(Model(id=catalog_id))
    if dtype in ("bf16",) or rm.weights.name == dtype or rm.checkpoint_dtype in ("mxfp4",):
        return rm
    org, name = catalog_id.split("/", 1)
    variant = VARIANT.get(dtype, "").format(org=org, name=name)
    if variant and find_model(variant) is not None:
        return resolve_model(Model(id=variant))
    if rm.checkpoint_dtype in ("bf16", "fp16", "fp32"):
        return ResolvedModel(rm.id, rm.arch, rm.checkpoint_dtype, weight_format(dtype), rm.source,
                             rm.published_params, quant=plain_scheme(weight_format(dtype)))
    return rm


def load_rows():
    """The sample as a DataFrame with derived columns (pandas is imported here, lazily)."""
    import pandas as pd

    path = shared_dir() / "calibration" / CSV_NAME
    if not path.is_file():
        raise DataError(f"{path} not found (set SERVEWISE_SHARED to the shared data folder)")
    df = pd.read_csv(path)
    src = df["silicon_data_source"].astype(str)
    df["client_concurrency"] = src.str.extract(r"silicon_concurrency=(\d+)")[0].astype(float)
    df["measured"] = src.str.extract(r"measured=(\d{4}-\d\d-\d\d)")[0]
    df["gpu"] = df["system"].map(SYSTEMS)
    df["generation"] = df["system"].map(GENERATIONS)
    df["catalog_model"] = df["model_path"].map(lambda m: ALIASES.get(m, m))
    df["weights_dtype"] = df["gemm_quant_mode"].map(QUANT).fillna("bf16")
    # TRT-LLM FP8/FP4 deployments quantize the KV cache too; vLLM and SGLang keep their 16-bit default.
    df["kv_dtype"] = np.where((df["backend"] == "trtllm") & df["precision"].isin(["fp8", "fp4"]), "fp8", "auto")
    agg = df["mode"] == "agg"
    adp = df["attention_dp_size"].fillna(1).clip(lower=1)
    df["dp"] = np.where(agg, adp, 1)
    df["concurrency"] = np.where(agg, df["batch_size"] * df["dp"], np.nan)
    df["ep"] = df["moe_ep_size"].fillna(1).clip(lower=1)
    df["pp_size"] = df["pp_size"].fillna(1)
    df["group"] = (df["model_path"] + "|" + df["system"] + "|" + df["backend"] + "|" + df["mode"] + "|tp"
                   + df["tp_size"].fillna(df["prefill_tp_size"]).astype(int).astype(str) + "|dp"
                   + df["dp"].astype(int).astype(str) + "|ep" + df["ep"].astype(int).astype(str) + "|"
                   + df["weights_dtype"])
    fam, why, mla = {}, {}, {}
    for m, dt in df[["catalog_model", "weights_dtype"]].drop_duplicates().itertuples(index=False):
        try:
            rm = resolved(m, dt) if find_model(m) is not None else None
            fam[(m, dt)] = ("moe" if rm.arch.is_moe else "dense") if rm else "unknown"
            mla[(m, dt)] = bool(rm and rm.arch.is_mla)
            why[(m, dt)] = None if rm else f"model {m} not in the catalog"
        except Exception as exc:  # an architecture servewise refuses: say which and why
            fam[(m, dt)], why[(m, dt)], mla[(m, dt)] = "unknown", f"model {m}: {exc}", False
    keys = list(zip(df["catalog_model"], df["weights_dtype"], strict=True))
    df["family"] = [fam[k] for k in keys]
    df["mla"] = [mla[k] for k in keys]
    reasons = [("disagg (modelled separately)" if mode != "agg" else
                f"GPU {s} not in the catalog" if not isinstance(g, str) or g not in all_gpus() else why[k]
                or _layout_problem(k, tp, ep, dp))
               for mode, g, s, k, tp, ep, dp in zip(df["mode"], df["gpu"], df["system"], keys, df["tp_size"],
                                                    df["ep"], df["dp"], strict=True)]
    df["reason"] = reasons
    df["usable"] = [r is None for r in reasons]
    df["kv_tokens"] = np.nan
    add_kv_tokens(df)
    return df


def _layout_problem(key, tp, ep, dp) -> str | None:
    """Why a recorded layout cannot run as written (the same rules as estimator.context.check_parallelism):
    TP must divide the attention heads, EP the experts; rows that fail record wide-EP / attention-DP
    deployments under a TP size the engine would refuse."""
    a = resolved(*key).arch
    tp, ep = int(tp), int(ep)
    if a.num_attention_heads % tp:
        return f"recorded TP {tp} does not divide the {a.num_attention_heads} attention heads"
    if a.moe and a.moe.num_experts % ep:
        return f"recorded EP {ep} does not divide the {a.moe.num_experts} experts"
    return None


@dataclass(frozen=True)
class Subject:
    """One (model, GPU, engine, formats) combination."""

    target: PerfTarget
    model: ResolvedModel
    budget_tokens: float
    max_num_seqs: float


def subject(model_id: str, gpu_id: str, engine: str, weights_dtype: str, kv_dtype: str,
            coef: dict | None = None) -> Subject:
    rm = resolved(model_id, weights_dtype)
    gpu = all_gpus()[gpu_id]
    t = make_target(rm.arch, rm.scheme, gpu, engine, kv_dtype, coef=coef)
    d = batch_defaults(engine, get_engine(engine).default_version, gpu, gpu.memory_bytes)
    seqs = float(d.max_num_seqs) if engine != "sglang" else 1e9   # SGLang: running requests limited by KV only
    return Subject(t, rm, float(d.max_num_batched_tokens), seqs)


def add_kv_tokens(df) -> None:
    """KV-cache tokens per rank of every usable row under its engine's default memory rule."""
    keys = ["catalog_model", "gpu", "backend", "weights_dtype", "kv_dtype"]
    for key, g in df[df["usable"]].groupby(keys, sort=False):
        model_id, gpu_id, engine, wd, kd = key
        s = subject(model_id, gpu_id, engine, wd, kd)
        ev = get_engine(engine).version()
        gpu = s.target.gpu
        mml = int(min(s.model.arch.max_position_embeddings, (g["isl"] + g["osl"]).max() + 512))
        req = MemoryRequest(s.model, gpu, gpu.memory_bytes, engine, ev.version, ev.block_size_tokens, kd, mml)
        for (tp, pp, dp, ep), sub in g.groupby(["tp_size", "pp_size", "dp", "ep"]):
            d = batch_defaults(engine, ev.version, gpu, gpu.memory_bytes, int(tp), mml)
            frac = default_memory_fraction(engine, ev.version, ev.memory_knob.default, gpu.memory_bytes, int(tp),
                                           int(pp), d.max_num_batched_tokens, d.max_num_seqs, s.model.arch.is_mla)
            t = memory_terms(req, int(tp), int(pp), int(ep), int(dp), d.max_num_seqs, d.max_num_batched_tokens, frac)
            df.loc[sub.index, "kv_tokens"] = float(np.asarray(t.kv_cache_tokens).ravel()[0])
    bad = df["usable"] & ~(df["kv_tokens"] > df["isl"] + df["osl"])
    df.loc[bad, "reason"] = "the KV cache of this configuration holds no request (memory model)"
    df.loc[bad, "usable"] = False


def predict(df, coef_for=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Predicted TTFT and TPOT (seconds) of every usable agg row, in ``df`` order (NaN elsewhere).

    ``coef_for(generation, engine) -> dict`` overrides the calibrated coefficients (used by the fit).
    """
    ttft = np.full(len(df), np.nan)
    tpot = np.full(len(df), np.nan)
    points: dict = {}
    use = df[df["usable"]]
    keys = ["catalog_model", "gpu", "backend", "weights_dtype", "kv_dtype"]
    for key, g in use.groupby(keys, sort=False):
        model_id, gpu_id, engine, wd, kd = key
        gpu = all_gpus()[gpu_id]
        coef = coef_for(gpu.architecture, engine) if coef_for else None
        s = subject(model_id, gpu_id, engine, wd, kd, coef)
        tp, pp, dp, ep = (g[c].to_numpy(float) for c in ("tp_size", "pp_size", "dp", "ep"))
        sp = aggregated(s.target, Parallel.of(tp, pp, dp, ep), g["isl"].to_numpy(float), g["osl"].to_numpy(float),
                        g["concurrency"].to_numpy(float), s.budget_tokens, s.max_num_seqs, g["kv_tokens"].to_numpy())
        idx = df.index.get_indexer(g.index)
        ttft[idx], tpot[idx] = sp.ttft_s, sp.tpot_s
        points[key] = (g.index, sp)
    return ttft, tpot, points


def generation_of(df) -> list[str]:
    return list(df["generation"].fillna("unknown"))
