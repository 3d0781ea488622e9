"""Version-specific upgrade notes, as data (notes.yaml): which apply to an upgrade from A to B."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from checks.errors import LsreadyError
from checks.probes.release import parse_version
from runbooks.preflight.model import Finding, Level

NOTES_PATH = Path(__file__).with_name("notes.yaml")


class NotesError(LsreadyError):
    """notes.yaml is malformed."""


@dataclass(frozen=True)
class Note:
    id: str
    at: str
    level: Level
    text: str
    action: str = ""
    until: str | None = None

    def applies(self, current: str, target: str) -> bool:
        """The upgrade from `current` to `target` crosses `at` (and lands below `until`)."""
        cur, to, at = parse_version(current), parse_version(target), parse_version(self.at)
        if cur is None or to is None or at is None:
            return False
        if self.until is not None and to >= (parse_version(self.until) or to):
            return False
        return cur < at <= to

    def finding(self, fullname: str) -> Finding:
        fill = {"<fullname>": fullname}
        text, action = self.text, self.action
        for k, v in fill.items():
            text, action = text.replace(k, v), action.replace(k, v)
        return Finding(f"notes.{self.id}", self.level, f"Chart {self.at}: {text}", action)


def load_notes(path: Path = NOTES_PATH) -> list[Note]:
    """Every note, validated: a bad entry is named with what is wrong."""
    raw = yaml.safe_load(path.read_text()) or []
    if not isinstance(raw, list):
        raise NotesError(f"{path} must be a list of notes")
    notes, problems = [], []
    for n, entry in enumerate(raw, 1):
        if not isinstance(entry, dict) or not {"id", "at", "level", "text"} <= set(entry):
            problems.append(f"note {n}: needs id, at, level and text")
            continue
        extra = set(entry) - {"id", "at", "level", "text", "action", "until"}
        if extra:
            problems.append(f"note {n} ({entry['id']}): unknown field(s) {', '.join(sorted(extra))}")
        for key in ("at", "until"):
            if entry.get(key) is not None and parse_version(str(entry[key])) is None:
                problems.append(f"note {n} ({entry['id']}): {key} '{entry[key]}' is not a version")
        if entry["level"] not in {lv.value for lv in Level}:
            problems.append(f"note {n} ({entry['id']}): level must be blocking, warning or note")
            continue
        notes.append(
            Note(
                str(entry["id"]),
                str(entry["at"]),
                Level(entry["level"]),
                str(entry["text"]).strip(),
                str(entry.get("action") or "").strip(),
                None if entry.get("until") is None else str(entry["until"]),
            )
        )
    if problems:
        raise NotesError(f"{path}: " + "; ".join(problems))
    return notes


def notes_for(current: str, target: str, notes: list[Note] | None = None) -> list[Note]:
    """The notes an upgrade from chart `current` to `target` crosses, oldest boundary first."""
    chosen = [n for n in (load_notes() if notes is None else notes) if n.applies(current, target)]
    return sorted(chosen, key=lambda n: parse_version(n.at) or (0, 0, 0, ()))
