"""Step 1: the GPUs to plan for: those detected on this machine, or any from the catalog."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.validation import Integer
from textual.widgets import DataTable, Input, Static

from servewise.perfdata import GpuSpec, all_gpus, get_gpu
from servewise.profiles.detected_hardware import with_counts
from servewise.profiles.schema import Hardware
from servewise.wizard.detected import Detected
from servewise.wizard.screens.base import Navigate, StepScreen
from servewise.wizard.state import Draft
from servewise.wizard.widgets.field import Field
from servewise.wizard.widgets.text import gib

MAX_GPUS_PER_NODE, MAX_NODES = 1024, 4096


def gpu_matches(gpu: GpuSpec, query: str) -> bool:
    hay = f"{gpu.id} {gpu.name} {gpu.architecture} {gpu.memory_type} {gpu.segment}".lower()
    return all(word in hay for word in query.lower().split())


def hardware_label(hw: Hardware) -> str:
    if isinstance(hw.gpu, str):
        spec = all_gpus().get(hw.gpu)
        name = spec.name if spec else hw.gpu
        link = hw.interconnect or (spec.interconnect.kind if spec else "?")
    else:
        name, link = f"{hw.gpu.name} (custom, figures of {hw.gpu.nearest})", hw.interconnect or "?"
    nodes = f"{hw.nodes} nodes" if hw.nodes > 1 else "1 node"
    src = ", detected" if hw.source == "nvml" else ""
    return f"{hw.total_gpus} × {name} — {hw.gpus_per_node} per node, {nodes}, {link}{src}"


class HardwareScreen(StepScreen):
    STEP = "hardware"
    STEP_KEYS = [("↑ / ↓", "choose a GPU (the plan follows)"), ("enter", "accept the highlighted GPU"),
                 ("type in Search", "filter the catalog by id, name, architecture")]

    detected: reactive[Detected | None] = reactive(None, init=False)

    def compose_body(self) -> ComposeResult:
        yield Static("Detected on this machine", classes="section-title")
        yield Static("Looking for GPUs…", id="detect-message", classes="muted")
        yield DataTable(id="detected-table", cursor_type="row", classes="table")
        yield Static("Plan for other hardware", classes="section-title")
        yield Field("Search the catalog", input_id="gpu-search", placeholder="h100, blackwell, 141 …", wide=True)
        yield DataTable(id="gpu-table", cursor_type="row", classes="table catalog")
        with Horizontal(classes="fields-row"):
            yield Field("GPUs per node", input_id="gpus-per-node",
                        validators=[Integer(1, MAX_GPUS_PER_NODE, "a whole number from 1 to 1024")])
            yield Field("Nodes", input_id="nodes", validators=[Integer(1, MAX_NODES, "a whole number from 1 to 4096")])
        yield Static(id="hardware-selected", classes="selected-line")

    def on_mount(self) -> None:
        det = self.query_one("#detected-table", DataTable)
        det.add_columns("GPU", "plans as", "count", "GiB", "free GiB", "link")
        det.display = False
        table = self.query_one("#gpu-table", DataTable)
        table.add_columns("id", "GiB", "TB/s", "BF16 TFLOP/s", "link", "name")
        self._fill_catalog("")

    # ---------------------------------------------------------------- attributes down
    def load(self, draft: Draft) -> None:
        hw = draft.hardware
        self.query_one("#gpus-per-node", Input).value = str(hw.gpus_per_node)
        self.query_one("#nodes", Input).value = str(hw.nodes)
        self._move_to(self.query_one("#gpu-table", DataTable), hw.gpu_id)
        self._show_selected(hw)
        self.watch_detected()

    def watch_detected(self) -> None:
        if not self.is_mounted:
            return
        det, msg = self.detected, self.query_one("#detect-message", Static)
        table = self.query_one("#detected-table", DataTable)
        if det is None:
            return
        if not det.found:
            msg.update(f"No GPUs detected: {det.error or 'none found'}. Plan for other hardware below.")
            table.display = False
            return
        notes = [f"NVIDIA driver {det.driver_version}"] if det.driver_version else []
        msg.update("\n".join(notes + [f"⚠ {w}" for w in det.warnings]))
        with table.prevent(DataTable.RowHighlighted):
            table.clear()
            for i, g in enumerate(det.groups):
                hw = g.hardware
                name = g.name or (hw.gpu if isinstance(hw.gpu, str) else hw.gpu.name)
                mem = g.memory_bytes  # CUDA-visible, the memory plans use and free memory is counted against
                if mem is None and hw.fingerprint and hw.fingerprint.memory_bytes:
                    mem = hw.fingerprint.memory_bytes[0]
                spec = all_gpus().get(hw.gpu_id)
                link = hw.interconnect or (spec.interconnect.kind if spec else "—")
                table.add_row(name, hw.gpu_id, str(hw.total_gpus), gib(mem, 2), gib(g.free_memory_bytes, 2), link,
                              key=str(i))
        table.display = True

    def _fill_catalog(self, query: str) -> None:
        table = self.query_one("#gpu-table", DataTable)
        with table.prevent(DataTable.RowHighlighted):
            table.clear()
            exact = query.strip().lower()  # a typed id comes first, so Enter picks it ("l4", not "l40s")
            for g in sorted(all_gpus().values(),
                            key=lambda g: (g.id != exact, g.segment != "datacenter", -g.memory_bytes, g.id)):
                if gpu_matches(g, query):
                    tflops = g.flops.get("bf16") or g.flops.get("fp16") or 0.0
                    table.add_row(g.id, f"{g.memory_bytes / 1024**3:.0f}", f"{g.memory_bandwidth_bytes_per_s / 1e12:.2f}",
                                  f"{tflops / 1e12:,.0f}", g.interconnect.kind, g.name, key=g.id)
        if self.draft is not None:
            self._move_to(table, self.draft.hardware.gpu_id)

    @staticmethod
    def _move_to(table: DataTable, key: str) -> None:
        try:
            row = table.get_row_index(key)
        except Exception:  # noqa: BLE001 - the row is filtered out
            return
        with table.prevent(DataTable.RowHighlighted):
            table.move_cursor(row=row, animate=False, scroll=True)

    def _show_selected(self, hw: Hardware) -> None:
        self.query_one("#hardware-selected", Static).update(f"Selected: {hardware_label(hw)}")

    def focus_first(self) -> None:
        det = self.query_one("#detected-table", DataTable)
        if det.display and self.draft is not None and self.draft.hardware.source == "nvml":
            det.focus()
        else:
            self.query_one("#gpu-table", DataTable).focus()

    # ---------------------------------------------------------------- messages up
    def _counts(self) -> tuple[int, int] | None:
        try:
            per_node = int(self.query_one("#gpus-per-node", Input).value)
            nodes = int(self.query_one("#nodes", Input).value)
        except ValueError:
            return None
        if not (1 <= per_node <= MAX_GPUS_PER_NODE and 1 <= nodes <= MAX_NODES):
            return None
        return per_node, nodes

    def _choose_catalog(self, gpu_id: str) -> None:
        assert self.draft is not None
        counts = self._counts()
        hw = self.draft.hardware
        per_node, nodes = counts or (hw.gpus_per_node, hw.nodes)
        if gpu_id == hw.gpu_id and hw.source == "manual":
            new = Hardware.model_validate({**hw.model_dump(), "gpus_per_node": per_node, "nodes": nodes})
        else:
            new = Hardware(gpu=get_gpu(gpu_id).id, gpus_per_node=per_node, nodes=nodes)
        if new != hw:
            self._show_selected(new)
            self.edit(hardware=new)

    def _choose_detected(self, index: int) -> None:
        assert self.draft is not None and self.detected is not None
        new = self.detected.groups[index].hardware
        self.query_one("#gpus-per-node", Input).value = str(new.gpus_per_node)
        self.query_one("#nodes", Input).value = str(new.nodes)
        if new != self.draft.hardware:
            self._show_selected(new)
            self.edit(hardware=new)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key is not None else None  # None while the table is rebuilt
        if key is None or event.cursor_row != event.data_table.cursor_row:
            return  # stale: the cursor moved on (or was set from the draft) since
        if event.data_table.id == "gpu-table":
            self._choose_catalog(key)
        else:
            self._choose_detected(int(key))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.on_data_table_row_highlighted(event)  # type: ignore[arg-type]
        self.post_message(Navigate("next"))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "gpu-search":
            self._fill_catalog(event.value)
        elif self.draft is not None and self._counts() is not None:
            hw = self.draft.hardware
            per_node, nodes = self._counts()  # type: ignore[misc]
            new = with_counts(hw, per_node, nodes)
            if new != hw:
                self._show_selected(new)
                self.edit(hardware=new)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "gpu-search":
            table = self.query_one("#gpu-table", DataTable)
            if table.row_count:
                key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
                if key is not None:
                    self._choose_catalog(key)
        self.post_message(Navigate("next"))
