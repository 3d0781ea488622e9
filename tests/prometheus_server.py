"""A real Prometheus (Debian's `prometheus`) for the tests and benches, on a free port.

It scrapes one `lsready` job (keep that name: `LsreadyDown` watches it), evaluates the rules it is
given, and sends what fires to an Alertmanager when one is named. Intervals come from the caller:
a test uses seconds, the alert chain bench the intervals of a production setup.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from processes import stop, wait_ready

from runbooks.demo.engines import free_port

BINARY = shutil.which("prometheus") or (
    "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
)
MISSING = "prometheus not found: install Debian's `prometheus` package (.ci/run does it in CI)"


class Prometheus:
    def __init__(
        self,
        directory: Path,
        rules: str,
        scrape: str,
        *,
        interval: str = "1s",
        scrape_timeout: str = "1s",
        alertmanager: str | None = None,
    ) -> None:
        """`rules`: a rules file's text; `scrape`: host:port of lsready's /metrics; `alertmanager`: a URL."""
        assert BINARY is not None, MISSING
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "lsready-rules.yml").write_text(rules)
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": interval,
                "evaluation_interval": interval,
                "scrape_timeout": scrape_timeout,
            },
            "rule_files": ["lsready-rules.yml"],
            "scrape_configs": [{"job_name": "lsready", "static_configs": [{"targets": [scrape]}]}],
        }
        if alertmanager is not None:
            target = urllib.parse.urlsplit(alertmanager).netloc
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = directory / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    BINARY,
                    f"--config.file={directory / 'prometheus.yml'}",
                    f"--storage.tsdb.path={directory / 'tsdb'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        wait_ready(self.proc, self.url + "/-/ready", self.log, "Prometheus")

    def _get(self, path: str) -> Any:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"prometheus exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}"
            )
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read())["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result; a range selector (`x[5m]`) gives every raw sample with its time."""
        return self._get(f"/api/v1/query?query={urllib.parse.quote(expr)}")["result"]  # type: ignore[no-any-return]

    def alerts(self, name: str) -> list[dict[str, Any]]:
        """The alerts of rule `name`, pending or firing."""
        return [a for a in self._get("/api/v1/alerts")["alerts"] if a["labels"]["alertname"] == name]

    def alert_names(self) -> set[str]:
        return {a["labels"]["alertname"] for a in self._get("/api/v1/alerts")["alerts"]}

    def close(self) -> None:
        stop(self.proc)
