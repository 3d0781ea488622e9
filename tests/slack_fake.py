"""A local fake of the Slack Web API, and a harness that runs the real bot against it over HTTP.

The fake listens on 127.0.0.1 port 0, records every call (method and arguments, from the query
string, a form or JSON body), and answers like Slack: a `ts` for posted messages, the posted
message's metadata back from conversations.replies, an upload URL on itself for files_upload_v2,
members for usergroups.users.list, a Socket Mode URL for apps.connections.open (with a
`socket_mode` endpoint set). Response URLs (`respond`) and uploads land here too. A method can be
made slow (`delays`: Slack having a bad day) or fail (`errors`); `release` lets slowed calls answer.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
BOT_USER, BOT_ID, TEAM = "UBOT000001", "BBOT000001", "T0000001"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float = field(default_factory=time.monotonic)  # when the request arrived
    answered: float | None = None  # when the answer was sent (after any delay)


def _loads(value: Any) -> Any:
    """Form-encoded Web API arguments carry JSON as strings (blocks, metadata)."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class FakeSlack:
    def __init__(self, usergroups: dict[str, list[str]] | None = None) -> None:
        self.calls: list[Call] = []
        self.usergroups = usergroups or {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.uploads: dict[str, bytes] = {}
        self.errors: dict[str, str] = {}  # method -> Slack error code to answer with
        self.posted: list[tuple[str, str]] = []  # (channel, ts) of each chat.postMessage, in order
        self.delays: dict[str, float] = {}  # method -> seconds it takes to answer (Slack having a bad day)
        self._released = threading.Event()  # set: slowed methods answer at once from now on
        self.socket_mode: Any = None  # a FakeSocketMode: apps.connections.open hands out its URLs
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, body = fake._dispatch(parts.path, dict(parse_qsl(parts.query)), raw, self.headers)
                data = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.api_url = self.url + "/api/"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def response_url(self, name: str = "r1") -> str:
        return f"{self.url}/respond/{name}"

    # --- recording ---------------------------------------------------------------------------

    def requests(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c.args for c in self.calls if c.method == method]

    def wait_for(
        self,
        method: str,
        where: Callable[[dict[str, Any]], bool] = lambda a: True,
        *,
        count: int = 1,
        timeout: float = 15.0,
    ) -> list[dict[str, Any]]:
        """The matching calls once there are `count` of them; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = [a for a in self.requests(method) if where(a)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = sorted({c.method for c in self.calls})
                raise AssertionError(f"no {count} x {method} within {timeout} s; calls seen: {seen}")
            time.sleep(0.02)

    # --- answering ---------------------------------------------------------------------------

    def _dispatch(self, path: str, query: dict[str, str], raw: bytes, headers: Any) -> tuple[int, Any]:
        if path.startswith("/upload/"):
            file_id = path.rsplit("/", 1)[1]
            self.uploads[file_id] = raw
            self._record("upload", {"file_id": file_id, "size": len(raw)})
            return 200, b"OK"
        args: dict[str, Any] = dict(query)
        if raw:
            if "json" in (headers.get("Content-Type") or ""):
                args.update(json.loads(raw))
            else:
                args.update(dict(parse_qsl(raw.decode())))
        args = {k: _loads(v) for k, v in args.items()}
        if path.startswith("/respond/"):
            self._record("respond", {"url": path, **args})
            return 200, b"ok"
        method = path.removeprefix("/api/")
        call = self._record(method, args)
        if self.delays.get(method):
            self._released.wait(self.delays[method])
        try:
            if method in self.errors:
                return 200, {"ok": False, "error": self.errors[method]}
            return 200, {"ok": True, **self._answer(method, args)}
        finally:
            call.answered = time.monotonic()

    def _record(self, method: str, args: dict[str, Any]) -> Call:
        call = Call(method, args)
        with self._lock:
            self.calls.append(call)
        return call

    def release(self) -> None:
        """Slowed methods answer at once from now on (and those waiting, now)."""
        self._released.set()

    def first_answer(self, method: str) -> float:
        """When the first answer to `method` was sent (inf while none has been)."""
        with self._lock:
            done = [c.answered for c in self.calls if c.method == method and c.answered is not None]
        return min(done, default=float("inf"))

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        n = next(self._seq)
        if method == "apps.connections.open":
            if self.socket_mode is None:
                return {"ok": False, "error": "invalid_auth"}
            return {"url": self.socket_mode.url()}
        if method == "auth.test":
            return {
                "user_id": BOT_USER,
                "bot_id": BOT_ID,
                "team_id": TEAM,
                "user": "lsready",
                "url": "https://fake.slack.com/",
            }
        if method == "chat.postMessage":
            ts = f"1700000000.{n:06d}"
            channel = str(args.get("channel"))
            message = {
                "ts": ts,
                "text": args.get("text"),
                "blocks": args.get("blocks"),
                "bot_id": BOT_ID,
                "metadata": args.get("metadata"),
                "thread_ts": args.get("thread_ts"),
            }
            with self._lock:
                self.messages[(channel, ts)] = message
                self.posted.append((channel, ts))
            return {"channel": channel, "ts": ts, "message": message}
        if method == "chat.update":
            with self._lock:
                self.messages.get((str(args["channel"]), str(args["ts"])), {}).update(
                    {"text": args.get("text"), "blocks": args.get("blocks")}
                )
            return {"channel": args["channel"], "ts": args["ts"]}
        if method == "chat.postEphemeral":
            return {"message_ts": f"1700000001.{n:06d}"}
        if method == "conversations.replies":
            parent = dict(self.messages.get((str(args.get("channel")), str(args.get("ts"))), {}))
            if not parent:
                return {
                    "messages": [{"ts": args.get("ts"), "text": "someone else's message", "user": "UOTHER"}]
                }
            if str(args.get("include_all_metadata")).lower() not in ("1", "true"):
                parent.pop("metadata", None)
            return {"messages": [parent], "has_more": False}
        if method == "conversations.open":
            return {"channel": {"id": "D" + str(args.get("users"))[1:]}}
        if method == "usergroups.users.list":
            return {"users": self.usergroups.get(str(args.get("usergroup")), [])}
        if method in ("views.publish", "views.open", "views.update"):
            return {"view": {"id": f"V{n:08d}", **(args.get("view") or {})}}
        if method == "files.getUploadURLExternal":
            file_id = f"F{n:08d}"
            return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = args.get("files") or []
            return {"files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        return {}


# --- Signed requests into the bot ----------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: str
    elapsed: float
    done: float = field(default_factory=time.monotonic)  # when the response had been read

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def sign(body: str, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def command_payload(
    text: str, response_url: str, *, user: str = "U0000001", channel: str = "C0000001"
) -> dict[str, str]:
    """What Slack sends for `/langsmith <text>`, over HTTP (as a form) or Socket Mode (as JSON)."""
    return {
        "token": "x",
        "team_id": TEAM,
        "team_domain": "t",
        "channel_id": channel,
        "channel_name": "ops",
        "user_id": user,
        "user_name": "someone",
        "command": "/langsmith",
        "text": text,
        "api_app_id": "A0000001",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": "1.2.3",
    }


def send(
    url: str,
    body: str,
    content_type: str,
    *,
    secret: str = SIGNING_SECRET,
    timestamp: float | None = None,
    signature: str | None = None,
    omit: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
) -> Reply:
    """POST a body signed the way Slack signs it (or forged, stale, or without headers)."""
    ts = str(int(time.time() if timestamp is None else timestamp))
    sent = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature or sign(body, ts, secret),
        **(headers or {}),
    }
    for name in omit:
        sent.pop(name)
    request = urllib.request.Request(url, data=body.encode(), headers=sent, method="POST")
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return Reply(resp.status, resp.read().decode(), time.monotonic() - t0)
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read().decode(), time.monotonic() - t0)


class BotHarness:
    """The real Bolt app on a real socket, pointed at a FakeSlack; use as a context manager."""

    def __init__(self, config: Any, db_path: Path, *, usergroups: dict[str, list[str]] | None = None) -> None:
        from bot.alerts.receiver import alert_routes
        from bot.app import Services, build_app, http_server
        from bot.settings import load_settings
        from runbooks.readiness import Readiness

        self.fake = FakeSlack(usergroups)
        self.readiness = Readiness.open(config, db_path)
        settings = load_settings(
            {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": self.fake.api_url,
            }
        )
        self.services = Services(self.readiness)
        self.app = build_app(settings, self.services)
        routes = alert_routes(self.services, self.app.client)  # as `lsready serve` mounts them
        self.server = http_server(
            self.app, settings, 0, "127.0.0.1", self.services.metrics, routes=routes
        ).start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.url = self.base + "/slack/events"

    def __enter__(self) -> BotHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.server.shutdown()
        self.fake.release()  # nothing waits on a slowed method once the test is over
        self.services.pool.shutdown(wait=True)  # no listener may outlive the fake it talks to
        self.fake.close()

    def wait_idle(self, timeout: float = 15.0) -> None:
        """Until no check, triage or digest is running or waiting (a posted report's job may still be
        recording its audit entry when the message lands)."""
        deadline = time.monotonic() + timeout
        while self.services.pool.admitted:
            if time.monotonic() > deadline:
                raise AssertionError(f"slow work still running after {timeout} s")
            time.sleep(0.01)

    # --- what Slack would send -----------------------------------------------------------------

    def command(self, text: str, *, user: str = "U0000001", channel: str = "C0000001", **kw: Any) -> Reply:
        form = command_payload(text, self.fake.response_url(), user=user, channel=channel)
        return send(self.url, urlencode(form), "application/x-www-form-urlencoded", **kw)

    def interact(self, payload: dict[str, Any]) -> Reply:
        body = urlencode({"payload": json.dumps(payload)})
        return send(self.url, body, "application/x-www-form-urlencoded")

    def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str = "U0000001",
        channel: str = "C0000001",
        message_ts: str = "1700000000.000001",
        home: bool = False,
    ) -> Reply:
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "team_id": TEAM},
            "api_app_id": "A0000001",
            "team": {"id": TEAM},
            "trigger_id": "1.2.3",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "b",
                    "value": value,
                    "action_ts": "1700000002.0",
                }
            ],
        }
        if home:
            payload |= {"container": {"type": "view", "view_id": "V1"}, "view": {"id": "V1", "type": "home"}}
        else:
            payload |= {
                "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
                "channel": {"id": channel},
                "message": {"ts": message_ts, "text": "report"},
                "response_url": self.fake.response_url("action"),
            }
        return self.interact(payload)

    def submit(
        self,
        values: dict[str, Any],
        private_metadata: str,
        *,
        user: str = "U0000001",
        view_id: str | None = None,
    ) -> Reply:
        """A modal submitted; the same `view_id` again is the same modal submitted twice."""
        view = {
            "id": view_id or f"V{time.monotonic_ns()}",
            "hash": "1700000000.abcdef",
            "type": "modal",
            "callback_id": "lsready.ack.modal",
            "private_metadata": private_metadata,
            "state": {"values": values},
        }
        return self.interact(
            {
                "type": "view_submission",
                "user": {"id": user, "team_id": TEAM},
                "team": {"id": TEAM},
                "api_app_id": "A0000001",
                "view": view,
            }
        )

    def event(self, event: dict[str, Any], *, event_id: str | None = None, retry: int = 0) -> Reply:
        """An Events API delivery; `retry` > 0 is Slack delivering the same `event_id` again."""
        body = {
            "token": "x",
            "team_id": TEAM,
            "api_app_id": "A0000001",
            "type": "event_callback",
            "event_id": event_id or f"Ev{time.monotonic_ns()}",
            "event_time": int(time.time()),
            "event": event,
            "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
        }
        retried = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else None
        return send(self.url, json.dumps(body), "application/json", headers=retried)
