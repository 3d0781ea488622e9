"""The Jinja2 environment for every text the bot and the CLI print."""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined


@cache
def env() -> Environment:
    environment = Environment(
        loader=PackageLoader("bot", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    environment.filters["md_cell"] = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    return environment


def render(template: str, **context: object) -> str:
    return env().get_template(template).render(**context)
