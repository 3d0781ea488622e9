"""The backup-and-restore item's evidence: each store's latest backup, read on the real engines."""

from checks.clients import Clients
from checks.config import TargetConfig
from checks.model import Status
from checks.probes import backups


def _clients(**sections):
    return Clients("t", TargetConfig.model_validate(sections), timeout_s=5)


def test_each_store_shows_its_latest_backup_and_a_person_attests_the_restore(
    redis_url, redis_client, postgres_url, clickhouse
):
    ch_url, _, _ = clickhouse
    redis_client.save()  # an RDB snapshot now
    clients = _clients(redis={"url": redis_url}, postgres={"url": postgres_url}, clickhouse={"url": ch_url})
    try:
        ev = backups.evidence(clients, {})
    finally:
        clients.close()
    assert ev.status is Status.MANUAL and "attest" in ev.summary
    assert "ClickHouse: no BACKUP since it started" in ev.summary
    assert "Redis: RDB saved" in ev.summary and ev.observed["redis"]["rdb_last_save_age_s"] < 60
    assert ev.observed["redis"]["rdb_last_bgsave_status"] == "ok"
    assert "PostgreSQL: WAL archiving off" in ev.summary and ev.observed["postgres"]["archive_mode"] == "off"
    assert ev.observed["clickhouse"]["recent"] == []


def test_an_unreachable_store_is_named_and_the_others_still_shown(postgres_url, unused_port):
    clients = _clients(redis={"url": f"redis://127.0.0.1:{unused_port}/0"}, postgres={"url": postgres_url})
    try:
        ev = backups.evidence(clients, {})
    finally:
        clients.close()
    assert ev.status is Status.MANUAL
    assert "redis: could not be reached (connection refused)" in ev.summary
    assert "PostgreSQL: WAL archiving off" in ev.summary
    assert "clickhouse" not in ev.observed  # not configured: not mentioned


def test_with_no_store_configured_it_says_so():
    ev = backups.evidence(_clients(), {})
    assert ev.status is Status.MANUAL and "no datastore is configured to look at" in ev.summary


def test_a_store_that_never_answers_costs_only_its_own_line(postgres_url, blackhole):
    clients = Clients(
        "t",
        TargetConfig.model_validate(
            {"redis": {"url": f"redis://127.0.0.1:{blackhole.port}/0"}, "postgres": {"url": postgres_url}}
        ),
        timeout_s=1,
    )
    try:
        ev = backups.evidence(clients, {})
    finally:
        clients.close()
    assert "redis: no answer within 0.8 s" in ev.summary
    assert "PostgreSQL: WAL archiving off" in ev.summary
