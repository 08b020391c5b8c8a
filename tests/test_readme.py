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


def test_readme_examples_run_as_written(tmp_path, monkeypatch):
    """The Commands section's examples (estimate, plan --save, replay of the saved profile) run as
    printed, in order, in an empty folder."""
    import shlex

    from .conftest import run_cli

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    block = _bash_blocks(section)[0].replace("\\\n", " ")
    commands = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert len(commands) == 3 and all(c[0] == "servewise" for c in commands)
    monkeypatch.chdir(tmp_path)
    for argv in commands:
        r = run_cli(*argv[1:])
        assert r.code == 0, (argv, r.err)
    saved = commands[1][commands[1].index("--save") + 1]
    out = commands[2][commands[2].index("--out") + 1]
    assert (tmp_path / saved).is_file() and (tmp_path / out / "plan.json").is_file()
