"""What the benches share: result rows, percentiles, temp dirs, and a real `lsready serve` to talk to."""

from __future__ import annotations

import contextlib
import operator
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from runbooks.demo.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Row:
    """One measured figure: its value, the target it is held to, and whether it met it."""

    bench: str
    figure: str
    value: float | None
    unit: str
    target: str = ""  # e.g. "< 300"; empty for a figure reported for context only
    met: bool | None = None  # None: no target, or nothing was measured
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def row(
    bench: str,
    figure: str,
    value: float | None,
    unit: str,
    op: str | None = None,
    limit: float | None = None,
    note: str = "",
) -> Row:
    """A Row whose `met` is `value op limit` (None when there is no target or no value)."""
    if op is None or limit is None:
        return Row(bench, figure, _round(value), unit, note=note)
    met = None if value is None else OPS[op](value, limit)
    shown = f"{limit:,.0f}" if float(limit).is_integer() else f"{limit:g}"
    return Row(bench, figure, _round(value), unit, f"{op} {shown}", met, note)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


@dataclass
class Result:
    """What one bench hands back: its rows and the raw measurements behind them."""

    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), interpolating between closest ranks like numpy's default."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    return percentile(values, 50)


def say(text: str) -> None:
    """Progress on stderr, so stdout stays for the table."""
    print(f"  {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def temp_dir(prefix: str = "lsb-") -> Iterator[Path]:
    """A short temp dir (Unix socket paths must stay under ~100 characters), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def testkit() -> Any:
    """tests/slack_fake.py: the fake Slack Web API and signed requests of the test suite, by path."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import slack_fake

    return slack_fake


def blackhole() -> Any:
    """The test suite's TCP black hole (accepts, never answers), from tests/conftest.py."""
    testkit()
    from conftest import Blackhole

    return Blackhole()


def calls(fake: Any, method: str, where: Callable[[dict[str, Any]], bool] = lambda a: True) -> list[Any]:
    """The fake's recorded calls of `method` (with their arrival time `at`), oldest first."""
    return [c for c in list(fake.calls) if c.method == method and where(c.args)]


def wait_until(test: Callable[[], Any], timeout: float, step: float = 0.01) -> Any:
    """`test()`'s first truthy value, or None once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = test()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


# --- Memory ----------------------------------------------------------------------------------

# Shared libraries only the embedded ClickHouse (chdb) loads; a production bot talks HTTP instead.
ENGINE_LIBS = ("/chdb/", "/chdb_core.libs/", "/pyarrow/", "/pyarrow.libs/")
_MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def rss_mb(pid: int) -> tuple[float, float]:
    """(total RSS, RSS of the embedded engine's library mappings) of a process, in MiB, from smaps."""
    total = engine = 0
    current = ""
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            if _MAPPING.match(line):
                parts = line.split()
                current = parts[5] if len(parts) > 5 else ""
            elif line.startswith("Rss:"):
                kb = int(line.split()[1])
                total += kb
                if any(lib in current for lib in ENGINE_LIBS):
                    engine += kb
    return total / 1024, engine / 1024


# --- A real `lsready serve` --------------------------------------------------------------------

_LISTENING = re.compile(r"HTTP on [\d.]+:(\d+)/slack/events")


# Run bot.cli with some top-level packages unimportable, as if not installed (see Serve's `absent`).
_ABSENT_BOOT = """
import runpy, sys
absent = set(sys.argv[1].split(","))
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in absent:
            raise ModuleNotFoundError(f"No module named {name!r} (absent for the bench)", name=name)
sys.meta_path.insert(0, Absent())
del sys.argv[1]
runpy.run_module("bot.cli", run_name="__main__", alter_sys=True)
"""


class Serve:
    """`lsready serve` in HTTP mode on a loopback port, its Slack Web API a FakeSlack in this process.

    `absent` names top-level packages the bot must find uninstalled (e.g. the demo extra's chdb and
    what only it pulls in), so the process looks like a production install.
    """

    def __init__(
        self,
        config: dict[str, Any],
        workdir: Path,
        fake: Any,
        start_timeout: float = 60,
        absent: tuple[str, ...] = (),
        metrics_port: int = 0,
    ) -> None:
        kit = testkit()
        self.fake = fake
        config = {**config, "storage": {"path": str(workdir / "lsready.db")}}
        config_path = workdir / "lsready.yaml"
        config_path.write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LSREADY_", "SLACK_"))}
        env |= {
            "SLACK_BOT_TOKEN": kit.BOT_TOKEN,
            "SLACK_SIGNING_SECRET": kit.SIGNING_SECRET,
            "SLACK_API_URL": fake.api_url,
            "PYTHONUNBUFFERED": "1",
            "MALLOC_ARENA_MAX": "2",  # as the image sets it (Dockerfile)
        }
        self.log_path = workdir / "serve.log"
        boot = ["-c", _ABSENT_BOOT, ",".join(absent)] if absent else ["-m", "bot.cli"]
        args = [
            sys.executable,
            *boot,
            "--config",
            str(config_path),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--metrics-port",
            str(metrics_port),
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        port = wait_until(self._port, start_timeout, 0.05)
        if not port:
            self.stop()
            raise RuntimeError(f"lsready serve did not start; its log:\n{self.log()[-2000:]}")
        self.url = f"http://127.0.0.1:{port}/slack/events"

    def _port(self) -> int | None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"lsready serve exited with {self.proc.returncode}:\n{self.log()[-2000:]}")
        found = _LISTENING.search(self.log())
        return int(found.group(1)) if found else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def command(self, text: str) -> Any:
        """A signed `/langsmith <text>` as Slack sends it; the reply carries the time to the ack."""
        kit = testkit()
        # BotHarness.command builds and signs the form from `fake` and `url` only: reuse it as is.
        return kit.BotHarness.command(SimpleNamespace(fake=self.fake, url=self.url), text)

    def rss_mb(self) -> tuple[float, float]:
        return rss_mb(self.proc.pid)

    def stop(self) -> None:
        stop_process(self.proc, 5, sig=signal.SIGINT)  # KeyboardInterrupt: serve shuts its pools down
