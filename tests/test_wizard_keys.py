"""Random key presses on every step never take the wizard down: whatever a user mashes (arrows,
Enter, Escape, typing into fields, save, re-plan, cancel), the app keeps running or exits with a
code, and never with an internal error (exit 70)."""

from __future__ import annotations

import random

import pytest

from .wizard_support import eight_h100, make_app, no_blink, settle  # noqa: F401

pytestmark = [pytest.mark.tui, pytest.mark.slow, pytest.mark.usefixtures("no_blink")]
KEYS = ["enter", "escape", "tab", "shift+tab", "up", "down", "pageup", "pagedown", "backspace", "space", "f1",
        "ctrl+r", "ctrl+x", "ctrl+s", "ctrl+n", "home", "end", "left", "right",
        "a", "1", "0", "9", "-", ".", "/", "x", "8", "5"]


@pytest.mark.parametrize("seed", [4, 5])   # these sequences once crashed the wizard
async def test_random_keys_never_crash_the_wizard(tmp_path, seed):
    rng = random.Random(seed)
    app = make_app(save_path=tmp_path / "p.yaml", detector=eight_h100)
    pressed: list[str] = []
    async with app.run_test(size=(100, 34)) as pilot:
        await pilot.pause(0.2)
        for i in range(300):
            pressed.append(rng.choice(KEYS))
            await pilot.press(pressed[-1])
            if i % 20 == 0:
                await pilot.pause(0.05)
        await app.workers.wait_for_complete()
        await pilot.pause()
        if app.is_running:
            await settle(pilot)
    assert app.return_code != 70, pressed[-20:]
