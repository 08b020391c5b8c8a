"""Exit codes, and the one function that maps an error to one."""

from __future__ import annotations

from enum import IntEnum

from servewise.perfdata.errors import DataError, DeviceError, EndpointError, ServewiseError, UsageError


class ExitCode(IntEnum):
    OK = 0
    INFEASIBLE = 1   # valid request; nothing fits or meets the SLA (--json still prints)
    USAGE = 2        # bad flags, invalid profile, refusing to overwrite without --force
    DATA = 3         # unknown model / GPU, missing data, model unreachable
    DEVICE = 4       # NVML asked for but unavailable
    DRIFT = 5        # --strict replay: re-planning differs from the pinned plan
    ENDPOINT = 6     # bench: endpoint unreachable or failing
    INTERNAL = 70    # a bug in servewise (EX_SOFTWARE); the message says how to get the traceback
    INTERRUPT = 130  # SIGINT (Ctrl-C): 128 + 2
    TERMINATED = 143  # SIGTERM: 128 + 15, as a shell reports a terminated command


def exit_code_for_signal(signum: int) -> int:
    """128 + the signal number (the shell convention): 130 for Ctrl-C, 143 for SIGTERM."""
    try:
        return ExitCode(128 + int(signum))
    except ValueError:
        return 128 + int(signum)


def exit_code_for(err: BaseException) -> ExitCode:
    """The exit code of an error; anything unexpected is a bug and maps to USAGE only when typed."""
    if isinstance(err, KeyboardInterrupt):
        return ExitCode.INTERRUPT
    if isinstance(err, DeviceError):
        return ExitCode.DEVICE
    if isinstance(err, EndpointError):
        return ExitCode.ENDPOINT
    if isinstance(err, DataError):
        return ExitCode.DATA
    if isinstance(err, UsageError):
        return ExitCode.USAGE
    if isinstance(err, ServewiseError):
        return ExitCode.USAGE
    raise TypeError(f"not a servewise error: {err!r}")
