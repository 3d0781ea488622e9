"""Small helpers shared by probes: grading a value against warn/fail limits, formatting sizes."""

from __future__ import annotations

from checks.model import Status


def grade_high(value: float, warn: float, fail: float) -> Status:
    """Higher is worse: pass below warn, warn from warn, fail from fail."""
    if value >= fail:
        return Status.FAIL
    if value >= warn:
        return Status.WARN
    return Status.PASS


def pct(ratio: float) -> str:
    return f"{ratio * 100:.0f}%"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
