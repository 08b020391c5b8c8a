"""The bundled example profiles: each is exactly what the search chooses for its inputs, and together
they cover every engine x runtime x mode cell and the special shapes the renderers handle.

Every example is the output of ``servewise plan --profile X --save X``: its inputs (model, hardware,
workload, SLA, ``search.modes``, deploy options) are chosen by hand, its plan and estimates by the
search. So replaying it reports no drift, and its artifact README shows the estimates it was chosen on.

When a change to the memory or performance model, the search or the calibration makes one of these
tests fail, re-pin the examples deliberately instead of editing a plan by hand:

    for f in profiles/examples/*.yaml; do servewise plan --profile "$f" --save "$f"; done
    SERVEWISE_UPDATE_GOLDEN=1 python -m pytest tests/test_render_golden.py

then review the diff (the chosen shapes, the estimates in tests/golden/*/README.md). If an example no
longer shows what its file name says (a mode, multi-node, expert parallelism, ...), change its inputs
for a reason a user would recognise (a larger model, a longer context, more concurrency), not its plan.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from servewise.estimator import plan
from servewise.perfdata.models import find_model
from servewise.profiles import load_profile
from servewise.profiles.schema import AggPlan, Profile, Worker, is_local_model_path

from .conftest import example_profiles, run_cli
from .validators.artifacts import examples

ENGINES = ("vllm", "sglang", "trtllm")
RUNTIMES = ("native", "dynamo")
MODES = ("agg", "disagg")
TARGETS = ["shell", "compose", "helm", "k8s"]
ESTIMATE_TOLERANCE = 0.10   # pinned vs freshly modelled figures of the same plan


def _workers(p: Profile) -> list[Worker]:
    assert p.plan is not None
    return [p.plan.worker] if isinstance(p.plan, AggPlan) else [p.plan.prefill, p.plan.decode]


def _spans_nodes(p: Profile) -> bool:
    return any(w.tp * w.pp * w.dp > p.hardware.gpus_per_node for w in _workers(p))


@pytest.mark.parametrize("path", example_profiles(), ids=lambda p: p.name)
def test_example_replays_strictly_without_drift_and_pins_its_estimates(tmp_path, path: Path):
    out = tmp_path / "out"
    r = run_cli("--profile", str(path), "--out", str(out), "--strict")
    assert r.code == 0, r.err
    assert re.fullmatch(rf"created {re.escape(str(out))}: \d+ files\n", r.err), r.err   # no drift line

    prof = load_profile(path)
    assert prof.plan is not None and prof.search.modes == [prof.plan.mode], \
        "an example restricts the search to the mode it shows"
    est = prof.plan.estimates
    assert est is not None, f"{path.name}: no pinned estimates; re-pin with `servewise plan --profile X --save X`"
    for name in ("ttft_ms", "tpot_ms", "output_tokens_per_s_per_gpu"):
        value, band = getattr(est, name), getattr(est, f"{name}_range")
        assert value is not None and band is not None and band[0] <= value <= band[1], name
    assert prof.sla.ttft_ms is not None and est.ttft_ms <= prof.sla.ttft_ms
    assert prof.sla.tpot_ms is not None and est.tpot_ms <= prof.sla.tpot_ms

    # the pinned figures are the model's figures for the pinned plan today (the README quotes them)
    result = plan(prof)
    assert result.chosen is not None and result.engine_version == prof.engine.version
    fresh = result.chosen.perf
    for name in ("ttft_ms", "tpot_ms", "output_tokens_per_s"):
        pinned_v, fresh_v = getattr(est, name), getattr(fresh, name)
        assert pinned_v == pytest.approx(fresh_v, rel=ESTIMATE_TOLERANCE), \
            f"{path.name}: pinned {name} {pinned_v} vs modelled {fresh_v}; re-pin the examples"


def test_examples_cover_every_engine_runtime_and_mode():
    cells: dict[tuple[str, str, str], list[str]] = {}
    for stem, r in examples().items():
        p = r.profile
        assert p.plan is not None
        cells.setdefault((p.engine.name, p.deploy.runtime, p.plan.mode), []).append(stem)
        assert p.deploy.targets == TARGETS, f"{stem}: examples ask for every target"
        for token in (p.engine.name, "disagg" if p.plan.mode == "disagg" else None,
                      "dynamo" if p.deploy.runtime == "dynamo" else None):
            assert token is None or token in stem, f"{stem}: the file name says what the example shows ({token})"
    missing = [(e, rt, m) for e in ENGINES for rt in RUNTIMES for m in MODES if (e, rt, m) not in cells]
    assert not missing, f"no example for {missing}"


def test_examples_cover_the_special_shapes():
    rendered = examples()
    profiles = {stem: r.profile for stem, r in rendered.items()}

    spanning = {stem for stem, p in profiles.items() if _spans_nodes(p)}
    for engine in ("vllm", "sglang"):
        stems = [s for s in spanning if profiles[s].engine.name == engine]
        assert stems, f"no {engine} example with a worker spanning nodes"
        for s in stems:
            assert "multinode" in s
            files = rendered[s].files
            assert "k8s/leaderworkerset.yaml" in files and "shell/serve_node1.sh" in files, s

    moe_ep = [s for s, p in profiles.items() if any(w.ep > 1 for w in _workers(p))]
    assert moe_ep and all("moe" in find_model(profiles[s].model.id).tags and "-ep-" in s for s in moe_ep)
    assert any(profiles[s].engine.name == "vllm" for s in moe_ep)

    assert any(is_local_model_path(p.model.id) and "local-folder" in s for s, p in profiles.items())
    fp8 = [s for s, p in profiles.items() if not is_local_model_path(p.model.id) and find_model(p.model.id)
           and find_model(p.model.id).dtype == "fp8"]
    assert fp8 and all("fp8" in s for s in fp8)
    assert any(p.deploy.runtime == "dynamo" and p.deploy.dynamo_api == "v1alpha1" for p in profiles.values())
    v1alpha1 = [r for r in rendered.values() if r.profile.deploy.dynamo_api == "v1alpha1"]
    assert all("nvidia.com/v1alpha1" in r.files["k8s/dynamographdeployment.yaml"] for r in v1alpha1)


@pytest.mark.parametrize("stem, model, gpu, gpus, tp", [
    ("llama-3.1-8b-1xl4-vllm", "meta-llama/Llama-3.1-8B-Instruct", "l4", 1, 1),
    ("llama-3.1-70b-4xh100-tp4-vllm", "meta-llama/Llama-3.1-70B-Instruct", "h100-sxm", 4, 4),
    ("qwen3-32b-8xh200-vllm", "Qwen/Qwen3-32B", "h200-sxm", 8, None),
])
def test_the_foundation_examples(stem: str, model: str, gpu: str, gpus: int, tp: int | None):
    """Llama-3.1-8B on 1 x L4, Llama-3.1-70B on 4 x H100 with TP4, Qwen3-32B on 8 x H200: vLLM, aggregated."""
    p = examples()[stem].profile
    hw = p.hardware
    assert (p.model.id, hw.gpu, hw.gpus_per_node * hw.nodes) == (model, gpu, gpus)
    assert p.engine.name == "vllm" and p.deploy.runtime == "native" and isinstance(p.plan, AggPlan)
    if tp is not None:
        assert p.plan.worker.tp == tp
