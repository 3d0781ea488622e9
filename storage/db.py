"""Open the SQLite store and bring its schema up to date; WAL, so readers never block the writer."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

DEFAULT_NAME = "lsready.db"

# Each step moves the schema one version up; a database records its version in PRAGMA user_version.
MIGRATIONS: list[list[str]] = [
    [  # 1: acknowledgements, check history, audit log
        """CREATE TABLE acks (
            id INTEGER PRIMARY KEY,
            target TEXT NOT NULL,
            item_id TEXT NOT NULL,
            by TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            evidence_link TEXT,
            created TEXT NOT NULL,
            expires TEXT,
            channel TEXT,
            thread_ts TEXT,
            revoked TEXT,
            revoked_by TEXT
        )""",
        "CREATE INDEX acks_target_item ON acks (target, item_id)",
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            target TEXT NOT NULL,
            started_at TEXT NOT NULL,
            duration_s REAL NOT NULL,
            score TEXT NOT NULL
        )""",
        "CREATE INDEX runs_target_started ON runs (target, started_at)",
        """CREATE TABLE results (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            item_id TEXT NOT NULL,
            status TEXT NOT NULL,
            summary TEXT NOT NULL,
            evidence TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (run_id, item_id)
        )""",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT,
            detail TEXT NOT NULL DEFAULT '',
            place TEXT,
            outcome TEXT NOT NULL
        )""",
        "CREATE INDEX audit_at ON audit (at)",
    ],
    [  # 2: exactly one digest per scheduled slot; one reminder per acknowledgement and kind
        """CREATE TABLE digests_sent (
            target TEXT NOT NULL,
            slot TEXT NOT NULL,
            sent_at TEXT NOT NULL,
            channel TEXT,
            message_ts TEXT,
            run_id INTEGER,
            PRIMARY KEY (target, slot)
        )""",
        """CREATE TABLE reminders_sent (
            ack_id INTEGER NOT NULL REFERENCES acks(id),
            kind TEXT NOT NULL,
            sent_at TEXT NOT NULL,
            PRIMARY KEY (ack_id, kind)
        )""",
    ],
    [  # 3: effects done once: a Slack retry or a resubmission finds its key and writes nothing
        """CREATE TABLE effects (
            key TEXT PRIMARY KEY,
            at TEXT NOT NULL
        )""",
    ],
    [  # 4: one Slack thread per open Alertmanager alert group
        """CREATE TABLE alert_threads (
            id INTEGER PRIMARY KEY,
            group_key TEXT NOT NULL,
            claimed_at TEXT NOT NULL,
            channel TEXT NOT NULL,
            message_ts TEXT,
            target TEXT NOT NULL,
            runbook TEXT NOT NULL,
            alertname TEXT NOT NULL,
            severity TEXT NOT NULL DEFAULT '',
            summary TEXT NOT NULL DEFAULT '',
            group_labels TEXT NOT NULL DEFAULT '{}',
            external_url TEXT NOT NULL DEFAULT '',
            started_at TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            notifications INTEGER NOT NULL DEFAULT 1,
            firing INTEGER NOT NULL DEFAULT 0,
            triaged_at TEXT,
            diagnosis TEXT,
            snapshot TEXT,
            resolved_at TEXT
        )""",
        # Alertmanager HA pairs deliver each notification twice: only one open thread per group.
        "CREATE UNIQUE INDEX alert_threads_open ON alert_threads (group_key) WHERE resolved_at IS NULL",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


class StorageError(Exception):
    """The store cannot be opened or written; the message says where and why."""


def default_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("LSREADY_DATA_DIR")
    return Path(base) / DEFAULT_NAME if base else Path(DEFAULT_NAME)


def open_db(path: str | Path | None = None, *, upto: int = SCHEMA_VERSION) -> sqlite_utils.Database:
    """Open (creating if needed) and migrate to `upto` (the latest unless a test asks for less)."""
    path = Path(path) if path is not None else default_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=10, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: an acknowledgement confirmed to its caller survives a crash or power loss.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, upto)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the lsready database at {path}: {exc}") from None
    except OSError as exc:
        raise StorageError(f"cannot open the lsready database at {path}: {exc.strerror}") from None
    return sqlite_utils.Database(conn)


def migrate(conn: sqlite3.Connection, upto: int = SCHEMA_VERSION) -> int:
    """Apply pending migrations, each in its own transaction; return the resulting version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"the database schema is version {version}, newer than this lsready ({SCHEMA_VERSION}); "
            "upgrade lsready"
        )
    for number in range(version + 1, upto + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while this one waited for the lock.
            if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                conn.execute("ROLLBACK")
                continue
            for statement in MIGRATIONS[number - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return conn.execute("PRAGMA user_version").fetchone()[0]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat(timespec="seconds") if dt is not None else None


def parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
