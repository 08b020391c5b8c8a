"""The shipped calibration against the measured sample (../shared; skipped when absent).

These are in-sample regression guards of the fitted coefficients, not the accuracy claim: the held-out
figures come from ``python -m benchmarks.accuracy`` (group K-fold) and are recorded in the calibration
file's segments.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from servewise.perfdata.calibration import load_calibration


@pytest.fixture(scope="module")
def sample(shared_dir):
    pytest.importorskip("pandas")
    os.environ.setdefault("SERVEWISE_SHARED", str(shared_dir))
    from benchmarks.silicon import load_rows, predict

    df = load_rows()
    ttft, tpot, _ = predict(df)
    df["e_ttft"] = ttft * 1e3 / df["silicon_ttft_ms"] - 1.0
    df["e_tpot"] = tpot * 1e3 / df["silicon_tpot_ms"] - 1.0
    return df[df["usable"]]


def test_sample_rows_map_to_catalog_models_and_gpus(sample):
    assert len(sample) > 700
    assert {"hopper"} <= set(sample["generation"])
    assert np.isfinite(sample["e_ttft"]).all() and np.isfinite(sample["e_tpot"]).all()


def test_hopper_dense_rows_stay_close(sample):
    d = sample[(sample["generation"] == "hopper") & (sample["family"] == "dense")]
    assert np.median(np.abs(d["e_tpot"])) < 0.15
    assert np.median(np.abs(d["e_ttft"])) < 0.30


def test_segments_match_the_rows_used(sample):
    cal = load_calibration()
    seen = {f"{g}/{e}/{f}" for g, e, f in zip(sample["generation"], sample["backend"], sample["family"],
                                               strict=True)}
    assert set(cal.segments) <= seen
    for key, seg in cal.segments.items():
        n = int(((sample["generation"] + "/" + sample["backend"] + "/" + sample["family"]) == key).sum())
        assert seg.tpot.n == n, key


def test_kv_limited_rows_queue_in_the_model_too(sample):
    """Rows whose concurrency exceeds what the KV cache holds show multi-second TTFT in the data; the
    model must put them in the same regime (admission queueing), not at a few hundred ms."""
    big = sample[(sample["silicon_ttft_ms"] > 10_000) & (sample["generation"] == "hopper")
                 & (sample["family"] == "dense")]
    assert len(big) > 5
    assert np.median(big["e_ttft"]) > -0.6
