"""``servewise profile validate|migrate|schema``."""

from __future__ import annotations

import argparse
import sys

from servewise.profiles import dump_profile, json_schema_text, load_profile, save_profile
from servewise.wizard import flags
from servewise.wizard.commands import profile_diff
from servewise.wizard.exitcodes import ExitCode
from servewise.wizard.output import info, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="profile utilities", description="Validate, migrate or describe profiles.")
    ps = p.add_subparsers(dest="profile_command", metavar="{validate,migrate,schema,diff}", required=True)
    v = ps.add_parser("validate", help="check a profile against the schema")
    v.add_argument("path", type=flags.path, help="the profile (YAML)")
    v.add_argument("--json", action="store_true", help="print one JSON document")
    v.set_defaults(handler=run_validate)
    m = ps.add_parser("migrate", help="rewrite an older profile in the current schema version")
    m.add_argument("path", type=flags.path, help="the profile (YAML)")
    m.add_argument("--out", type=flags.path, help="write here instead of stdout ('-' for stdout)")
    m.add_argument("--in-place", action="store_true", help="rewrite the file itself (atomically)")
    m.set_defaults(handler=run_migrate)
    s = ps.add_parser("schema", help="print the profile JSON Schema")
    s.set_defaults(handler=run_schema)
    profile_diff.add_subparser(ps)


def run_validate(a: argparse.Namespace) -> int:
    prof = load_profile(a.path)
    if a.json:
        print_json({"valid": True, "path": a.path, "schema_version": prof.schema_version,
                    "has_plan": prof.plan is not None})
    else:
        print(f"{a.path}: valid (schema_version {prof.schema_version}"
              f"{', plan pinned' if prof.plan else ', no plan'})")
    return ExitCode.OK


def run_migrate(a: argparse.Namespace) -> int:
    prof = load_profile(a.path)
    if a.in_place:
        save_profile(prof, a.path)
        info(f"rewrote {a.path}")
    elif a.out and a.out != "-":
        save_profile(prof, a.out)
        info(f"wrote {a.out}")
    else:
        sys.stdout.write(dump_profile(prof))
    return ExitCode.OK


def run_schema(a: argparse.Namespace) -> int:  # noqa: ARG001
    sys.stdout.write(json_schema_text())
    return ExitCode.OK
