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


@pytest.fixture(scope="module")
def disagg_sample(shared_dir):
    pytest.importorskip("pandas")
    os.environ.setdefault("SERVEWISE_SHARED", str(shared_dir))
    from benchmarks.calibrate import load_all
    from benchmarks.disagg_rows import predict_disagg

    df = load_all()
    ttft, tpot = predict_disagg(df)
    df["e_ttft"] = ttft * 1e3 / df["silicon_ttft_ms"] - 1.0
    df["e_tpot"] = tpot * 1e3 / df["silicon_tpot_ms"] - 1.0
    return df[df["disagg_usable"]]


def test_disaggregated_rows_with_worker_counts_are_modelled(disagg_sample):
    """The sample's disaggregated rows that record worker counts (274, DATA_DICTIONARY.md) are predicted by
    the model fitted on aggregated rows only: most of them map to catalog models, GPUs and layouts, and the
    errors stay where the held-out scoring (benchmarks.accuracy, disagg/ segments) puts them."""
    d = disagg_sample
    assert 200 <= len(d) <= 274
    assert d["concurrency"].eq(d["decode_batch_size"] * d["decode_num_workers"] * d["decode_dp"]).all()
    assert np.isfinite(d["e_ttft"]).all() and np.isfinite(d["e_tpot"]).all()
    assert np.median(np.abs(d["e_tpot"])) < 0.35
    assert np.median(np.abs(d["e_ttft"])) < 0.60


def test_disaggregated_segments_are_scored_where_the_data_allows(disagg_sample):
    cal = load_calibration()
    keys = disagg_sample["generation"] + "/" + disagg_sample["backend"] + "/" + disagg_sample["family"]
    for key, seg in cal.disagg_segments.items():
        assert seg.tpot.n == int((keys == key).sum()) >= 20 and seg.tpot.groups >= 3, key
        assert key in cal.segments            # an aggregated segment of the same kind exists as well


def test_accuracy_tables_give_the_disaggregated_rows_their_own_segments(shared_dir):
    """benchmarks.accuracy lists disaggregated segments (disagg/...) and their total apart from the
    aggregated ones (residuals here: the shipped fit's, as a stand-in for the held-out ones)."""
    pytest.importorskip("pandas")
    os.environ.setdefault("SERVEWISE_SHARED", str(shared_dir))
    from benchmarks.accuracy import coverage, table_aic, table_segments
    from benchmarks.calibrate import load_all, segment_keys
    from benchmarks.disagg_rows import predict_disagg
    from benchmarks.silicon import predict

    df = load_all()
    a1, a2, _ = predict(df)
    d1, d2 = predict_disagg(df)
    r1 = np.log(np.where(np.isfinite(a1), a1, d1) * 1e3 / df["silicon_ttft_ms"].to_numpy())
    r2 = np.log(np.where(np.isfinite(a2), a2, d2) * 1e3 / df["silicon_tpot_ms"].to_numpy())
    groups, segs = df["group"].to_numpy(), np.array(segment_keys(df))
    text = table_segments(df, r1, r2, coverage(r1, groups, segs), coverage(r2, groups, segs))
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()[2:]}
    assert "ALL aggregated" in rows and "ALL disaggregated" in rows
    assert rows["ALL disaggregated"].split(" | ")[1] == str(int(df["disagg_usable"].sum()))
    assert any(k.startswith("disagg/hopper/trtllm/moe") for k in rows)
    assert "trtllm disagg | aiconfigurator | 25 |" in table_aic(df, r1, r2)


def test_targets_table_states_met_or_the_miss_in_points(monkeypatch):
    """Each aggregated segment against TTFT <= 20 %, TPOT <= 10 %, coverage >= 80 %: 'met' or by how many
    points it misses, with the signed medians and TPOT by load (synthetic residuals, known medians)."""
    pd = pytest.importorskip("pandas")
    import benchmarks.accuracy as acc

    n = 10
    df = pd.DataFrame({"concurrency": [1] * 5 + [64] * 5 + [1] * n, "seg": ["hopper/vllm/dense"] * n +
                       ["blackwell/trtllm/moe"] * n})
    monkeypatch.setattr(acc, "segment_keys", lambda d: list(d["seg"]))
    ttft = np.log(np.r_[np.full(n, 1.10), np.full(n, 0.70)])         # +10 % / -30 %
    tpot = np.log(np.r_[np.full(5, 1.05), np.full(5, 1.25), np.full(n, 1.40)])
    cover = np.r_[np.ones(n), np.r_[np.ones(7), np.zeros(3)]]
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:]
            for line in acc.table_targets(df, ttft, tpot, cover, cover).splitlines()[2:]}
    assert rows["hopper/vllm/dense"][:3] == ["10% (met)", "15% (+5 pts)", "100% (met)"]
    assert rows["hopper/vllm/dense"][5].startswith("5% / 25%")
    assert rows["blackwell/trtllm/moe"][:5] == ["30% (+10 pts)", "40% (+30 pts)", "70% (+10 pts)", "-30%", "+40%"]
