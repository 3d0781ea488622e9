"""`lsready demo`: real engines, a LangSmith-shaped schema, and the real checks against them."""

from __future__ import annotations

from checks.config import validate
from checks.engine import check
from checks.runner import Report
from runbooks.demo.engines import Engines, chdb_url
from runbooks.demo.schema import build_clickhouse, build_postgres, build_redis


def run_demo() -> Report:
    """Start the embedded engines, give them LangSmith's shape, check them, stop them."""
    import clickhouse_connect
    import redis

    engines = Engines.start()
    try:
        ch = clickhouse_connect.get_client(dsn=chdb_url(engines.clickhouse_dir))
        build_clickhouse(ch)
        build_postgres(engines.postgres.psql)
        build_redis(redis.Redis.from_url(engines.redis.url))
        config = validate(
            {
                "default_target": "demo",
                "targets": {
                    "demo": {
                        "redis": {"url": engines.redis.url},
                        "postgres": {"url": engines.postgres.url},
                        "clickhouse": {"url": chdb_url(engines.clickhouse_dir)},
                    }
                },
            },
            "demo",
        )
        return check(config)
    finally:
        engines.stop()
