import json
import os
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bot.cli import cli
from checks.errors import CatalogError
from checks.model import Evidence, Kind, Status
from checks.registry import CATALOG_PATH, load_catalog

HERE = Path(__file__).parent
SEED = HERE / "data" / "production-readiness-checklist.md"
# The checklist this project models: LSREADY_TEST_SEED names it, else the shared/ folder beside the clone.
SHARED_SEED = Path(
    os.environ.get("LSREADY_TEST_SEED")
    or HERE.parent.parent / "shared" / "seed" / "production-readiness-checklist.md"
)


def seed_items(path: Path) -> list[str]:
    text = path.read_text()
    return [" ".join(m.group(1).split()) for m in re.finditer(r"^\s*- \[ \] (.+)$", text, re.M)]


def test_vendored_seed_matches_the_checklist():
    if not SHARED_SEED.exists():
        pytest.skip(
            f"needs the checklist to compare the vendored copy with: {SHARED_SEED} does not exist;"
            " set LSREADY_TEST_SEED to its path"
        )
    assert seed_items(SEED) == seed_items(SHARED_SEED)


def test_catalog_json_has_one_entry_per_seed_item_in_order():
    out = CliRunner().invoke(cli, ["catalog", "--format", "json"], obj={})
    assert out.exit_code == 0, out.output
    items = json.loads(out.output)
    assert len(items) == 69
    assert [" ".join(i["seed"].split()) for i in items] == seed_items(SEED)
    assert len({i["id"] for i in items}) == 69
    for item in items:
        assert set(item) >= {
            "id",
            "section",
            "title",
            "seed",
            "kind",
            "required",
            "severity",
            "remediation",
            "docs",
        }


def test_required_items_are_the_required_sections():
    catalog = load_catalog()
    required_sections = {i.section for i in catalog.items if i.required}
    assert required_sections == {"3", "4", "5", "signoff"}
    assert all(i.required for i in catalog.section("3")) and all(i.required for i in catalog.section("4"))
    hpa = [i for i in catalog.section("5") if i.id.startswith("autoscaling.")]
    keda = [i for i in catalog.section("5") if i.id.startswith("keda.")]
    assert all(i.required for i in hpa) and not any(i.required for i in keda)
    assert catalog.get("signoff.required_satisfied").kind is Kind.DERIVED


def _write(tmp_path, entries):
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(entries))
    return path


def _entry(**over):
    base = {
        "id": "redis.memory_sized", "section": "1", "title": "t", "seed": "s", "kind": "probe",
        "required": False, "severity": "high", "remediation": "do it",
    }  # fmt: skip
    return {**base, **over}


def _probe(clients, params):
    return Evidence(Status.PASS, "fine")


def test_registry_refuses_duplicate_ids(tmp_path):
    with pytest.raises(CatalogError, match=r"duplicate id 'redis.memory_sized'"):
        load_catalog(_write(tmp_path, [_entry(kind="manual"), _entry(kind="manual")]), probes={})


def test_registry_refuses_unknown_probe(tmp_path):
    with pytest.raises(CatalogError, match=r"unknown probe 'redis.nope'"):
        load_catalog(_write(tmp_path, [_entry(probe="redis.nope")]), probes={"redis.memory": _probe})


def test_registry_refuses_a_probe_item_without_a_probe(tmp_path):
    with pytest.raises(CatalogError, match=r"redis.memory_sized.*a probe item names its probe"):
        load_catalog(_write(tmp_path, [_entry()]), probes={"redis.memory": _probe})
    assert load_catalog(_write(tmp_path, [_entry(probe="redis.memory")]), probes={"redis.memory": _probe})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("kind", "maybe", "kind must be"),
        ("severity", "urgent", "severity must be"),
        ("section", "12", "section must be"),
        ("required", "yes", "required must be"),
        ("id", "Bad Id", "id must be dotted"),
        ("colour", "red", "unknown field"),
    ],
)
def test_registry_refuses_bad_fields(tmp_path, field, value, message):
    with pytest.raises(CatalogError, match=message):
        load_catalog(_write(tmp_path, [_entry(**{field: value})]), probes={})


def test_registry_refuses_derived_item_with_unknown_source(tmp_path):
    entries = [
        _entry(),
        _entry(id="signoff.x", section="signoff", kind="derived", derived={"from": ["no.such"]}),
    ]
    with pytest.raises(CatalogError, match=r"derived from unknown item 'no.such'"):
        load_catalog(_write(tmp_path, entries), probes={})


def test_threshold_override_applies_and_unknown_key_is_refused():
    catalog = load_catalog(thresholds={"redis.memory_sized": {"warn_ratio": 0.5}})
    assert catalog.get("redis.memory_sized").thresholds == {"warn_ratio": 0.5, "fail_ratio": 0.95}
    with pytest.raises(CatalogError, match=r"thresholds.redis.memory_sized: unknown key\(s\) warn"):
        load_catalog(thresholds={"redis.memory_sized": {"warn": 0.5}})


def test_shipped_catalog_loads():
    assert len(load_catalog(CATALOG_PATH).items) == 69


def test_catalog_text_shows_the_columns_the_readme_names():
    out = CliRunner().invoke(cli, ["catalog"], obj={})
    header, *rows = out.output.splitlines()
    assert header.split() == ["section", "id", "kind", "required", "severity", "title"]
    assert len(rows) == 69
    readme = (HERE.parent / "README.md").read_text()
    assert "one line each: section, id, kind, required, severity, title" in readme
    first = rows[0].split()
    assert first[:5] == ["1", "redis.memory_sized", "probe", "-", "high"]
    assert rows[0].endswith("Redis memory sized for write volume")
    assert any(r.split()[3] == "required" for r in rows)
