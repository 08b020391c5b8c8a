"""Fit the performance model to the measured serving sample and write perfdata/calibration.yaml.

    python -m benchmarks.calibrate            # fit, cross-validate, print a summary
    python -m benchmarks.calibrate --write    # ... and write perfdata/calibration.yaml
    python -m benchmarks.calibrate --describe # coverage of the sample (see DATA_DICTIONARY.md)

Method: hold out whole measurement groups (model, GPU, engine, mode, TP/DP/EP, weights format) in
K folds; each fold's rows are predicted by a fit that never saw them. The held-out log residuals
per segment (GPU generation x engine x dense/MoE) give the uncertainty bands; a leave-one-engine-out
fit measures how far the model transfers to an engine it has no coefficients for. The coefficients
written are the fit on all usable rows. Needs pandas and scipy (imported here only).

The fit uses the aggregated rows only. The disaggregated rows that record worker counts
(``disagg_rows``) are scored the same way -- their groups spread over the same K folds, each predicted
by its fold's fit -- and, where a segment has enough of them, give disaggregated estimates their bands
(``disagg_segments``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys

import numpy as np
import yaml

from benchmarks.disagg_rows import add_disagg_columns, predict_disagg
from benchmarks.fitting import ENGINE, coef_lookup, fit, residuals
from benchmarks.silicon import ROOT, generation_of, load_rows

FOLDS = 5
BAND_LEVEL = 0.9
SEED = 20261101
DISAGG = "disagg/"             # segment-key prefix of the disaggregated rows
MIN_DISAGG_ROWS, MIN_DISAGG_GROUPS = 20, 3   # a disaggregated segment gives bands from this much data on


def load_all():
    """The sample with the aggregated rows' inputs (``silicon.load_rows``) and the disaggregated rows'."""
    df = load_rows()
    add_disagg_columns(df)
    return df


def segment_keys(df) -> list[str]:
    gens = generation_of(df)
    return [(DISAGG if m == "disagg" else "") + f"{g}/{e}/{f}"
            for g, e, f, m in zip(gens, df["backend"], df["family"], df["mode"], strict=True)]


def _folds(groups, folds: int) -> dict:
    groups = np.array(sorted(groups))
    rng = np.random.default_rng(SEED)
    rng.shuffle(groups)
    return {g: i % folds for i, g in enumerate(groups)}


def cross_validate(df, folds: int = FOLDS, verbose: bool = True):
    """Held-out log(pred/meas) of TTFT and TPOT for every usable row (group K-fold): aggregated rows by
    the fit without their fold, disaggregated groups spread over the same folds and predicted by their
    fold's fit (which never sees a disaggregated row)."""
    use = df[df["usable"]]
    fold_of = _folds(use["group"].unique(), folds)
    dis = df["disagg_usable"].to_numpy() if "disagg_usable" in df else np.zeros(len(df), dtype=bool)
    dfold = df["group"].map(_folds(df["group"][dis].unique(), folds)).to_numpy()
    r_ttft = np.full(len(df), np.nan)
    r_tpot = np.full(len(df), np.nan)
    for k in range(folds):
        held = use["group"].map(fold_of).to_numpy() == k
        layers = fit(use[~held])
        test = use[held]
        a, b = residuals(test, layers)
        idx = df.index.get_indexer(test.index)
        r_ttft[idx], r_tpot[idx] = a, b
        mine = dis & (dfold == k)
        if mine.any():
            t1, t2 = predict_disagg(df, coef_lookup(layers), mine)
            r_ttft[mine] = np.log(t1[mine] * 1e3 / df["silicon_ttft_ms"].to_numpy()[mine])
            r_tpot[mine] = np.log(t2[mine] * 1e3 / df["silicon_tpot_ms"].to_numpy()[mine])
        if verbose:
            print(f"fold {k + 1}/{folds}: {held.sum()} aggregated and {mine.sum()} disaggregated rows held out",
                  file=sys.stderr)
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


def segments(df, r_ttft, r_tpot, r_thr) -> tuple[dict, dict]:
    """(aggregated segments, disaggregated segments with at least MIN_DISAGG_ROWS rows in MIN_DISAGG_GROUPS
    groups), each '<generation>/<engine>/<family>' -> held-out quantiles and the measured span."""
    keys = np.array(segment_keys(df))
    groups = df["group"].to_numpy()
    tp = df["tp_size"].fillna(df["decode_tp"] if "decode_tp" in df else np.nan)
    out: dict = {}
    dis: dict = {}
    for key in sorted(set(keys[np.isfinite(r_ttft) & np.isfinite(r_tpot)])):
        m = (keys == key) & np.isfinite(r_ttft) & np.isfinite(r_tpot)
        d = df[m]
        span = {c: [float(v.min()), float(v.max())]
                for c, v in (("concurrency", d["concurrency"]), ("isl", d["isl"]), ("osl", d["osl"]), ("tp", tp[m]))}
        seg = {"ttft": quantiles(r_ttft[m], groups[m]), "tpot": quantiles(r_tpot[m], groups[m]),
               "throughput": quantiles(r_thr[m], groups[m]), "range": span}
        if not key.startswith(DISAGG):
            out[str(key)] = seg
        elif m.sum() >= MIN_DISAGG_ROWS and len(set(groups[m])) >= MIN_DISAGG_GROUPS:
            dis[str(key)[len(DISAGG):]] = seg
    return out, dis


def _round(layers: dict) -> dict:
    def r(v: float) -> float:
        return float(f"{v:.4g}")
    return {k: ({kk: (r(vv) if not isinstance(vv, dict) else {a: r(b) for a, b in vv.items()})
                 for kk, vv in v.items()}) for k, v in layers.items()}


def build_document(df, layers, seg, transfer, dis_seg) -> dict:
    use = df[df["usable"]]
    n_dis = int(df["disagg_usable"].sum()) if "disagg_usable" in df else 0
    layers = _round(layers)
    return {
        "dataset": ("aiconfigurator_silicon_sample.csv (NVIDIA aiconfigurator 0.12.0 silicon_sample; "
                    f"measurements {use['measured'].min()} .. {use['measured'].max()}); {len(df)} rows, "
                    f"{len(use)} aggregated rows on catalog models and GPUs used: "
                    + ", ".join(sorted(use["model_path"].unique())) + " on "
                    + ", ".join(sorted(use["system"].unique()))
                    + f"; {n_dis} disaggregated rows with worker counts scored held-out (not fitted)"),
        "fitted": _dt.date.today().isoformat(),
        "method": ("robust (soft-L1) least squares on log TTFT and log TPOT, measurement groups weighted "
                   "equally, weak priors; dense models first, then only what MoE adds with those fixed; layers "
                   "global <- generation <- engine <- engine/generation; bands: "
                   f"{int(BAND_LEVEL * 100)}% central quantiles of {FOLDS}-fold group-held-out residuals per "
                   "segment; transfer bands from leave-one-engine-out and leave-one-generation-out fits; "
                   "disaggregated rows predicted by the fold fits, never fitted (benchmarks/calibrate.py)"),
        "band_level": BAND_LEVEL,
        "rows_used": int(len(use)),
        "global": layers["global"],
        "generations": layers["generations"],
        "engines": layers["engines"],
        "engine_generations": layers["engine_generations"],
        "segments": seg,
        "disagg_segments": dis_seg,
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
    if "disagg_usable" in df:
        print(f"disaggregated rows with worker counts that can be modelled: {int(df['disagg_usable'].sum())}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help="write perfdata/calibration.yaml")
    p.add_argument("--describe", action="store_true", help="print the sample's coverage and exit")
    p.add_argument("--folds", type=int, default=FOLDS)
    a = p.parse_args(argv)
    df = load_all()
    if a.describe:
        describe(df)
        return 0
    r_ttft, r_tpot = cross_validate(df, a.folds)
    seg, dis_seg = segments(df, r_ttft, r_tpot, throughput_residual(df, r_ttft, r_tpot))
    e_ttft, e_tpot = leave_engine_out(df)
    save_residuals(df, r_ttft, r_tpot, e_ttft, e_tpot)
    groups = df["group"].to_numpy()
    g_ttft, g_tpot = leave_generation_out(df)
    transfer = {name: {"ttft": quantiles(a1, groups), "tpot": quantiles(a2, groups),
                       "throughput": quantiles(throughput_residual(df, a1, a2), groups)}
                for name, (a1, a2) in (("engine", (e_ttft, e_tpot)), ("generation", (g_ttft, g_tpot)))}
    layers = fit(df[df["usable"]])
    for key, s in [*seg.items(), *((DISAGG + k, v) for k, v in dis_seg.items())]:
        print(f"{key:35s} n={s['ttft']['n']:4d}  TTFT med {s['ttft']['median_abs_pct']:5.1f}%  "
              f"TPOT med {s['tpot']['median_abs_pct']:5.1f}%")
    if a.write:
        doc = build_document(df, layers, seg, transfer, dis_seg)
        path = ROOT / "perfdata" / "calibration.yaml"
        header = ("# Performance-model coefficients fitted by benchmarks/calibrate.py -- do not edit by hand.\n"
                  "# Regenerate: SERVEWISE_SHARED=../shared python -m benchmarks.calibrate --write\n")
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=110), encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
