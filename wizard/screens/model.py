"""Step 2: the model (catalog, Hugging Face id or local folder), its weights and KV-cache dtypes."""

from __future__ import annotations

import os
from functools import cache

from textual import work
from textual.app import ComposeResult
from textual.message import Message
from textual.containers import Horizontal
from textual.content import Content
from textual.validation import Function
from textual.widgets import DataTable, Input, Label, Select, Static

from servewise.estimator.arch import ModelArch
from servewise.perfdata import ModelEntry, all_models
from servewise.perfdata.errors import ServewiseError
from servewise.profiles.checkpoint import model_fields
from servewise.profiles.schema import Model
from servewise.wizard.flags import KV_DTYPES, WEIGHTS_DTYPES
from servewise.wizard.planning import PlanOutcome
from servewise.wizard.screens.base import Navigate, StepScreen
from servewise.wizard.state import Draft
from servewise.wizard.widgets.field import Field
from servewise.wizard.widgets.text import gib

MAX_TOKENS = 100_000_000


def _arch_label(a: ModelArch) -> str:
    parts = [f"MoE {a.moe.num_experts}×{a.moe.top_k}" if a.moe else "dense"]
    if a.mla:
        parts.append("MLA")
    if "sliding" in a.layer_kinds:
        parts.append("SWA")
    if "linear" in a.layer_kinds:
        parts.append("hybrid")
    return " ".join(parts)


@cache
def catalog_rows() -> tuple[tuple[str, str, str, str, str], ...]:
    """(id, params, architecture, context, dtype) per catalog model, sorted by id."""
    rows = []
    for m in sorted(all_models().values(), key=lambda m: m.id.lower()):
        try:
            a = ModelArch.from_hf_config(m.config)
            arch, ctx = _arch_label(a), f"{a.max_position_embeddings:,}"
        except ServewiseError:
            arch, ctx = "?", "?"
        rows.append((m.id, f"{m.params / 1e9:.1f}B", arch, ctx, m.dtype))
    return tuple(rows)


def model_matches(row: tuple[str, ...], entry: ModelEntry, query: str) -> bool:
    hay = " ".join([*row, entry.family, *entry.tags]).lower()
    return all(word in hay for word in query.lower().split())


class ModelResolved(Message):
    """A Hub id or local folder was read (``fields``: the profile's model identity) or could not be."""

    def __init__(self, text: str, fields: dict | None, error: str | None) -> None:
        super().__init__()
        self.text, self.fields, self.error = text, fields, error


def _max_len_ok(text: str) -> bool:
    return not text.strip() or (text.strip().isdigit() and 1 <= int(text) <= MAX_TOKENS)


class ModelScreen(StepScreen):
    STEP = "model"
    STEP_KEYS = [("↑ / ↓", "choose a catalog model (the plan follows)"), ("enter", "accept the highlighted model"),
                 ("type in Search", "filter by id, family, architecture, tag")]

    def compose_body(self) -> ComposeResult:
        yield Field("Search the catalog", input_id="model-search", placeholder="llama, moe, 70b …", wide=True)
        yield DataTable(id="model-table", cursor_type="row", classes="table catalog")
        yield Field("Or a Hub id / folder", input_id="model-id", wide=True, id="model-id-field",
                    placeholder="org/name or ./path (Enter reads it; blank = the catalog row)")
        yield Static("", id="model-id-status", classes="muted indent")
        m = self.app.draft.model  # type: ignore[attr-defined]
        with Horizontal(classes="fields-row"):
            yield Label("Weights dtype", classes="field-label")
            yield Select([(d, d) for d in WEIGHTS_DTYPES], value=m.weights_dtype, id="weights-dtype",
                         allow_blank=False, compact=True)
            yield Label("KV cache dtype", classes="inline-label")
            yield Select([(d, d) for d in KV_DTYPES], value=m.kv_cache_dtype, id="kv-dtype", allow_blank=False,
                         compact=True)
        yield Field("Max model length", input_id="max-model-len", placeholder="the model's",
                    validators=[Function(_max_len_ok, f"blank, or a whole number from 1 to {MAX_TOKENS:,}")],
                    hint="tokens; blank = the model's maximum")
        yield Static("Weights per GPU", classes="section-title")
        yield Static(id="weights-ladder")

    def on_mount(self) -> None:
        table = self.query_one("#model-table", DataTable)
        table.add_columns("id", "params", "architecture", "context", "dtype")
        self._fill("")

    def _fill(self, query: str) -> None:
        table = self.query_one("#model-table", DataTable)
        models = all_models()
        with table.prevent(DataTable.RowHighlighted):
            table.clear()
            for row in catalog_rows():
                if model_matches(row, models[row[0]], query):
                    table.add_row(*row, key=row[0])
        if self.draft is not None:
            self._move_to(self.draft.model.id)

    def _move_to(self, model_id: str) -> None:
        table = self.query_one("#model-table", DataTable)
        try:
            row = table.get_row_index(model_id)
        except Exception:  # noqa: BLE001 - not in the catalog or filtered out
            return
        with table.prevent(DataTable.RowHighlighted):
            table.move_cursor(row=row, animate=False, scroll=True)

    # ---------------------------------------------------------------- attributes down
    def load(self, draft: Draft) -> None:
        m = draft.model
        in_catalog = m.id in all_models()
        self.query_one("#model-id", Input).value = "" if in_catalog else m.id
        self._move_to(m.id)
        with self.prevent(Select.Changed):
            self.query_one("#weights-dtype", Select).value = m.weights_dtype
            self.query_one("#kv-dtype", Select).value = m.kv_cache_dtype
        self.query_one("#max-model-len", Input).value = str(m.max_model_len or "")

    def focus_first(self) -> None:
        # Enter on the table picks its row: a model from outside the catalog keeps the focus on its id.
        if self.draft is not None and self.draft.model.id not in all_models():
            self.query_one("#model-id", Input).focus()
        else:
            self.query_one("#model-table", DataTable).focus()

    def show_outcome(self, outcome: PlanOutcome | None, planning: bool) -> None:
        ladder = self.query_one("#weights-ladder", Static)
        if outcome is None or (planning and not outcome.weights):
            ladder.update(Content.styled("computing…", "$text-muted"))
            return
        if not outcome.weights:
            ladder.update(Content.styled(outcome.error or "no figures", "$text-error"))
            return
        lines = []
        for row in outcome.weights:
            if row.weights_bytes is None:
                lines.append(Content.assemble(f"TP{row.tp:<3}", (f" cannot run: {row.note}", "$text-muted")))
                continue
            ok = ("fits", "$text-success") if row.fits else ("does not fit", "$text-error")
            lines.append(Content.assemble(f"TP{row.tp:<3}", (f"{gib(row.weights_bytes, 2):>8} GiB", "bold"),
                                          f" of {gib(row.gpu_memory_bytes, 1)} GiB per GPU  ", ok))
        ladder.update(Content("\n").join(lines))

    # ---------------------------------------------------------------- messages up
    def _set_model(self, **fields: object) -> None:
        assert self.draft is not None
        new = Model.model_validate({**self.draft.model.model_dump(), **fields})
        if new != self.draft.model:
            self.edit(model=new)

    def _choose(self, model_id: str | None) -> None:
        """Another model: what was resolved for the previous one (revision, config) no longer applies."""
        if model_id and self.draft is not None and model_id != self.draft.model.id:
            self._set_model(id=model_id, revision=None, config_hash=None, architecture=None)

    @work(thread=True, exclusive=True, group="resolve-model", exit_on_error=False)
    def _resolve(self, text: str) -> None:
        """Read a Hub repo's or a folder's config off the UI thread (as ``--model`` does)."""
        model_id = os.path.expanduser(text) if text.startswith("~") else text
        try:
            self.post_message(ModelResolved(text, model_fields(model_id), None))
        except ServewiseError as e:
            self.post_message(ModelResolved(text, None, str(e).removeprefix("--model ")))  # no flag was typed here

    def on_model_resolved(self, msg: ModelResolved) -> None:
        if msg.text != self.query_one("#model-id", Input).value.strip():
            return  # the field changed since
        status = self.query_one("#model-id-status", Static)
        if msg.error or msg.fields is None:
            status.update("")
            self.query_one("#model-id-field", Field).show_error(msg.error)
            return
        rev = msg.fields.get("revision")
        status.update(f"read {msg.text}" + (f" at revision {rev[:12]}" if rev else "") +
                      (" (its config is recorded in the profile)" if msg.fields.get("architecture") else ""))
        self._set_model(**{"revision": None, "config_hash": None, "architecture": None, **msg.fields})

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row != event.data_table.cursor_row:
            return  # stale: the cursor moved on (or was set from the draft) since
        if event.row_key is not None and event.row_key.value is not None \
                and not self.query_one("#model-id", Input).value.strip():
            self._choose(event.row_key.value)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.query_one("#model-id", Input).value = ""
        if event.row_key is not None and event.row_key.value is not None:
            self._choose(event.row_key.value)
        self.post_message(Navigate("next"))

    def on_select_changed(self, event: Select.Changed) -> None:
        key = "weights_dtype" if event.select.id == "weights-dtype" else "kv_cache_dtype"
        self._set_model(**{key: event.value})

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "model-search":
            self._fill(event.value)
        elif event.input.id == "max-model-len" and _max_len_ok(event.value):
            self._set_model(max_model_len=int(event.value) if event.value.strip() else None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        assert self.draft is not None
        if event.input.id == "model-id":
            text = event.value.strip()
            if text and text != self.draft.model.id:
                self.query_one("#model-id-field", Field).show_error(None)
                self.query_one("#model-id-status", Static).update(f"reading the config of {text}…")
                self._resolve(text)
                return  # stay: the status line shows the plan for it; Enter again goes on
            if not text:
                table = self.query_one("#model-table", DataTable)
                if table.row_count:
                    key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
                    self._choose(key)
        elif event.input.id == "model-search":
            table = self.query_one("#model-table", DataTable)
            if table.row_count:
                key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
                self._choose(key)
        self.post_message(Navigate("next"))
