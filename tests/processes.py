"""The real servers the tests and benches run as processes: wait until one answers, then stop it."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from runbooks.demo.processes import stop_process


def wait_ready(proc: subprocess.Popen[Any], url: str, log: Path, what: str, timeout: float = 30.0) -> None:
    """Return once `url` answers 2xx; stop `proc` and fail with its log's tail if it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} did not start (exit code {proc.returncode}): {tail}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[Any] | None, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; reaped either way."""
    stop_process(proc, grace)
