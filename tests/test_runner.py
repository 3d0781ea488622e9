import threading
import time
from datetime import UTC, datetime, timedelta

from checks.clients import Clients
from checks.config import TargetConfig
from checks.engine import check
from checks.model import Attestation, Evidence, Item, Kind, Severity, Status
from checks.registry import Catalog, load_catalog
from checks.runner import run_checks
from conftest import make_config


def _item(item_id, kind=Kind.PROBE, probe=None, required=False, derived_from=None):
    return Item(
        id=item_id, section="1", title=item_id, seed=item_id, kind=kind, required=required,
        severity=Severity.HIGH, remediation="fix", probe=probe, derived_from=derived_from,
    )  # fmt: skip


def test_blackholed_backend_is_unknown_within_timeout_while_others_pass(blackhole, postgres_url, clickhouse):
    ch_url, admin, db = clickhouse
    admin.command(f"CREATE TABLE `{db}`.schema_migrations (version Int64, dirty UInt8, sequence UInt64) "
                  "ENGINE = MergeTree ORDER BY sequence")  # fmt: skip
    admin.command(f"INSERT INTO `{db}`.schema_migrations VALUES (7, 0, 1)")
    config = make_config(
        {
            "t": {
                "redis": {"url": f"redis://127.0.0.1:{blackhole.port}/0"},
                "postgres": {"url": postgres_url},
                "clickhouse": {"url": ch_url},
            }
        },
        timeouts={"probe_s": 2.0, "run_s": 10},
    )
    started = time.monotonic()
    report = check(config)
    elapsed = time.monotonic() - started
    by_id = {r.item.id: r for r in report.results}
    assert by_id["redis.memory_sized"].status is Status.UNKNOWN
    assert "2 s" in by_id["redis.memory_sized"].summary or "Timeout" in by_id["redis.memory_sized"].summary
    assert by_id["postgres.max_connections"].status is Status.PASS
    assert by_id["clickhouse.migrations"].status is Status.PASS
    assert elapsed < 6.0, f"a silent backend held the run for {elapsed:.1f} s (the run deadline is 10 s)"


def test_probe_that_never_returns_is_unknown_at_its_timeout():
    released = threading.Event()  # a probe stuck until the test is over

    def hangs(clients, params):
        released.wait(30)

    def fine(clients, params):
        return Evidence(Status.PASS, "fine")

    catalog = Catalog(
        items=(_item("a.hangs", probe="hangs"), _item("a.fine", probe="fine")),
        probes={"hangs": hangs, "fine": fine},
    )
    started = time.monotonic()
    try:
        report = run_checks(catalog, Clients("t", TargetConfig(), timeout_s=0.3), deadline_s=5)
    finally:
        released.set()
    assert time.monotonic() - started < 1.5
    statuses = {r.item.id: r.status for r in report.results}
    assert statuses == {"a.hangs": Status.UNKNOWN, "a.fine": Status.PASS}
    assert "0.3 s" in report.results[0].summary


def test_run_deadline_caps_the_whole_run():
    released = threading.Event()

    def slow(clients, params):
        released.wait(10)

    catalog = Catalog(items=(_item("a.slow", probe="slow"),), probes={"slow": slow})
    started = time.monotonic()
    try:
        report = run_checks(catalog, Clients("t", TargetConfig(), timeout_s=20), deadline_s=0.4)
    finally:
        released.set()
    assert time.monotonic() - started < 1.5
    assert report.results[0].status is Status.UNKNOWN


def test_raising_probe_is_unknown_with_the_reason():
    def boom(clients, params):
        raise ZeroDivisionError("division by zero in the probe")

    catalog = Catalog(items=(_item("a.boom", probe="boom"),), probes={"boom": boom})
    report = run_checks(catalog, Clients("t", TargetConfig()))
    result = report.results[0]
    assert result.status is Status.UNKNOWN
    assert "ZeroDivisionError" in result.summary and "division by zero" in result.summary


def test_unconfigured_backend_is_unknown_naming_it():
    report = check(make_config({"empty": {}}), selector="redis.memory_sized")
    assert report.results[0].status is Status.UNKNOWN
    assert "redis is not configured for target 'empty'" in report.results[0].summary


def test_manual_item_is_manual_until_attested_and_again_after_expiry():
    catalog = Catalog(items=(_item("m.drill", kind=Kind.MANUAL),), probes={})
    now = datetime.now(UTC)
    clients = Clients("t", TargetConfig())
    assert run_checks(catalog, clients).results[0].status is Status.MANUAL
    valid = Attestation("m.drill", "U123", now - timedelta(days=1), now + timedelta(days=10), "drilled")
    attested = run_checks(catalog, clients, attestations={"m.drill": valid}).results[0]
    assert attested.status is Status.ATTESTED and "U123" in attested.summary
    expired = Attestation("m.drill", "U123", now - timedelta(days=100), now - timedelta(days=1))
    assert run_checks(catalog, clients, attestations={"m.drill": expired}).results[0].status is Status.MANUAL


def test_manual_item_gate_probe_can_make_it_not_applicable():
    def no_keda(clients, params):
        return Evidence(Status.NA, "No KEDA ScaledObjects in namespace langsmith.")

    catalog = Catalog(items=(_item("k.plan", kind=Kind.MANUAL, probe="gate"),), probes={"gate": no_keda})
    assert run_checks(catalog, Clients("t", TargetConfig())).results[0].status is Status.NA


def test_derived_item_takes_the_worst_of_its_sources_and_unknown_never_passes():
    verdicts = {"a": Status.PASS, "b": Status.UNKNOWN, "c": Status.NA}
    probes = {k: (lambda s: lambda c, p: Evidence(s, s.value))(v) for k, v in verdicts.items()}
    items = [_item(f"x.{k}", probe=k, required=True) for k in verdicts]
    items.append(_item("x.all", kind=Kind.DERIVED, required=True, derived_from=()))
    report = run_checks(Catalog(items=tuple(items), probes=probes), Clients("t", TargetConfig()))
    derived = report.results[-1]
    assert derived.status is Status.UNKNOWN and "x.b" in derived.summary
    assert report.score.passing == 1 and report.score.applicable == 2
    assert report.score.buckets["unknown"] == 2  # x.b and the derived item


def test_required_failure_is_reported_in_score():
    def bad(clients, params):
        return Evidence(Status.FAIL, "bad")

    catalog = Catalog(items=(_item("r.bad", probe="bad", required=True),), probes={"bad": bad})
    report = run_checks(catalog, Clients("t", TargetConfig()))
    assert report.score.required_failing == ("r.bad",)
    assert report.score.percent == 0.0


def test_selecting_the_signoff_section_evaluates_its_sources_but_reports_only_signoff():
    report = check(make_config({"empty": {}}), selector="signoff")
    assert [r.item.id for r in report.results] == [i.id for i in load_catalog().section("signoff")]
    assert report.results[1].status is Status.UNKNOWN


def test_attestation_settles_a_probe_that_asks_for_a_person_but_never_masks_evidence():
    verdict = {"status": Status.MANUAL}

    def probe(clients, params):
        return Evidence(verdict["status"], "Nothing in the cluster monitors Redis.")

    catalog = Catalog(items=(_item("ops.mon", probe="p"),), probes={"p": probe})
    now = datetime.now(UTC)
    att = {"ops.mon": Attestation("ops.mon", "U1", now, now + timedelta(days=5), "Datadog monitors it")}
    clients = Clients("t", TargetConfig())
    assert run_checks(catalog, clients, attestations=att).results[0].status is Status.ATTESTED
    verdict["status"] = Status.FAIL
    assert run_checks(catalog, clients, attestations=att).results[0].status is Status.FAIL


def test_a_probe_that_fails_with_its_own_socket_timeout_is_reported_with_that_reason(blackhole):
    import socket

    def own_timeout(clients, params):
        # A socket read that times out raises TimeoutError("timed out") (socket.timeout is an alias).
        with socket.create_connection(("127.0.0.1", blackhole.port), timeout=0.3) as sock:
            sock.recv(1)

    catalog = Catalog(items=(_item("a.sock", probe="sock"),), probes={"sock": own_timeout})
    started = time.monotonic()
    report = run_checks(catalog, Clients("t", TargetConfig(), timeout_s=5))
    assert time.monotonic() - started < 2
    result = report.results[0]
    assert result.status is Status.UNKNOWN
    assert result.summary == "Could not tell: TimeoutError: timed out", result.summary


def test_a_measurement_that_fails_with_its_own_socket_timeout_keeps_its_reason_in_triage():
    from concurrent.futures import Future

    from runbooks.triage import _evidence

    own: Future = Future()
    own.set_exception(TimeoutError("timed out"))  # what a socket read that timed out raises
    assert _evidence(own, 5).summary == "Could not tell: TimeoutError: timed out"
    waited: Future = Future()
    waited.set_exception(TimeoutError())  # a reading it waited for did not come in time
    assert _evidence(waited, 5).summary == "No answer within 5 s; the backend is slow or unreachable."
