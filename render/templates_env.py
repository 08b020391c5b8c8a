"""The jinja2 environment: StrictUndefined (a missing variable is an error), no autoescape
(outputs are shell and Markdown; quoting is done in Python with shlex.quote)."""

from __future__ import annotations

from functools import cache

import jinja2


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("servewise.render", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - shell/Markdown output; values are quoted in Python
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_template(name: str, **values: object) -> str:
    return environment().get_template(name).render(**values)
