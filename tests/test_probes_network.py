"""Networking probes: limits on every hop in front of LangSmith, blob endpoint reachability, latency."""

import socket

import pytest
from k8s_fake import FULLNAME, NS, Servers, chart_defaults, production, service

from checks.clients import Clients
from checks.config import TargetConfig
from checks.errors import LsreadyError
from checks.model import Status
from checks.probes import network

BODY = {"expected_payload_mb": 25}
TIMEOUTS = {"min_read_timeout_s": 300}
LATENCY = {"warn_ms": 50}


@pytest.fixture
def servers(tmp_path):
    s = Servers(tmp_path)
    yield s
    s.close()


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clients(servers=None, objects=None, source="snapshot", timeout_s=5, **sections):
    if objects is not None:
        sections["kubernetes"] = servers.kubernetes_section(objects, source)
    return Clients("t", TargetConfig.model_validate(sections), timeout_s=timeout_s)


def _ingress(class_name=None, annotations=None, class_annotation=None):
    """An Ingress in front of the chart's frontend Service."""
    meta = {"name": "langsmith", "namespace": NS, "annotations": dict(annotations or {})}
    if class_annotation:
        meta["annotations"]["kubernetes.io/ingress.class"] = class_annotation
    backend = {"service": {"name": f"{FULLNAME}-frontend", "port": {"number": 80}}}
    spec = {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]}
    if class_name:
        spec["ingressClassName"] = class_name
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def _ingress_class(name, controller, default=False):
    annotations = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "annotations": annotations}, "spec": {"controller": controller}}


def _behind(ingress, *classes):
    objects = production()
    objects["ingresses"], objects["ingressclasses"] = [ingress], list(classes)
    return objects


@pytest.mark.parametrize(
    ("text", "size"), [("25M", 25 * 1024**2), ("100m", 100 * 1024**2), ("512k", 512 * 1024), ("1g", 1024**3),
                       ("0", 0), ("10mb", None)]
)  # fmt: skip
def test_nginx_sizes_parse_like_nginx(text, size):
    assert network.nginx_size(text) == size


@pytest.mark.parametrize(
    ("text", "seconds"), [("300", 300), ("300s", 300), ("5m", 300), ("1h", 3600), ("x", None)]
)
def test_nginx_times_parse_like_nginx(text, seconds):
    assert network.nginx_seconds(text) == seconds


def test_nginx_ingress_without_annotations_cuts_bodies_at_1m_and_reads_at_60s(servers):
    objects = _behind(_ingress("nginx"), _ingress_class("nginx", "k8s.io/ingress-nginx"))
    clients = _clients(servers, objects)
    body = network.max_body_size(clients, BODY)
    assert body.status is Status.FAIL
    assert "Ingress langsmith (nginx) accepts bodies up to 1 MiB (ingress-nginx default 1m)" in body.summary
    timeouts = network.proxy_timeouts(clients, TIMEOUTS)
    assert (
        timeouts.status is Status.FAIL
        and "cuts reads at 60 s (ingress-nginx default 60s)" in timeouts.summary
    )


def test_nginx_ingress_annotations_raise_both_limits(servers):
    annotations = {network.NGINX_BODY: "200m", network.NGINX_READ: "600"}
    objects = _behind(_ingress("nginx", annotations), _ingress_class("nginx", "k8s.io/ingress-nginx"))
    clients = _clients(servers, objects)
    assert network.max_body_size(clients, BODY).status is Status.PASS
    assert network.proxy_timeouts(clients, TIMEOUTS).status is Status.PASS


def test_ingress_without_a_class_uses_the_default_ingress_class(servers):
    objects = _behind(_ingress(), _ingress_class("public", "k8s.io/ingress-nginx", default=True))
    assert network.max_body_size(_clients(servers, objects), BODY).status is Status.FAIL


def test_legacy_class_annotation_is_honoured(servers):
    objects = _behind(_ingress(class_annotation="nginx", annotations={network.NGINX_BODY: "50m"}))
    result = network.max_body_size(_clients(servers, objects), BODY)
    assert result.status is Status.PASS and "50 MiB" in result.summary


def test_alb_without_idle_timeout_attribute_fails_at_its_60s_default(servers):
    objects = _behind(_ingress("alb"), _ingress_class("alb", "ingress.k8s.aws/alb"))
    result = network.proxy_timeouts(_clients(servers, objects), TIMEOUTS)
    assert result.status is Status.FAIL and "ALB default idle timeout 60s" in result.summary
    assert network.max_body_size(_clients(servers, objects), BODY).status is Status.PASS


def test_unknown_ingress_controller_warns_instead_of_guessing(servers):
    objects = _behind(_ingress("traefik"), _ingress_class("traefik", "traefik.io/ingress-controller"))
    result = network.max_body_size(_clients(servers, objects), BODY)
    assert result.status is Status.WARN and "traefik.io/ingress-controller" in result.summary


def test_nlb_in_front_of_the_frontend_passes_timeouts(servers):
    objects = chart_defaults()
    nlb = service(
        "frontend", 80, "LoadBalancer", {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
    )
    objects["services"] = [
        s for s in objects["services"] if s["metadata"]["name"] != f"{FULLNAME}-frontend"
    ] + [nlb]
    result = network.proxy_timeouts(_clients(servers, objects), TIMEOUTS)
    assert result.status is Status.PASS and "NLB fixed TCP idle timeout 350s" in result.summary


def test_missing_frontend_configmap_is_unknown_naming_it(servers):
    objects = production()
    objects["configmaps"] = []
    with pytest.raises(LsreadyError, match="ConfigMap langsmith-frontend"):
        network.max_body_size(_clients(servers, objects), BODY)


# -- network.blob_acl -------------------------------------------------------------------------------


def _blob(endpoint):
    return {"bucket": "traces", "endpoint_url": endpoint, "access_key_id": "k", "secret_access_key": "s"}


def test_blob_endpoint_that_accepts_connections_passes_with_latency(s3_endpoint):
    result = network.blob_acl(_clients(blob=_blob(s3_endpoint)), {})
    assert result.status is Status.PASS and result.observed["tcp_ms"] >= 0 and result.observed["tls"] is False
    assert "from where lsready runs" in result.summary


def test_refused_blob_endpoint_fails_with_the_reason(unused_port):
    result = network.blob_acl(_clients(blob=_blob(f"http://127.0.0.1:{unused_port}")), {})
    assert result.status is Status.FAIL and "TCP connect to" in result.summary
    assert "connection refused" in result.summary


def test_https_endpoint_without_a_tls_answer_fails_at_the_handshake(blackhole):
    clients = _clients(blob=_blob(f"https://127.0.0.1:{blackhole.port}"), timeout_s=1)
    result = network.blob_acl(clients, {})
    assert (
        result.status is Status.FAIL
        and "TLS handshake with" in result.summary
        and "no answer" in result.summary
    )


def test_blob_endpoint_name_that_does_not_resolve_fails():
    result = network.blob_acl(_clients(blob=_blob("https://s3.nowhere.invalid")), {})
    assert result.status is Status.FAIL and "the name does not resolve" in result.summary


def test_blob_endpoint_falls_back_to_langsmiths_s3_api_url(servers, s3_endpoint):
    objects = production()
    for dep in objects["deployments"]:
        for var in dep["spec"]["template"]["spec"]["containers"][0].get("env", []):
            if var["name"] == "S3_API_URL":
                var["value"] = s3_endpoint
    result = network.blob_acl(_clients(servers, objects), {})
    assert (
        result.status is Status.PASS and result.observed["from"] == "S3_API_URL on the LangSmith Deployments"
    )


# -- network.service_latency ------------------------------------------------------------------------


def test_snapshot_run_measures_datastores_but_not_services(servers, blackhole):
    clients = _clients(servers, production(), redis={"url": f"redis://:secret@127.0.0.1:{blackhole.port}/0"})
    result = network.service_latency(clients, LATENCY)
    assert result.status is Status.UNKNOWN and "read from a snapshot" in result.summary
    assert result.observed["targets"]["redis"]["target"] == f"127.0.0.1:{blackhole.port}"
    assert "secret" not in str(result.observed)


def test_out_of_cluster_run_reports_that_service_names_do_not_resolve(servers, blackhole, monkeypatch):
    monkeypatch.setattr(network, "CLUSTER_DOMAIN", "cluster.invalid")
    clients = _clients(
        servers, production(), "api", postgres={"url": f"postgresql://u@127.0.0.1:{blackhole.port}/db"}
    )
    result = network.service_latency(clients, LATENCY)
    assert result.status is Status.UNKNOWN and "do not resolve where lsready runs" in result.summary


def test_in_cluster_run_measures_every_langsmith_service(servers, blackhole, monkeypatch):
    real = network._resolve

    def cluster_dns(host, port):
        # Stand-in for cluster DNS: every Service name answers on the local listener.
        return ("127.0.0.1", blackhole.port) if host.endswith(".svc.cluster.local") else real(host, port)

    monkeypatch.setattr(network, "_resolve", cluster_dns)
    result = network.service_latency(_clients(servers, production(), "api"), LATENCY)
    assert result.status is Status.PASS
    services = {n for n in result.observed["targets"] if n.startswith("service ")}
    assert "service langsmith-backend" in services and "service langsmith-clickhouse" in services
    assert result.observed["targets"]["service langsmith-backend"]["target"].endswith(":1984")


def test_refused_datastore_warns_with_the_reason(unused_port):
    clients = _clients(clickhouse={"url": f"http://default:pw@127.0.0.1:{unused_port}/default"})
    result = network.service_latency(clients, LATENCY)
    assert result.status is Status.WARN and "clickhouse: connection refused" in result.summary


def test_nothing_to_measure_is_unknown():
    with pytest.raises(LsreadyError, match="nothing to measure"):
        network.service_latency(_clients(), LATENCY)
