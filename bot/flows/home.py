"""The App Home board from stored runs, and a check started from it."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from slack_sdk import WebClient

from bot.common import Caller, allowed, audit
from bot.render.slack_home import Board, render_home

if TYPE_CHECKING:
    from bot.services import Services


def publish_home(services: Services, client: WebClient, user: str, *, notice: str | None = None) -> None:
    """The readiness board from stored runs; opening the tab never runs a probe."""
    readiness = services.readiness
    window = timedelta(days=services.config.digest.expiring_within_days)
    boards = []
    for target in sorted(services.config.targets):
        run = readiness.history.latest(target)
        acked = {
            i for i, a in readiness.acks.active(target).items() if run is None or a.created > run.started_at
        }
        boards.append(Board(target, run, readiness.acks.expiring(target, window), acked))
    view = render_home(
        boards, readiness.catalog, allowed(services, Caller(user)), services.redactor, notice=notice
    )
    client.views_publish(user_id=user, view=view)


def check_from_home(services: Services, client: WebClient, caller: Caller, name: str) -> None:
    """Check the target and show the outcome on the caller's App Home board."""
    publish_home(services, client, caller.user, notice=f"Checking {name}…")
    report = services.readiness.check(name)
    services.metrics.observe_report(report, whole=True)
    audit(services, caller, "check", name, f"from home: {report.score.percent}%")
    publish_home(services, client, caller.user, notice=f"Checked {name}: {report.score.percent}%.")
