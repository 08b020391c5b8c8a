"""What the wizard shows for one draft, computed off the UI thread: the plan, the estimate of the
configuration that saving would pin, and weights per GPU by tensor-parallel size.

It calls the same ``plan`` / ``estimate`` as the CLI and holds no model of its own. Nothing here
imports Textual.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from servewise.estimator import estimate, plan
from servewise.estimator.context import build_context, check_parallelism
from servewise.estimator.errors import ConfigError
from servewise.estimator.memory import weight_bytes_per_gpu
from servewise.estimator.results import Estimate, PlanResult
from servewise.perfdata.errors import ServewiseError
from servewise.profiles import profile_from_dict
from servewise.profiles.schema import Profile, Worker
from servewise.wizard.exitcodes import ExitCode, exit_code_for
from servewise.wizard.state import Draft

Selected = Literal["search", "picked", "pinned", "none"]


@dataclass(frozen=True)
class WeightsRow:
    """Weights on one GPU at one tensor-parallel size, or why that size cannot run."""

    tp: int
    weights_bytes: int | None
    gpu_memory_bytes: int
    note: str = ""

    @property
    def fits(self) -> bool:
        return self.weights_bytes is not None and self.weights_bytes < self.gpu_memory_bytes


@dataclass(frozen=True)
class PlanOutcome:
    """Everything the screens show about one draft; ``error`` is set instead when planning failed."""

    draft: Draft
    result: PlanResult | None = None
    selected: Estimate | None = None
    selected_from: Selected = "none"
    weights: tuple[WeightsRow, ...] = field(default_factory=tuple)
    error: str | None = None
    error_code: int = ExitCode.OK
    elapsed_s: float = 0.0

    @property
    def feasible(self) -> bool:
        return self.error is None and self.result is not None and self.result.feasible

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for this outcome (``servewise plan`` semantics)."""
        if self.error is not None:
            return self.error_code
        return ExitCode.OK if self.feasible else ExitCode.INFEASIBLE


def with_plan(inputs: Profile, plan_model) -> Profile:  # type: ignore[no-untyped-def]
    doc = inputs.model_dump(mode="json")
    doc["plan"] = plan_model.model_dump(mode="json")
    return profile_from_dict(doc, path="wizard")


def weights_by_tp(inputs: Profile) -> tuple[WeightsRow, ...]:
    """Weights per GPU for TP 1, 2, 4 … up to the GPUs of one node (the model step's table)."""
    ctx = build_context(inputs)
    rows = []
    tp = 1
    while tp <= ctx.hardware.gpus_per_node:
        w = Worker(tp=tp, max_num_seqs=1, max_num_batched_tokens=1, gpu_memory_utilization=1.0)
        try:
            check_parallelism(ctx, w)
        except ConfigError as e:
            rows.append(WeightsRow(tp, None, ctx.hardware.memory_bytes, e.message))
        else:
            wb = int(float(weight_bytes_per_gpu(ctx.model, tp)))
            rows.append(WeightsRow(tp, wb, ctx.hardware.memory_bytes))
        tp *= 2
    return tuple(rows)


def compute_outcome(draft: Draft, *, clock=time.perf_counter) -> PlanOutcome:  # type: ignore[no-untyped-def]
    """Plan ``draft`` as ``servewise plan --profile`` would; never raises for a user error."""
    t0 = clock()
    try:
        inputs = draft.inputs()
        weights = weights_by_tp(inputs)
        result = plan(inputs)
        if draft.keeps_pinned_plan:
            assert draft.base is not None
            selected, source = estimate(draft.base), "pinned"
        elif draft.picked is not None:
            selected, source = estimate(with_plan(inputs, draft.picked)), "picked"
        elif result.chosen is not None:
            selected, source = result.chosen_estimate or estimate(with_plan(inputs, result.chosen.plan)), "search"
        else:
            selected, source = None, "none"
    except ServewiseError as e:
        return PlanOutcome(draft, error=str(e), error_code=int(exit_code_for(e)), elapsed_s=clock() - t0)
    return PlanOutcome(draft, result=result, selected=selected, selected_from=source,  # type: ignore[arg-type]
                       weights=weights, elapsed_s=clock() - t0)
