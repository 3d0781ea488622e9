"""A preflight result as text (for a terminal) or JSON (for scripts and CI)."""

from __future__ import annotations

import json

from bot.render.report import ICONS
from bot.render.templating import render
from runbooks.preflight import Level, PreflightResult

FORMATS = ("text", "json")


def render_preflight(result: PreflightResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, default=str) + "\n"
    return render(
        "preflight.txt.j2",
        r=result,
        verdict=result.verdict.value.replace("_", " ").upper(),
        blocking=result.findings(Level.BLOCKING),
        warnings=result.findings(Level.WARNING),
        notes=result.findings(Level.NOTE),
        icons=ICONS,
    )
