"""Thresholds are a typed schema in the catalog; one validation serves `config check` and every command."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bot.cli import cli
from checks.config import load_config
from checks.errors import CatalogError, ConfigError
from checks.model import Evidence, Status
from checks.registry import load_catalog
from checks.thresholds import CATALOG_PATH, catalog_schema, read_catalog

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), obj={}, env=env)


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "lsready.yaml"
    path.write_text(text)
    return str(path)


# --- The schema ----------------------------------------------------------------------------------


def test_every_threshold_in_the_catalog_declares_type_unit_range_and_direction() -> None:
    items, signals = read_catalog()
    declared = [(e["id"], e.get("thresholds") or {}) for e in items]
    declared += [(sid, s["thresholds"]) for sid, s in signals.items()]
    assert signals, "the triage-only signals have a section of their own"
    for owner, thresholds in declared:
        for key, spec in thresholds.items():
            assert {"default", "type"} <= set(spec), (owner, key)
            if spec["type"] in ("number", "integer"):
                assert {"unit", "range", "direction"} <= set(spec), (owner, key)
    schema = catalog_schema()
    pairs = [(o, t.key, t.fail) for o, s in schema.thresholds.items() for t in s.values() if t.fail]
    assert ("redis.memory_sized", "warn_ratio", "fail_ratio") in pairs
    assert ("triage.queues", "oldest_warn_s", "oldest_fail_s") in pairs


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ({"redis.memory_sized": {"warn_ratio": "high"}}, "warn_ratio: must be a number from 0 to 1"),
        ({"redis.memory_sized": {"warn_ratio": 1.5}}, "1.5 is out of range: must be a number from 0 to 1"),
        (
            {"redis.memory_sized": {"warn_ratio": 0.99, "fail_ratio": 0.5}},
            "warn_ratio 0.99 is above fail_ratio 0.5",
        ),
        ({"redis.memory_sized": {"warn_ratio": 0.97}}, "warn_ratio 0.97 is above fail_ratio 0.95"),
        ({"clickhouse.iops": {"min_iops": 5, "min_throughput_mibps": True}}, "must be a number"),
        ({"redis.monitored": {"queue_warn": 2.5}}, "must be an integer"),
        ({"clickhouse.concurrency": {"query_users": "default"}}, "must be a list of text"),
        ({"triage.queues": {"oldest_warn_s": 900}}, "oldest_warn_s 900 is above oldest_fail_s 600"),
        ({"redis.memory": {"warn_ratio": 0.5}}, "no such item or signal; did you mean 'redis.memory_sized'?"),
    ],
)
def test_an_override_that_does_not_fit_the_schema_is_refused_naming_the_key(
    tmp_path: Path, override: dict[str, Any], says: str
) -> None:
    path = _config(tmp_path, yaml.safe_dump({"targets": {"a": {}}, "thresholds": override}))
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    assert any(says in line and line.startswith(f"{path}: thresholds.") for line in exc.value.lines()), (
        exc.value.lines()
    )


def test_a_wrong_type_is_a_config_error_in_config_check_and_in_check_never_a_could_not_tell(
    tmp_path: Path,
) -> None:
    """`{warn_ratio: high}` used to pass `config check` and then read `TypeError` in the check."""
    path = _config(tmp_path, "targets: {a: {}}\nthresholds: {redis.memory_sized: {warn_ratio: high}}\n")
    said = []
    for args in (["config", "check"], ["check"], ["triage"], ["catalog"], ["digest"]):
        out = _run("--config", path, *args)
        assert out.exit_code == 2, (args, out.output)
        assert "config OK" not in out.output and "TypeError" not in out.output
        said.append(out.output)
    assert len(set(said)) == 1, "every command says the same"
    assert "thresholds.redis.memory_sized.warn_ratio: must be a number from 0 to 1" in said[0]


def test_a_sound_override_is_graded_against(tmp_path: Path, redis_client: Any, redis_url: str) -> None:
    redis_client.config_set("maxmemory", "10mb")
    redis_client.set("blob", "x" * 3_000_000)  # a quarter or so of maxmemory
    path = _config(
        tmp_path,
        f"targets: {{a: {{redis: {{url: '{redis_url}'}}}}}}\n"
        "thresholds: {redis.memory_sized: {warn_ratio: 0.01, fail_ratio: 0.02}}\n",
    )
    out = _run("--config", path, "check", "--section", "redis.memory_sized")
    assert out.exit_code == 0  # not a required item: the run itself succeeds
    assert "[FAIL]" in out.output or "fail" in out.output.lower()
    assert "warn at 1%, fail at 2%" in out.output


# --- acks.items, severity ------------------------------------------------------------------------


def test_an_unknown_acks_items_id_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = _config(tmp_path, "targets: {a: {}}\nacks: {items: {diag.har_captur: 30}}\n")
    out = _run("--config", path, "config", "check")
    assert out.exit_code == 2
    assert "acks.items.diag.har_captur: no such item; did you mean 'diag.har_capture'?" in out.output
    probe_item = _config(tmp_path, "targets: {a: {}}\nacks: {items: {redis.memory_sized: 30}}\n")
    out = _run("--config", probe_item, "config", "check")
    assert out.exit_code == 2 and "never acknowledged" in out.output


# --- No config, environment variables ------------------------------------------------------------


def test_no_config_is_the_same_error_in_config_check_and_check(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    checked, ran = _run("config", "check"), _run("check")
    assert checked.exit_code == ran.exit_code == 2
    assert checked.output == ran.output
    assert "no targets are configured" in checked.output and "config OK" not in checked.output
    for args in (["triage"], ["digest"], ["ack", "diag.har_capture", "--by", "alice"]):
        out = _run(*args)
        assert (out.exit_code, out.output) == (2, checked.output), args
    assert list(tmp_path.iterdir()) == [], "an error leaves no lsready.db behind"


def test_a_bad_environment_value_names_the_variable_not_a_file_that_does_not_exist(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    out = _run("config", "check", env={"LSREADY_TIMEOUTS__PROBE_S": "abc"})
    assert out.exit_code == 2
    assert out.output.startswith("lsready: LSREADY_TIMEOUTS__PROBE_S: timeouts.probe_s: ")
    assert "lsready.yaml" not in out.output
    typo = _run("check", env={"LSREADY_TYPO": "1"})
    assert typo.exit_code == 2 and typo.output.strip() == "lsready: LSREADY_TYPO: typo: unknown key"


def test_with_a_config_file_an_environment_problem_is_still_blamed_on_the_variable(tmp_path: Path) -> None:
    path = _config(tmp_path, "targets: {a: {}}\ntimeouts: {probe_s: 2}\n")
    env = {"LSREADY_TYPO": "1", "LSREADY_THRESHOLDS__REDIS.MEMORY_SIZED__WARN_RATIO": "high"}
    out = _run("--config", path, "config", "check", env=env)
    lines = sorted(out.output.strip().splitlines())
    assert lines == [
        "lsready: LSREADY_THRESHOLDS__REDIS.MEMORY_SIZED__WARN_RATIO: "
        "thresholds.redis.memory_sized.warn_ratio: must be a number from 0 to 1 (ratio of maxmemory), "
        "not 'high'",
        "lsready: LSREADY_TYPO: typo: unknown key",
    ]


def test_a_misspelt_key_in_the_file_gets_a_suggestion(tmp_path: Path) -> None:
    path = _config(tmp_path, "targets: {a: {}}\ntimeout: {probe_s: 2}\n")
    out = _run("--config", path, "config", "check")
    assert out.output.strip() == f"lsready: {path}: timeout: unknown key; did you mean 'timeouts'?"


# --- One home per threshold ----------------------------------------------------------------------


def test_the_registry_refuses_a_probe_without_a_catalog_entry(tmp_path: Path) -> None:
    def probe(clients: Any, params: Any) -> Evidence:
        return Evidence(Status.PASS, "fine")

    path = tmp_path / "catalog.yaml"
    path.write_text(
        yaml.safe_dump([{"id": "redis.x", "section": "1", "title": "t", "seed": "s", "kind": "probe",
                         "probe": "redis.x", "required": False, "severity": "low", "remediation": "r"}])
    )  # fmt: skip
    with pytest.raises(CatalogError, match=r"probe\(s\) without a catalog entry: redis.orphan"):
        load_catalog(path, probes={"redis.x": probe, "redis.orphan": probe})
    assert load_catalog(path, probes={"redis.x": probe})


def test_probes_and_runbooks_keep_no_threshold_defaults_in_code() -> None:
    """Thresholds are read as params[key]; a `.get(key, default)` or a literal table is a second home."""
    keys = _all_threshold_keys()
    offenders = []
    for path in [*ROOT.joinpath("checks", "probes").glob("*.py"), ROOT / "runbooks" / "definitions.py"]:
        text = path.read_text()
        offenders += [
            f"{path.name}: {m.group(0)}" for m in re.finditer(r"params\.get\(\"\w+\", [^)]+\)", text)
        ]
        offenders += [f"{path.name}: {m.group(0)}" for m in re.finditer(r"^\w+_DEFAULTS\b", text, re.M)]
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Dict):
                offenders += [
                    f"{path.name}:{node.lineno}: {k.value} = {v.value}"
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant) and k.value in keys
                    and isinstance(v, ast.Constant) and isinstance(v.value, (int, float))
                ]  # fmt: skip
    assert offenders == []


def _all_threshold_keys() -> set[str]:
    return {k for schema in catalog_schema(CATALOG_PATH).thresholds.values() for k in schema}


# --- A shown value never contradicts its grade ---------------------------------------------------


def test_a_percentage_is_shown_with_the_precision_that_decides() -> None:
    from checks.probes.common import pct

    assert pct(0.695, 0.70, 0.85) == "69.5%"  # once '70%' under 'warn at 70%', and graded pass
    assert pct(0.7004, 0.70) == "70.04%"
    assert pct(0.70, 0.70) == "70%" and pct(0.5, 0.7) == "50%"
    assert pct(0.875) == "87.5%"  # a limit is shown as it is


def test_a_duration_is_shown_with_the_precision_that_decides() -> None:
    from checks.probes.common import human_duration

    assert human_duration(59.6, 60, 600) == "59.6 s"  # once '60 s' beside 'warn at 1 min', graded pass
    assert human_duration(599.7, 60, 600) == "599.7 s"  # never '10 min' under a 10 min fail
    assert human_duration(60, 60, 600) == "1 min" and human_duration(45, 60) == "45 s"
    assert human_duration(59.6) == "60 s"  # graded against nothing, it may round


def test_redis_memory_just_under_its_warn_level_never_reads_as_at_it(
    redis_client: Any, redis_url: str
) -> None:
    from checks.clients import Clients
    from checks.config import TargetConfig
    from checks.probes import redis as probes

    redis_client.config_set("maxmemory", "64mb")
    redis_client.set("blob", "x" * 20_000_000)
    clients = Clients("t", TargetConfig.model_validate({"redis": {"url": redis_url}}), timeout_s=5)
    try:
        ratio = probes.memory(clients, {"warn_ratio": 0.9, "fail_ratio": 0.95}).observed["used_ratio"]
        for warn in (round(ratio + 0.002, 4), round(ratio - 0.002, 4)):
            ev = probes.memory(clients, {"warn_ratio": warn, "fail_ratio": 0.95})
            m = re.search(r"\(([\d.]+)%\); warn at ([\d.]+)%", ev.summary)
            assert m, ev.summary
            shown, limit = float(m.group(1)), float(m.group(2))
            assert (shown >= limit) == (ev.status is not Status.PASS), ev.summary
            assert ev.status is (Status.PASS if warn > ratio else Status.WARN)
    finally:
        clients.close()
