"""Step 3: the workload (tokens in and out, load) and the latency targets, from a preset or by hand."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.validation import Function, Integer
from textual.widgets import Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from servewise.profiles.schema import Load, Sla, Workload
from servewise.wizard.screens.base import Navigate, StepScreen
from servewise.wizard.state import PRESETS, Draft, Preset
from servewise.wizard.widgets.field import Field

MAX_TOKENS, MAX_COUNT, MAX_RATE, MAX_MS = 100_000_000, 1_000_000, 1e6, 86_400_000
LOAD_KINDS = [("concurrency (requests in flight)", "concurrency"), ("request rate (per second)", "request_rate"),
              ("max throughput (offline)", "max_throughput")]
CUSTOM = "custom"


def _positive_number(limit: float):  # type: ignore[no-untyped-def]
    def ok(text: str) -> bool:
        try:
            v = float(text)
        except ValueError:
            return False
        return 0 < v <= limit
    return ok


def _optional_ms(text: str) -> bool:
    return not text.strip() or _positive_number(MAX_MS)(text)


def matching_preset(draft: Draft) -> str:
    for p in PRESETS.values():
        if p.workload == draft.workload and (p.sla.ttft_ms, p.sla.tpot_ms) == (draft.sla.ttft_ms, draft.sla.tpot_ms):
            return p.key
    return CUSTOM


def _fmt(v: float | None) -> str:
    return "" if v is None else (str(int(v)) if float(v).is_integer() else str(v))


class WorkloadScreen(StepScreen):
    STEP = "workload"
    STEP_KEYS = [("↑ / ↓", "choose a preset (it fills every field)"), ("enter", "accept and go on"),
                 ("tab", "edit the fields one by one")]

    def compose_body(self) -> ComposeResult:
        options = [Option(f"{p.label} — {p.why}", id=p.key) for p in PRESETS.values()]
        options.append(Option("Custom — keep the values below", id=CUSTOM))
        yield OptionList(*options, id="presets", classes="presets")
        with Horizontal(classes="fields-row"):
            yield Field("Input tokens (ISL)", input_id="isl",
                        validators=[Integer(1, MAX_TOKENS, "a whole number of tokens, at least 1")])
            yield Field("Output tokens (OSL)", input_id="osl",
                        validators=[Integer(1, MAX_TOKENS, "a whole number of tokens, at least 1")])
        load = self.app.draft.workload.load  # type: ignore[attr-defined]
        with Horizontal(classes="fields-row"):
            yield Label("Load", classes="field-label")
            yield Select(LOAD_KINDS, value=_load_kind(load), id="load-kind", allow_blank=False, compact=True)
        yield Field("Load value", input_id="load-value", validators=[Function(self._load_ok, "")],
                    hint="requests in flight", id="load-field")
        with Horizontal(classes="fields-row"):
            yield Field("TTFT target (ms)", input_id="ttft",
                        validators=[Function(_optional_ms, "blank (no target) or a positive number of ms")])
            yield Field("TPOT target (ms)", input_id="tpot",
                        validators=[Function(_optional_ms, "blank (no target) or a positive number of ms")])
        sla = self.app.draft.sla  # type: ignore[attr-defined]
        with Horizontal(classes="fields-row"):
            yield Label("SLA statistic", classes="field-label")
            yield Select([(s, s) for s in ("mean", "p50", "p90", "p99")], value=sla.percentile, id="percentile",
                         allow_blank=False, compact=True)

    # ---------------------------------------------------------------- validation
    def _kind(self) -> str:
        return str(self.query_one("#load-kind", Select).value)

    def _load_ok(self, text: str) -> bool:
        if not self.is_mounted:
            return True
        kind = self._kind()
        if kind == "max_throughput":
            return True
        if kind == "concurrency":
            return text.strip().isdigit() and 1 <= int(text) <= MAX_COUNT
        return _positive_number(MAX_RATE)(text)

    def _load_message(self) -> str:
        return {"concurrency": f"a whole number of requests from 1 to {MAX_COUNT:,}",
                "request_rate": "a positive number of requests per second"}.get(self._kind(), "")

    # ---------------------------------------------------------------- attributes down
    def load(self, draft: Draft) -> None:
        wl, sla = draft.workload, draft.sla
        values = {"isl": str(wl.isl), "osl": str(wl.osl), "ttft": _fmt(sla.ttft_ms), "tpot": _fmt(sla.tpot_ms)}
        with self.prevent(Input.Changed, Select.Changed):
            for key, v in values.items():
                self.query_one(f"#{key}", Input).value = v
            self.query_one("#load-kind", Select).value = _load_kind(wl.load)
            self.query_one("#percentile", Select).value = sla.percentile
            self._show_load(wl.load)
        presets = self.query_one("#presets", OptionList)
        with presets.prevent(OptionList.OptionHighlighted):
            presets.highlighted = presets.get_option_index(matching_preset(draft))

    def _show_load(self, load: Load) -> None:
        inp = self.query_one("#load-value", Input)
        kind = _load_kind(load)
        inp.value = "" if kind == "max_throughput" else _fmt(load.concurrency or load.request_rate)
        inp.disabled = kind == "max_throughput"
        hint = {"concurrency": "requests in flight (closed loop)", "request_rate": "requests per second (open loop)",
                "max_throughput": "the largest batch memory allows"}[kind]
        self.query_one("#load-field .field-hint", Static).update(hint)

    def focus_first(self) -> None:
        self.query_one("#presets", OptionList).focus()

    # ---------------------------------------------------------------- messages up
    def _apply_preset(self, preset: Preset) -> None:
        assert self.draft is not None
        sla = Sla(ttft_ms=preset.sla.ttft_ms, tpot_ms=preset.sla.tpot_ms, percentile=self.draft.sla.percentile)
        draft = self.draft.with_(workload=preset.workload, sla=sla)
        self.load(draft)
        if (draft.workload, draft.sla) != (self.draft.workload, self.draft.sla):
            self.edit(workload=preset.workload, sla=sla)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_index != event.option_list.highlighted:
            return  # stale: the highlight moved on (or was set from the draft) since
        if event.option.id in PRESETS:
            self._apply_preset(PRESETS[event.option.id])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id in PRESETS:
            self._apply_preset(PRESETS[event.option.id])
        self.post_message(Navigate("next"))

    def _read(self) -> tuple[Workload, Sla] | None:
        """The workload and SLA in the fields, or None while any field is invalid."""
        if self.problems():
            return None
        text = {k: self.query_one(f"#{k}", Input).value.strip() for k in ("isl", "osl", "load-value", "ttft", "tpot")}
        kind = self._kind()
        if kind == "concurrency":
            load = Load(concurrency=int(text["load-value"]))
        elif kind == "request_rate":
            load = Load(request_rate=float(text["load-value"]))
        else:
            load = Load(max_throughput=True)
        wl = Workload(isl=int(text["isl"]), osl=int(text["osl"]), load=load)
        sla = Sla(ttft_ms=float(text["ttft"]) if text["ttft"] else None,
                  tpot_ms=float(text["tpot"]) if text["tpot"] else None,
                  percentile=str(self.query_one("#percentile", Select).value))  # type: ignore[arg-type]
        return wl, sla

    def _push(self) -> None:
        read = self._read()
        if read is not None and self.draft is not None and read != (self.draft.workload, self.draft.sla):
            self.edit(workload=read[0], sla=read[1])

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "load-value" and event.validation_result and not event.validation_result.is_valid:
            self.query_one("#load-field", Field).show_error(self._load_message())
        self._push()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "load-kind" and self.draft is not None:
            kind = str(event.value)
            current = self.draft.workload.load
            if kind != _load_kind(current):
                default = {"concurrency": Load(concurrency=current.concurrency or 32),
                           "request_rate": Load(request_rate=current.request_rate or 4.0),
                           "max_throughput": Load(max_throughput=True)}[kind]
                with self.prevent(Input.Changed):
                    self._show_load(default)
        self._push()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.post_message(Navigate("next"))


def _load_kind(load: Load) -> str:
    if load.concurrency is not None:
        return "concurrency"
    return "request_rate" if load.request_rate is not None else "max_throughput"
