"""Wiring: the Bolt app from settings and services, the HTTP server, and `lsready serve`."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.error import BoltError
from slack_bolt.lazy_listener.thread_runner import ThreadLazyListenerRunner
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

from bot import serving
from bot.access import Access
from bot.listeners import actions, alerts, bundle, commands, errors, events, views
from bot.observability import Metrics
from bot.services import Services
from bot.serving import HttpServer, WSGIApp
from bot.settings import Settings, SettingsError
from runbooks.readiness import Readiness

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
SLACK_TIMEOUT_S = 20  # each Web API call from the bot: posting, updating, uploading evidence
# Socket Mode: a connection that died without a word is noticed after four unanswered pings.
SOCKET_PING_INTERVAL_S = 5


def build_app(settings: Settings, services: Services) -> App:
    """A Bolt app that acks at once and works on the pools; every listener module registers itself."""
    token, base_url = settings.bot_token.get_secret_value(), settings.api_base_url
    client = WebClient(token=token, base_url=base_url, timeout=SLACK_TIMEOUT_S)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    app = App(
        client=client,
        signing_secret=settings.signing_secret.get_secret_value() if settings.signing_secret else None,
        request_verification_enabled=settings.signing_secret is not None,
        process_before_response=False,  # a long-running server: ack first, work after
        listener_executor=services.ack_pool,
    )
    # Bolt would run lazy listeners on the ack pool too; with every worker busy on a hung triage,
    # the next command's ack would wait past Slack's 3 s and the command would be lost.
    app.listener_runner.lazy_listener_runner = ThreadLazyListenerRunner(app.logger, services.pool)
    # Group members are looked up behind the ack with the ordinary client (timeouts and retries);
    # before an ack only the cache answers, so it is filled before the first request.
    services.access = Access(services.config.slack, client)
    services.access.warm()
    for module in (errors, commands, actions, bundle, views, events, alerts):
        module.register(app, services)
    return app


def slack_route(app: App, signing_secret: str | None) -> WSGIApp:
    """POST /slack/events into Bolt, once the signature is checked and the body parses.

    Bolt parses a body before it checks the signature, so a malformed unsigned body would reach
    its parser (500 and a traceback); here a bad signature is 401 and a body that does not parse
    is 400, both without touching Bolt.
    """
    handler = SlackRequestHandler(app, path=EVENTS_PATH)
    verifier = SignatureVerifier(signing_secret) if signing_secret else None

    def route(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return serving.text(start_response, "405 Method Not Allowed", b"method not allowed\n")
        try:
            raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        except ValueError:
            return serving.text(start_response, "400 Bad Request", b"bad content length\n")
        timestamp, signature = (
            environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP"),
            environ.get("HTTP_X_SLACK_SIGNATURE"),
        )
        if verifier is not None and not verifier.is_valid(raw, timestamp, signature):
            return serving.text(start_response, "401 Unauthorized", b"invalid signature\n")
        if not _parses(raw, environ.get("CONTENT_TYPE") or ""):
            log.info("http: a signed request whose body does not parse (%d bytes)", len(raw))
            return serving.text(start_response, "400 Bad Request", b"malformed body\n")
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(raw), str(len(raw))
        return handler(environ, start_response)

    return route


def _parses(raw: bytes, content_type: str) -> bool:
    """Whether Bolt can read the body: JSON, or a form whose `payload` (if any) is a JSON object."""
    try:
        body = raw.decode("utf-8")
        if "application/json" in content_type or body.startswith("{"):
            return isinstance(json.loads(body), dict)
        form = parse_qs(body, strict_parsing=bool(body))
        payload = form.get("payload")
        return payload is None or isinstance(json.loads(payload[0]), dict)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError among them
        return False


def http_routes(app: App, settings: Settings, metrics: Metrics | None = None) -> dict[str, WSGIApp]:
    """The HTTP mode's routes, path -> WSGI app; another endpoint is one more entry."""
    secret = settings.signing_secret.get_secret_value() if settings.signing_secret else None
    routes: dict[str, WSGIApp] = {
        EVENTS_PATH: slack_route(app, secret),
        "/healthz": serving.health(lambda: {"mode": "http"}),
    }
    if metrics is not None:
        routes["/metrics"] = serving.metrics_route(metrics.exposition, CONTENT_TYPE_LATEST)
    return routes


def http_server(
    app: App,
    settings: Settings,
    port: int,
    host: str = "0.0.0.0",
    metrics: Metrics | None = None,
    *,
    routes: dict[str, WSGIApp] | None = None,
) -> HttpServer:
    """Slack requests on /slack/events (signature checked), /healthz for probes, and with `metrics`
    the Prometheus exposition on /metrics; `routes` adds or replaces paths."""
    table = {**http_routes(app, settings, metrics), **(routes or {})}
    return HttpServer(serving.router(table), port, host)


def serve(
    settings: Settings,
    readiness: Readiness,
    *,
    port: int = 3000,
    host: str = "0.0.0.0",
    metrics_port: int = 0,
    say: Any = log.info,
) -> None:
    """Run until interrupted: Socket Mode with an app token, else HTTP; the digest scheduler beside it."""
    from bot.alerts.receiver import alert_routes
    from bot.exporter import start_beside
    from bot.observability import serve_observability
    from bot.scheduler import start_scheduler

    services = Services(readiness)
    try:
        app = build_app(settings, services)
    except BoltError as exc:  # auth.test refused the token, or Slack could not be reached
        raise SettingsError(f"Slack did not accept SLACK_BOT_TOKEN: {exc}") from None
    mode = "socket" if settings.socket_mode else "http"
    routes = alert_routes(services, app.client)
    observability = None
    if metrics_port:
        observability = serve_observability(
            services.metrics, metrics_port, health=lambda: {"mode": mode}, routes=routes
        )
    scheduler = start_scheduler(readiness, app.client, services.metrics)
    exporter = start_beside(readiness, services.metrics) if metrics_port else None
    try:
        if settings.socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            say("lsready serve: Socket Mode")
            token = settings.app_token.get_secret_value()  # type: ignore[union-attr]
            SocketModeHandler(app, token, ping_interval=SOCKET_PING_INTERVAL_S).start()
        else:
            server = http_server(app, settings, port, host, services.metrics, routes=routes)
            say(f"lsready serve: HTTP on {host}:{server.server_port}{EVENTS_PATH} (waitress)")
            server.serve_forever()
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        if observability is not None:
            observability.shutdown()
        if exporter is not None:
            exporter.stop()
        services.shutdown()
