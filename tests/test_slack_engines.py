"""`/langsmith check` and `status` end to end: Slack request in, real Redis/PostgreSQL/ClickHouse probed."""

import json

import pytest
from slack_fake import BotHarness

from bot import actions as ids
from conftest import make_config


@pytest.fixture
def bot(tmp_path, redis_client, redis_url, postgres_url, clickhouse):
    ch_url, admin, db = clickhouse
    admin.command(
        f"CREATE TABLE `{db}`.schema_migrations (version Int64, dirty UInt8, sequence UInt64) "
        "ENGINE = MergeTree ORDER BY sequence"
    )
    admin.command(f"INSERT INTO `{db}`.schema_migrations VALUES (1, 0, 1), (2, 1, 2)")
    redis_client.config_set("maxmemory", "512mb")
    target = {"redis": {"url": redis_url}, "postgres": {"url": postgres_url}, "clickhouse": {"url": ch_url}}
    with BotHarness(make_config({"local": target}), tmp_path / "lsready.db") as harness:
        yield harness


def test_check_against_real_engines_reports_the_dirty_migration_and_keeps_the_evidence(bot):
    assert bot.command("check local").elapsed < 2.5
    report = bot.fake.wait_for("chat.postMessage", timeout=60)[0]
    text = json.dumps(report["blocks"])
    assert ":rotating_light: *Required items failing:*" in text and "`clickhouse.migrations`" in text
    assert ":x: `clickhouse.migrations`" in text and "force 2" in text
    evidence = next(
        e for b in report["blocks"] for e in b.get("elements", []) if e.get("action_id") == ids.EVIDENCE
    )
    bot.click(evidence["action_id"], evidence["value"])
    upload = bot.fake.wait_for("upload")[0]
    results = {r["id"]: r for r in json.loads(bot.fake.uploads[upload["file_id"]])["data"]["results"]}
    assert results["redis.memory_sized"]["status"] == "pass"
    assert results["redis.memory_sized"]["evidence"]["maxmemory"] == 512 * 1024 * 1024
    assert results["postgres.max_connections"]["status"] == "pass"
    stored = bot.readiness.history.latest("local")
    assert stored.statuses["clickhouse.migrations"] == "fail"


def test_status_against_real_engines_names_the_failing_required_item(bot):
    bot.command("status")
    status = bot.fake.wait_for("chat.postMessage", timeout=60)[0]
    text = json.dumps(status["blocks"])
    assert "Readiness status: local" in text and ":x: `clickhouse.migrations` _required_" in text
