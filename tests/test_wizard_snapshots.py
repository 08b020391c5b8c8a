"""SVG snapshots of every step (Textual is pinned exactly in the test extras, so they are stable).

Update them after an intended change with ``pytest tests/test_wizard_snapshots.py --snapshot-update``
and look at the report it writes before committing.
"""

from __future__ import annotations

import pytest

from .wizard_support import make_app, no_blink, settle  # noqa: F401

pytestmark = [pytest.mark.tui, pytest.mark.usefixtures("no_blink")]
NARROW, WIDE = (80, 24), (160, 50)


def at_step(step: str, *keys: str):  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        pilot.app.goto(step)
        await settle(pilot)
        if keys:
            await pilot.press(*keys)
            await settle(pilot)
    return run_before


def app():  # type: ignore[no-untyped-def]
    return make_app(save_path="profile.yaml")


@pytest.mark.parametrize("step", ["hardware", "model", "workload", "engine", "results", "save"])
def test_step_at_80x24(snap_compare, step):
    assert snap_compare(app(), terminal_size=NARROW, run_before=at_step(step))


@pytest.mark.parametrize("step", ["results", "save"])
def test_step_at_160x50(snap_compare, step):
    assert snap_compare(app(), terminal_size=WIDE, run_before=at_step(step))


def test_help_dialog(snap_compare):
    assert snap_compare(app(), terminal_size=WIDE, run_before=at_step("workload", "f1"))
