"""A local Socket Mode endpoint speaking Slack's protocol, for `lsready serve` with an app token.

`apps.connections.open` on the FakeSlack Web API returns this server's URL (one per connection,
as Slack issues a fresh URL each time). On connect it sends `hello`; `send` delivers an envelope
(slash command, interactivity, event) to the live connection; the client's acks are recorded by
`envelope_id`. `refresh` sends a `disconnect` with reason `refresh_requested` (the client must
open a new connection, then this one is closed, as Slack does); `drop` cuts the live connection
without a closing handshake.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from typing import Any

from slack_fake import command_payload as command_payload  # what a Socket Mode test sends
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve


class FakeSocketMode:
    def __init__(self) -> None:
        self.connections: list[ServerConnection] = []  # every connection, in order
        self.acks: dict[str, dict[str, Any]] = {}  # envelope_id -> the client's ack message
        self.received: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server: Server = serve(self._handle, "127.0.0.1", 0, compression=None, ping_interval=None)
        self.port = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, name="fake-socket-mode", daemon=True).start()

    def url(self) -> str:
        """A fresh connection URL, as `apps.connections.open` issues one per connection."""
        return f"ws://127.0.0.1:{self.port}/link/?ticket={next(self._ids)}&app_id=A0000001"

    def close(self) -> None:
        self.server.shutdown()

    # --- the connection ------------------------------------------------------------------------

    def _handle(self, conn: ServerConnection) -> None:
        with self._lock:
            self.connections.append(conn)
        hello = {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 18060},
            "connection_info": {"app_id": "A0000001"},
        }
        conn.send(json.dumps(hello))
        try:
            for raw in conn:
                message = json.loads(raw)
                with self._lock:
                    self.received.append(message)
                    if message.get("envelope_id"):
                        self.acks[message["envelope_id"]] = message
        except ConnectionClosed:
            pass

    @property
    def live(self) -> ServerConnection | None:
        """The newest connection still open."""
        with self._lock:
            open_ = [c for c in self.connections if c.protocol.state.name == "OPEN"]
        return open_[-1] if open_ else None

    def wait_connected(self, count: int = 1, timeout: float = 30.0) -> ServerConnection:
        """The live connection once `count` connections have been made in all."""
        deadline = time.monotonic() + timeout
        while True:
            live = self.live
            if live is not None and len(self.connections) >= count:
                return live
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no connection #{count} within {timeout} s ({len(self.connections)} made)"
                )
            time.sleep(0.02)

    # --- what Slack sends ----------------------------------------------------------------------

    def send(
        self, kind: str, payload: dict[str, Any], *, envelope_id: str | None = None, retry: int = 0
    ) -> str:
        """Deliver an envelope (`slash_commands`, `interactive`, `events_api`); returns its id."""
        envelope_id = envelope_id or f"env-{next(self._ids)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            envelope |= {"retry_attempt": retry, "retry_reason": "timeout" if retry else ""}
        conn = self.wait_connected()
        conn.send(json.dumps(envelope))
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while envelope_id not in self.acks:
            if time.monotonic() > deadline:
                raise AssertionError(f"envelope {envelope_id} was not acked within {timeout} s")
            time.sleep(0.01)
        return self.acks[envelope_id]

    def refresh(self) -> None:
        """Slack's `disconnect` (refresh_requested): a new connection is expected, then this one ends."""
        conn = self.wait_connected()
        before = len(self.connections)
        conn.send(
            json.dumps({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "x"}})
        )
        self.wait_connected(before + 1)
        conn.close()

    def drop(self) -> None:
        """Cut the live connection: no closing handshake, as when a network path dies."""
        conn = self.wait_connected()
        with contextlib.suppress(OSError):
            conn.socket.shutdown(socket.SHUT_RDWR)
        conn.socket.close()
