"""`POST /alertmanager`: Alertmanager's webhook, as a WSGI app mounted on the bot's HTTP servers.

Off (404) unless `LSREADY_ALERTMANAGER_TOKEN` is set; then every request must carry it as a bearer
token (401 otherwise). A body that is too large or not a version-4 notification is a 400 and
nothing is posted. A good one is answered at once; its Slack work runs on the bot's quick pool.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient

from bot.alerts.threads import AlertThreadsDesk
from bot.flows.triage import runbooks
from bot.serving import MAX_BODY_BYTES, WSGIApp
from checks.errors import ConfigError
from runbooks.alerts import BadNotification, Notification, parse

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

PATH = "/alertmanager"
TOKEN_ENV = "LSREADY_ALERTMANAGER_TOKEN"
MAX_BODY = 2 * 1024 * 1024  # a group of 1,000 alerts with long annotations fits
MAX_DRAIN = MAX_BODY_BYTES  # past the server's own limit, the server answers 413


class AlertReceiver:
    def __init__(
        self,
        token: str | None,
        handle: Callable[[Notification], object],
        submit: Callable[..., object],
        count: Callable[[str], None],
    ) -> None:
        self._token = token.encode() if token else None
        self._handle, self._submit, self._count = handle, submit, count

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self._token is None:
            return _reply(start_response, 404, {"error": "not found"})
        if environ.get("REQUEST_METHOD") != "POST":
            return _reply(start_response, 405, {"error": "use POST"}, [("Allow", "POST")])
        given = (environ.get("HTTP_AUTHORIZATION") or "").encode()
        if not hmac.compare_digest(given, b"Bearer " + self._token):
            self._count("unauthorized")
            challenge = [("WWW-Authenticate", 'Bearer realm="lsready"')]
            return _reply(start_response, 401, {"error": "missing or wrong bearer token"}, challenge)
        try:
            notification = parse(_body(environ))
        except BadNotification as exc:
            self._count("rejected")
            return _reply(start_response, 400, {"error": str(exc)})
        self._submit(self._run, notification)
        return _reply(start_response, 200, {"status": "accepted"})

    def _run(self, notification: Notification) -> None:
        try:
            self._handle(notification)
        except Exception:  # nobody waits on this future: say it in the log
            log.exception("handling an alert notification of group %s failed", notification.groupKey)
            self._count("failed")


def _body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        raise BadNotification("Content-Length is not a number") from None
    stream = environ["wsgi.input"]
    if length > MAX_BODY:
        if length <= MAX_DRAIN:  # read it, so the sender hears the 400 instead of a broken pipe
            while length > 0:
                length -= len(stream.read(min(length, 65536)) or b"x" * length)
        raise BadNotification(f"the body is larger than {MAX_BODY} bytes")
    if length >= 0:
        return stream.read(length)
    if not environ.get("wsgi.input_terminated"):
        raise BadNotification("send a Content-Length")
    body = stream.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise BadNotification(f"the body is larger than {MAX_BODY} bytes")
    return body


def _reply(
    start_response: Callable[..., Any],
    code: int,
    body: dict[str, str],
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}
    start_response(
        f"{code} {reason[code]}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *(headers or [])],
    )
    return [data]


def alert_routes(
    services: Services, client: WebClient, env: Mapping[str, str] | None = None
) -> dict[str, WSGIApp]:
    """The receiver for the bot's HTTP servers (the same one on each), by path."""
    for n, entry in enumerate(services.config.alerts.routes):
        if entry.runbook is not None and entry.runbook not in runbooks():
            problem = f"no runbook '{entry.runbook}' (runbooks: {', '.join(runbooks())})"
            raise ConfigError([f"alerts.routes[{n}].runbook: {problem}"], "config")
    token = ((os.environ if env is None else env).get(TOKEN_ENV) or "").strip() or None
    if token is not None:
        services.redactor.add(token)
    desk = AlertThreadsDesk(services, client)
    receiver = AlertReceiver(token, desk.handle, services.pool.submit, services.metrics.alert)
    return {PATH: receiver}
