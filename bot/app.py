"""Wiring: the Bolt app from settings and services, the HTTP server, and `lsready serve`."""

from __future__ import annotations

import logging
import socketserver
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.error import BoltError
from slack_bolt.lazy_listener.thread_runner import ThreadLazyListenerRunner
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.listeners import actions, alerts, commands, errors, events, views
from bot.listeners.access import Access
from bot.listeners.common import Snapshots
from bot.listeners.work import Pools
from bot.observability import Metrics, WSGIApp
from bot.settings import Settings, SettingsError
from checks.config import Config
from checks.secrets import Redactor
from runbooks.readiness import Readiness

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
ACK_WORKERS = 16  # acks and the quick ordinary listeners (events, the modal's submission)
SLACK_TIMEOUT_S = 20  # each Web API call from the bot: posting, updating, uploading evidence
ACK_PATH_TIMEOUT_S = 2  # a Web API call made before an ack, which Slack wants within 3 s


class Services:
    """What the listeners use: readiness (config, store), the pools, metrics, access, snapshots.

    Bolt acks on `ack_pool`, which runs nothing slow, so an ack never waits behind a check; lazy
    listeners run on `pool`, which admits checks and triages to a bounded pool of their own.
    SQLite connections must not be shared between threads that use them at once: `readiness` is
    a Readiness per thread, each with its own connection to the same database (WAL, so readers
    never wait for the writer).
    """

    def __init__(self, readiness: Readiness, *, ack_workers: int = ACK_WORKERS) -> None:
        self._home, self._owner = readiness, threading.get_ident()
        self._local = threading.local()
        self.ack_pool = ThreadPoolExecutor(ack_workers, thread_name_prefix="lsready-ack")
        self.pool = Pools()
        self.metrics = Metrics()
        self.snapshots = Snapshots()
        self.access: Access | None = None
        self.redactor: Redactor = readiness.config.redactor()

    @property
    def config(self) -> Config:
        return self._home.config

    @property
    def readiness(self) -> Readiness:
        """This thread's Readiness: shared config and catalog, its own database connection."""
        if threading.get_ident() == self._owner:
            return self._home
        mine = getattr(self._local, "readiness", None)
        if mine is None:
            mine = self._local.readiness = self._home.open_for_thread()
        return mine

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.ack_pool.shutdown(wait=False, cancel_futures=True)


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
    # The modal's submission checks access before it acks: that lookup must give up well within 3 s.
    quick = WebClient(token=token, base_url=base_url, timeout=ACK_PATH_TIMEOUT_S, retry_handlers=[])
    services.access = Access(services.config.slack, quick)
    for module in (errors, commands, actions, views, events, alerts):
        module.register(app, services)
    return app


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


def http_server(
    app: App,
    port: int,
    host: str = "0.0.0.0",
    metrics: Metrics | None = None,
    routes: Mapping[str, WSGIApp] | None = None,
) -> WSGIServer:
    """Slack requests on /slack/events (Bolt verifies the signature), /healthz for probes, with
    `metrics` the Prometheus exposition on /metrics, and any extra `routes` (path -> WSGI app)."""
    slack = SlackRequestHandler(app, path=EVENTS_PATH)

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
        if routes and path in routes:
            return routes[path](environ, start_response)
        if path == "/healthz" and method in ("GET", "HEAD"):
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"status": "ok", "mode": "http"}']
        if path == "/metrics" and method in ("GET", "HEAD") and metrics is not None:
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [metrics.exposition()]
        return slack(environ, start_response)

    return make_server(host, port, wsgi, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)


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
    try:
        if settings.socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            say("lsready serve: Socket Mode")
            SocketModeHandler(app, settings.app_token.get_secret_value()).start()  # type: ignore[union-attr]
        else:
            server = http_server(app, port, host, services.metrics, routes)
            say(f"lsready serve: HTTP on {host}:{server.server_port}{EVENTS_PATH}")
            try:
                server.serve_forever()
            finally:
                server.server_close()
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        if observability is not None:
            observability.shutdown()
        services.shutdown()
