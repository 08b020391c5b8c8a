"""``plan.json``: the pinned plan and the inputs it answers, for machines (CI, dashboards)."""

from __future__ import annotations

from servewise.render.context import RenderContext
from servewise.render.yamlout import dump_json

PLAN_JSON_SCHEMA = "servewise-plan/1"


def render_plan_json(rc: RenderContext) -> dict[str, str]:
    p = rc.profile.model_dump(mode="json")
    doc = {
        "schema": PLAN_JSON_SCHEMA,
        "generator": p["generator"],
        "name": rc.name,
        "model": p["model"],
        "hardware": p["hardware"],
        "workload": p["workload"],
        "sla": p["sla"],
        "engine": {**p["engine"], "version": rc.engine.version, "image": p["engine"]["image"] or rc.engine.image},
        "plan": p["plan"],
        "deploy": {k: p["deploy"][k] for k in ("targets", "runtime", "namespace", "service_port")},
    }
    return {"plan.json": dump_json(doc)}
