"""Fit the performance model to the measured serving sample and write perfdata/calibration.yaml.

    python -m benchmarks.calibrate            # fit, cross-validate, print a summary
    python -m benchmarks.calibrate --write    # ... and write perfdata/calibration.yaml
    python -m benchmarks.calibrate --describe # coverage of the sample (see DATA_DICTIONARY.md)

Method: hold out whole measurement groups (model, GPU, engine, mode, TP/DP/EP, weights format) in
K folds; each fold's rows are predicted by a fit that never saw them. The held-out log residuals
per segment (GPU generation x engine x dense/MoE) give the uncertainty bands; a leave-one-engine-out
fit measures how far the model transfers to an engine it has no coefficients for. The coefficients
written are the fit on all usable rows. Needs pandas and scipy (imported here only).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys

import numpy as np
import yaml

from benchmarks.fitting import ENGINE, coef_lookup, fit, residuals
from benchmarks.silicon import ROOT, generation_of, load_rows

FOLDS = 5
BAND_LEVEL = 0.9
SEED = 20261101


def segment_keys(df) -> list[str]:
    gens = generation_of(df)
    return [f"{g}/{e}/{f}" for g, e, f in zip(gens, df["backend"], df["family"], strict=True)]


def cross_validate(df, folds: int = FOLDS, verbose: bool = True):
    """Held-out log(pred/meas) of TTFT and TPOT for every usable row (group K-fold)."""
    use = df[df["usable"]]
    groups = np.array(sorted(use["group"].unique()))
    rng = np.random.default_rng(SEED)
    rng.shuffle(groups)
    fold_of = {g: i % folds for i, g in enumerate(groups)}
    r_ttft = np.full(len(df), np.nan)
    r_tpot = np.full(len(df), np.nan)
    for k in range(folds):
        held = use["group"].map(fold_of).to_numpy() == k
        layers = fit(use[~held])
        test = use[held]
        a, b = residuals(test, layers)
        idx = df.index.get_indexer(test.index)
        r_ttft[idx], r_tpot[idx] = a, b
        if verbose:
            print(f"fold {k + 1}/{folds}: {held.sum()} rows held out", file=sys.stderr)
    return r_ttft, r_tpot


def leave_engine_out(df, verbose: bool = True):
    """Residuals of each engine's rows from a fit without that engine (its overheads = the others' mean)."""
    use = df[df["usable"]]
    r_ttft = np.full(len(df), np.nan)
    r_tpot = np.full(len(df), np.nan)
    for e in sorted(use["backend"].unique()):
        if use["backend"].nunique() < 2:
            break
        mask = (use["backend"] == e).to_numpy()
        layers = fit(use[~mask])
        layers["engines"].pop(e, None)
        for key in [k for k in layers["engine_generations"] if k.startswith(f"{e}/")]:
            layers["engine_generations"].pop(key)
        test = use[mask]
        a, b = residuals(test, layers)
        idx = df.index.get_indexer(test.index)
        r_ttft[idx], r_tpot[idx] = a, b
        if verbose:
            print(f"leave-engine-out {e}: {mask.sum()} rows", file=sys.stderr)
    return r_ttft, r_tpot


def leave_generation_out(df, verbose: bool = True):
    """Residuals of each GPU generation's rows from a fit without that generation: its efficiencies are
    the other generations' (against its own datasheet peaks), as for a GPU with no measurements."""
    use = df[df["usable"]]
    gens = np.asarray(generation_of(use))
    r_ttft = np.full(len(df), np.nan)
    r_tpot = np.full(len(df), np.nan)
    for g in sorted(set(gens)):
        if len(set(gens)) < 2:
            break
        mask = gens == g
        layers = fit(use[~mask])
        layers["generations"].pop(g, None)
        for key in [k for k in layers["engine_generations"] if k.endswith(f"/{g}")]:
            layers["engine_generations"].pop(key)
        test = use[mask]
        a, b = residuals(test, layers)
        idx = df.index.get_indexer(test.index)
        r_ttft[idx], r_tpot[idx] = a, b
        if verbose:
            print(f"leave-generation-out {g}: {mask.sum()} rows", file=sys.stderr)
    return r_ttft, r_tpot


def throughput_residual(df, r_ttft, r_tpot) -> np.ndarray:
    """log(pred/meas) of output tokens/s per worker, c x osl / (TTFT + (osl-1) TPOT), from the two metrics."""
    t1 = df["silicon_ttft_ms"].to_numpy()
    t2 = df["silicon_tpot_ms"].to_numpy()
    osl = df["osl"].to_numpy(float)
    meas = t1 + (osl - 1) * t2
    pred = t1 * np.exp(r_ttft) + (osl - 1) * t2 * np.exp(r_tpot)
    return np.log(meas / pred)


def quantiles(r: np.ndarray, groups: np.ndarray, level: float = BAND_LEVEL) -> dict:
    """Band quantiles of log(measured/predicted) = -r, and the median |error| in percent."""
    ok = np.isfinite(r)
    r, groups = r[ok], groups[ok]
    if not len(r):
        return {"n": 0, "groups": 0, "lo": -1.0, "hi": 1.0, "median_abs_pct": 100.0}
    m = -r
    lo, hi = np.quantile(m, [(1 - level) / 2, (1 + level) / 2])
    return {"n": int(len(r)), "groups": int(len(set(groups))), "lo": round(float(lo), 4),
            "hi": round(float(hi), 4), "median_abs_pct": round(float(np.median(np.abs(np.exp(r) - 1)) * 100), 1)}


def segments(df, r_ttft, r_tpot, r_thr) -> dict:
    keys = np.array(segment_keys(df))
    groups = df["group"].to_numpy()
    out = {}
    for key in sorted(set(keys[np.isfinite(r_ttft)])):
        m = keys == key
        d = df[m]
        span = {c: [float(d[col].min()), float(d[col].max())]
                for c, col in (("concurrency", "concurrency"), ("isl", "isl"), ("osl", "osl"), ("tp", "tp_size"))}
        out[str(key)] = {"ttft": quantiles(r_ttft[m], groups[m]), "tpot": quantiles(r_tpot[m], groups[m]),
                         "throughput": quantiles(r_thr[m], groups[m]), "range": span}
    return out


def _round(layers: dict) -> dict:
    def r(v: float) -> float:
        return float(f"{v:.4g}")
    return {k: ({kk: (r(vv) if not isinstance(vv, dict) else {a: r(b) for a, b in vv.items()})
                 for kk, vv in v.items()}) for k, v in layers.items()}


def build_document(df, layers, seg, transfer) -> dict:
    use = df[df["usable"]]
    layers = _round(layers)
    return {
        "dataset": ("aiconfigurator_silicon_sample.csv (NVIDIA aiconfigurator 0.12.0 silicon_sample; "
                    f"measurements {use['measured'].min()} .. {use['measured'].max()}); {len(df)} rows, "
                    f"{len(use)} aggregated rows on catalog models and GPUs used: "
                    + ", ".join(sorted(use["model_path"].unique())) + " on "
                    + ", ".join(sorted(use["system"].unique()))),
        "fitted": _dt.date.today().isoformat(),
        "method": ("robust (soft-L1) least squares on log TTFT and log TPOT, measurement groups weighted "
                   "equally, weak priors; dense models first, then only what MoE adds with those fixed; layers "
                   "global <- generation <- engine <- engine/generation; bands: "
                   f"{int(BAND_LEVEL * 100)}% central quantiles of {FOLDS}-fold group-held-out residuals per "
                   "segment; transfer bands from leave-one-engine-out and leave-one-generation-out fits "
                   "(benchmarks/calibrate.py)"),
        "band_level": BAND_LEVEL,
        "rows_used": int(len(use)),
        "global": layers["global"],
        "generations": layers["generations"],
        "engines": layers["engines"],
        "engine_generations": layers["engine_generations"],
        "segments": seg,
        "transfer": transfer,
        "notes": [
            "Engine overheads of an engine without data are the geometric mean of the fitted engines "
            f"({', '.join(ENGINE)}); GPU generations without data use the fitted generations' mean "
            "efficiencies against their own datasheet peaks.",
            "Rows without a precision are read as bf16; TRT-LLM FP8/FP4 rows as FP8 KV cache; engine "
            "defaults assumed for batch limits and memory fractions (DATA_DICTIONARY.md).",
            "kv_transfer_efficiency and kv_transfer_latency_s are not fitted (no row of the sample varies the "
            "link between disaggregated pools): 0.7 of the link bandwidth and 1 ms per transfer are assumptions.",
            "Coefficients at a bound of their prior range (e.g. 8-bit GEMM efficiency 0.9 on Hopper) absorb "
            "effects the model does not separate (prefix-cache hits or speculative decoding in some runs); "
            "their segments' bands carry that error.",
        ],
    }


RESULTS = ROOT / "benchmarks" / "results"


def save_residuals(df, r_ttft, r_tpot, e_ttft, e_tpot) -> None:
    """Held-out and leave-engine-out residuals for benchmarks.accuracy --cached (not committed)."""
    import pandas as pd

    RESULTS.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"r_ttft": r_ttft, "r_tpot": r_tpot, "e_ttft": e_ttft, "e_tpot": e_tpot},
                 index=df.index).to_csv(RESULTS / "heldout.csv")


def describe(df) -> None:
    print(f"{len(df)} rows; usable (agg, catalog model and GPU): {int(df['usable'].sum())}")
    print(df.groupby(["system", "backend"]).size().unstack(fill_value=0).to_string())
    print(df[~df["usable"]]["reason"].value_counts().to_string())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help="write perfdata/calibration.yaml")
    p.add_argument("--describe", action="store_true", help="print the sample's coverage and exit")
    p.add_argument("--folds", type=int, default=FOLDS)
    a = p.parse_args(argv)
    df = load_rows()
    if a.describe:
        describe(df)
        return 0
    r_ttft, r_tpot = cross_validate(df, a.folds)
    seg = segments(df, r_ttft, r_tpot, throughput_residual(df, r_ttft, r_tpot))
    e_ttft, e_tpot = leave_engine_out(df)
    save_residuals(df, r_ttft, r_tpot, e_ttft, e_tpot)
    groups = df["group"].to_numpy()
    g_ttft, g_tpot = leave_generation_out(df)
    transfer = {name: {"ttft": quantiles(a1, groups), "tpot": quantiles(a2, groups),
                       "throughput": quantiles(throughput_residual(df, a1, a2), groups)}
                for name, (a1, a2) in (("engine", (e_ttft, e_tpot)), ("generation", (g_ttft, g_tpot)))}
    layers = fit(df[df["usable"]])
    for key, s in seg.items():
        print(f"{key:28s} n={s['ttft']['n']:4d}  TTFT med {s['ttft']['median_abs_pct']:5.1f}%  "
              f"TPOT med {s['tpot']['median_abs_pct']:5.1f}%")
    if a.write:
        doc = build_document(df, layers, seg, transfer)
        path = ROOT / "perfdata" / "calibration.yaml"
        header = ("# Performance-model coefficients fitted by benchmarks/calibrate.py -- do not edit by hand.\n"
                  "# Regenerate: SERVEWISE_SHARED=../shared python -m benchmarks.calibrate --write\n")
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=110), encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
