"""A triage result as text (for a terminal) or JSON (for scripts and CI)."""

from __future__ import annotations

import json

from bot.render.report import ICONS
from bot.render.templating import render
from runbooks.model import StepResult, TriageResult

FORMATS = ("text", "json")


def step_line(n: int, s: StepResult) -> str:
    """One step as it finished: status, title, time, and the sentence that says what it saw."""
    return (
        f"  [{ICONS[s.status]}] {n}. {s.title} ({s.at:%H:%M:%S}, {s.duration_s:.1f} s)\n         {s.summary}"
    )


def render_triage(result: TriageResult, fmt: str, *, steps: bool = True) -> str:
    """The steps (unless already shown as they finished), then the diagnosis, last, where it is read."""
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, default=str) + "\n"
    kind = result.diagnosis.kind.value.replace("_", " ").upper()
    return render(
        "triage.txt.j2", result=result, d=result.diagnosis, kind=kind, steps=steps, step_line=step_line
    )
