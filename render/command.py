"""One process to launch, as data: what every target turns into a script line, a compose
service or a container spec."""

from __future__ import annotations

from dataclasses import dataclass, field


class Expr(str):
    """Text already written in the target's own syntax (a shell expansion such as ``"${PORT}"``, a
    Kubernetes ``$(LWS_LEADER_ADDRESS)`` reference); emitted as is, never quoted or escaped."""

    __slots__ = ()


@dataclass(frozen=True)
class Command:
    program: tuple[str, ...]           # e.g. ("vllm", "serve"), ("python3", "-m", "sglang.launch_server")
    positional: tuple[str, ...]        # arguments before the flags (the model for `vllm serve`)
    args: tuple[str, ...]              # flags and their values
    flags: str                         # key of the accepted-flags list the args are checked against
    env: tuple[tuple[str, str], ...] = ()
    port: int | None = None            # HTTP port it answers /health on, if any
    extra_args: tuple[str, ...] = field(default=())  # deploy.extra_args, appended after the args
    # flags servewise derives from the plan and profile even where it leaves them at the engine's
    # default (dp 1, auto KV dtype ...): deploy.extra_args may not set them behind the plan's back
    reserved: tuple[str, ...] = field(default=())

    @property
    def argv(self) -> list[str]:
        return [*self.program, *self.positional, *self.args, *self.extra_args]

    @property
    def after_program(self) -> list[str]:
        return [*self.positional, *self.args, *self.extra_args]


def suffixed(value: str, suffix: str) -> str:
    """``value + suffix`` that stays an :class:`Expr` when ``value`` is one (inside the closing quote of
    a double-quoted shell expansion)."""
    if not isinstance(value, Expr):
        return value + suffix
    return Expr(value[:-1] + suffix + '"') if value.startswith('"') and value.endswith('"') else Expr(value + suffix)


def text(value: int | str) -> str:
    """``value`` as an argv word, keeping an :class:`Expr` an Expr."""
    return value if isinstance(value, str) else str(value)
