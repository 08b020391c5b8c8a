"""The README's test command is what CI runs (STYLE: the README's commands are tested)."""

from __future__ import annotations

import re

from .conftest import ROOT


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = [b.strip() for b in _bash_blocks(quick)]
    assert len(blocks) == 2, "the quick start is two commands"
    test_cmd = blocks[1]
    assert "pytest" in test_cmd
    assert test_cmd in (ROOT / ".ci" / "run").read_text()


def test_quick_start_example_exists():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    first = _bash_blocks(quick)[0]
    m = re.search(r"--profile (\S+)", first)
    assert m and (ROOT / m.group(1)).is_file()
