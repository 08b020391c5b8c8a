"""A file-tree preview of the artifacts, with the highlighted file's content syntax-coloured."""

from __future__ import annotations

from pathlib import PurePosixPath

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static, Tree

LEXERS = {".sh": "bash", ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".md": "markdown", ".toml": "toml"}


def lexer_for(path: str) -> str:
    return LEXERS.get(PurePosixPath(path).suffix, "text")


class ArtifactPreview(Widget):
    """``files`` is ``render()``'s output ({relative path: text}); ``error`` replaces it when rendering failed."""

    DEFAULT_CSS = """
    ArtifactPreview { height: auto; }
    ArtifactPreview > Horizontal { height: auto; }
    ArtifactPreview Tree { width: 34; height: auto; max-height: 20; }
    ArtifactPreview VerticalScroll { width: 1fr; height: 20; }
    """

    files: reactive[dict[str, str] | None] = reactive(None)
    error: reactive[str | None] = reactive(None)
    root_label: reactive[str] = reactive("artifacts")

    def compose(self) -> ComposeResult:
        yield Static(id="preview-message")
        with Horizontal():
            tree: Tree[str] = Tree("artifacts", id="preview-tree")
            tree.show_root = True
            tree.guide_depth = 2
            yield tree
            with VerticalScroll(id="preview-scroll"):
                yield Static(id="preview-content")

    def watch_root_label(self) -> None:
        self._rebuild()

    def watch_files(self) -> None:
        self._rebuild()

    def watch_error(self) -> None:
        self._rebuild()

    def on_mount(self) -> None:
        self._rebuild()

    def _rebuild(self) -> None:
        if not self.is_mounted:
            return
        msg = self.query_one("#preview-message", Static)
        tree = self.query_one("#preview-tree", Tree)
        tree.clear()
        tree.root.set_label(self.root_label + "/")
        if self.error:
            msg.update(f"✗ {self.error}")
            msg.display = True
            self.query_one(Horizontal).display = False
            return
        if self.files is None:
            msg.update("Rendering the artifacts…")
            msg.display = True
            self.query_one(Horizontal).display = False
            return
        msg.display = False
        self.query_one(Horizontal).display = True
        folders: dict[str, object] = {}
        for path in self.files:
            parts = PurePosixPath(path).parts
            node = tree.root
            for i, part in enumerate(parts[:-1]):
                key = "/".join(parts[: i + 1])
                if key not in folders:
                    folders[key] = node.add(part + "/", expand=True)
                node = folders[key]  # type: ignore[assignment]
            node.add_leaf(parts[-1], data=path)  # type: ignore[attr-defined]
        tree.root.expand()
        first = next(iter(self.files), None)
        self._show(first)

    def _show(self, path: str | None) -> None:
        content = self.query_one("#preview-content", Static)
        if path is None or self.files is None or path not in self.files:
            content.update("")
            return
        content.update(Syntax(self.files[path], lexer_for(path), theme="ansi_dark", line_numbers=True,
                              word_wrap=False, background_color="default"))

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        if event.node.data:
            self._show(event.node.data)
