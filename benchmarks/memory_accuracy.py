"""Predicted vs measured vLLM start-up memory for every row of the calibration set.

    python benchmarks/memory_accuracy.py          # the leave-one-out table
    python benchmarks/memory_accuracy.py --fit    # + the coefficients fitted on every usable row

Reads ``$SERVEWISE_SHARED/calibration/vllm_memory_startup_h100.csv`` (default ../shared). For each
row the activation and non-torch coefficients are fitted on the *other* usable rows (leave-one-out)
and the row's KV cache is predicted with vLLM 0.11's rule; weights are not fitted at all.
Targets: KV within max(5 %, 0.5 GiB), weights within 2 %.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from servewise.estimator.budget import MemoryRequest, memory_terms
from servewise.estimator.engine_defaults import batch_defaults
from servewise.estimator.overheads import padded_vocab, sampler_rows
from servewise.estimator.resolve import ResolvedModel, resolve_model
from servewise.perfdata import get_engine, get_gpu
from servewise.perfdata.memory_rules import MemoryCalibration, memory_calibration
from servewise.profiles.schema import Model

ROOT = Path(__file__).resolve().parent.parent

GIB = 1024**3
CSV_PATH = "calibration/vllm_memory_startup_h100.csv"
ENGINE_VERSION = "0.11.0"


def shared_dir() -> Path:
    return Path(os.environ.get("SERVEWISE_SHARED", ROOT.parent / "shared"))


def _gib(text: str) -> float | None:
    m = re.match(r"\s*(-?[\d.]+)", text or "")
    return float(m.group(1)) if m else None


@dataclass(frozen=True)
class Row:
    id: str
    model: str
    tp: int
    gmu_stated: float
    gmu: float                  # the fraction the run used (corrected rows: inferred from the terms)
    max_model_len: int
    weights: float              # GiB as reported
    activation: float
    non_torch: float
    kv: float
    kv_tokens: int | None
    status: str                 # fitted | excluded
    note: str


def load_rows(shared: Path) -> list[Row]:
    cal = memory_calibration()
    rows = []
    with open(shared / CSV_PATH, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            w, a, n, kv = (_gib(r[k]) for k in ("weights_reported", "activation_peak_gib_reported",
                                                 "non_torch_gib_reported", "kv_cache_gib_reported"))
            total = _gib(r["gpu_total_mem_reported"])
            stated = float(r["gpu_memory_utilization"])
            gmu, note = stated, ""
            if r["id"] in cal.dataset.rows_corrected:
                gmu = round((w + a + n + kv) / total, 2)
                note = f"run at {gmu} (terms sum to {(w + a + n + kv) / total:.3f} x total), not {stated}"
            status = "excluded" if r["id"] in cal.dataset.rows_excluded else "fitted"
            if status == "excluded":
                note = "excluded: sampler path/batch limit of the run not stated (see memory_calibration.yaml)"
            tokens = int(r["kv_tokens_reported"]) if r["kv_tokens_reported"].strip() else None
            rows.append(Row(r["id"], r["model"], int(r["tp"]), stated, gmu, int(r["max_model_len"]), w, a, n, kv,
                            tokens, status, note))
    return rows


def resolved(model_id: str) -> ResolvedModel:
    """The model from the catalog (every calibration model is in perfdata/models)."""
    return resolve_model(Model(id=model_id))


def request(row: Row) -> MemoryRequest:
    gpu = get_gpu("h100-sxm")
    block = get_engine("vllm").version(ENGINE_VERSION).block_size_tokens
    return MemoryRequest(resolved(row.model), gpu, gpu.memory_bytes, "vllm", ENGINE_VERSION, block, "auto",
                         row.max_model_len)


def _defaults(req: MemoryRequest, row: Row):
    return batch_defaults("vllm", ENGINE_VERSION, req.gpu, req.memory_bytes, row.tp, row.max_model_len)


def fit(rows: list[Row]) -> dict[str, float]:
    """Least squares on measured terms: activation - held hidden states = b x rows x vocab + c0;
    non-torch = base + nccl x log2(tp)."""
    xs, ys, xn, yn = [], [], [], []
    for row in rows:
        req = request(row)
        d = _defaults(req, row)
        a = req.model.arch
        logits = float(sampler_rows(d.max_num_seqs, d.max_num_batched_tokens)) * padded_vocab(a)
        held = d.max_num_batched_tokens * a.hidden_size * 2.0
        xs.append([logits, 1.0])
        ys.append(row.activation * GIB - held)
        xn.append([1.0, np.log2(row.tp)])
        yn.append(row.non_torch * GIB)
    (b, c0), *_ = np.linalg.lstsq(np.array(xs), np.array(ys), rcond=None)
    (base, nccl), *_ = np.linalg.lstsq(np.array(xn), np.array(yn), rcond=None)
    return {"sampler_bytes_per_logit": float(b), "activation_base_bytes": float(c0),
            "non_torch_base_bytes": float(base), "non_torch_nccl_bytes": float(nccl)}


def with_fit(cal: MemoryCalibration, f: dict[str, float]) -> MemoryCalibration:
    """``cal`` with the fitted coefficients replaced (the v0.11 rule's sampler cost included)."""
    coefs = dict(cal.coefficients)
    for k in ("activation_base_bytes", "non_torch_base_bytes", "non_torch_nccl_bytes"):
        coefs[k] = coefs[k].model_copy(update={"value": f[k]})
    vllm = list(cal.vllm)
    i = next(i for i, r in enumerate(vllm) if r.since == ENGINE_VERSION)
    s = vllm[i].sampler_bytes_per_logit.model_copy(update={"value": f["sampler_bytes_per_logit"]})
    vllm[i] = vllm[i].model_copy(update={"sampler_bytes_per_logit": s})
    return cal.model_copy(update={"coefficients": coefs, "vllm": vllm})


def predict(row: Row, cal: MemoryCalibration) -> dict[str, float]:
    req = request(row)
    d = _defaults(req, row)
    t = memory_terms(req, row.tp, 1, 1, 1, d.max_num_seqs, d.max_num_batched_tokens, row.gmu, cal=cal)
    g = {k: float(np.asarray(getattr(t, k))) / GIB for k in (
        "weights_bytes", "activation_bytes", "other_bytes", "kv_cache_bytes", "cuda_graph_bytes")}
    g["kv_tokens"] = float(np.asarray(t.kv_cache_tokens))
    return g


def leave_one_out(rows: list[Row]) -> list[tuple[Row, dict[str, float]]]:
    """Each fitted row predicted from a fit on the other fitted rows; excluded rows from the full fit."""
    base = memory_calibration()
    fitted = [r for r in rows if r.status == "fitted"]
    full = with_fit(base, fit(fitted))
    out = []
    for row in rows:
        cal = with_fit(base, fit([r for r in fitted if r.id != row.id])) if row.status == "fitted" else full
        out.append((row, predict(row, cal)))
    return out


FLASHINFER_BYTES_PER_LOGIT = 14.0
"""FlashInfer top-k/top-p sampling from logits: bf16 logits 2 + fp32 copy 4 + top-k-masked logits 4 +
softmax probabilities 4 (flashinfer sampling.top_k_top_p_sampling_from_logits); no sort."""


def hypotheses(row: Row, cal: MemoryCalibration) -> list[str]:
    """What an excluded row's KV would be under the run settings that could explain it."""
    req = request(row)
    d = _defaults(req, row)
    flash = with_fit(cal, {**_coefs(cal), "sampler_bytes_per_logit": FLASHINFER_BYTES_PER_LOGIT})
    out = []
    for label, c, seqs in ((f"FlashInfer sampler ({FLASHINFER_BYTES_PER_LOGIT:g} B/logit)", flash, d.max_num_seqs),
                           ("max_num_seqs 256", cal, 256)):
        t = memory_terms(req, row.tp, 1, 1, 1, seqs, d.max_num_batched_tokens, row.gmu, cal=c)
        kv = float(np.asarray(t.kv_cache_bytes)) / GIB
        act = float(np.asarray(t.activation_bytes)) / GIB
        out.append(f"{row.id} if {label}: activation {act:.2f}, KV {kv:.2f} GiB ({kv - row.kv:+.2f}), "
                   f"{int(np.asarray(t.kv_cache_tokens)):,} tokens")
    return out


def _coefs(cal: MemoryCalibration) -> dict[str, float]:
    v = next(r for r in cal.vllm if r.since == ENGINE_VERSION)
    return {"sampler_bytes_per_logit": v.sampler_bytes_per_logit.value,
            **{k: cal.coefficient(k) for k in ("activation_base_bytes", "non_torch_base_bytes",
                                               "non_torch_nccl_bytes")}}


def kv_within_target(measured: float, predicted: float) -> bool:
    return abs(predicted - measured) <= max(0.05 * abs(measured), 0.5)


def table(results: list[tuple[Row, dict[str, float]]]) -> str:
    head = ("id    model                                         tp  gmu   weights meas/pred  err%   "
            "activation m/p   non-torch m/p   KV meas  KV pred  err GiB  err%    target")
    lines = [head, "-" * len(head)]
    for row, p in results:
        kv_err = p["kv_cache_bytes"] - row.kv
        w_err = 100 * (p["weights_bytes"] - row.weights) / row.weights
        ok = "ok" if kv_within_target(row.kv, p["kv_cache_bytes"]) and abs(w_err) <= 2 else "MISS"
        ok = ok if row.status == "fitted" else f"({ok}, excluded)"
        lines.append(
            f"{row.id:5} {row.model[:45]:45} {row.tp:>2}  {row.gmu:.2f}  {row.weights:6.2f} / {p['weights_bytes']:6.2f}"
            f"  {w_err:+5.2f}  {row.activation:5.2f} / {p['activation_bytes']:5.2f}  {row.non_torch:5.2f} / "
            f"{p['other_bytes']:5.2f}   {row.kv:7.2f}  {p['kv_cache_bytes']:7.2f}  {kv_err:+7.2f}  "
            f"{100 * kv_err / row.kv:+6.1f}%  {ok}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fit", action="store_true", help="also print the coefficients fitted on every usable row")
    a = p.parse_args(argv)
    shared = shared_dir()
    if not (shared / CSV_PATH).is_file():
        print(f"calibration data not found at {shared / CSV_PATH} (set SERVEWISE_SHARED)", file=sys.stderr)
        return 3
    rows = load_rows(shared)
    results = leave_one_out(rows)
    print(f"vLLM {ENGINE_VERSION} start-up memory on H100 (79.18 GiB), leave-one-out; GiB per GPU")
    print(table(results))
    for row in rows:
        if row.note:
            print(f"{row.id}: {row.note}")
    tok = [(r, q) for r, q in results if r.kv_tokens]
    for r, q in tok:
        print(f"{r.id}: KV tokens measured {r.kv_tokens:,}, predicted {int(q['kv_tokens']):,}")
    full = with_fit(memory_calibration(), fit([r for r in rows if r.status == "fitted"]))
    for row in rows:
        if row.status == "excluded":
            print("\n".join(hypotheses(row, full)))
    if a.fit:
        f = fit([r for r in rows if r.status == "fitted"])
        print("fit on every usable row: " + ", ".join(f"{k} = {v:.6g}" for k, v in f.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
