import json

import click
import pytest
from click.testing import CliRunner

from bot.cli import cli


def _config(tmp_path, redis_url, postgres_url, ch_url, extra=""):
    path = tmp_path / "lsready.yaml"
    path.write_text(f"""
default_target: local
targets:
  local:
    redis: {{url: "{redis_url}"}}
    postgres: {{url: "{postgres_url}"}}
    clickhouse: {{url: "{ch_url}"}}
{extra}""")
    return str(path)


def test_check_json_against_real_engines_has_the_documented_shape(tmp_path, redis_client, redis_url,
                                                                   postgres_url, clickhouse):  # fmt: skip
    ch_url, admin, db = clickhouse
    admin.command(f"CREATE TABLE `{db}`.schema_migrations (version Int64, dirty UInt8, sequence UInt64) "
                  "ENGINE = MergeTree ORDER BY sequence")  # fmt: skip
    admin.command(f"INSERT INTO `{db}`.schema_migrations VALUES (1, 0, 1), (2, 1, 2)")
    redis_client.config_set("maxmemory", "512mb")
    path = _config(tmp_path, redis_url, postgres_url, ch_url)
    result = CliRunner().invoke(cli, ["--config", path, "check", "--format", "json"], obj={})
    data = json.loads(result.output)
    assert set(data) >= {"target", "results", "score"}
    assert data["target"] == "local"
    assert len(data["results"]) == 69
    for r in data["results"]:
        assert set(r) >= {"id", "status", "summary", "evidence", "remediation"}
    by_id = {r["id"]: r for r in data["results"]}
    assert by_id["redis.memory_sized"]["status"] == "pass"
    assert by_id["redis.memory_sized"]["evidence"]["maxmemory"] == 512 * 1024 * 1024
    assert by_id["postgres.max_connections"]["status"] == "pass"
    assert by_id["clickhouse.migrations"]["status"] == "fail"
    assert "force 2" in by_id["clickhouse.migrations"]["summary"]
    # A required item fails (dirty migrations), so the exit code says so.
    assert "clickhouse.migrations" in data["score"]["required_failing"]
    assert result.exit_code == 1


def test_section_filter_and_fail_under(tmp_path, redis_client, redis_url, postgres_url, clickhouse):
    ch_url, _, _ = clickhouse
    path = _config(tmp_path, redis_url, postgres_url, ch_url)
    result = CliRunner().invoke(
        cli, ["--config", path, "check", "--section", "2", "--format", "json"], obj={}
    )
    data = json.loads(result.output)
    assert {r["section"] for r in data["results"]} == {"2"}
    assert result.exit_code == 0
    under = CliRunner().invoke(
        cli, ["--config", path, "check", "--section", "2", "--fail-under", "99"], obj={}
    )
    assert under.exit_code == 1


def test_bad_config_exits_2_with_one_line_naming_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("targets:\n  prod:\n    postgres: {url: 'mysql://x'}\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "check"], obj={})
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "targets.prod.postgres.url" in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["check", "--format", "yaml"], "Invalid value for '--format'"),
        (["check", "--nope"], "No such option '--nope'"),
        (["--nope"], "No such option '--nope'"),
        (["chek"], "No such command 'chek'"),
        (["ack"], "Missing argument 'ITEM_ID'"),
    ],
)
def test_usage_errors_exit_2_with_one_line_saying_where_help_is(args, says):
    result = CliRunner().invoke(cli, args, obj={})
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "--help" in lines[0], result.output


def test_bare_lsready_shows_the_help_untouched():
    result = CliRunner().invoke(cli, [], obj={})
    assert result.output.startswith("Usage: ") and "lsready: Usage" not in result.output
    assert "check" in result.output and "triage" in result.output


def test_unknown_threshold_key_is_a_config_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("targets: {a: {}}\nthresholds: {redis.memory_sized: {warn: 1}}\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "config", "check"], obj={})
    assert result.exit_code == 2
    assert "thresholds.redis.memory_sized: unknown key(s) warn" in result.output


def test_config_check_lists_targets(tmp_path, redis_url):
    path = tmp_path / "c.yaml"
    path.write_text(f"targets: {{a: {{redis: {{url: '{redis_url}'}}}}}}\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "config", "check"], obj={})
    assert result.exit_code == 0
    assert "target a (default): redis" in result.output


def test_unknown_section_gets_a_suggestion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("targets: {a: {}}\n")
    result = CliRunner().invoke(
        cli, ["--config", str(path), "check", "--section", "redis.memory_sizd"], obj={}
    )
    assert result.exit_code == 2
    assert "Did you mean 'redis.memory_sized'?" in result.output


def test_unknown_target_is_a_usage_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("targets: {a: {}}\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "check", "--target", "b"], obj={})
    assert result.exit_code == 2
    assert "unknown target 'b'; configured targets: a" in result.output


def test_junit_output_marks_failures_and_unknowns(tmp_path):
    import xml.etree.ElementTree as ET

    path = tmp_path / "c.yaml"
    path.write_text("targets: {a: {}}\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "check", "--format", "junit"], obj={})
    root = ET.fromstring(result.output.split("\n", 1)[1])
    cases = root.findall(".//testcase")
    assert len(cases) == 69
    assert len(root.findall(".//error")) == sum(int(s.get("errors")) for s in root.findall("testsuite"))
    assert root.findall(".//error")


def test_snapshot_commands_prints_kubectl_lines_for_every_kind_read():
    from checks.cluster import READ_KINDS

    result = CliRunner().invoke(cli, ["snapshot-commands", "--namespace", "ls"], obj={})
    assert result.exit_code == 0
    for kind in READ_KINDS:
        assert f"lsready-snapshot/{kind.plural}.json" in result.output
    assert "-n ls" in result.output


def test_check_that_cannot_verify_required_items_exits_3_unless_unknown_is_allowed(tmp_path, blackhole):
    path = tmp_path / "c.yaml"
    path.write_text(
        f"targets: {{a: {{clickhouse: {{url: 'http://127.0.0.1:{blackhole.port}/default'}}}}}}\n"
        "timeouts: {probe_s: 0.5, run_s: 5}\n"
    )
    gate = CliRunner().invoke(cli, ["--config", str(path), "check", "--section", "3"], obj={})
    assert gate.exit_code == 3, gate.output
    assert "Required items that could not be verified" in gate.output
    assert "No required item fails" not in gate.output
    allowed = ["--config", str(path), "check", "--section", "3", "--allow-unknown"]
    result = CliRunner().invoke(cli, allowed, obj={})
    assert result.exit_code == 0 and "Required items that could not be verified" in result.output
    old_gate = ["--config", str(path), "check", "--section", "3", "--strict"]
    assert CliRunner().invoke(cli, old_gate, obj={}).exit_code == 3  # still accepted: the default now


def test_a_target_whose_every_backend_is_unreachable_never_exits_0(tmp_path, unused_port):
    """A CI gate that cannot see anything does not go green."""
    path = tmp_path / "c.yaml"
    url = f"127.0.0.1:{unused_port}"
    path.write_text(
        f"targets: {{a: {{redis: {{url: 'redis://{url}/0'}}, postgres: {{url: 'postgresql://u@{url}/p'}}, "
        f"clickhouse: {{url: 'http://{url}/default'}}}}}}\n"
        "timeouts: {probe_s: 1, run_s: 10}\n"
    )
    result = CliRunner().invoke(cli, ["--config", str(path), "check"], obj={})
    assert result.exit_code == 3, result.output
    assert "Score 0.0%" in result.output
    # Each backend is said to be unreachable once, naming where and why; its items point there.
    out = result.stdout
    for label in ("Redis", "PostgreSQL", "ClickHouse"):
        assert out.count(f"  - {label} at {url}: connection refused") == 1, out
        assert f"Could not tell: {label} could not be reached (see 'Could not reach')." in out
    assert "Errno" not in out and "HTTPConnectionPool" not in out
    assert "urllib3" not in result.stderr and "Retrying" not in result.stderr  # not repeated in logs either
    data = json.loads(CliRunner().invoke(cli, ["--config", str(path), "check", "--format", "json"]).stdout)
    assert {u["backend"]: u["endpoint"] for u in data["unreachable"]} == {
        "redis": url,
        "postgres": url,
        "clickhouse": url,
    }


def test_catalog_shows_thresholds_in_force_from_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("targets: {a: {}}\nthresholds: {redis.memory_sized: {warn_ratio: 0.5}}\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "catalog", "--format", "json"], obj={})
    item = next(i for i in json.loads(result.output) if i["id"] == "redis.memory_sized")
    assert item["thresholds"]["warn_ratio"] == 0.5


def test_config_check_names_the_one_probe_that_writes(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("targets: {a: {blob: {bucket: traces, throughput_probe: true}}}\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "config", "check"], obj={})
    assert result.exit_code == 0
    assert "writes small objects under lsready-probe/ in bucket traces" in result.output


def test_no_config_at_all_says_how_to_start(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["check"], obj={})
    assert result.exit_code == 2
    assert "no targets are configured" in result.output and "lsready demo" in result.output


def test_several_targets_without_default_ask_for_one(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("targets: {a: {}, b: {}}\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "check"], obj={})
    assert result.exit_code == 2
    assert "several targets are configured (a, b)" in result.output


def _commands(group, path=()):
    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


def test_global_options_are_taken_after_the_command_too_and_listed_in_its_help(tmp_path):
    import logging

    path = tmp_path / "c.yaml"
    path.write_text("targets: {a: {}}\nthresholds: {redis.memory_sized: {warn_ratio: high}}\n")
    for args in (["check", "--config", str(path)], ["config", "check", f"--config={path}"]):
        out = CliRunner().invoke(cli, args, obj={})
        assert out.exit_code == 2 and "thresholds.redis.memory_sized.warn_ratio" in out.output, out.output
    root = logging.getLogger()
    level = root.level
    try:
        out = CliRunner().invoke(
            cli, ["config", "check", "--config", str(path), "-v", "--log-format", "json"]
        )
        assert "No such option" not in out.output and root.level == logging.DEBUG
    finally:
        root.setLevel(level)
    for names, _ in _commands(cli):
        text = CliRunner().invoke(cli, [*names, "--help"]).output
        for flag in ("--config PATH", "-v, --verbose", "--log-format"):
            assert flag in text, (names, flag)


def test_a_command_added_later_gets_the_global_options_for_free(tmp_path):
    @cli.command("late-command")
    @click.pass_context
    def late(ctx):
        click.echo(f"config is {ctx.obj['config_path']}")

    try:
        out = CliRunner().invoke(cli, ["late-command", "--config", "x.yaml"], obj={})
        assert out.output == "config is x.yaml\n"
    finally:
        cli.commands.pop("late-command")
