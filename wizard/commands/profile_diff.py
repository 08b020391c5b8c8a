"""``servewise profile diff A B``: review a profile change (inputs, plan, estimates)."""

from __future__ import annotations

import argparse
import json

from servewise.perfdata.errors import UsageError
from servewise.profiles import load_profile
from servewise.wizard import flags
from servewise.profiles.diff import diff_profiles, is_missing
from servewise.wizard.exitcodes import ExitCode
from servewise.wizard.output import print_json

ORDER = ("inputs", "plan", "estimates", "calibration", "deploy", "generator")


def add_subparser(ps: argparse._SubParsersAction) -> None:
    d = ps.add_parser("diff", help="what changed between two profiles")
    d.add_argument("old", type=flags.path, help="the profile before ('-': read it from standard input)")
    d.add_argument("new", type=flags.path, help="the profile after ('-': read it from standard input)")
    d.add_argument("--json", action="store_true", help="print one JSON document")
    d.add_argument("--exit-code", action="store_true", help="exit 5 when the profiles differ (for CI)")
    d.set_defaults(handler=run_diff)


def _show(v: object) -> str:
    if is_missing(v):
        return "(absent)"
    return json.dumps(v, ensure_ascii=False)


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def change_line(c) -> str:  # type: ignore[no-untyped-def]
    """``path: old -> new``, with the relative change of a number (what a reviewer weighs)."""
    line = f"{c.path}: {_show(c.old)} -> {_show(c.new)}"
    if _number(c.old) and _number(c.new) and c.old:
        line += f" ({(c.new - c.old) / abs(c.old):+.1%})"
    return line


def run_diff(a: argparse.Namespace) -> int:
    if a.old == a.new == "-":
        raise UsageError("profile diff: only one of OLD and NEW can be '-' (standard input)")
    old, new = load_profile(a.old), load_profile(a.new)
    changes = diff_profiles(old, new)
    if a.json:
        print_json({"identical": not changes, "changes": [
            {"section": c.section, "path": c.path, "kind": c.kind,
             "old": None if is_missing(c.old) else c.old, "new": None if is_missing(c.new) else c.new}
            for c in changes]})
    elif not changes:
        print("identical")
    else:
        counts = []
        for section in ORDER:
            rows = [c for c in changes if c.section == section]
            if rows:
                counts.append(f"{len(rows)} {section}")
                print(f"{section}:")
                for c in rows:
                    print(f"  {change_line(c)}")
        print(f"{len(changes)} change{'s' if len(changes) > 1 else ''} ({', '.join(counts)})")
    return ExitCode.DRIFT if (changes and a.exit_code) else ExitCode.OK
