"""No Redis or PostgreSQL probe writes: the data before and after running all of them is identical.

The probes run through the runner, as the least-privilege users of deploy/grants, against data
shaped like LangSmith's queues and tables. (ClickHouse is covered separately.)
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
from psycopg import sql
from test_probes_postgres import lsready_role
from test_probes_redis import lsready_redis_url, push_asynq_task, push_saq_job
from waiting import wait_until

from checks.clients import Clients
from checks.config import TargetConfig
from checks.model import Status
from checks.probes import postgres, redis
from checks.registry import load_catalog
from checks.runner import run_checks

CATALOG = load_catalog()
OUR_PROBES = set(redis.PROBES) | set(postgres.PROBES)


def redis_snapshot(admin: Any, redis_url: str) -> dict[str, Any]:
    """Every key of every database with its type, value and whether it expires, plus the change counter."""
    import redis as redis_py

    base = redis_url.rsplit("/", 1)[0]
    dump: dict[str, Any] = {}
    for db_name in admin.info("keyspace"):
        db = redis_py.Redis.from_url(f"{base}/{db_name[2:]}", decode_responses=True)
        dump[db_name] = {"dbsize": db.dbsize(), "keys": {k: _value(db, k) for k in db.scan_iter(count=500)}}
        db.close()
    # Any write to the dataset moves this counter; the session server never saves (--save "").
    dump["rdb_changes_since_last_save"] = admin.info("persistence")["rdb_changes_since_last_save"]
    return dump


def _value(r: Any, key: str) -> tuple[str, Any, bool]:
    kind = r.type(key)
    read = {
        "string": r.get,
        "list": lambda k: r.lrange(k, 0, -1),
        "hash": r.hgetall,
        "set": lambda k: sorted(r.smembers(k)),
        "zset": lambda k: r.zrange(k, 0, -1, withscores=True),
    }[kind]
    return kind, read(key), r.ttl(key) >= 0


def postgres_snapshot(url: str) -> dict[str, Any]:
    """Contents of every user table, the user relations, and the tuple write counters."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute("SELECT schemaname, relname FROM pg_stat_user_tables ORDER BY 1, 2").fetchall()
        contents = {
            f"{s}.{t}": conn.execute(
                sql.SQL("SELECT count(*), md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), ''))"
                        " FROM {} x").format(sql.Identifier(s, t))
            ).fetchone()
            for s, t in tables
        }  # fmt: skip
        writes = conn.execute(
            "SELECT sum(n_tup_ins), sum(n_tup_upd), sum(n_tup_del), sum(n_tup_hot_upd)"
            " FROM pg_stat_user_tables"
        ).fetchone()
        relations = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
        ).fetchone()
    return {"contents": contents, "tuple_writes": writes, "relations": relations}


def _table_writes(url: str, table: str) -> tuple[int, int] | None:
    """The table's inserted and deleted tuple counts as the statistics system shows them now."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT n_tup_ins, n_tup_del FROM pg_stat_user_tables WHERE relname = %s", [table]
        ).fetchone()


def _scans(url: str, table: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = %s", [table]
        ).fetchone()[0]


def _wait_flushed(admin_url: str, role_url: str, table: str) -> None:
    """Wait until the probes' sessions have exited and a later session's statistics are visible.

    A backend flushes its statistics as it exits: once the probes' sessions are gone and a sentinel
    scan made after that shows up, a write the probes made would show up too.
    """
    role = psycopg.conninfo.conninfo_to_dict(role_url)["user"]

    def sessions_gone() -> bool:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            left = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [role]).fetchone()
        return left[0] == 0

    wait_until(sessions_gone, what="the probes' sessions to exit")
    scans = _scans(admin_url, table)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    wait_until(lambda: _scans(admin_url, table) > scans, what="the sentinel scan's statistics")


def test_redis_and_postgres_probes_write_nothing(redis_client, redis_url, postgres_url):
    now = time.time()
    for age in (5, 7 * 3600):
        push_saq_job(redis_client, "default", now - age)
    push_asynq_task(redis_client, "ingest", now - 30)
    redis_client.set("sess:other-app", "1", ex=3600)
    table = f"lsr_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id int, note text)").format(sql.Identifier(table)))
        conn.execute(sql.SQL("INSERT INTO {} SELECT g, 'row ' || g FROM generate_series(1, 200) g").format(
            sql.Identifier(table)))  # fmt: skip
        conn.execute(sql.SQL("DELETE FROM {} WHERE id > 150").format(sql.Identifier(table)))
    wait_until(lambda: _table_writes(postgres_url, table) == (200, 50), what="the seed's statistics")
    try:
        with lsready_redis_url(redis_client, redis_url) as r_url, lsready_role(postgres_url) as pg_url:
            before = redis_snapshot(redis_client, redis_url), postgres_snapshot(postgres_url)
            clients = Clients(
                "t", TargetConfig.model_validate({"redis": {"url": r_url}, "postgres": {"url": pg_url}}), 10
            )
            items = [i for i in CATALOG.items if i.probe in OUR_PROBES]
            report = run_checks(CATALOG, clients, items=items, deadline_s=20)
            clients.close()
            _wait_flushed(postgres_url, pg_url, table)
            after = redis_snapshot(redis_client, redis_url), postgres_snapshot(postgres_url)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
    assert len(items) == len(OUR_PROBES)
    unknown = {r.item.id: r.summary for r in report.results if r.status is Status.UNKNOWN}
    assert not unknown, f"the least-privilege users could not run: {unknown}"
    assert after[0] == before[0]
    assert after[1] == before[1]
