"""Concurrent writers and a SIGKILL mid-way lose no confirmed acknowledgement."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from storage.db import open_db

WORKER = """
import sys
from datetime import timedelta
from storage.acks import AckStore
from storage.db import open_db

store = AckStore(open_db(sys.argv[1]))
name = sys.argv[2]
for n in range(int(sys.argv[3])):
    ack = store.add("prod", f"item.{name}_{n}", name, valid_for=timedelta(days=90), note="x" * 200)
    print(f"OK {ack.id} {ack.item_id}", flush=True)
"""


def _spawn(db: Path, name: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(db), name, str(count)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip


def test_confirmed_acks_survive_concurrent_writers_and_a_sigkill(tmp_path):
    db = tmp_path / "lsready.db"
    open_db(db).conn.close()
    victim = _spawn(db, "victim", 100_000)
    others = [_spawn(db, f"w{n}", 150) for n in range(3)]
    confirmed: list[tuple[int, str]] = []
    deadline = time.monotonic() + 30
    # Let the victim confirm some acknowledgements, then kill it without warning.
    while len(confirmed) < 40 and time.monotonic() < deadline:
        line = victim.stdout.readline()
        if line.startswith("OK "):
            _, ack_id, item = line.split()
            confirmed.append((int(ack_id), item))
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    confirmed += [
        (int(a), i)
        for a, i in (ln.split()[1:] for ln in victim.stdout.read().splitlines() if ln.startswith("OK "))
    ]
    for proc in others:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        confirmed += [(int(a), i) for a, i in (ln.split()[1:] for ln in out.splitlines())]
    assert len(confirmed) >= 40 + 3 * 150

    reopened = open_db(db)
    assert reopened.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {(r[0], r[1]) for r in reopened.execute("SELECT id, item_id FROM acks")}
    missing = [c for c in confirmed if c not in stored]
    assert missing == []
