"""What every backend client shares: the unavailable error, named waits, probe threads that outlive a run."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from checks.errors import LsreadyError


class BackendUnavailable(LsreadyError):
    """A backend cannot be used: its client failed to open, or earlier probes still hang on it."""

    def __init__(self, message: str, backend: str | None = None) -> None:
        super().__init__(message)
        self.backend = backend  # which one, when known: the run says it once (checks.reach)


def describe(exc: BaseException) -> str:
    """A short, single-line explanation of an error: our own messages as they are, others with their type."""
    if isinstance(exc, LsreadyError):
        return str(exc)
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{exc.__class__.__name__}: {text}"


# --- What a probe thread is waiting for, so a timeout can say it -------------------------------

_WAITS: dict[int, str] = {}
_WAITS_LOCK = threading.Lock()


@contextlib.contextmanager
def waiting_for(what: str) -> Iterator[None]:
    """Marks the calling thread as waiting for `what` (a noun phrase) until the block ends."""
    ident = threading.get_ident()
    with _WAITS_LOCK:
        previous = _WAITS.get(ident)
        _WAITS[ident] = what
    try:
        yield
    finally:
        with _WAITS_LOCK:
            if previous is None:
                _WAITS.pop(ident, None)
            else:
                _WAITS[ident] = previous


def waiting_on(thread: threading.Thread | None) -> str | None:
    """What `thread` is waiting for inside a client (not the server), if anything."""
    if thread is None or thread.ident is None:
        return None
    with _WAITS_LOCK:
        return _WAITS.get(thread.ident)
