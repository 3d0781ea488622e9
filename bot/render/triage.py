"""A triage result as text (for a terminal) or JSON (for scripts and CI)."""

from __future__ import annotations

import json

from bot.render.report import ICONS
from bot.render.templating import render
from runbooks.model import TriageResult

FORMATS = ("text", "json")


def render_triage(result: TriageResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, default=str) + "\n"
    kind = result.diagnosis.kind.value.replace("_", " ").upper()
    return render("triage.txt.j2", result=result, d=result.diagnosis, kind=kind, icons=ICONS)
