"""What every target needs, derived once from the profile."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from servewise.perfdata import get_engine
from servewise.perfdata.engines import EngineVersion
from servewise.perfdata.errors import UnknownIdError
from servewise.profiles.schema import AggPlan, DisaggPlan, Profile, Worker
from servewise.profiles.schema import is_local_model_path as is_local_path
from servewise.render.errors import RenderError
from servewise.render.topology import Instance, layout

CONTAINER_MODEL_DIR = "/models/model"
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

ENGINE_LABEL = {"vllm": "vLLM", "sglang": "SGLang", "trtllm": "TensorRT-LLM"}


@dataclass(frozen=True)
class RenderContext:
    profile: Profile
    plan: AggPlan | DisaggPlan
    engine: EngineVersion
    engine_name: str
    runtime: str              # native | dynamo
    name: str                 # DNS-1035 base name of services and objects
    model_id: str             # the profile's model id (HF id or a host path)
    local_model_dir: str | None
    served_name: str
    image: str                # engine (or Dynamo runtime) image
    instances: tuple[Instance, ...]

    @property
    def mode(self) -> str:
        return self.plan.mode

    @property
    def label(self) -> str:
        return f"{ENGINE_LABEL[self.engine_name]} {self.engine.version}"

    @property
    def container_model(self) -> str:
        """The model argument inside a container: the mounted folder of a local model, else the HF id."""
        return CONTAINER_MODEL_DIR if self.local_model_dir else self.model_id

    @property
    def service_port(self) -> int:
        return self.profile.deploy.service_port

    def role_instances(self, role: str) -> list[Instance]:
        return [i for i in self.instances if i.role == role]

    def memory_fraction(self, w: Worker) -> float:
        """The memory-fraction flag for worker ``w``. The plan's fraction is of the memory it was sized on:
        the GPU's, or with ``hardware.memory_bytes`` (``--use-free-memory``) what was free. vLLM applies
        its flag to the device's whole memory and refuses to start when that exceeds what is free, so it
        is given the same bytes as a fraction of the whole, rounded down (0.92 of 111.76 GiB free on a
        139.80 GiB H200 is 0.7354)."""
        free = self.profile.hardware.memory_bytes
        if self.engine_name != "vllm" or free is None or w.gpu is not None:
            return w.gpu_memory_utilization
        from servewise.estimator.resolve import resolve_hardware

        total = resolve_hardware(self.profile.hardware).gpu.memory_bytes
        if free >= total:
            return w.gpu_memory_utilization
        return math.floor(w.gpu_memory_utilization * free / total * 1e4) / 1e4


def _slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    s = s[:limit].strip("-")
    if not s or not s[0].isalpha():
        s = ("m-" + s)[:limit].strip("-")
    return s or "model"


def _engine_version(profile: Profile) -> EngineVersion:
    """The pinned engine version; render needs its accepted-flags list to check what it emits."""
    spec = get_engine(profile.engine.name)
    try:
        ev = spec.version(profile.engine.version)
    except UnknownIdError as e:
        raise RenderError(e.message, field="engine.version") from None
    if not ev.flags_reference:
        have = ", ".join(spec.renderable_versions)
        raise RenderError(f"{ENGINE_LABEL[profile.engine.name]} {ev.version} has no accepted-flags list in this "
                          f"servewise version, so its commands cannot be checked; render supports {have}",
                          field="engine.version")
    return ev


def build_render_context(profile: Profile) -> RenderContext:
    if profile.plan is None:
        raise RenderError("the profile has no plan to render; run `servewise plan --profile P --save P` first")
    from servewise.render.engines import dynamo

    engine = _engine_version(profile)
    runtime = profile.deploy.runtime
    image = profile.engine.image or engine.image
    if runtime == "dynamo":
        image = dynamo.check_pinned(profile, engine)
    mid = profile.model.id
    local = is_local_path(mid)
    name = profile.deploy.name or _slug(mid.rstrip("/").rsplit("/", 1)[-1])
    if not _DNS1035.match(name):
        raise RenderError(f"deploy.name {name!r} must start with a letter: Kubernetes Service names are DNS-1035 "
                          "labels (lowercase letters, digits and '-')")
    for what, text in (("model.id", mid), ("model.served_name", profile.model.served_name or "")):
        if text.startswith("-"):
            raise RenderError(f"{what} {text!r} must not start with '-' (engines would read it as a flag)")
    hw = profile.hardware
    instances = tuple(layout(profile.plan, hw.gpus_per_node, hw.nodes, profile.deploy.service_port))
    return RenderContext(profile=profile, plan=profile.plan, engine=engine, engine_name=profile.engine.name,
                         runtime=runtime, name=name, model_id=mid, local_model_dir=mid if local else None,
                         served_name=profile.model.served_name or (name if local else mid), image=image,
                         instances=instances)
