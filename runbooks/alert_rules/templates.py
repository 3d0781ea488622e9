"""Prometheus's template functions, as far as the shipped rules use them (for promtool's expectations)."""

from __future__ import annotations

import re
from collections.abc import Mapping

_TEMPLATE = re.compile(r"\{\{\s*(\$labels\.(\w+)|\$value(?:\s*\|\s*(\w+))?)\s*\}\}")


def expand(text: str, labels: Mapping[str, str], value: float) -> str:
    """Expand `{{ $labels.x }}` and `{{ $value [| humanize...] }}` as Prometheus does."""

    def one(m: re.Match[str]) -> str:
        if m.group(2):
            return labels.get(m.group(2), "")
        fn = m.group(3)
        if fn == "humanizeDuration":
            return humanize_duration(value)
        if fn == "humanizePercentage":
            return f"{_g4(value * 100)}%"
        if fn == "humanize":
            return _g4(value)
        return _go_float(value)

    return _TEMPLATE.sub(one, text)


def _g4(v: float) -> str:
    return f"{v:.4g}"


def _go_float(v: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64) for the values the tests use."""
    return str(int(v)) if v == int(v) else repr(v)


def humanize_duration(v: float) -> str:
    """Prometheus's humanizeDuration for v >= 1 s (the tests' values)."""
    if v == 0:
        return "0s"
    if abs(v) < 1:
        return f"{_g4(v * 1000)}ms"
    seconds = int(v)
    days, hours, minutes = seconds // 86400, seconds // 3600 % 24, seconds // 60 % 60
    secs = seconds % 60
    if days:
        return f"{days}d {hours}h {minutes}m {secs}s"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{_g4(v)}s"
