"""A run resolves its target once (`checks.prepared`); the probe timeout reaches probes one way."""

import time

import pytest
import redis
from test_clients import _item
from waiting import wait_until

from checks.engine import check
from checks.errors import UnknownTarget
from checks.model import Evidence, Status
from checks.prepared import prepare
from checks.registry import Catalog
from conftest import make_config
from runbooks.bundle import BundleOptions, collect_bundle
from runbooks.preflight import preflight
from runbooks.signals import collect
from runbooks.triage import DEADLINE_CAP_S, triage


@pytest.mark.parametrize("probe_s", [0.4, 1.2])
def test_the_configured_probe_timeout_bounds_a_probe_stalled_on_a_real_backend(blackhole, probe_s):
    """The runner gives up on a probe, and the probe's own socket gives up, at the configured timeout."""
    seen: list[float] = []

    def stalls(clients, params):
        seen.append(clients.timeout_s)
        clients.redis.ping()  # the black hole accepts and never answers
        return Evidence(Status.PASS, "answered")

    config = make_config(
        {"t": {"redis": {"url": f"redis://127.0.0.1:{blackhole.port}/0"}}},
        timeouts={"probe_s": probe_s, "run_s": 30},
    )
    catalog = Catalog(items=(_item("a.stalls", "stalls"),), probes={"stalls": stalls})
    started = time.monotonic()
    report = check(config, catalog=catalog)
    took = time.monotonic() - started
    assert report.results[0].status is Status.UNKNOWN
    assert seen == [probe_s]
    assert took < probe_s + 1.0, f"the run waited {took:.1f} s on a {probe_s} s probe timeout (run_s is 30)"

    with prepare(config).clients() as clients:
        began = time.monotonic()
        with pytest.raises(redis.exceptions.TimeoutError):
            clients.redis.ping()
        waited = time.monotonic() - began
    assert probe_s * 0.9 <= waited < probe_s + 1.0, f"the socket gave up after {waited:.2f} s"


def test_backups_name_the_store_that_did_not_answer_inside_the_probe_timeout(blackhole):
    """The backups probe stops waiting with margin left, so it says which store hung; the runner does not."""
    config = make_config(
        {"t": {"redis": {"url": f"redis://127.0.0.1:{blackhole.port}/0"}}},
        timeouts={"probe_s": 1.0, "run_s": 30},
    )
    started = time.monotonic()
    result = check(config, selector="diag.backup_restore_tested").results[0]
    assert time.monotonic() - started < 2.0
    assert result.status is Status.MANUAL, result.summary
    assert "redis: no answer within 0.8 s" in result.summary
    assert "Confirm a restore" in result.summary


def test_prepare_caps_the_configured_deadline_and_keeps_the_probe_timeout_inside_it():
    config = make_config({"t": {}}, timeouts={"probe_s": 25, "run_s": 60})

    plain = prepare(config)
    assert (plain.name, plain.deadline_s, plain.probe_s) == ("t", 60, 25)

    capped = prepare(config, deadline_cap_s=DEADLINE_CAP_S)
    assert (capped.deadline_s, capped.probe_s) == (DEADLINE_CAP_S, DEADLINE_CAP_S)

    asked = prepare(config, deadline_s=45, deadline_cap_s=DEADLINE_CAP_S)  # an explicit one is kept
    assert (asked.deadline_s, asked.probe_s) == (45, 25)

    short = prepare(config, deadline_s=3)
    assert (short.deadline_s, short.probe_s) == (3, 3)

    halved = prepare(config, deadline_s=30, probe_cap_s=15)
    assert (halved.deadline_s, halved.probe_s) == (30, 15)


def test_prepared_clients_carry_the_probe_timeout_and_close_at_the_end_of_the_block(redis_url, redis_client):
    def open_ids() -> set[int]:
        return {int(c["id"]) for c in redis_client.client_list()}

    config = make_config({"t": {"redis": {"url": redis_url}}}, timeouts={"probe_s": 2.5, "run_s": 2})
    prepared = prepare(config)
    with prepared.clients() as clients:
        assert clients.timeout_s == prepared.probe_s == 2
        assert clients.inner_timeout_s == pytest.approx(1.6)
        assert clients.redis.ping()
        ours = int(clients.redis.client_id())
        assert ours in open_ids()
    wait_until(lambda: ours not in open_ids(), timeout=5, what="lsready's Redis connection to close")


def test_prepared_redactor_knows_the_configs_secrets(redis_url):
    url = redis_url.replace("redis://", "redis://:s3cret-pw@", 1)
    prepared = prepare(make_config({"t": {"redis": {"url": url}}}))
    assert "s3cret-pw" not in prepared.redactor.text(f"could not connect to {url}")


def test_prepared_catalog_applies_the_configs_threshold_overrides():
    config = make_config({"t": {}}, thresholds={"redis.memory_sized": {"warn_ratio": 0.5}})
    assert prepare(config).catalog.thresholds("redis.memory_sized")["warn_ratio"] == 0.5


def _unknown(fn, *args, **kwargs) -> str:
    with pytest.raises(UnknownTarget) as raised:
        fn(*args, **kwargs)
    return str(raised.value)


def test_every_entry_point_names_an_unknown_target_the_same_way_before_it_reads_anything():
    config = make_config({"prod": {}, "staging": {}})
    said = "unknown target 'nowhere'; configured targets: prod, staging"
    assert _unknown(prepare, config, "nowhere") == said
    assert _unknown(check, config, "nowhere") == said
    assert _unknown(triage, config, "nowhere") == said
    assert _unknown(preflight, config, "nowhere") == said
    assert _unknown(collect, config, "nowhere", prepare(config, "prod").catalog) == said
    assert _unknown(collect_bundle, config, "nowhere", BundleOptions()) == said
    assert _unknown(check, config) == (
        "several targets are configured (prod, staging): name one, or set default_target"
    )
    assert _unknown(check, make_config({})).startswith("no targets are configured: write lsready.yaml")


def test_signal_collection_reads_and_checks_on_one_set_of_clients(redis_url, monkeypatch):
    """An exporter refresh opens each backend once for its reads and its checklist together."""
    import checks.prepared

    opened = []
    real = checks.prepared.Clients

    def counted(*args, **kwargs):
        opened.append(real(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(checks.prepared, "Clients", counted)
    config = make_config({"t": {"redis": {"url": redis_url}}})
    signals = collect(config, "t", prepare(config, "t").catalog)
    assert signals.report is not None and signals.up["redis"]
    assert len(opened) == 1


def test_triage_and_preflight_use_the_catalog_they_are_given(redis_url, monkeypatch):
    """The bot and the bundle hold the catalog already: a run does not read catalog.yaml again."""
    import checks.prepared

    config = make_config({"t": {"redis": {"url": redis_url}}}, timeouts={"probe_s": 1, "run_s": 3})
    catalog = prepare(config, "t").catalog
    loads = []
    real = checks.prepared.load_catalog
    monkeypatch.setattr(checks.prepared, "load_catalog", lambda **kw: loads.append(1) or real(**kw))
    triage(config, "t", "queue-depth", sample_interval_s=0.1, catalog=catalog)
    preflight(config, "t", catalog=catalog)
    assert loads == []
    triage(config, "t", "queue-depth", sample_interval_s=0.1)
    assert loads == [1]
