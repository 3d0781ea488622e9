"""Stopping a child process: ask it to end, give it a grace period, then kill it, and always reap it."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

KILL_WAIT_S = 5.0  # after SIGKILL only an uninterruptible sleep keeps a process around


def stop_process(
    proc: subprocess.Popen[Any] | None,
    grace: float = 10.0,
    *,
    sig: int = signal.SIGTERM,
    group: bool = False,
) -> int | None:
    """Send `sig` (SIGTERM), wait `grace` seconds, then SIGKILL; reaped either way. Its exit code.

    With `group`, the signals go to the process group `proc` leads (started with
    `start_new_session=True`), and whatever of the group outlives its leader is killed.
    """
    if proc is None:
        return None
    if not group and proc.poll() is not None:
        return proc.returncode
    _signal(proc, sig, group)
    try:
        code = proc.wait(grace)
    except subprocess.TimeoutExpired:
        _signal(proc, signal.SIGKILL, group)
        code = proc.wait(KILL_WAIT_S)
    if group:
        _signal(proc, signal.SIGKILL, group)  # members that outlived their leader
    return code


@contextmanager
def ended_by_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM ends the program as Ctrl-C would: the stack unwinds, so whatever
    the block started is stopped on the way out. A second SIGTERM during that cleanup is ignored
    rather than cutting it short. Only the main thread can take signals; elsewhere it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ending = False

    def end(signum: int, _frame: Any) -> None:
        nonlocal ending
        if not ending:
            ending = True
            raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, end)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _signal(proc: subprocess.Popen[Any], sig: int, group: bool) -> None:
    try:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except ProcessLookupError:  # it ended (and, for a group, every member with it) meanwhile
        pass
