"""What every template needs, derived once from the profile."""

from __future__ import annotations

import re
from dataclasses import dataclass

from servewise.perfdata import get_engine
from servewise.perfdata.engines import EngineVersion
from servewise.profiles.schema import AggPlan, DisaggPlan, Profile
from servewise.render.errors import RenderError


@dataclass(frozen=True)
class RenderContext:
    profile: Profile
    plan: AggPlan | DisaggPlan
    engine: EngineVersion
    name: str                 # DNS-1123 base name of services and objects
    model_ref: str            # what the engine loads: HF id, or the in-container path of a local model
    local_model_dir: str | None
    served_name: str

    @property
    def mode(self) -> str:
        return self.plan.mode


def _slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    s = s[:limit].strip("-")
    return s or "model"


def is_local_path(model_id: str) -> bool:
    return model_id.startswith(("/", "./", "../", "~"))


CONTAINER_MODEL_DIR = "/models/model"


def build_render_context(profile: Profile) -> RenderContext:
    if profile.plan is None:
        raise RenderError("the profile has no plan to render; run `servewise plan --profile P --save P` first")
    engine = get_engine(profile.engine.name).version(profile.engine.version)
    mid = profile.model.id
    local = is_local_path(mid)
    name = profile.deploy.name or _slug(mid.rstrip("/").rsplit("/", 1)[-1])
    return RenderContext(profile=profile, plan=profile.plan, engine=engine, name=name,
                         model_ref=mid, local_model_dir=mid if local else None,
                         served_name=profile.model.served_name or (name if local else mid))
