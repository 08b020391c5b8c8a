"""Least-squares fit of the performance-model coefficients to measured TTFT / TPOT.

Parameters live in layers (perfdata/calibration.py): hardware efficiencies per GPU generation,
engine overheads per engine, a few per engine x generation, protocol constants globally. The
objective is the log error of TTFT and TPOT per row (robust soft-L1 loss), each measurement group
weighted equally, plus a weak prior pulling every parameter toward its prior value so that a layer
the data cannot identify stays near physical values. scipy is imported lazily (benchmarks only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchmarks.silicon import generation_of, predict

# name -> (prior, low, high). Efficiencies are fractions of the datasheet peak; times in seconds.
PRIORS = {
    "gemm_efficiency": (0.7, 0.2, 0.9),
    "gemm_efficiency_8bit": (0.7, 0.2, 0.9),
    "gemm_efficiency_4bit": (0.7, 0.2, 0.9),
    "memory_efficiency": (0.85, 0.3, 0.95),
    "attention_efficiency": (0.5, 0.1, 0.85),
    "kv_read_efficiency": (0.7, 0.2, 0.95),
    "roofline_sharpness": (3.0, 1.0, 12.0),
    "allreduce_efficiency": (0.9, 0.1, 2.0),
    "allreduce_latency_s": (2e-5, 1e-6, 2e-4),
    "alltoall_efficiency": (0.5, 0.05, 1.0),
    "alltoall_latency_s": (3e-5, 1e-6, 5e-4),
    "step_overhead_s": (2e-3, 1e-5, 3e-2),
    "seq_overhead_s": (2e-5, 1e-7, 5e-4),
    "layer_overhead_graph_s": (5e-6, 1e-8, 1e-4),
    "layer_overhead_eager_s": (3e-5, 1e-7, 5e-4),
    "request_overhead_s": (2e-2, 1e-3, 0.3),
    "requests_per_client": (10.0, 2.0, 40.0),
    "prefill_group_requests": (4.0, 1.0, 64.0),
    "moe_imbalance": (1.2, 1.0, 3.0),
    "moe_efficiency": (0.8, 0.2, 1.0),
    "mla_efficiency": (1.0, 0.2, 2.0),
    # not identifiable from the sample (no row varies the link between pools): kept at their priors
    "kv_transfer_efficiency": (0.7, 0.7, 0.7),
    "kv_transfer_latency_s": (1e-3, 1e-3, 1e-3),
}
HARDWARE = ("gemm_efficiency", "gemm_efficiency_8bit", "gemm_efficiency_4bit", "moe_efficiency", "mla_efficiency",
            "memory_efficiency", "attention_efficiency", "kv_read_efficiency",
            "allreduce_efficiency", "allreduce_latency_s", "alltoall_efficiency", "alltoall_latency_s")
ENGINE = ("step_overhead_s", "seq_overhead_s", "layer_overhead_graph_s", "layer_overhead_eager_s",
          "request_overhead_s", "prefill_group_requests")
ENGINE_HARDWARE = ("gemm_efficiency", "gemm_efficiency_8bit", "gemm_efficiency_4bit", "attention_efficiency")   # kernels differ per engine
GLOBAL = ("roofline_sharpness", "requests_per_client", "moe_imbalance")
PRIOR_WEIGHT = 0.05          # per parameter, in units of log-residual
MIN_ROWS_ENGINE_GEN = 60     # rows an engine needs on a generation for its own kernel efficiencies


@dataclass(frozen=True)
class Param:
    name: str
    layer: str      # global | generations | engines | engine_generations
    key: str        # layer key ('' for global)


def _eff_keys(rows) -> set[str]:
    """GEMM efficiency coefficients the rows exercise (16-, 8- or 4-bit tensor-core math)."""
    from servewise.estimator.perf import gemm_efficiency_key
    from servewise.estimator.quant import weight_format
    from servewise.perfdata import all_gpus

    gpus = all_gpus()
    return {gemm_efficiency_key(gpus[g], weight_format(w)) for g, w in
            rows[["gpu", "weights_dtype"]].drop_duplicates().itertuples(index=False)}


def parameters(train) -> list[Param]:
    gens = sorted(set(generation_of(train)))
    engines = sorted(train["backend"].unique())
    moe = bool(train["family"].eq("moe").any())
    gen_col = np.asarray(generation_of(train))
    eng_col = train["backend"].to_numpy()
    out = [Param(n, "global", "") for n in GLOBAL if n != "moe_imbalance" or moe]
    out += [Param(n, "engines", e) for e in engines for n in ENGINE]
    for g in gens:
        on_gen = gen_col == g
        own = [e for e in engines if ((eng_col == e) & on_gen).sum() >= MIN_ROWS_ENGINE_GEN]
        for e in own:
            sub = train[(eng_col == e) & on_gen]
            keys = _eff_keys(sub) | ({"moe_efficiency"} if sub["family"].eq("moe").any() else set())
            out += [Param(n, "engine_generations", f"{e}/{g}") for n in ENGINE_HARDWARE
                    if not (n.startswith("gemm") or n.startswith("moe")) or n in keys]
        covered = set(own) == {e for e in engines if ((eng_col == e) & on_gen).any()}
        sub = train[on_gen]
        keys = _eff_keys(sub) | ({"moe_efficiency"} if sub["family"].eq("moe").any() else set()) \
            | ({"mla_efficiency"} if sub["mla"].any() else set())
        out += [Param(n, "generations", g) for n in HARDWARE
                if (moe or "alltoall" not in n) and not (covered and n in ENGINE_HARDWARE)
                and (not (n.startswith(("gemm", "moe", "mla"))) or n in keys)]
    return out


def layers_from(params: list[Param], x: np.ndarray) -> dict:
    """Parameter vector (log values) -> calibration layers."""
    layers: dict = {"global": {k: v[0] for k, v in PRIORS.items()}, "generations": {}, "engines": {},
                    "engine_generations": {}}
    for p, v in zip(params, x, strict=True):
        val = float(math.exp(v))
        if p.layer == "global":
            layers["global"][p.name] = val
        else:
            layers[p.layer].setdefault(p.key, {})[p.name] = val
    # a generation whose engines all have their own kernel efficiencies gets their geometric mean
    # (used for engines without data on it); unseen generations / engines get the fitted ones' mean
    for key, vals in layers["engine_generations"].items():
        gen = key.split("/", 1)[1]
        layer = layers["generations"].setdefault(gen, {})
        for n in ENGINE_HARDWARE:
            peers = [v[n] for k, v in layers["engine_generations"].items() if k.endswith("/" + gen) and n in v]
            if peers and (n not in layer or _derived(layer, n)):
                layer[n] = float(np.exp(np.mean(np.log(peers))))
                layer.setdefault("_derived", []).append(n)
    for layer in layers["generations"].values():
        layer.pop("_derived", None)
    for layer, names in (("generations", HARDWARE), ("engines", ENGINE)):
        for n in names:
            vals = [d[n] for d in layers[layer].values() if n in d]
            if vals:
                layers["global"][n] = float(np.exp(np.mean(np.log(vals))))
    return layers


def _derived(layer: dict, name: str) -> bool:
    return name in layer.get("_derived", [])


def coef_lookup(layers: dict):
    def coef_for(generation: str, engine: str) -> dict:
        out = dict(layers["global"])
        for part in (layers["generations"].get(generation), layers["engines"].get(engine),
                     layers["engine_generations"].get(f"{engine}/{generation}")):
            out.update(part or {})
        return out
    return coef_for


def residuals(df, layers: dict) -> tuple[np.ndarray, np.ndarray]:
    """log(predicted / measured) for TTFT and TPOT of every row (NaN where not predicted)."""
    ttft, tpot, _ = predict(df, coef_lookup(layers))
    return np.log(ttft * 1e3 / df["silicon_ttft_ms"].to_numpy()), np.log(tpot * 1e3 / df["silicon_tpot_ms"].to_numpy())


def fit(train, verbose: bool = False, max_nfev: int = 40) -> dict:
    """Fit the layers on ``train`` (usable agg rows). Returns the layers dict.

    Two stages: dense models first (GEMM, attention, memory, communication and engine overheads are
    all they exercise), then mixture-of-experts models with those fixed, fitting only what MoE adds
    (expert-kernel efficiency, EP all-to-all, MLA attention, load imbalance) and the layers no dense
    row covers (e.g. an engine measured on a GPU generation with MoE models only)."""
    train = train[train["usable"]]
    values: dict[Param, float] = {}
    for part in (train[train["family"] == "dense"], train[train["family"] != "dense"]):
        if not len(part):
            continue
        free = [p for p in parameters(part) if p not in values]
        if free:
            values.update(_solve(part, free, values, verbose, max_nfev))
    params = list(values)
    return layers_from(params, np.array([values[p] for p in params]))


def _solve(rows, free: list[Param], fixed: dict[Param, float], verbose: bool, max_nfev: int) -> dict[Param, float]:
    from scipy.optimize import least_squares

    x0 = np.array([math.log(PRIORS[p.name][0]) for p in free])
    lo = np.array([math.log(PRIORS[p.name][1]) for p in free])
    hi = np.array([math.log(PRIORS[p.name][2]) for p in free])
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
    sizes = rows.groupby("group")["group"].transform("size").to_numpy(float)
    w = 1.0 / np.sqrt(sizes)
    w = w / w.mean()
    names = free + list(fixed)
    fixed_x = np.array(list(fixed.values()))

    def fun(x):
        r1, r2 = residuals(rows, layers_from(names, np.concatenate([x, fixed_x])))
        r = np.concatenate([np.nan_to_num(r1, nan=3.0) * w, np.nan_to_num(r2, nan=3.0) * w])
        return np.concatenate([r / math.sqrt(len(rows)), PRIOR_WEIGHT * (x - x0) / math.sqrt(len(free))])

    sol = least_squares(fun, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.02, max_nfev=max_nfev,
                        x_scale=1.0, diff_step=1e-3, ftol=1e-5, xtol=1e-5, verbose=2 if verbose else 0,
                        jac_sparsity=sparsity(rows, free))
    return dict(zip(free, sol.x, strict=True))


def sparsity(train, params: list[Param]):
    """Which residuals each parameter can move: a layer reaches only the rows of its generation /
    engine, so finite differences of disjoint layers share evaluations (scipy groups the columns)."""
    from scipy.sparse import lil_matrix

    gen = np.asarray(generation_of(train))
    eng = train["backend"].to_numpy()
    n, k = len(train), len(params)
    m = lil_matrix((2 * n + k, k), dtype=int)
    for j, p in enumerate(params):
        if p.layer == "global":
            rows = np.ones(n, dtype=bool)
        elif p.layer == "generations":
            rows = gen == p.key
        elif p.layer == "engines":
            rows = eng == p.key
        else:
            e, g = p.key.split("/", 1)
            rows = (eng == e) & (gen == g)
        idx = np.flatnonzero(rows)
        m[idx, j] = 1
        m[n + idx, j] = 1
        m[2 * n + j, j] = 1
    return m
