"""HTTP serving: a path -> WSGI app table, and waitress (one process) sized for an incident's burst.

A route is a plain WSGI callable; adding one is one line in the table that `router` is given.
Waitress reads each request whole on its I/O thread before a worker sees it, so a slow or stalled
client never holds a worker, and bodies over `max_request_body_size` are refused with 413 there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]

# Sized for 80+ people typing a command in the same second: the backlog queues connections the
# accept loop has not reached yet, the threads run the (quick) acks, the connection limit bounds
# the sockets held open (keep-alive included), the body limit stops a client from filling memory.
THREADS = 16
BACKLOG = 1024
CONNECTION_LIMIT = 400
# Slack's largest payloads (a modal's state) are tens of KiB; an Alertmanager notification may be
# up to 2 MiB, and its receiver answers a larger one (up to this limit) with 400 itself.
MAX_BODY_BYTES = 8 << 20
CHANNEL_TIMEOUT_S = 30  # an idle keep-alive connection is closed after this


def text(start_response: Any, status: str, body: bytes, content_type: str = "text/plain") -> list[bytes]:
    """A short complete response."""
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def health(details: Callable[[], dict[str, object]] | None = None) -> WSGIApp:
    """GET /healthz: {"status": "ok", ...details}."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return text(start_response, "405 Method Not Allowed", b"method not allowed\n")
        body = json.dumps({"status": "ok", **(details() if details else {})}).encode()
        return text(start_response, "200 OK", body, "application/json")

    return app


def metrics_route(exposition: Callable[[], bytes], content_type: str) -> WSGIApp:
    """GET /metrics: the Prometheus exposition."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return text(start_response, "405 Method Not Allowed", b"method not allowed\n")
        return text(start_response, "200 OK", exposition(), content_type)

    return app


def router(routes: Mapping[str, WSGIApp]) -> WSGIApp:
    """Dispatch on the exact path; anything else is 404. `routes` is read at each request, so a
    route added after the server started is served."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        route = routes.get(environ.get("PATH_INFO") or "/")
        if route is None:
            return text(start_response, "404 Not Found", b"not found\n")
        return route(environ, start_response)

    return app


class HttpServer:
    """Waitress on one port, run by `serve_forever` (or `start` on a thread) until `shutdown`."""

    def __init__(
        self,
        app: WSGIApp,
        port: int,
        host: str = "0.0.0.0",
        *,
        threads: int = THREADS,
        backlog: int = BACKLOG,
        connection_limit: int = CONNECTION_LIMIT,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._server: BaseWSGIServer = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            backlog=backlog,
            connection_limit=connection_limit,
            max_request_body_size=max_body_bytes,
            channel_timeout=CHANNEL_TIMEOUT_S,
            ident="lsready",
            expose_tracebacks=False,
            clear_untrusted_proxy_headers=True,
        )
        self.host = host
        self.port = int(self._server.effective_port)  # type: ignore[attr-defined]
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._running = threading.Event()

    @property
    def server_port(self) -> int:
        return self.port

    @property
    def server_address(self) -> tuple[str, int]:
        return self.host, self.port

    def serve_forever(self) -> None:
        """Serve until `shutdown` (from another thread) or KeyboardInterrupt."""
        server = self._server
        self._running.set()
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=1.0, map=server._map, use_poll=True, count=1)
        finally:
            wasyncore.close_all(server._map)
            server.task_dispatcher.shutdown(timeout=5)
            self._stopped.set()

    def start(self) -> HttpServer:
        threading.Thread(target=self.serve_forever, name=f"http-{self.port}", daemon=True).start()
        return self

    def shutdown(self) -> None:
        """Stop accepting, finish the loop, close every connection; waits for the loop to end."""
        self._stop.set()
        with contextlib.suppress(OSError):  # already closed
            self._server.pull_trigger()
        if self._running.is_set():
            self._stopped.wait(10)
        else:
            wasyncore.close_all(self._server._map)

    def server_close(self) -> None:
        """Kept for callers written against socketserver; `shutdown` already closed everything."""
