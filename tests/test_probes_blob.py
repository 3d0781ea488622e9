"""Blob probes against moto's S3 server, and blob.enabled against the chart's env in a snapshot."""

import json
import uuid
from collections.abc import Iterator

import boto3
import pytest
import requests
from k8s_fake import NS, chart_defaults, configmap, production, write_snapshot

from checks.clients import Clients
from checks.config import TargetConfig
from checks.model import Status
from checks.objectstore import PROBE_PREFIX, open_objectstore
from checks.probes import blob
from checks.registry import load_catalog

LIFECYCLE = load_catalog().get("blob.lifecycle").thresholds
KEYS = {"access_key_id": "testing", "secret_access_key": "testing"}  # moto's stand-in credentials


def _admin(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


@pytest.fixture
def bucket(s3_endpoint: str) -> Iterator[str]:
    """A fresh bucket on the shared moto server, emptied and removed afterwards."""
    name = f"lsready-{uuid.uuid4().hex[:12]}"
    admin = _admin(s3_endpoint)
    admin.create_bucket(Bucket=name)
    yield name
    for obj in admin.list_objects_v2(Bucket=name).get("Contents", []):
        admin.delete_object(Bucket=name, Key=obj["Key"])
    admin.delete_bucket(Bucket=name)


def _clients(endpoint: str, bucket: str, timeout_s: float = 5, **sections) -> Clients:
    blob_cfg = {"bucket": bucket, "endpoint_url": endpoint, "region": "us-east-1", **KEYS}
    blob_cfg.update(sections.pop("blob", {}))
    return Clients("t", TargetConfig.model_validate({"blob": blob_cfg, **sections}), timeout_s=timeout_s)


def _rule(rule_id: str, prefix: str, days: int) -> dict:
    return {"ID": rule_id, "Status": "Enabled", "Filter": {"Prefix": prefix}, "Expiration": {"Days": days}}


def _rules(admin, bucket: str, *rules: dict) -> None:
    admin.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": list(rules)})


def _tiers(admin, bucket: str, short_days: int, long_days: int) -> None:
    _rules(admin, bucket, _rule("shortlived", "ttl_s/", short_days), _rule("longlived", "ttl_l/", long_days))


# -- blob.enabled -----------------------------------------------------------------------------------


def test_blob_enabled_reads_the_flag_through_an_envfrom_configmap(tmp_path):
    objects = chart_defaults()
    # Blob settings moved into the shared config ConfigMap instead of env: same verdict.
    objects["configmaps"] = [
        configmap("langsmith-frontend", {"nginx.conf": "client_max_body_size 25M;"}),
        configmap("langsmith-config", {"FF_BLOB_STORAGE_ENABLED": "true", "BLOB_STORAGE_ENGINE": "S3",
                                       "S3_BUCKET_NAME": "traces", "S3_API_URL": "https://storage.googleapis.com"}),
    ]  # fmt: skip
    snapshot = write_snapshot(objects, tmp_path / "s")
    clients = Clients("t", TargetConfig.model_validate({"kubernetes": {"snapshot_dir": str(snapshot)}}), 5)
    result = blob.enabled(clients, {})
    assert (
        result.status is Status.PASS and "bucket traces at https://storage.googleapis.com" in result.summary
    )


def test_blob_enabled_on_some_services_only_fails_naming_the_others(servers):
    objects = production()
    queue = next(d for d in objects["deployments"] if d["metadata"]["name"] == "langsmith-queue")
    env = queue["spec"]["template"]["spec"]["containers"][0]["env"]
    queue["spec"]["template"]["spec"]["containers"][0]["env"] = [
        e for e in env if e["name"] != "FF_BLOB_STORAGE_ENABLED"
    ]
    clients = Clients(
        "t", TargetConfig.model_validate({"kubernetes": servers.kubernetes_section(objects, "api")}), 5
    )
    result = blob.enabled(clients, {})
    assert result.status is Status.FAIL and "but off on langsmith-queue (" in result.summary


def test_blob_enabled_warns_when_lsready_checks_another_bucket_than_langsmith_uses(servers, s3_endpoint):
    section = servers.kubernetes_section(production(), "snapshot")
    clients = _clients(s3_endpoint, "some-other-bucket", kubernetes=section)
    result = blob.enabled(clients, {})
    assert result.status is Status.WARN and "point it at langsmith-traces" in result.summary


def test_without_a_cluster_the_lsready_bucket_is_only_weak_evidence(s3_endpoint, bucket):
    result = blob.enabled(_clients(s3_endpoint, bucket), {})
    assert result.status is Status.MANUAL and "weak evidence" in result.summary and bucket in result.summary


# -- blob.connectivity ------------------------------------------------------------------------------


def test_reachable_bucket_passes_with_latency(s3_endpoint, bucket):
    result = blob.connectivity(_clients(s3_endpoint, bucket), {})
    assert result.status is Status.PASS and result.observed["latency_ms"] >= 0
    assert f"Bucket {bucket} at {s3_endpoint} answered HEAD with 200" in result.summary


def test_missing_bucket_fails_with_404(s3_endpoint):
    result = blob.connectivity(_clients(s3_endpoint, f"absent-{uuid.uuid4().hex[:8]}"), {})
    assert result.status is Status.FAIL and "404 Not Found: no bucket of that name exists" in result.summary


@pytest.fixture
def enforced_auth(s3_endpoint: str) -> Iterator[None]:
    """moto checks signatures against its IAM users from the next request on, until the test ends."""
    requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"0", timeout=5).raise_for_status()
    yield
    requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"inf", timeout=5).raise_for_status()


def test_wrong_credentials_fail_with_403_naming_them(s3_endpoint, bucket, enforced_auth):
    result = blob.connectivity(_clients(s3_endpoint, bucket), {})
    assert result.status is Status.FAIL
    assert "403 Forbidden: the credentials are wrong" in result.summary
    assert "testing" not in json.dumps(result.observed)  # keys never reach the evidence


def test_closed_port_is_unknown_not_a_verdict(unused_port):
    with pytest.raises(
        blob.BlobUnreachable, match=r"HEAD on bucket b1b at http://127.0.0.1:\d+ got no answer"
    ):
        blob.connectivity(_clients(f"http://127.0.0.1:{unused_port}", "b1b"), {})


def test_endpoint_that_never_answers_is_unknown_within_the_timeout(blackhole):
    with pytest.raises(blob.BlobUnreachable, match="got no answer"):
        blob.connectivity(_clients(f"http://127.0.0.1:{blackhole.port}", "b1b", timeout_s=0.5), {})


# -- blob.lifecycle ---------------------------------------------------------------------------------


def test_lifecycle_matching_the_trace_ttls_passes(s3_endpoint, bucket):
    _tiers(_admin(s3_endpoint), bucket, 14, 400)
    result = blob.lifecycle(_clients(s3_endpoint, bucket), LIFECYCLE)
    assert result.status is Status.PASS and "ttl_s/ after 14 d and ttl_l/ after 400 d" in result.summary


def test_lifecycle_differing_from_the_ttls_warns(s3_endpoint, bucket):
    _tiers(_admin(s3_endpoint), bucket, 30, 400)
    result = blob.lifecycle(_clients(s3_endpoint, bucket), LIFECYCLE)
    assert result.status is Status.WARN and "ttl_s/ 30 d vs 14 d" in result.summary


def test_bucket_without_lifecycle_fails(s3_endpoint, bucket):
    result = blob.lifecycle(_clients(s3_endpoint, bucket), LIFECYCLE)
    assert result.status is Status.FAIL and "no expiration rule for ttl_s/, ttl_l/" in result.summary


def test_lifecycle_follows_ttls_set_on_the_langsmith_deployments(s3_endpoint, bucket, tmp_path):
    objects = production()
    for dep in objects["deployments"]:
        for container in dep["spec"]["template"]["spec"]["containers"]:
            for var in container.get("env", []):
                if var["name"] == "TRACE_TIER_TTL_DURATION_SEC_MAP":
                    var["value"] = json.dumps({"longlived": 90 * 86400, "shortlived": 7 * 86400})
    _tiers(_admin(s3_endpoint), bucket, 7, 90)
    snapshot = write_snapshot(objects, tmp_path / "s")
    clients = _clients(s3_endpoint, bucket, kubernetes={"snapshot_dir": str(snapshot), "namespace": NS})
    result = blob.lifecycle(clients, LIFECYCLE)
    assert result.status is Status.PASS
    assert "7 d / 90 d from TRACE_TIER_TTL_DURATION_SEC_MAP on langsmith-backend" in result.summary


def test_one_whole_bucket_rule_covers_both_prefixes(s3_endpoint, bucket):
    _rules(_admin(s3_endpoint), bucket, _rule("all", "", 14))
    result = blob.lifecycle(_clients(s3_endpoint, bucket), LIFECYCLE)
    assert result.status is Status.WARN and "ttl_l/ 14 d vs 400 d" in result.summary


# -- blob.throughput --------------------------------------------------------------------------------


def test_throughput_without_opt_in_is_manual_and_writes_nothing(s3_endpoint, bucket):
    result = blob.throughput(_clients(s3_endpoint, bucket), {})
    assert result.status is Status.MANUAL and "enable blob.throughput_probe" in result.summary
    assert "Contents" not in _admin(s3_endpoint).list_objects_v2(Bucket=bucket)


def test_throughput_writes_only_under_its_prefix_and_leaves_nothing_behind(s3_endpoint, bucket):
    admin = _admin(s3_endpoint)
    admin.put_object(Bucket=bucket, Key="ttl_s/run-1", Body=b"langsmith data")
    clients = _clients(s3_endpoint, bucket, blob={"throughput_probe": True})
    sent: list[tuple[str, str]] = []
    clients.blob.client.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append((request.method, request.url))
    )
    result = blob.throughput(clients, {})
    assert result.status is Status.PASS
    assert result.observed["writes_per_s"] > 0 and result.observed["read_mib_per_s"] > 0
    prefix = result.observed["prefix"]
    assert prefix.startswith(PROBE_PREFIX) and len(sent) == 3 * blob.THROUGHPUT_OBJECTS
    assert all(f"/{bucket}/{prefix}" in url for _, url in sent)
    assert {m for m, _ in sent} == {"PUT", "GET", "DELETE"}
    remaining = [o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert remaining == ["ttl_s/run-1"]


def test_object_store_refuses_keys_outside_its_own_prefix(s3_endpoint, bucket):
    from checks.config import BlobConfig

    store = open_objectstore(BlobConfig(bucket=bucket, endpoint_url=s3_endpoint, **KEYS), 5)
    with pytest.raises(ValueError, match="lsready only writes under lsready-probe/"):
        store.put("ttl_s/anything", b"x")
