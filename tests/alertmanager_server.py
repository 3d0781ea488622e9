"""A real Alertmanager (Debian's `prometheus-alertmanager`) for the tests, clustering off, on a free port.

Its one receiver is a webhook with a bearer token; the intervals are short so a test sees the first
notification, repeats and the resolution within seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from processes import stop, wait_ready

from runbooks.demo.engines import free_port

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
MISSING = "Alertmanager is not installed (apt-get install prometheus-alertmanager)"


class Alertmanager:
    def __init__(
        self,
        directory: Path,
        webhook_url: str,
        token: str,
        *,
        group_by: tuple[str, ...] = ("alertname", "lsready_target"),
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "2s",
    ) -> None:
        assert BINARY is not None, MISSING
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "route": {
                "receiver": "lsready",
                "group_by": list(group_by),
                "group_wait": group_wait,
                "group_interval": group_interval,
                "repeat_interval": repeat_interval,
            },
            "receivers": [
                {
                    "name": "lsready",
                    "webhook_configs": [
                        {
                            "url": webhook_url,
                            "send_resolved": True,
                            "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                        }
                    ],
                }
            ],
        }
        (directory / "alertmanager.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "alertmanager.log"
        self.proc = subprocess.Popen(
            [
                BINARY,
                f"--config.file={directory / 'alertmanager.yml'}",
                f"--storage.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no gossip: each instance is on its own
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )
        wait_ready(self.proc, self.url + "/-/ready", self.log, "Alertmanager", 20)

    def _api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}, method=method
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """What Prometheus does: POST /api/v2/alerts (endsAt in the past resolves an alert)."""
        self._api("POST", "/api/v2/alerts", alerts)

    def alerts(self) -> list[dict[str, Any]]:
        return self._api("GET", "/api/v2/alerts")

    def silences(self) -> list[dict[str, Any]]:
        return self._api("GET", "/api/v2/silences")

    def close(self) -> None:
        stop(self.proc)
