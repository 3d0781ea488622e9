"""The first probe of each datastore, in a passing and a failing state made by real operations."""

import psycopg

from checks.clients import Clients
from checks.config import TargetConfig
from checks.model import Status
from checks.probes import clickhouse, postgres, redis
from checks.registry import load_catalog

CATALOG = load_catalog()


def _clients(**sections):
    return Clients("t", TargetConfig.model_validate(sections), timeout_s=5)


def test_redis_unbounded_maxmemory_warns_and_bounded_passes(redis_client, redis_url):
    params = CATALOG.get("redis.memory_sized").thresholds
    redis_client.config_set("maxmemory", 0)
    ev = redis.memory(_clients(redis={"url": redis_url}), params)
    assert ev.status is Status.WARN and "maxmemory is 0" in ev.summary
    redis_client.config_set("maxmemory", "1gb")
    assert redis.memory(_clients(redis={"url": redis_url}), params).status is Status.PASS


def test_redis_memory_near_limit_fails(redis_client, redis_url):
    params = CATALOG.get("redis.memory_sized").thresholds
    redis_client.set("payload", "x" * 2_000_000)
    used = redis_client.info("memory")["used_memory"]
    redis_client.config_set("maxmemory", int(used / 0.97))
    ev = redis.memory(_clients(redis={"url": redis_url}), params)
    assert ev.status is Status.FAIL
    assert ev.observed["used_ratio"] >= 0.95


def test_postgres_connections_pass_then_fail_as_connections_open(postgres_url):
    clients = _clients(postgres={"url": postgres_url})
    max_conn = clients.postgres.query("SELECT current_setting('max_connections')::int AS m")[0]["m"]
    # Fail when a quarter of the usable connections are in use.
    params = {"warn_ratio": 0.1, "fail_ratio": 0.25}
    assert postgres.PROBES["postgres.max_connections"](clients, params).status is Status.PASS
    held = [psycopg.connect(postgres_url) for _ in range(int(max_conn * 0.3))]
    try:
        ev = postgres.max_connections(clients, params)
        assert ev.status is Status.FAIL
        assert ev.observed["in_use"] >= len(held)
    finally:
        for conn in held:
            conn.close()
    clients.close()


def test_clickhouse_migrations_clean_dirty_and_missing(clickhouse):
    url, admin, db = clickhouse
    clients = _clients(clickhouse={"url": url})
    missing = clickhouse_probe(clients)
    assert missing.status is Status.FAIL and "no schema_migrations" in missing.summary
    admin.command(f"CREATE TABLE `{db}`.schema_migrations (version Int64, dirty UInt8, sequence UInt64) "
                  "ENGINE = MergeTree ORDER BY sequence")  # fmt: skip
    admin.command(f"INSERT INTO `{db}`.schema_migrations VALUES (41, 0, 1), (42, 1, 2)")
    dirty = clickhouse_probe(clients)
    assert dirty.status is Status.FAIL and dirty.observed == {"database": db, "version": 42, "dirty": True}
    assert "migrate ... force 42" in dirty.summary
    admin.command(f"INSERT INTO `{db}`.schema_migrations VALUES (42, 0, 3)")
    assert clickhouse_probe(clients).status is Status.PASS


def clickhouse_probe(clients):
    return clickhouse.PROBES["clickhouse.migrations"](clients, {})
