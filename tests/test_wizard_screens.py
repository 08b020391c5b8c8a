"""Pilot tests, one group per step: defaults, validation messages, back/next, live re-planning."""

from __future__ import annotations

import pytest
from textual.widgets import Checkbox, DataTable, Input, OptionList

from servewise.wizard.screens.dialogs import HelpScreen

from .wizard_support import eight_h100, make_app, no_blink, press_until, screen_text, settle  # noqa: F401

pytestmark = [pytest.mark.tui, pytest.mark.usefixtures("no_blink")]
SIZE = (100, 34)


async def test_hardware_defaults_without_gpus(tmp_path):
    app = make_app(save_path=tmp_path / "p.yaml")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.step == "hardware"
        table = app.screen.query_one("#gpu-table", DataTable)
        assert table.has_focus
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == "h100-sxm"
        assert app.screen.query_one("#gpus-per-node", Input).value == "8"
        assert app.screen.query_one("#nodes", Input).value == "1"
        text = screen_text(app)
        assert "No GPUs detected: no NVIDIA driver found" in text
        assert "8 × NVIDIA H100" in text and "1 node" in text
        assert "✓ plan:" in text


async def test_hardware_uses_detected_gpus():
    app = make_app(detector=eight_h100)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        hw = app.draft.hardware
        assert hw.source == "nvml" and hw.gpu == "h100-sxm" and hw.total_gpus == 8
        det = app.screen.query_one("#detected-table", DataTable)
        assert det.display and det.row_count == 1
        assert det.get_row_at(0)[:3] == ["NVIDIA H100 80GB HBM3", "h100-sxm", "8"]
        assert "NVIDIA driver 580.95.05" in screen_text(app)


async def test_hardware_search_choice_and_validation(tmp_path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.click("#gpu-search")
        await pilot.press(*"h200 sxm")
        table = app.screen.query_one("#gpu-table", DataTable)
        assert table.row_count == 1
        await pilot.press("enter")          # picks the match and goes on
        await settle(pilot)
        assert app.step == "model" and app.draft.hardware.gpu == "h200-sxm"
        await pilot.press("escape")         # back
        await settle(pilot)
        assert app.step == "hardware"
        per_node = app.screen.query_one("#gpus-per-node", Input)
        per_node.focus()
        per_node.value = "0"
        await pilot.pause()
        assert "✗ a whole number from 1 to 1024" in screen_text(app)
        await pilot.press("ctrl+n")         # refused while a field is invalid
        await pilot.pause()
        assert app.step == "hardware" and app.draft.hardware.gpus_per_node == 8
        per_node.value = "4"
        app.screen.query_one("#nodes", Input).value = "2"
        await settle(pilot)
        assert (app.draft.hardware.gpus_per_node, app.draft.hardware.nodes) == (4, 2)
        assert app.outcome.draft.hardware.nodes == 2     # re-planned for the edit


async def test_hardware_search_for_an_exact_id_picks_that_gpu():
    """Typing a catalog id and Enter picks that GPU even when longer ids also match ("l4" vs "l40s")."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.click("#gpu-search")
        await pilot.press("L", "4")
        table = app.screen.query_one("#gpu-table", DataTable)
        assert table.row_count > 1
        await pilot.press("enter")
        await settle(pilot)
        assert app.step == "model" and app.draft.hardware.gpu == "l4"


async def test_model_step_defaults_ladder_and_errors():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await press_until(pilot, "enter", "model")
        table = app.screen.query_one("#model-table", DataTable)
        assert table.has_focus
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == app.draft.model.id
        text = screen_text(app)
        assert "TP1" in text and "TP8" in text and "GiB per GPU" in text
        mml = app.screen.query_one("#max-model-len", Input)
        mml.value = "12x"
        await pilot.pause()
        assert "✗ blank, or a whole number" in screen_text(app)
        mml.value = "1000"                     # valid number, but shorter than isl + osl
        await settle(pilot)
        assert app.draft.model.max_model_len == 1000
        assert "exceeds max_model_len 1000" in screen_text(app)
        mml.value = ""
        await settle(pilot)
        assert app.draft.model.max_model_len is None and "✓ plan:" in screen_text(app)
        ident = app.screen.query_one("#model-id", Input)
        ident.focus()
        ident.value = "./no/such/checkpoint"
        await pilot.press("enter")             # reads it (off the UI thread) and stays
        await settle(pilot)
        assert app.step == "model" and app.draft.model.id != "./no/such/checkpoint"
        assert "✗ ./no/such/checkpoint: no such folder" in screen_text(app)
        assert "--model" not in screen_text(app)      # the wizard has no flags


async def test_model_from_a_local_checkpoint_folder(tmp_path):
    import json

    from servewise.perfdata import get_model

    folder = tmp_path / "llama-8b"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(get_model("meta-llama/Llama-3.1-8B-Instruct").config))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await press_until(pilot, "enter", "model")
        ident = app.screen.query_one("#model-id", Input)
        ident.focus()
        ident.value = str(folder)
        await pilot.press("enter")
        await settle(pilot)
        m = app.draft.model
        assert m.id == str(folder) and m.architecture is not None and m.config_hash.startswith("sha256:")
        assert app.outcome.feasible and f"read {folder}" in screen_text(app)
        await pilot.press("enter")              # the same id again: go on
        await settle(pilot)
        assert app.step == "workload"


async def test_model_dtype_choice_replans():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await press_until(pilot, "enter", "model")
        before = app.outcome.weights[0].weights_bytes
        app.screen.query_one("#weights-dtype").value = "fp8"
        await settle(pilot)
        assert app.draft.model.weights_dtype == "fp8"
        assert app.outcome.weights[0].weights_bytes < 0.6 * before


async def test_workload_presets_and_validation():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await press_until(pilot, "enter", "workload")
        presets = app.screen.query_one("#presets", OptionList)
        assert presets.has_focus and presets.highlighted == 0
        await pilot.press("down")              # RAG / long context
        await settle(pilot)
        assert app.draft.workload.isl == 8000 and app.draft.sla.ttft_ms == 2000
        assert app.screen.query_one("#isl", Input).value == "8000"
        await pilot.press("down", "down")      # Batch / offline: no targets, max throughput
        await settle(pilot)
        assert app.draft.workload.load.max_throughput is True and app.draft.sla.ttft_ms is None
        assert app.screen.query_one("#load-value", Input).disabled
        isl = app.screen.query_one("#isl", Input)
        isl.value = "-3"
        await pilot.pause()
        assert "✗ a whole number of tokens, at least 1" in screen_text(app)
        isl.value = "3000"
        ttft = app.screen.query_one("#ttft", Input)
        ttft.value = "fast"
        await pilot.pause()
        assert "✗ blank (no target) or a positive number of ms" in screen_text(app)
        await pilot.press("ctrl+n")
        assert app.step == "workload"
        ttft.value = "250"
        await settle(pilot)
        assert app.draft.workload.isl == 3000 and app.draft.sla.ttft_ms == 250
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.step == "engine"


async def test_engine_modes_and_image():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await press_until(pilot, "enter", "engine")
        assert app.screen.query_one("#engines", OptionList).has_focus
        image = app.screen.query_one("#engine-image", Input)
        image.value = "vllm/vllm-openai:latest"
        await pilot.pause()
        assert "✗ pin the image to a version tag" in screen_text(app)
        assert app.draft.engine.image is None
        image.value = "registry.example/vllm:v0.33.0"
        await settle(pilot)
        assert app.draft.engine.image == "registry.example/vllm:v0.33.0"
        app.screen.query_one("#mode-disagg", Checkbox).value = False
        await settle(pilot)
        assert app.draft.search.modes == ["agg"]
        app.screen.query_one("#mode-agg", Checkbox).value = False
        await pilot.pause()
        assert "choose at least one mode" in screen_text(app) and app.draft.search.modes == ["agg"]
        await pilot.press("ctrl+n")
        assert app.step == "engine"


async def test_results_show_memory_modes_and_the_candidate_table():
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await press_until(pilot, "enter", "results")
        text = screen_text(app)
        r = app.outcome.result
        assert "Selected: aggregated" in text and "chosen by the search" in text
        assert "weights" in text and "KV cache" in text and "budget" in text
        assert "Aggregated" in text and "Disaggregated" in text
        table = app.screen.query_one("#candidates", DataTable)
        assert table.row_count == sum(len(c) for c in r.candidates.values())
        assert table.get_row_at(table.cursor_row)[0] == "★"
        if not any(c.perf for cs in r.candidates.values() for c in cs):
            assert "No Pareto chart" in text        # said plainly, no invented numbers
        if r.verdict is None:
            assert "Verdict: none" in text
        perf = app.outcome.selected.perf
        if perf is None:
            assert "No performance figures" in text
        else:                                        # the selected estimate's figures, with bands and source
            lo, hi = perf.ttft_ms_range
            assert f"{perf.ttft_ms:,.0f} ms" in text and f"{lo:,.0f}–{hi:,.0f}" in text
            assert "target 1,000 ms (mean)" in text and perf.provenance in text
        await pilot.press("enter")                   # Enter on the selected candidate goes on
        await settle(pilot)
        assert app.step == "save"


async def test_results_infeasible_shows_reason_and_advice():
    from servewise.wizard.state import Draft

    d = Draft.new()
    d = d.with_(hardware=d.hardware.model_copy(update={"gpu": "l4", "gpus_per_node": 1}),
                model=d.model.model_copy(update={"id": "meta-llama/Llama-3.1-70B-Instruct"}))
    app = make_app(d)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.goto("results")
        await settle(pilot)
        text = screen_text(app)
        assert "Nothing fits or meets the SLA" in text and "weights need" in text
        assert "Advice" in text or "No advice came with this result" in text
        assert "✗ nothing feasible" in text


async def test_f1_help_and_palette_bindings_work_while_an_input_has_focus():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.query_one("#gpu-search", Input).focus()
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for key in ("ctrl+s", "ctrl+q", "ctrl+p", "ctrl+n", "escape", "f1"):
            assert key in text
        await pilot.press("escape")
        assert app.step == "hardware"
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert "Save" in commands and "Go to step 5: Results" in commands and "Cancel the search" in commands


async def test_ctrl_q_asks_when_unsaved_and_exits_130():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.query_one("#gpu-search", Input).focus()
        await pilot.press("ctrl+q")
        assert "Quit without saving?" in screen_text(app)
        await pilot.press("escape")                   # stay
        assert app.step == "hardware" and app.is_running
        await pilot.press("ctrl+q", "enter")
        await pilot.pause()
    assert app.return_value == 130


def _perf(ttft: float, tpot: float, per_gpu: float, per_user: float, gpus: int):  # type: ignore[no-untyped-def]
    from servewise.estimator.results import PerfEstimate

    def band(v: float) -> tuple[float, float]:
        return (v * 0.8, v * 1.25)
    return PerfEstimate(ttft_ms=ttft, ttft_ms_range=band(ttft), tpot_ms=tpot, tpot_ms_range=band(tpot),
                        output_tokens_per_s=per_gpu * gpus, output_tokens_per_s_range=band(per_gpu * gpus),
                        output_tokens_per_s_per_gpu=per_gpu, output_tokens_per_s_per_gpu_range=band(per_gpu),
                        tokens_per_s_per_user=per_user, tokens_per_s_per_user_range=band(per_user),
                        requests_per_s=1.0, requests_per_s_range=(0.8, 1.2), concurrency=32)


def _rich_plan(profile):  # type: ignore[no-untyped-def]
    """The real plan, dressed with what the performance model and the search add (the result
    contract): perf with bands on every candidate, a disaggregated best, a front and a verdict."""
    from servewise.estimator import plan
    from servewise.estimator.results import Advice, Candidate
    from servewise.profiles.schema import DisaggPlan

    r = plan(profile)
    agg = r.chosen.model_copy(update={"perf": _perf(420.0, 24.5, 1310.0, 40.8, 8)})
    w = agg.plan.worker
    slow = agg.model_copy(update={"plan": agg.plan.model_copy(update={"replicas": 1, "worker": w.model_copy(
        update={"tp": 8})}), "perf": _perf(180.0, 12.0, 700.0, 83.0, 8), "meets_sla": True})
    dis_plan = DisaggPlan(prefill=w.model_copy(update={"workers": 1}), decode=w.model_copy(update={"workers": 2}))
    dis = Candidate(mode="disagg", plan=dis_plan, gpus_used=6, meets_sla=True, score=1.0,
                    perf=_perf(510.0, 21.0, 1200.0, 47.0, 6))
    return r.model_copy(update={
        "best": {"agg": agg, "disagg": dis}, "chosen": agg, "candidates": {"agg": [agg, slow], "disagg": [dis]},
        "pareto": [agg, slow, dis], "verdict": "close call: aggregated 1.09x disaggregated, inside the bands",
        "advice": [Advice(kind="more_gpus", message="16 GPUs would raise tokens/s/user to 60")]})


async def test_results_render_what_a_full_plan_result_carries(monkeypatch):
    from servewise.wizard import planning

    monkeypatch.setattr(planning, "plan", _rich_plan)
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        app.goto("results")
        await settle(pilot)
        text = screen_text(app)
        assert "TTFT" in text and "420 ms" in text and "336–525" in text          # value and band
        assert "P 1 × TP" in text and "/ D 2 × TP" in text and "21.0 ms" in text  # disaggregated card
        assert "Verdict: close call" in text and "16 GPUs would raise" in text
        assert "tokens/s per user" in text and "★" in text and "▲" in text and "●" in text  # the chart
        assert "No Pareto chart" not in text
        table = app.screen.query_one("#candidates", DataTable)
        assert table.row_count == 3 and table.get_row_at(2)[1] == "disagg"


async def test_detection_through_a_fake_nvml_fills_the_hardware_step():
    from servewise.wizard.detected import detect_local

    from . import fake_nvml

    app = make_app(detector=lambda: detect_local(fake_nvml.SCENARIOS["h100_x8"]()))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.draft.hardware.source == "nvml" and app.draft.hardware.fingerprint is not None
        table = app.screen.query_one("#detected-table", DataTable)
        assert table.has_focus
        # the memory `servewise detect` shows: CUDA-visible, never less than what is free
        assert table.get_row_at(0)[3:5] == ["79.18", "79.18"]
        await pilot.press("enter")
        await settle(pilot)
        assert app.step == "model" and app.outcome.draft.hardware.source == "nvml"


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
async def test_a_bug_is_one_line_on_stderr_and_exit_70(monkeypatch, capsys):
    from servewise.wizard.screens.workload import WorkloadScreen

    def broken(self, draft):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setattr(WorkloadScreen, "load", broken)
    app = make_app()
    with pytest.raises(RuntimeError):
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            app.goto("model")
            await pilot.pause()
            app.goto("workload")
            await pilot.pause(0.2)
    assert app.return_code == 70
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["servewise: internal error in the wizard (RuntimeError: boom); rerun with --debug for the "
                   "traceback and please report it"]


def test_the_wizard_needs_a_terminal():
    from .conftest import run_cli

    r = run_cli("wizard", "--save", "x.yaml")
    assert r.code == 2 and r.out == "" and "needs a terminal" in r.err and r.err.count("\n") == 1


async def test_help_fits_a_small_terminal_and_scrolls():
    """At 80x24 the help dialog stays on screen (its foot included) and every line can be scrolled to."""
    from textual.containers import VerticalScroll

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press_until(pilot, "enter", "results")
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        foot = app.screen.query_one(".dialog-foot")
        assert 0 <= foot.region.y and foot.region.bottom <= 24, foot.region
        body = app.screen.query_one(VerticalScroll)
        assert body.has_focus and body.max_scroll_y > 0
        await pilot.press("end")
        await pilot.pause()
        assert body.scroll_y == body.max_scroll_y
        assert isinstance(app.screen, HelpScreen)
