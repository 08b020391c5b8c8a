"""``servewise wizard``: the interactive planner (Textual), optionally prefilled from a profile."""

from __future__ import annotations

import argparse
import sys

from servewise.perfdata.errors import UsageError
from servewise.wizard import flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("wizard", help="the interactive planner (needs a terminal)",
                       description="Walk through hardware, model, workload & SLA, engine, results and save. "
                                   "Pressing Enter on every step accepts the defaults; Enter on the last one saves. "
                                   "Exit codes: 0 saved, 1 saved without a plan (nothing feasible), "
                                   "130 quit without saving.")
    p.add_argument("--profile", metavar="P", type=flags.path,
                   help="open prefilled from profile P (saving without edits gives P back)")
    p.add_argument("--save", metavar="PATH", type=flags.path,
                   help="where the profile is written (default: P, or servewise-profile.yaml)")
    p.add_argument("--no-detect", action="store_true", help="do not look for local GPUs (NVML); plan for other hardware")
    p.set_defaults(handler=run)


def open_wizard(profile: str | None, save: str | None, detect: bool = True, debug: bool = False) -> int:
    """Open the wizard on this terminal; a clear UsageError where it cannot run."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the wizard needs a terminal; use `servewise plan ...` or "
                         "`servewise --profile P --out DIR` (see `servewise --help`)")
    try:
        from servewise.wizard.app import run_wizard
    except ImportError as e:
        raise UsageError(f"the wizard is not available in this build ({e}); use `servewise plan --help`") from None
    return int(run_wizard(profile=profile, save=save, detect=detect, debug=debug))


def run(a: argparse.Namespace) -> int:
    return open_wizard(a.profile, a.save, detect=not a.no_detect, debug=bool(getattr(a, "debug", False)))
