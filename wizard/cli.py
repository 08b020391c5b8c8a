"""The ``servewise`` command line: argparse subcommands, typed exit codes, JSON or human output.

Nothing on these paths imports Textual; the wizard is imported only when it is opened.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from servewise.perfdata.errors import ServewiseError, UsageError, one_line
from servewise.wizard.exitcodes import ExitCode, exit_code_for, exit_code_for_signal

SUBCOMMANDS = ("wizard", "plan", "estimate", "render", "detect", "models", "gpus", "profile", "bench")


class _Parser(argparse.ArgumentParser):
    """argparse that raises a one-line UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sub = self.prog.partition(" ")[2]  # "servewise plan" -> "plan"; main() adds "servewise: "
        raise UsageError(f"{sub + ': ' if sub else ''}{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    from servewise.wizard import flags
    from servewise.wizard.commands import bench, detect, estimate, gpus, models, plan, profile_cmd, replay, wizard_cmd

    parser = _Parser(
        prog="servewise",
        description="Plan LLM serving: memory feasibility, SLA-aware aggregated vs disaggregated search, "
                    "and deployment artifacts for vLLM, SGLang and TensorRT-LLM.",
        epilog="Run `servewise` on a terminal to open the wizard. Exit codes: 0 ok, 1 infeasible, 2 usage, "
               "3 data, 4 device, 5 drift, 6 endpoint, 70 internal error, 130 interrupted (143 on SIGTERM).")
    parser.add_argument("--version", action="version", version=f"servewise {flags.servewise_version()}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (also SERVEWISE_DEBUG=1)")
    g = parser.add_argument_group("replay a profile (no subcommand)")
    g.add_argument("--profile", metavar="P", type=flags.path, help="render the plan pinned in profile P")
    g.add_argument("--out", metavar="DIR", type=flags.path, help="artifact directory (replaced whole)")
    g.add_argument("--force", action="store_true", help="replace an existing artifact directory")
    g.add_argument("--set", action="append", default=[], metavar="K=V", help="override a profile field")
    g.add_argument("--strict", action="store_true", help="exit 5 when re-planning differs from the pinned plan")
    g.add_argument("--replan", action="store_true", help="render a fresh plan instead of the pinned one")
    g.add_argument("--save", metavar="P2", type=flags.path, help="with --replan: write the re-planned profile")
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
    bench.add_parser(sub)
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


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGHUP), raised like Ctrl-C so every write in progress cleans up on its way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


@contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt (Python's default) and SIGTERM/SIGHUP raise ``Interrupted``
    for the length of one command; the previous handlers come back afterwards."""
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is None:
            continue
        try:
            handler = signal.default_int_handler if sig == signal.SIGINT else _raise_interrupted
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (an embedding program): leave signals alone
            break
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def error_line(err: ServewiseError, args: argparse.Namespace | None) -> str:
    """One line for ``err``: ``FILE: FIELD: message``; for a request built from flags (no profile
    file involved) the field is shown as the flag that sets it."""
    from servewise.wizard.flags import DISAGG_PLAN_FLAGS, FIELD_FLAGS, flag_for

    from_flags = args is not None and not getattr(args, "profile", None)
    if err.path is None and err.field and from_flags:
        flag = flag_for(err.field)
        if err.field == "plan" and getattr(args, "mode", None) == "disagg":
            flag = DISAGG_PLAN_FLAGS
        if flag:
            where = flag if FIELD_FLAGS.get(err.field) == flag else f"{flag} ({err.field})"
            return f"{where}: {err.message}"
    return str(err)


def bounded(line: str, limit: int = 2000) -> str:
    """``line`` cut in the middle when a value it quotes is huge: its start (the file, field or flag)
    and its end (what to do) stay."""
    if len(line) <= limit:
        return line
    return f"{line[:limit * 3 // 4]} ... ({len(line) - limit} characters cut) ... {line[-(limit // 4):]}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("SERVEWISE_DEBUG", "") not in ("", "0")
    args = None
    try:
        with interrupts_as_exceptions():
            args = build_parser().parse_args(argv)
            return _dispatch(args)
    except KeyboardInterrupt as e:
        if debug:
            raise
        code = exit_code_for_signal(getattr(e, "signum", signal.SIGINT))
        how = " (SIGTERM)" if code == ExitCode.TERMINATED else ""
        sys.stderr.write(f"servewise: interrupted{how}; nothing was left half-written\n")
        return int(code)
    except ServewiseError as e:
        if debug:
            raise
        sys.stderr.write(f"servewise: {bounded(error_line(e, args))}\n")
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
        detail = one_line(e)[:300]
        sys.stderr.write(f"servewise: internal error ({type(e).__name__}: {detail}); rerun with --debug "
                         "for the traceback and please report it\n")
        return ExitCode.INTERNAL


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
