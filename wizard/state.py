"""The wizard's draft: an immutable record of the user's choices, replaced on every change.

Screens read the draft and post a new one up; the app owns the current draft and re-plans from
it. The draft knows how to become a ``Profile`` the same way ``servewise plan --save`` builds one,
and, when opened from a profile, how to give that profile back unchanged when nothing was edited.
Nothing here imports Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from servewise.estimator.results import PlanResult
from servewise.perfdata import all_gpus, all_models
from servewise.profiles import profile_from_dict
from servewise.profiles.schema import (
    AggPlan, Deploy, DisaggPlan, Engine, Hardware, Load, Model, Profile, Search, Sla, Workload,
)
from servewise.wizard.flags import DEFAULT_CONCURRENCY, DEFAULT_ISL, DEFAULT_OSL, generator

DEFAULT_GPU = "h100-sxm"
DEFAULT_GPUS_PER_NODE = 8
DEFAULT_MODEL = "Qwen/Qwen3-32B"   # dense, ungated, Apache-2.0: a first plan that needs no HF token
DEFAULT_SAVE_PATH = "servewise-profile.yaml"

# The inputs that change the plan (deploy settings only change the artifacts).
PLAN_INPUTS = ("hardware", "model", "workload", "sla", "engine", "search")


@dataclass(frozen=True)
class Preset:
    """A starting point for the workload and SLA step; every value stays editable."""

    key: str
    label: str
    why: str
    workload: Workload
    sla: Sla


def _preset(key: str, label: str, why: str, isl: int, osl: int, load: Load,
            ttft_ms: float | None, tpot_ms: float | None) -> Preset:
    return Preset(key, label, why, Workload(isl=isl, osl=osl, load=load), Sla(ttft_ms=ttft_ms, tpot_ms=tpot_ms))


# User-facing starting points, not facts about any deployment: the chat shape is the CLI's default
# workload; a TPOT of 50 ms streams 20 tokens/s per user, faster than people read.
PRESETS: dict[str, Preset] = {p.key: p for p in (
    _preset("chat", "Chat", "interactive assistant: short prompts, streamed answers",
            DEFAULT_ISL, DEFAULT_OSL, Load(concurrency=DEFAULT_CONCURRENCY), 1000.0, 50.0),
    _preset("rag", "RAG / long context", "long retrieved context, short answers; first token may wait longer",
            8000, 256, Load(concurrency=16), 2000.0, 50.0),
    _preset("code", "Code completion", "editor completions: short outputs that must start fast",
            1024, 64, Load(concurrency=32), 300.0, 20.0),
    _preset("batch", "Batch / offline", "no latency target: the largest batch memory allows",
            2048, 512, Load(max_throughput=True), None, None),
)}
DEFAULT_PRESET = "chat"


def available_targets() -> list[str]:
    """Deploy targets this build can render, in the profile's order."""
    from servewise.render import TARGETS

    return [t for t in Deploy().targets if t in TARGETS]


def default_model_id() -> str:
    models = all_models()
    return DEFAULT_MODEL if DEFAULT_MODEL in models else sorted(models)[0]


def default_gpu_id() -> str:
    gpus = all_gpus()
    return DEFAULT_GPU if DEFAULT_GPU in gpus else sorted(gpus)[0]


@dataclass(frozen=True)
class Draft:
    """Everything the user has chosen so far. Replace it with :meth:`with_`, never mutate it."""

    hardware: Hardware
    model: Model
    workload: Workload
    sla: Sla
    engine: Engine
    search: Search
    deploy: Deploy
    save_path: str = DEFAULT_SAVE_PATH
    artifacts_dir: str | None = None            # None: next to the profile (see ``artifacts_path``)
    write_artifacts: bool = True
    base: Profile | None = None                 # the profile the wizard was opened with
    picked: AggPlan | DisaggPlan | None = None  # a candidate picked on the results step

    # ------------------------------------------------------------------ building
    @classmethod
    def new(cls, save_path: str | None = None) -> Draft:
        """The defaults: 8 x H100 SXM on one node, the default model, the chat preset, vLLM."""
        preset = PRESETS[DEFAULT_PRESET]
        return cls(hardware=Hardware(gpu=default_gpu_id(), gpus_per_node=DEFAULT_GPUS_PER_NODE, nodes=1),
                   model=Model(id=default_model_id()), workload=preset.workload, sla=preset.sla,
                   engine=Engine(), search=Search(), deploy=Deploy(targets=available_targets()),
                   save_path=save_path or DEFAULT_SAVE_PATH)

    @classmethod
    def from_profile(cls, profile: Profile, save_path: str | None = None, source: str | None = None) -> Draft:
        """Prefilled from ``profile``; saving without edits gives ``profile`` back."""
        return cls(hardware=profile.hardware, model=profile.model, workload=profile.workload, sla=profile.sla,
                   engine=profile.engine, search=profile.search, deploy=profile.deploy,
                   save_path=save_path or source or DEFAULT_SAVE_PATH, base=profile)

    def with_(self, **changes: Any) -> Draft:
        """A new draft with ``changes``; a changed plan input forgets a picked candidate."""
        names = {f.name for f in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise TypeError(f"unknown draft field(s): {', '.join(sorted(unknown))}")
        if "picked" not in changes and any(k in PLAN_INPUTS and changes[k] != getattr(self, k) for k in changes):
            changes["picked"] = None
        return replace(self, **changes)

    # ------------------------------------------------------------------ questions
    @property
    def inputs_changed(self) -> bool:
        """Whether any plan input differs from the profile the wizard was opened with."""
        return self.base is None or any(getattr(self, k) != getattr(self.base, k) for k in PLAN_INPUTS)

    @property
    def keeps_pinned_plan(self) -> bool:
        """Opened from a profile with a pinned plan, inputs untouched and no other candidate picked."""
        return self.base is not None and self.base.plan is not None and not self.inputs_changed \
            and self.picked is None

    def artifacts_path(self) -> Path:
        if self.artifacts_dir:
            return Path(self.artifacts_dir).expanduser()
        p = Path(self.save_path).expanduser()
        if p.name in ("", ".", ".."):  # not a file name (saving will say so): a folder inside it
            return p / "servewise-deploy"
        return p.with_name(f"{p.stem}-deploy")

    # ------------------------------------------------------------------ profiles
    def inputs(self) -> Profile:
        """The profile to plan with: the draft's inputs and no plan (what ``plan --profile`` reads)."""
        doc = self.base.model_dump(mode="json") if self.base is not None else \
            {"schema_version": 1, "generator": generator().model_dump(mode="json")}
        for k in (*PLAN_INPUTS, "deploy"):
            doc[k] = getattr(self, k).model_dump(mode="json")
        doc["plan"] = None
        return profile_from_dict(doc, path="wizard")

    def to_profile(self, result: PlanResult | None) -> Profile:
        """The profile to save.

        Untouched inputs of an opened profile keep its pinned plan (and so give the file back as it
        was); otherwise the picked candidate or the search's choice is pinned exactly as
        ``servewise plan --save`` pins it. With nothing feasible the inputs are saved without a plan.
        """
        from servewise.wizard.commands.plan import pinned

        if self.keeps_pinned_plan:
            assert self.base is not None
            doc = self.base.model_dump(mode="json")
            doc["deploy"] = self.deploy.model_dump(mode="json")
            return profile_from_dict(doc, path="wizard")
        inputs = self.inputs()
        if result is None or not result.feasible or result.chosen is None:
            return inputs
        if self.picked is not None and self.picked != result.chosen.plan:
            found = [c for cs in result.candidates.values() for c in cs if c.plan == self.picked]
            if found:
                result = result.model_copy(update={"chosen": found[0]})
        return pinned(inputs, result)
