"""The whole alert chain on real servers, for the tests and the benches.

Prometheus scrapes lsready's exporter and evaluates the shipped rules (rendered from the config's
thresholds, as `lsready alert-rules` does), Alertmanager groups what fires and calls `lsready serve`'s
`POST /alertmanager`, which posts the alert to the fake Slack and triages in its thread. The caller
runs the exporter and picks the intervals.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from alertmanager_server import Alertmanager
from lsready_server import TOKEN, Serve
from prometheus_server import Prometheus
from slack_fake import Call, FakeSlack

from checks.config import validate
from checks.engine import catalog_for
from runbooks.alert_rules import render_rules

CHANNEL = "C0ALERTS01"


class AlertChain:
    def __init__(
        self,
        directory: Path,
        config: dict[str, Any],
        exporter: str,
        *,
        interval: str = "1s",
        scrape_timeout: str = "1s",
        group_wait: str = "1s",
    ) -> None:
        """`config`: lsready serve's (its thresholds also make the rules); `exporter`: host:port to scrape;
        `interval`: Prometheus's scrape and evaluation interval."""
        self._stack = contextlib.ExitStack()
        try:
            self.fake = FakeSlack()
            self._stack.callback(self.fake.close)
            served = {**config, "alerts": {**config.get("alerts", {}), "channel": CHANNEL}}
            self.serve = Serve(directory / "lsready", self.fake, served)
            self._stack.callback(self.serve.stop)
            # One notification per group: repeats are Alertmanager's own story (test_alertmanager_real).
            self.alertmanager = Alertmanager(
                directory / "alertmanager",
                self.serve.webhook,
                TOKEN,
                group_wait=group_wait,
                group_interval="5m",
                repeat_interval="4h",
            )
            self._stack.callback(self.alertmanager.close)
            self.serve.start()
            rules = render_rules(catalog_for(validate(config, "alert chain")))
            self.prometheus = Prometheus(
                directory / "prometheus",
                rules,
                exporter,
                interval=interval,
                scrape_timeout=scrape_timeout,
                alertmanager=self.alertmanager.url,
            )
            self._stack.callback(self.prometheus.close)
        except BaseException:
            self._stack.close()
            raise

    def __enter__(self) -> AlertChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _calls(self, method: str) -> list[Call]:
        return [c for c in list(self.fake.calls) if c.method == method and c.args.get("channel") == CHANNEL]

    def alert_posts(self, alertname: str | None = None) -> list[Call]:
        """The alert messages posted (top level of the channel), oldest first."""
        posts = [c for c in self._calls("chat.postMessage") if not c.args.get("thread_ts")]
        return [c for c in posts if alertname is None or alertname in (c.args.get("text") or "")]

    def alert_messages(self, alertname: str) -> list[dict[str, Any]]:
        """The alert messages of `alertname` as they are now (each with the `ts` Slack gave it)."""
        top = [m for (c, _), m in list(self.fake.messages.items()) if c == CHANNEL and not m.get("thread_ts")]
        return [m for m in top if alertname in (m.get("text") or "")]

    def thread(self, ts: str) -> list[dict[str, Any]]:
        """The messages in the thread of the message `ts`, as they are now."""
        return [m for m in list(self.fake.messages.values()) if m.get("thread_ts") == ts]

    def message(self, ts: str) -> dict[str, Any]:
        return self.fake.messages[(CHANNEL, ts)]

    def diagnosis_posted(self, ts: str) -> Call | None:
        """The update that put the finished triage (its diagnosis) in the thread of `ts`, if any yet."""
        replies = {m["ts"] for m in self.thread(ts)}
        for call in self._calls("chat.update"):
            if call.args.get("ts") in replies and "Finished in" in json.dumps(call.args.get("blocks")):
                return call
        return None
