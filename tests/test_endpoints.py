"""One parser per datastore URL: every form clients, probes and network checks are given."""

from __future__ import annotations

import pytest

from checks import endpoints


@pytest.mark.parametrize(
    ("url", "host", "port", "db", "tls", "socket"),
    [
        ("redis://langsmith-redis:6379/0", "langsmith-redis", 6379, 0, False, None),
        ("redis://:pw@redis.example/3", "redis.example", None, 3, False, None),
        ("redis://redis.example:6380?db=5", "redis.example", 6380, 5, False, None),
        ("rediss://user:s3cret@ls.cache.amazonaws.com:6380/2", "ls.cache.amazonaws.com", 6380, 2, True, None),
        ("redis://[::1]:6379/1", "::1", 6379, 1, False, None),
        ("unix:///var/run/redis.sock?db=3", None, None, 3, False, "/var/run/redis.sock"),
        ("unix:///var/run/redis%20x.sock", None, None, 0, False, "/var/run/redis x.sock"),
    ],
)
def test_redis_urls(url, host, port, db, tls, socket):
    ep = endpoints.redis(url)
    assert (ep.host, ep.port, ep.db, ep.tls, ep.socket) == (host, port, db, tls, socket)
    assert "s3cret" not in ep.display() and "pw" not in ep.display()


def test_redis_display_names_the_address_or_the_socket():
    assert endpoints.redis("redis://r.example/0").display() == "r.example:6379"
    assert endpoints.redis("unix:///var/run/redis.sock?db=3").display() == "unix socket /var/run/redis.sock"
    assert endpoints.redis("unix://").display() == "unix socket (no path)"


@pytest.mark.parametrize(
    ("url", "host", "hostaddr", "port", "socket", "abstract"),
    [
        ("postgresql://u:p@db.example:6432/x", "db.example", None, 6432, None, None),
        ("postgres://u@db.example/x?sslmode=require", "db.example", None, None, None, None),
        ("postgresql://u@[::1]:5433/x", "::1", None, 5433, None, None),
        ("postgresql://u@h1:5001,h2:5002/x", "h1", None, 5001, None, None),
        ("postgresql://u@/x?host=/run/pg&port=5433", None, None, 5433, "/run/pg", None),
        ("postgresql://u@%2Frun%2Fpg/x", None, None, None, "/run/pg", None),
        ("postgresql://u@ignored/x?hostaddr=10.0.0.5", "ignored", "10.0.0.5", None, None, None),
        ("postgresql://u@/x?host=@pgsock", None, None, None, None, "@pgsock"),
        ("postgresql://u@db.example/x?port=6432,6433", "db.example", None, 6432, None, None),
        ("postgresql://u@/x?host=h1,h2", "h1", None, None, None, None),
        ("postgresql://u@/db", None, None, None, None, None),
    ],
)
def test_postgres_urls_as_libpq_reads_them(url, host, hostaddr, port, socket, abstract):
    ep = endpoints.postgres(url)
    assert (ep.host, ep.hostaddr, ep.port, ep.socket, ep.abstract) == (host, hostaddr, port, socket, abstract)


def test_postgres_connects_to_hostaddr_and_never_shows_the_password():
    ep = endpoints.postgres("postgresql://langsmith:hunter22@db.example.com:6432/langsmith?hostaddr=10.1.2.3")
    assert ep.connect_host == "10.1.2.3" and ep.display() == "10.1.2.3:6432"
    assert "hunter22" not in ep.display() and "hunter22" not in repr(ep)
    assert endpoints.postgres("postgresql://u@/x?host=/run/pg").display() == "socket /run/pg"


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "database", "user"),
    [
        (
            "http://langsmith-clickhouse:8123/default",
            "langsmith-clickhouse",
            8123,
            False,
            "default",
            "default",
        ),
        ("https://ch.example/langsmith", "ch.example", 8443, True, "langsmith", "default"),
        ("http://ch.example", "ch.example", 8123, False, "default", "default"),
        ("https://ls%40corp:p%40ss@ch.example:9443/db", "ch.example", 9443, True, "db", "ls@corp"),
    ],
)
def test_clickhouse_urls(url, host, port, tls, database, user):
    ep = endpoints.clickhouse(url)
    assert (ep.host, ep.port, ep.tls, ep.database, ep.user) == (host, port, tls, database, user)
    assert not ep.embedded and ep.display() == f"{host}:{port}"


def test_clickhouse_password_is_decoded_for_the_client_but_kept_out_of_repr():
    ep = endpoints.clickhouse("https://u:p%40ss-w0rd@ch.example/db")
    assert ep.password == "p@ss-w0rd"
    assert "p@ss-w0rd" not in repr(ep) and "p@ss-w0rd" not in ep.display()


def test_chdb_urls_name_the_data_path_and_database():
    ep = endpoints.clickhouse("chdb:///tmp/ch?database=ls_test")
    assert ep.embedded and ep.embedded_path == "/tmp/ch" and ep.database == "ls_test"
    assert endpoints.clickhouse("chdb:///tmp/ch").database == "default"
