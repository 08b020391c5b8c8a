"""Every example profile rendered once per test session, written to a temporary directory."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from servewise.profiles import load_profile
from servewise.profiles.schema import Profile
from servewise.render import render
from servewise.render.output import write_tree

from ..conftest import example_profiles


@dataclass(frozen=True)
class Rendered:
    stem: str
    profile: Profile
    files: dict[str, str]
    root: Path

    def paths(self, prefix: str = "", suffix: str = "") -> list[Path]:
        return [self.root / rel for rel in self.files if rel.startswith(prefix) and rel.endswith(suffix)]

    @property
    def versions(self) -> dict[str, str]:
        """Engine versions the commands must be checked against."""
        from servewise.perfdata import get_engine

        name = self.profile.engine.name
        return {name: get_engine(name).version(self.profile.engine.version).version}


@cache
def scratch() -> Path:
    d = Path(tempfile.mkdtemp(prefix="servewise-render-tests-"))
    atexit.register(shutil.rmtree, d, True)
    return d


@cache
def examples() -> dict[str, Rendered]:
    out: dict[str, Rendered] = {}
    for path in example_profiles():
        profile = load_profile(path)
        files = render(profile)
        root = scratch() / "examples" / path.stem
        write_tree(files, root)
        out[path.stem] = Rendered(path.stem, profile, files, root)
    return out


def render_to(profile: Profile, name: str) -> Rendered:
    files = render(profile)
    root = scratch() / "extra" / name
    write_tree(files, root, force=True)
    return Rendered(name, profile, files, root)
