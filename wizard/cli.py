"""The ``servewise`` command line: argparse subcommands, typed exit codes, JSON or human output.

Nothing on these paths imports Textual; the wizard is imported only when it is opened.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from servewise.perfdata.errors import ServewiseError, UsageError
from servewise.wizard.exitcodes import ExitCode, exit_code_for

SUBCOMMANDS = ("wizard", "plan", "estimate", "render", "detect", "models", "gpus", "profile", "bench")


class _Parser(argparse.ArgumentParser):
    """argparse that raises a one-line UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sub = self.prog.partition(" ")[2]  # "servewise plan" -> "plan"; main() adds "servewise: "
        raise UsageError(f"{sub + ': ' if sub else ''}{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    from servewise.wizard import flags
    from servewise.wizard.commands import detect, estimate, gpus, models, plan, profile_cmd, replay, wizard_cmd

    parser = _Parser(
        prog="servewise",
        description="Plan LLM serving: memory feasibility, SLA-aware aggregated vs disaggregated search, "
                    "and deployment artifacts for vLLM, SGLang and TensorRT-LLM.",
        epilog="Run `servewise` on a terminal to open the wizard. Exit codes: 0 ok, 1 infeasible, 2 usage, "
               "3 data, 4 device, 5 drift, 6 endpoint, 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"servewise {flags.servewise_version()}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (also SERVEWISE_DEBUG=1)")
    g = parser.add_argument_group("replay a profile (no subcommand)")
    g.add_argument("--profile", metavar="P", help="render the plan pinned in profile P")
    g.add_argument("--out", metavar="DIR", help="artifact directory (replaced whole)")
    g.add_argument("--force", action="store_true", help="replace an existing artifact directory")
    g.add_argument("--set", action="append", default=[], metavar="K=V", help="override a profile field")
    g.add_argument("--strict", action="store_true", help="exit 5 when re-planning differs from the pinned plan")
    g.add_argument("--replan", action="store_true", help="render a fresh plan instead of the pinned one")
    g.add_argument("--save", metavar="P2", help="with --replan: write the re-planned profile")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}",
                                parser_class=_Parser)
    wizard_cmd.add_parser(sub)
    plan.add_parser(sub)
    estimate.add_parser(sub)
    replay.add_render_parser(sub)
    detect.add_parser(sub)
    models.add_parser(sub)
    gpus.add_parser(sub)
    profile_cmd.add_parser(sub)
    parser.set_defaults(handler=None)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    from servewise.wizard.commands import replay

    if args.handler is not None:
        return int(args.handler(args))
    if args.profile:
        return int(replay.run_replay(args))
    if args.out or args.force or args.strict or args.replan or args.save or args.set:
        raise UsageError("--out/--force/--set/--strict/--replan/--save need --profile P")
    from servewise.wizard.commands.wizard_cmd import open_wizard

    return open_wizard(profile=None, save=None, debug=bool(getattr(args, "debug", False)))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("SERVEWISE_DEBUG", "") not in ("", "0")
    try:
        args = build_parser().parse_args(argv)
        return _dispatch(args)
    except KeyboardInterrupt:
        sys.stderr.write("servewise: interrupted\n")
        return ExitCode.INTERRUPT
    except ServewiseError as e:
        if debug:
            raise
        sys.stderr.write(f"servewise: {e}\n")
        return int(exit_code_for(e))
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return ExitCode.OK
    except Exception as e:  # a bug: one line, the traceback only with --debug
        if debug:
            raise
        detail = " ".join(str(e).split())[:300]
        sys.stderr.write(f"servewise: internal error ({type(e).__name__}: {detail}); rerun with --debug "
                         "for the traceback and please report it\n")
        return ExitCode.INTERNAL


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
