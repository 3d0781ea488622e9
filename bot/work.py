"""Slow work started by a listener: admitted to the slow pool (bot/pools.py), its errors told to the
caller as a listener's are."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from slack_bolt import Respond
from slack_sdk import WebClient

from bot.common import Caller
from bot.errors import report
from bot.pools import Request

if TYPE_CHECKING:
    from bot.services import Services


def start(
    services: Services,
    request: Request,
    caller: Caller,
    work: Callable[[], None],
    *,
    client: WebClient,
    respond: Respond | None = None,
) -> None:
    """`work()` on the slow pool, its errors reported to the caller like a listener's.

    Raises Busy or AlreadyRunning at once (the listener's error handler tells the caller).
    """

    def job() -> None:
        try:
            work()
        except Exception as error:  # the pool would keep it in a future nobody reads
            report(services, error, caller, request.kind, client, respond)
        else:
            services.metrics.command(request.kind, "ok")  # counted once it has run, not when handed on

    services.pool.start(request, caller.place, job)
