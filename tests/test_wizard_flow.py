"""The whole flow with Pilot: Enter through the defaults, prefilled profiles, saving, picking,
stale results, cancelling, and the re-planning latency."""

from __future__ import annotations

import threading
import time

import pytest
from textual.widgets import DataTable

from servewise.estimator import plan as real_plan
from servewise.estimator.results import Candidate
from servewise.profiles import load_profile
from servewise.profiles.schema import AggPlan, Load, Workload
from servewise.wizard import planning
from servewise.wizard.screens.results import all_candidates
from servewise.wizard.state import Draft

from .conftest import example_profiles, run_cli
from .wizard_support import eight_h100, make_app, no_blink, press_until, screen_text, settle  # noqa: F401

pytestmark = [pytest.mark.tui, pytest.mark.usefixtures("no_blink")]
SIZE = (100, 34)


async def enter_through(pilot) -> None:  # type: ignore[no-untyped-def]
    """Enter on every step, Enter to save, Enter on "Quit"."""
    await press_until(pilot, "enter", "save")
    await pilot.press("enter")
    await settle(pilot)
    assert "Saved" in screen_text(pilot.app)
    await pilot.press("enter")
    await pilot.pause()


async def test_enter_through_the_defaults_equals_servewise_plan(tmp_path):
    app = make_app(save_path=tmp_path / "p.yaml")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await enter_through(pilot)
    assert app.return_value == 0
    saved = load_profile(tmp_path / "p.yaml")
    assert sorted(p.name for p in (tmp_path / "p-deploy").iterdir())  # artifacts written beside it
    d = Draft.new()
    r = run_cli("plan", "--model", d.model.id, "--gpu", "h100-sxm", "--gpus", "8", "--isl", str(d.workload.isl),
                "--osl", str(d.workload.osl), "--concurrency", str(d.workload.load.concurrency),
                "--ttft-ms", str(d.sla.ttft_ms), "--tpot-ms", str(d.sla.tpot_ms), "--save", str(tmp_path / "cli.yaml"))
    assert r.code == 0, r.err
    cli = load_profile(tmp_path / "cli.yaml")
    # The wizard only offers deploy targets this build can render; everything else is the CLI's.
    assert saved.model_copy(update={"deploy": cli.deploy}) == cli
    assert run_cli("--profile", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "replay")).code == 0


def one_example_per_shape() -> list:
    """One example per (engine, plan mode), and every one whose model is a local folder: the Pilot
    walk is the slow part; tests/test_wizard_state.py round-trips every example without the UI."""
    seen, out = set(), []
    for path in example_profiles():
        p = load_profile(path)
        key = (p.engine.name, p.plan.mode if p.plan else None)
        if key not in seen or p.model.id.startswith(("/", "./", "~")):
            seen.add(key)
            out.append(path)
    return out


@pytest.mark.parametrize("path", one_example_per_shape(), ids=lambda p: p.name)
async def test_enter_through_a_prefilled_profile_gives_it_back(tmp_path, path):
    out = tmp_path / "x.yaml"
    app = make_app(Draft.from_profile(load_profile(path), save_path=str(out)), detector=eight_h100)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.draft.hardware == load_profile(path).hardware   # detection does not override a profile
        await enter_through(pilot)
    assert app.return_value == 0
    assert out.read_text() == path.read_text()


async def test_ctrl_s_saves_from_any_step_and_asks_before_replacing_artifacts(tmp_path):
    deploy = tmp_path / "p-deploy"
    deploy.mkdir()
    (deploy / "plan.json").write_text('{"schema": "servewise-plan/1"}\n')   # an earlier servewise output
    (deploy / "other.txt").write_text("stale\n")
    app = make_app(save_path=tmp_path / "p.yaml")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Replace the artifacts?" in screen_text(app)
        await pilot.press("enter")
        await settle(pilot)
        assert app.step == "hardware"               # ctrl+s elsewhere saves and stays
        assert (tmp_path / "p.yaml").is_file() and not (deploy / "other.txt").exists()
        assert (deploy / "plan.json").is_file()
        assert not app.dirty
        await pilot.press("ctrl+q")                 # nothing unsaved: quits at once
        await pilot.pause()
    assert app.return_value == 0


async def test_ctrl_s_refuses_while_a_field_shows_an_invalid_value(tmp_path):
    """The draft keeps the last valid value of a field; saving then would write a number other than
    the one on screen, so ctrl+s points at the field instead (as Next does)."""
    from textual.widgets import Input

    app = make_app(save_path=tmp_path / "p.yaml")
    async with app.run_test(size=SIZE) as pilot:
        await press_until(pilot, "enter", "workload")
        ttft = app.screen.query_one("#ttft", Input)
        ttft.value = "fast"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not (tmp_path / "p.yaml").exists() and app.dirty
        assert ttft.has_focus and app.step == "workload"
        ttft.value = "750"
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
    assert load_profile(tmp_path / "p.yaml").sla.ttft_ms == 750


async def test_save_errors_are_dialogs_not_tracebacks(tmp_path):
    app = make_app(save_path=tmp_path / "missing" / "p.yaml")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Could not save the profile" in screen_text(app) and "the folder does not exist" in screen_text(app)
        await pilot.press("enter")
        assert app.step == "hardware" and app.is_running


def _with_extra_candidate(profile):  # type: ignore[no-untyped-def]
    """The real plan plus one more aggregated candidate (1 x TP4 at a batch limit the search never lists),
    so there is something to pick."""
    r = real_plan(profile)
    w = r.chosen.plan.worker
    extra = AggPlan(replicas=1, worker=w.model_copy(update={"tp": 4, "max_num_seqs": 33}))
    assert all(c.plan != extra for cs in r.candidates.values() for c in cs)
    cands = {**r.candidates, "agg": [*r.candidates["agg"], Candidate(mode="agg", plan=extra, gpus_used=4,
                                                                     meets_sla=True, score=-1.0)]}
    return r.model_copy(update={"candidates": cands})


async def test_picking_another_candidate_pins_it(tmp_path, monkeypatch):
    monkeypatch.setattr(planning, "plan", _with_extra_candidate)
    app = make_app(save_path=tmp_path / "p.yaml")
    async with app.run_test(size=(160, 50)) as pilot:
        await press_until(pilot, "enter", "results")
        table = app.screen.query_one("#candidates", DataTable)
        listed = all_candidates(app.outcome.result)
        extra = next(i for i, c in enumerate(listed) if c.score == -1.0)
        assert table.row_count == len(listed) and table.cursor_row == 0 and extra > 0
        await pilot.press(*["down"] * extra, "enter")   # pick the extra TP4: re-plans, stays on Results
        await settle(pilot)
        assert app.step == "results" and app.outcome.selected_from == "picked"
        assert app.outcome.selected.plan.worker.tp == 4
        assert "picked from the candidates" in screen_text(app)
        await pilot.press("enter")                  # Enter on the (now) selected row goes on
        await settle(pilot)
        assert app.step == "save"
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("enter")
    saved = load_profile(tmp_path / "p.yaml")
    assert saved.plan.worker.tp == 4 and saved.plan.worker.max_num_seqs == 33 and saved.plan.replicas == 1


def _slow(release: threading.Event, calls: list):  # type: ignore[no-untyped-def]
    real = planning.compute_outcome

    def compute(draft):  # type: ignore[no-untyped-def]
        calls.append(draft.workload.isl)
        release.wait(10)
        return real(draft)
    return compute


async def test_stale_results_are_discarded(monkeypatch):
    release, calls = threading.Event(), []
    from servewise.wizard import app as app_module

    monkeypatch.setattr(app_module, "compute_outcome", _slow(release, calls))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.05)
        for isl in (1000, 1100, 1200):
            app.draft = app.draft.with_(workload=Workload(isl=isl, osl=100, load=Load(concurrency=4)))
            await pilot.pause(0.02)
        assert app.planning
        release.set()
        await settle(pilot)
        assert app.outcome.draft.workload.isl == 1200 and app.outcome.result is not None
        assert len(calls) >= 2                    # earlier plans ran, and their results were dropped


async def test_a_running_search_can_be_cancelled(monkeypatch):
    release, calls = threading.Event(), []
    from servewise.wizard import app as app_module

    monkeypatch.setattr(app_module, "compute_outcome", _slow(release, calls))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.05)
        app.goto("results")
        await pilot.pause(0.05)
        assert app.planning and app.screen.query_one("#progress-row").display
        await pilot.press("ctrl+x")
        await pilot.pause()
        assert not app.planning and "search cancelled" in app.outcome.error
        assert app.outcome.exit_code == 130
        release.set()                              # the abandoned thread finishes; its result is dropped
        await app.workers.wait_for_complete()
        await pilot.pause(0.05)
        assert "search cancelled" in app.outcome.error
        assert "search cancelled" in screen_text(app)


async def test_an_edit_replans_within_the_budget():
    """Editing an input re-plans off the UI thread; for a dense model on 8 GPUs the new result is
    on screen well within ~200 ms (the bound here leaves room for a loaded CI machine)."""
    from servewise.wizard.app import REPLAN_DELAY_S

    app = make_app(replan_delay_s=REPLAN_DELAY_S)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        times = []
        for osl in (200, 300, 400):
            t0 = time.perf_counter()
            app.draft = app.draft.with_(workload=app.draft.workload.model_copy(update={"osl": osl}))
            await settle(pilot)
            times.append(time.perf_counter() - t0)
            assert app.outcome.draft.workload.osl == osl
        print(f"re-plan latency (edit -> result on screen), s: {[round(t, 3) for t in times]}")
        assert min(times) < 1.0


async def test_a_folder_servewise_did_not_write_is_never_replaced(tmp_path):
    deploy = tmp_path / "p-deploy"
    deploy.mkdir()
    (deploy / "other.txt").write_text("not ours\n")
    app = make_app(save_path=tmp_path / "p.yaml")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        if "Replace the artifacts?" in screen_text(app):
            await pilot.press("enter")
            await settle(pilot)
        assert "did not write" in screen_text(app)
        assert (deploy / "other.txt").read_text() == "not ours\n"
        assert not (deploy / "plan.json").exists()


async def test_a_profile_path_without_a_file_name_is_refused_not_a_crash(tmp_path):
    """"/" (or ".") as the profile file: a --save like that reaches the save step, where Enter points
    at the field instead of saving, and typing one shows why; never a crash (exit 70)."""
    from textual.widgets import Input

    app = make_app(save_path="/")
    async with app.run_test(size=SIZE) as pilot:
        await press_until(pilot, "enter", "save")
        assert app.is_running and app.screen.query_one("#artifacts-dir", Input).value == "/servewise-deploy"
        path = app.screen.query_one("#save-path", Input)
        await pilot.press("enter")
        await settle(pilot)
        assert app.step == "save" and path.has_focus and app.saved_code is None
        path.value = str(tmp_path / "p.yaml")
        await settle(pilot)
        path.value = "."
        await pilot.pause()
        assert "✗ a file path, e.g. profile.yaml" in screen_text(app)
        assert app.draft.save_path == str(tmp_path / "p.yaml") and app.is_running


async def test_a_row_event_without_a_row_key_is_ignored():
    """Textual can post RowHighlighted with no row key while a table is being rebuilt (seen as a
    crash when typing in the GPU search while moving the cursor): the steps ignore it."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = app.draft
        for step, table_id in (("hardware", "#gpu-table"), ("model", "#model-table"), ("results", "#candidates")):
            app.goto(step)
            await settle(pilot)
            table = app.screen.query_one(table_id, DataTable)
            table.post_message(DataTable.RowHighlighted(table, table.cursor_row, None))
            await pilot.pause()
            assert app.is_running and app.draft == before
