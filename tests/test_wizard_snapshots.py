"""SVG snapshots of every step (Textual is pinned exactly in the test extras, so they are stable).

Update them after an intended change with ``pytest tests/test_wizard_snapshots.py --snapshot-update``
and look at the report it writes before committing.
"""

from __future__ import annotations

import os

import pytest

from .conftest import ROOT
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


README_SHOT = ROOT / "docs" / "wizard-results.svg"


def test_readme_shows_the_results_step():
    """The README's screenshot is the results step of the defaults (regenerate it with
    SERVEWISE_UPDATE_GOLDEN=1; the snapshots above check the screen itself)."""
    from textual._doc import take_svg_screenshot

    if os.environ.get("SERVEWISE_UPDATE_GOLDEN"):
        README_SHOT.parent.mkdir(exist_ok=True)
        svg = take_svg_screenshot(app(), terminal_size=(160, 40), run_before=at_step("results"),
                                  title="servewise wizard")
        README_SHOT.write_text(svg)
    assert README_SHOT.is_file(), "run with SERVEWISE_UPDATE_GOLDEN=1 to create it"
    text = README_SHOT.read_text()
    assert text.startswith("<svg") and "Results" in text and "Memory" in text
    assert "docs/wizard-results.svg" in (ROOT / "README.md").read_text()
