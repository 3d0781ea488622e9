"""Logging for the CLI and the bot: text or JSON lines, and every record passes the redactor."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from checks.secrets import Redactor


class RedactingFilter(logging.Filter):
    """Masks secrets in the message and in any formatted traceback before a handler sees them."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.text(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self.redactor.text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        for key in ("error_id", "command", "target", "user"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        return json.dumps(entry)


_NOISY = ("urllib3", "clickhouse_connect")


def setup_logging(level: int, fmt: str = "text", redactor: Redactor | None = None) -> None:
    """Configure the root logger once; a later call (a known config) swaps in its redactor."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_lsready", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler._lsready = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    elif isinstance(handler, logging.StreamHandler):
        handler.setStream(sys.stderr)  # stderr may have been replaced since (test runners, daemons)
    text = logging.Formatter("%(levelname)s %(name)s %(message)s")
    handler.setFormatter(JsonFormatter() if fmt == "json" else text)
    for f in list(handler.filters):
        handler.removeFilter(f)
    handler.addFilter(RedactingFilter(redactor or Redactor()))
    if level > logging.DEBUG:
        # HTTP clients warn on every refused connection; the report says it once per backend (-v shows them).
        handler.addFilter(lambda r: r.levelno >= logging.ERROR or not r.name.startswith(_NOISY))
    root.setLevel(level)
