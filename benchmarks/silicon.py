"""Load the measured serving sample and turn its rows into performance-model inputs.

Reads ``$SERVEWISE_SHARED/calibration/aiconfigurator_silicon_sample.csv`` (default ``../shared``) at run
time; nothing from it is stored in the repository. Rows whose model or GPU the catalog lacks are kept
but marked ``usable = False`` with the reason, so coverage grows as the catalogs do.
Column meanings: benchmarks/DATA_DICTIONARY.md.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from servewise.estimator import budget
from servewise.estimator.arch import ModelArch
from servewise.estimator.perf import Parallel, PerfTarget, make_target
from servewise.estimator.quant import WeightFormat, weight_format
from servewise.estimator.serving import ServingPoint, aggregated, default_token_budget
from servewise.perfdata import all_gpus, find_model
from servewise.perfdata.errors import DataError

ROOT = Path(__file__).resolve().parent.parent
CSV_NAME = "aiconfigurator_silicon_sample.csv"

# sample system name -> catalog GPU id
SYSTEMS = {"h100_sxm": "h100-sxm", "h200_sxm": "h200-sxm", "b200_sxm": "b200-sxm", "b300_sxm": "b300-sxm",
           "gb200": "gb200", "gb300": "gb300"}
# sample model id -> (catalog id, weights dtype override); same architecture, other checkpoint
ALIASES = {"meta-llama/Llama-3.1-70B": "meta-llama/Llama-3.1-70B-Instruct",
           "nvidia/Llama-3.1-8B-Instruct-FP8": "meta-llama/Llama-3.1-8B-Instruct",
           "nvidia/Qwen3-32B-NVFP4": "Qwen/Qwen3-32B",
           "nvidia/DeepSeek-R1-NVFP4": "deepseek-ai/DeepSeek-R1",
           "nvidia/DeepSeek-V3.1-NVFP4": "deepseek-ai/DeepSeek-V3.1",
           "Qwen/Qwen3-235B-A22B-FP8": "Qwen/Qwen3-235B-A22B"}
QUANT = {"fp8": "fp8", "fp8_block": "fp8", "nvfp4": "nvfp4", "int4_wo": "int4-gptq"}
# What an unflagged server runs with (engine defaults, see estimator.serving.default_token_budget):
MAX_SEQS = {"vllm": 1024, "sglang": 4096, "trtllm": 2048}
MEMORY_FRACTION = {"vllm": 0.9, "sglang": 0.88, "trtllm": 0.9}
MEMORY_OF = {"vllm": "total", "sglang": "total", "trtllm": "free_after_weights"}


def shared_dir() -> Path:
    return Path(os.environ.get("SERVEWISE_SHARED", ROOT.parent / "shared"))


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
    df["catalog_model"] = df["model_path"].map(lambda m: ALIASES.get(m, m))
    df["weights_dtype"] = df["gemm_quant_mode"].map(QUANT).fillna("bf16")
    # TRT-LLM FP8/FP4 deployments quantize the KV cache too; vLLM and SGLang keep their 16-bit default.
    df["kv_dtype"] = np.where((df["backend"] == "trtllm") & df["precision"].isin(["fp8", "fp4"]), "fp8", "auto")
    agg = df["mode"] == "agg"
    adp = df["attention_dp_size"].fillna(1).clip(lower=1)
    df["dp"] = np.where(agg, adp, 1)
    df["concurrency"] = np.where(agg, df["batch_size"] * df["dp"], np.nan)
    df["ep"] = df["moe_ep_size"].fillna(1).clip(lower=1)
    df["group"] = (df["model_path"] + "|" + df["system"] + "|" + df["backend"] + "|" + df["mode"] + "|tp"
                   + df["tp_size"].fillna(df["prefill_tp_size"]).astype(int).astype(str) + "|dp"
                   + df["dp"].astype(int).astype(str) + "|ep" + df["ep"].astype(int).astype(str) + "|"
                   + df["weights_dtype"])
    fam = {m: family_of(m) for m in df["model_path"].unique()}
    df["family"] = df["model_path"].map(fam)
    reasons = [_unusable(r) for r in df.itertuples()]
    df["reason"] = reasons
    df["usable"] = [r is None for r in reasons]
    return df


def _unusable(r) -> str | None:
    if r.mode != "agg":
        return "disagg (modelled separately)"
    if not isinstance(r.gpu, str) or r.gpu not in all_gpus():
        return f"GPU {r.system} not in the catalog"
    if find_model(r.catalog_model) is None:
        return f"model {r.model_path} not in the catalog"
    return None


@dataclass(frozen=True)
class Subject:
    """One (model, GPU, engine, formats) combination: a PerfTarget plus what its memory needs."""

    target: PerfTarget
    model: SimpleNamespace


def _weights(entry, dtype: str) -> tuple[WeightFormat, bool]:
    ckpt = entry.dtype
    if dtype == "bf16" or ckpt in ("mxfp4",):
        dtype = ckpt if ckpt not in ("fp32",) else "bf16"
    experts_only = ckpt == "mxfp4"
    return weight_format(dtype), experts_only


def subject(model_id: str, gpu_id: str, engine: str, weights_dtype: str, kv_dtype: str,
            coef: dict | None = None) -> Subject:
    entry = find_model(model_id)
    arch = ModelArch.from_hf_config(entry.config)
    w, experts_only = _weights(entry, weights_dtype)
    gpu = all_gpus()[gpu_id]
    t = make_target(arch, w, gpu, engine, kv_dtype, quantized_experts_only=experts_only, coef=coef)
    rm = SimpleNamespace(arch=arch, weights=w, quantized_experts_only=experts_only)
    return Subject(t, rm)


def kv_tokens(s: Subject, kv_dtype: str, tp, pp, ep, dp, max_seqs, budget_tokens) -> np.ndarray:
    """KV-cache tokens per rank under the engine's default memory rule (estimator.budget)."""
    eng = s.target.engine
    knob = SimpleNamespace(of=MEMORY_OF[eng], default=MEMORY_FRACTION[eng])
    ev = SimpleNamespace(memory_knob=knob, cuda_graph_memory_budgeted=False, block_size_tokens=16)
    hw = SimpleNamespace(memory_bytes=s.target.gpu.memory_bytes)
    ctx = SimpleNamespace(model=s.model, engine=ev, engine_name=eng, hardware=hw, kv_dtype=kv_dtype)
    terms = budget.memory_terms(ctx, tp, pp, ep, dp, max_seqs, budget_tokens, MEMORY_FRACTION[eng])
    return np.asarray(terms.kv_cache_tokens, dtype=np.float64)


def predict(df, coef_for=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Predicted TTFT and TPOT (seconds) of every usable agg row, in ``df`` order (NaN elsewhere).

    ``coef_for(generation, engine) -> dict`` overrides the calibrated coefficients (used by the fit).
    Returns also the ServingPoint of each subject for inspection.
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
        pp = np.nan_to_num(pp, nan=1.0)
        budget_tokens = float(default_token_budget(engine, gpu.memory_bytes, gpu.name))
        seqs = float(MAX_SEQS[engine])
        kv = kv_tokens(s, kd, tp, pp, ep, dp, seqs, budget_tokens)
        sp = aggregated(s.target, Parallel.of(tp, pp, dp, ep), g["isl"].to_numpy(float), g["osl"].to_numpy(float),
                        g["concurrency"].to_numpy(float), budget_tokens, seqs, kv)
        idx = df.index.get_indexer(g.index)
        ttft[idx], tpot[idx] = sp.ttft_s, sp.tpot_s
        points[key] = (g.index, sp)
    return ttft, tpot, points


def generation_of(df) -> list[str]:
    gpus = all_gpus()
    return [gpus[g].architecture if isinstance(g, str) and g in gpus else _GEN.get(s, "unknown")
            for g, s in zip(df["gpu"], df["system"], strict=True)]


_GEN = {"h100_sxm": "hopper", "h200_sxm": "hopper", "b200_sxm": "blackwell", "b300_sxm": "blackwell",
        "gb200": "blackwell", "gb300": "blackwell"}


def family_of(model_id: str) -> str:
    entry = find_model(ALIASES.get(model_id, model_id))
    if entry is not None:
        return "moe" if ModelArch.from_hf_config(entry.config).is_moe else "dense"
    return "dense" if re.search(r"Llama-3|Qwen3-32B", model_id) else "moe"
