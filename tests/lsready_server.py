"""lsready's own servers for the tests and benches: `lsready serve` as a process of its own, and the
exporter (`lsready exporter`'s `run_exporter`) on a thread of the test process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from processes import stop, wait_ready
from slack_fake import BOT_TOKEN, SIGNING_SECRET, TEAM, FakeSlack, send
from waiting import wait_until

from bot.exporter import run_exporter
from checks.config import Config
from runbooks.demo.engines import free_port

TOKEN = "am-real-token-0123456789"  # LSREADY_ALERTMANAGER_TOKEN of the served bot


class Serve:
    """`lsready serve` in HTTP mode as its own process, Slack pointed at the fake; restartable.

    Its Alertmanager receiver (`webhook`) is on the metrics port, with bearer token TOKEN.
    """

    def __init__(self, directory: Path, fake: FakeSlack, config: dict[str, Any]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "lsready.yaml").write_text(yaml.safe_dump(config))
        self.port, self.metrics_port = free_port(), free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LSREADY_", "SLACK_"))},
            "LSREADY_CONFIG": str(directory / "lsready.yaml"),
            "LSREADY_DATA_DIR": str(directory / "data"),
            "LSREADY_ALERTMANAGER_TOKEN": TOKEN,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake.api_url,
        }
        self.log = directory / "serve.log"
        self.webhook = f"http://127.0.0.1:{self.metrics_port}/alertmanager"
        self.events = f"http://127.0.0.1:{self.port}/slack/events"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        lsready = str(Path(sys.executable).parent / "lsready")
        args = [lsready, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--metrics-port", str(self.metrics_port)]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL, stderr=log)
        # The Slack port binds after the metrics port: a click before it would be refused.
        for port in (self.metrics_port, self.port):
            wait_ready(self.proc, f"http://127.0.0.1:{port}/healthz", self.log, "lsready serve")

    def stop(self) -> None:
        stop(self.proc)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()  # type: ignore[no-any-return]

    def click(
        self, action_id: str, value: str, *, channel: str, message_ts: str, user: dict[str, str]
    ) -> None:
        payload = {
            "type": "block_actions",
            "user": {**user, "team_id": TEAM},
            "api_app_id": "A0000001",
            "team": {"id": TEAM},
            "trigger_id": "1.2.3",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "channel": {"id": channel},
            "message": {"ts": message_ts, "text": "alert"},
            "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value,
                         "action_ts": "1700000002.0"}],
        }  # fmt: skip
        form = urlencode({"payload": json.dumps(payload)})
        reply = send(self.events, form, "application/x-www-form-urlencoded")
        assert reply.status == 200, reply.body


def _health(port: int) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return json.loads(resp.read())
    except OSError:  # not listening yet
        return None


@contextmanager
def exporter_thread(config: Config, timeout: float = 30.0) -> Iterator[int]:
    """The exporter on a loopback port, on a thread of this process; yields the port once every
    target was read."""
    port = free_port()
    halt = threading.Event()
    thread = threading.Thread(
        target=run_exporter,
        args=(config,),
        kwargs={"port": port, "host": "127.0.0.1", "stop": halt, "say": lambda line: None},
        daemon=True,
    )
    thread.start()
    try:
        wait_until(lambda: (h := _health(port)) and h["refreshed"], timeout=timeout, what="the exporter")
        yield port
    finally:
        halt.set()
        thread.join(10)
