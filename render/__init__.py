"""Deployment artifacts from a profile's pinned plan: ``render(profile) -> {path: text}``.

Pure: nothing is written here except by ``output.write_tree``. Structured files are built as
data and dumped (yaml.safe_dump / json.dumps); shell words go through shlex.quote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from servewise.profiles.schema import Profile
from servewise.profiles.secrets import token_kind
from servewise.render import engines
from servewise.render.context import RenderContext, build_render_context
from servewise.render.errors import RenderError
from servewise.render.targets.compose import render_compose
from servewise.render.targets.helm import render_helm
from servewise.render.targets.k8s import render_k8s
from servewise.render.targets.kube import check_model_cache
from servewise.render.targets.plan_json import render_plan_json
from servewise.render.targets.readme import render_readme
from servewise.render.targets.shell import render_shell

TARGETS: dict[str, Callable[[RenderContext], dict[str, str]]] = {
    "shell": render_shell,
    "compose": render_compose,
    "helm": render_helm,
    "k8s": render_k8s,
}


def render(profile: Profile, targets: Iterable[str] | None = None) -> dict[str, str]:
    """All artifact files for ``profile``'s plan, keyed by relative path (sorted)."""
    rc = build_render_context(profile)
    wanted = list(targets) if targets is not None else list(profile.deploy.targets)
    for t in wanted:
        if t not in TARGETS:
            raise RenderError(f"unknown target {t!r} (choose from {', '.join(TARGETS)})")
    engines.validate(rc)
    if {"shell", "compose"} & set(wanted):
        engines.check_ports(rc)
    if {"helm", "k8s"} & set(wanted):  # the targets that download into the model-cache PVC
        check_model_cache(rc)
    files: dict[str, str] = {}
    for t in wanted:
        files.update(TARGETS[t](rc))
    files.update(render_plan_json(rc))
    files.update(render_readme(rc, sorted(files)))
    for rel, text in files.items():  # the profile is checked on load; this holds whatever builds it
        kind = token_kind(text)
        if kind:
            raise RenderError(f"{rel} would contain {kind}; servewise writes secrets by reference only "
                              "(environment variables, Kubernetes Secrets)")
    return dict(sorted(files.items()))


__all__ = ["RenderError", "render"]
