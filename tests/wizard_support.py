"""Shared pieces of the wizard tests: a fake GPU detector (no test touches NVML), an app factory,
waiting for the background plan, and removing cursor-blink nondeterminism."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from servewise.profiles.schema import Fingerprint, Hardware
from servewise.wizard.detected import Detected, DetectedGroup

GIB = 1024**3


def no_gpus() -> Detected:
    return Detected(error="no NVIDIA driver found (libnvidia-ml.so.1 is missing)")


def eight_h100() -> Detected:
    """What detection reports on an 8 x H100 SXM box with NVLink, 2 GiB in use on one GPU."""
    mem = 85_520_809_984
    hw = Hardware(gpu="h100-sxm", gpus_per_node=8, nodes=1, interconnect="nvlink", source="nvml",
                  fingerprint=Fingerprint(names=["NVIDIA H100 80GB HBM3"] * 8, count=8, memory_bytes=[mem] * 8,
                                          driver_version="580.95.05"))
    return Detected(groups=(DetectedGroup(hw, mem - 2 * GIB, "NVIDIA H100 80GB HBM3"),), driver_version="580.95.05")


def make_app(draft=None, *, detector=no_gpus, save_path: str | Path | None = None, replan_delay_s: float = 0.0):
    from servewise.wizard.app import WizardApp
    from servewise.wizard.state import Draft

    if draft is None:
        draft = Draft.new(str(save_path) if save_path else None)
    elif save_path is not None:
        draft = draft.with_(save_path=str(save_path))
    return WizardApp(draft, detector=detector, replan_delay_s=replan_delay_s)


async def settle(pilot, timeout_s: float = 20.0) -> None:
    """Wait until the latest plan has arrived and the screen has caught up."""
    app = pilot.app
    deadline = time.monotonic() + timeout_s
    await pilot.pause()
    while app.planning or app.outcome is None:
        assert time.monotonic() < deadline, "the plan did not arrive"
        await pilot.pause(0.01)
    await app.workers.wait_for_complete()
    await pilot.pause()


async def press_until(pilot, key: str, step: str, limit: int = 8) -> None:
    """Press ``key`` until the step ``step`` shows."""
    for _ in range(limit):
        if pilot.app.step == step:
            return
        await pilot.press(key)
        await settle(pilot)
    assert pilot.app.step == step, f"stuck on {pilot.app.step}"


def screen_text(app) -> str:  # type: ignore[no-untyped-def]
    """Every Static / Label's text on the active screen, for assertions on what a user reads."""
    from textual.widgets import Static

    from servewise.wizard.widgets.membar import MemoryBar
    from servewise.wizard.widgets.modes import ModeCard
    from servewise.wizard.widgets.pareto import ParetoChart
    from servewise.wizard.widgets.perf import PerfSummary
    from servewise.wizard.widgets.steps import StepIndicator

    kinds = (Static, MemoryBar, ModeCard, ParetoChart, PerfSummary, StepIndicator)
    return "\n".join(str(w.render()) for w in app.screen.query("*") if isinstance(w, kinds) and w.display)


@pytest.fixture
def no_blink(monkeypatch):
    """The input cursor stays on: screenshots do not depend on when they are taken."""
    from textual.widgets import Input

    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
