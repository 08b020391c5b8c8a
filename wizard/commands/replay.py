"""Replay (``servewise --profile P``) and ``servewise render``: artifacts from the pinned plan."""

from __future__ import annotations

import argparse
import shlex

from servewise.estimator import plan
from servewise.perfdata.errors import UsageError, located
from servewise.profiles import load_profile, save_profile
from servewise.profiles.diff import diff_profiles
from servewise.profiles.overrides import apply_overrides
from servewise.profiles.schema import Profile
from servewise.wizard import flags
from servewise.wizard.commands.plan import pinned
from servewise.wizard.exitcodes import ExitCode
from servewise.wizard.output import info

TARGETS = ("shell", "compose", "helm", "k8s")


def parse_targets(text: str | None) -> list[str] | None:
    from servewise.render.errors import RenderError

    if not text:
        return None
    out = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in out if t not in TARGETS]
    if bad:
        raise RenderError(f"--target: unknown target(s) {', '.join(bad)} (choose from {', '.join(TARGETS)})")
    return out


def add_render_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="write deployment artifacts from a profile's pinned plan",
                       description="Write deployment artifacts from a profile's pinned plan (no search).")
    p.add_argument("--profile", required=True, type=flags.path, help="profile with a pinned plan")
    p.add_argument("--out", required=True, type=flags.path, help="output directory (replaced whole)")
    p.add_argument("--target", help="comma-separated subset of shell,compose,helm,k8s (default: the profile's)")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    p.add_argument("--set", action="append", default=[], metavar="K=V", help="override a profile field")
    p.set_defaults(handler=run_render)


def run_render(a: argparse.Namespace) -> int:
    from servewise.render import render
    from servewise.render.output import write_tree

    targets = parse_targets(a.target)
    with located(path=a.profile):
        profile = apply_overrides(load_profile(a.profile), a.set)
        files = render(profile, targets)
    how = write_tree(files, a.out, force=a.force)
    info(f"{how} {a.out}: {len(files)} files")
    return ExitCode.OK


def _same_configuration(a: Profile, b: Profile) -> bool:
    """Pinned vs re-planned: the same configuration (estimates may differ as the model improves)."""
    if a.plan is None or b.plan is None:
        return a.plan is None and b.plan is None
    da = a.plan.model_dump(exclude={"estimates"})
    db = b.plan.model_dump(exclude={"estimates"})
    return da == db


ESTIMATE_KEYS = ("ttft_ms", "tpot_ms", "output_tokens_per_s_per_gpu", "kv_cache_tokens")
ESTIMATE_TOLERANCE = 0.05  # relative change below which a pinned figure still stands


def _figure(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def stale_estimates(pinned: Profile, fresh: Profile | None) -> str | None:
    """The pinned figures that re-planning the same configuration no longer gives (beyond 5%), on one
    line, or None. They matter because the artifacts' README prints the pinned figures: after
    ``--set hardware.gpu=...`` the configuration may stand while its TTFT/TPOT do not."""
    if pinned.plan is None or fresh is None or fresh.plan is None:
        return None
    old, new = pinned.plan.estimates, fresh.plan.estimates
    if old is None or new is None:
        return None
    moved = []
    for key in ESTIMATE_KEYS:
        a, b = getattr(old, key), getattr(new, key)
        if a is None or b is None:
            continue
        if abs(b - a) > ESTIMATE_TOLERANCE * max(abs(a), abs(b)):
            moved.append(f"{key} {_figure(a)} -> {_figure(b)}")
    return "; ".join(moved) or None


def drift_summary(pinned: Profile, fresh: Profile | None, limit: int = 4) -> str:
    """What re-planning changed in the configuration, on one line."""
    if fresh is None:
        return "re-planning finds nothing feasible for the profile's inputs"
    changes = [c for c in diff_profiles(pinned, fresh) if c.section == "plan"]
    shown = "; ".join(f"{c.path} {c.old!r} -> {c.new!r}" for c in changes[:limit])
    more = f"; and {len(changes) - limit} more" if len(changes) > limit else ""
    return f"re-planning gives a different configuration than the pinned plan ({shown}{more})"


def warn_if_other_hardware(profile: Profile) -> None:
    """A profile planned on detected GPUs names them (``hardware.fingerprint``); when this machine
    has GPUs and they differ, say so. Without a driver there is nothing to compare: replay needs no GPU."""
    fp = profile.hardware.fingerprint
    if profile.hardware.source != "nvml" or fp is None:
        return
    from servewise.profiles.detect import detect
    from servewise.profiles.detected_hardware import fingerprint_difference

    diff = fingerprint_difference(fp, detect())
    if diff:
        info(f"warning: {diff}; the pinned plan may not fit here (re-plan with `servewise plan --detect`)")


def warn_if_model_changed(profile: Profile) -> None:
    """A local checkpoint folder whose config.json differs from the one recorded at planning time."""
    from servewise.profiles.checkpoint import local_config_change

    why = local_config_change(profile.model.id, profile.model.config_hash)
    if why:
        info(f"warning: {why}; the pinned plan was sized for the recorded architecture (re-plan with --replan)")


def replan_command(a: argparse.Namespace) -> str:
    """The command that pins what this replay re-planned: the same profile and the same ``--set``
    overrides (without them it would re-plan the file as it stands, which may not drift at all)."""
    words = ["servewise", "--profile", str(a.profile), *(w for kv in a.set for w in ("--set", kv)),
             "--replan", "--save"]
    return " ".join(shlex.quote(w) for w in words) + " P2"


def run_replay(a: argparse.Namespace) -> int:
    """Render the pinned plan (byte-identical artifacts), then report drift against a fresh plan."""
    from servewise.render import render  # the renderer (jinja2) loads only for commands that write artifacts
    from servewise.render.errors import RenderError
    from servewise.render.output import write_tree

    if a.save and not a.replan:
        raise UsageError("--save: needs --replan (replay renders the pinned plan; "
                         "`--replan --save P2` pins a fresh one)")
    with located(path=a.profile):
        profile = apply_overrides(load_profile(a.profile), a.set)
    warn_if_other_hardware(profile)
    warn_if_model_changed(profile)
    if profile.plan is None and not a.replan:
        raise RenderError("has no pinned plan; use --replan to plan it now (and --save to pin it)", path=a.profile)
    code = ExitCode.OK
    fresh = None
    if profile.plan is not None or a.replan:
        with located(path=a.profile):
            result = plan(profile)
        if result.feasible and result.chosen is not None:
            fresh = pinned(profile, result)
        if profile.plan is not None and (fresh is None or not _same_configuration(profile, fresh)):
            info(f"drift: {drift_summary(profile, fresh)}; `{replan_command(a)}` "
                 "pins the new plan (then `servewise profile diff` compares them)")
            if a.strict:
                code = ExitCode.DRIFT
        elif profile.plan is not None and (moved := stale_estimates(profile, fresh)):
            info(f"note: the configuration stands but its pinned estimates do not ({moved}); the artifacts "
                 f"show the pinned ones, `{replan_command(a)}` pins fresh ones")
    target = profile
    if a.replan:
        if fresh is None:
            raise RenderError("re-planning found no feasible configuration", path=a.profile)
        target = fresh
        if a.save:
            save_profile(fresh, a.save)
            info(f"saved {a.save}")
    if a.out:
        with located(path=a.profile):
            files = render(target)
        how = write_tree(files, a.out, force=a.force)
        info(f"{how} {a.out}: {len(files)} files")
    return code
