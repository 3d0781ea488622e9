"""Networking probes: limits on every hop in front of LangSmith, blob endpoint reachability, latency."""

import datetime
import socket
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from k8s_fake import FULLNAME, NS, chart_defaults, production, service

from checks.clients import Clients
from checks.config import TargetConfig
from checks.errors import LsreadyError
from checks.model import Status
from checks.probes.network import latency, transport
from checks.probes.network.ingress import (
    NGINX_BODY,
    NGINX_READ,
    max_body_size,
    nginx_seconds,
    nginx_size,
    proxy_timeouts,
)
from checks.probes.network.latency import blob_acl, clickhouse_target, postgres_target, service_latency
from checks.probes.network.transport import POSTGRES_SSLREQUEST

BODY = {"expected_payload_mb": 25}
TIMEOUTS = {"min_read_timeout_s": 300}
LATENCY = {"warn_ms": 50}
# A silent server must not hold a test for long: service_latency waits timeout_s / 3 per stage.
QUICK = 1


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
    assert nginx_size(text) == size


@pytest.mark.parametrize(
    ("text", "seconds"), [("300", 300), ("300s", 300), ("5m", 300), ("1h", 3600), ("x", None)]
)
def test_nginx_times_parse_like_nginx(text, seconds):
    assert nginx_seconds(text) == seconds


def test_nginx_ingress_without_annotations_cuts_bodies_at_1m_and_reads_at_60s(servers):
    objects = _behind(_ingress("nginx"), _ingress_class("nginx", "k8s.io/ingress-nginx"))
    clients = _clients(servers, objects)
    body = max_body_size(clients, BODY)
    assert body.status is Status.FAIL
    assert "Ingress langsmith (nginx) accepts bodies up to 1 MiB (ingress-nginx default 1m)" in body.summary
    timeouts = proxy_timeouts(clients, TIMEOUTS)
    assert (
        timeouts.status is Status.FAIL
        and "cuts reads at 60 s (ingress-nginx default 60s)" in timeouts.summary
    )


def test_nginx_ingress_annotations_raise_both_limits(servers):
    annotations = {NGINX_BODY: "200m", NGINX_READ: "600"}
    objects = _behind(_ingress("nginx", annotations), _ingress_class("nginx", "k8s.io/ingress-nginx"))
    clients = _clients(servers, objects)
    assert max_body_size(clients, BODY).status is Status.PASS
    assert proxy_timeouts(clients, TIMEOUTS).status is Status.PASS


def test_ingress_without_a_class_uses_the_default_ingress_class(servers):
    objects = _behind(_ingress(), _ingress_class("public", "k8s.io/ingress-nginx", default=True))
    assert max_body_size(_clients(servers, objects), BODY).status is Status.FAIL


def test_legacy_class_annotation_is_honoured(servers):
    objects = _behind(_ingress(class_annotation="nginx", annotations={NGINX_BODY: "50m"}))
    result = max_body_size(_clients(servers, objects), BODY)
    assert result.status is Status.PASS and "50 MiB" in result.summary


def test_alb_without_idle_timeout_attribute_fails_at_its_60s_default(servers):
    objects = _behind(_ingress("alb"), _ingress_class("alb", "ingress.k8s.aws/alb"))
    result = proxy_timeouts(_clients(servers, objects), TIMEOUTS)
    assert result.status is Status.FAIL and "ALB default idle timeout 60s" in result.summary
    assert max_body_size(_clients(servers, objects), BODY).status is Status.PASS


def test_unknown_ingress_controller_warns_instead_of_guessing(servers):
    objects = _behind(_ingress("traefik"), _ingress_class("traefik", "traefik.io/ingress-controller"))
    result = max_body_size(_clients(servers, objects), BODY)
    assert result.status is Status.WARN and "traefik.io/ingress-controller" in result.summary


def test_nlb_in_front_of_the_frontend_passes_timeouts(servers):
    objects = chart_defaults()
    nlb = service(
        "frontend", 80, "LoadBalancer", {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
    )
    objects["services"] = [
        s for s in objects["services"] if s["metadata"]["name"] != f"{FULLNAME}-frontend"
    ] + [nlb]
    result = proxy_timeouts(_clients(servers, objects), TIMEOUTS)
    assert result.status is Status.PASS and "NLB fixed TCP idle timeout 350s" in result.summary


def test_missing_frontend_configmap_is_unknown_naming_it(servers):
    objects = production()
    objects["configmaps"] = []
    with pytest.raises(LsreadyError, match="ConfigMap langsmith-frontend"):
        max_body_size(_clients(servers, objects), BODY)


# -- silent and answering servers -----------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no trust store knows."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lsready-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class TlsServer:
    """Completes TLS handshakes with an untrusted certificate; answers HTTP 403, or stays silent."""

    def __init__(self, directory: Path, answer: bool) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(*_self_signed(directory))
        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except OSError:
            conn.close()  # the client gave up on the untrusted certificate
            return
        self.conns.append(tls)
        if self.answer:
            tls.recv(1024)
            tls.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def tls_server(tmp_path):
    servers: list[TlsServer] = []

    def start(answer: bool) -> TlsServer:
        servers.append(TlsServer(tmp_path, answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def unix_blackhole():
    """A Unix socket that is listened on and never read: connects succeed, nothing ever answers."""
    directory = Path(tempfile.mkdtemp(prefix="lsr-net-"))
    path = directory / "s.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(8)
    yield path
    sock.close()
    path.unlink()
    directory.rmdir()


@pytest.fixture
def clickhouse_http():
    """An HTTP server that answers GET /ping like ClickHouse."""

    class Ping(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"Ok.\n" if self.path == "/ping" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ping)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://default:pw@127.0.0.1:{server.server_address[1]}/default"
    server.shutdown()
    server.server_close()


# -- network.blob_acl -------------------------------------------------------------------------------


def _blob(endpoint):
    return {"bucket": "traces", "endpoint_url": endpoint, "access_key_id": "k", "secret_access_key": "s"}


def test_blob_endpoint_that_answers_http_passes_with_connect_and_reply_times(s3_endpoint):
    result = blob_acl(_clients(blob=_blob(s3_endpoint)), {})
    assert result.status is Status.PASS, result.summary
    assert result.observed["tls"] is False and result.observed["reply"].startswith("HTTP ")
    assert result.observed["connect_ms"] >= 0 and result.observed["reply_ms"] >= 0
    assert "answered HEAD / with HTTP" in result.summary and "from where lsready runs" in result.summary


def test_blob_endpoint_that_accepts_tcp_but_never_answers_http_fails(blackhole):
    clients = _clients(blob=_blob(f"http://127.0.0.1:{blackhole.port}"), timeout_s=QUICK)
    result = blob_acl(clients, {})
    assert result.status is Status.FAIL
    assert "accepts TCP but does not answer HTTP" in result.summary
    assert "accepted a TCP connection in" in result.summary
    assert "did not answer HTTP HEAD / within 0.5 s" in result.summary
    assert "answered" not in result.summary and "reply_ms" not in result.observed


def test_refused_blob_endpoint_fails_with_the_reason(unused_port):
    result = blob_acl(_clients(blob=_blob(f"http://127.0.0.1:{unused_port}")), {})
    assert result.status is Status.FAIL and "TCP connect to" in result.summary
    assert "connection refused" in result.summary


def test_https_endpoint_without_a_tls_answer_fails_at_the_handshake(blackhole):
    clients = _clients(blob=_blob(f"https://127.0.0.1:{blackhole.port}"), timeout_s=QUICK)
    result = blob_acl(clients, {})
    assert result.status is Status.FAIL and "TLS handshake with" in result.summary
    assert "no answer within" in result.summary and "answered" not in result.summary


def test_https_endpoint_silent_after_the_handshake_fails(tls_server):
    server = tls_server(answer=False)
    clients = _clients(blob=_blob(f"https://127.0.0.1:{server.port}"), timeout_s=QUICK)
    result = blob_acl(clients, {})
    assert result.status is Status.FAIL
    assert "accepted a TCP connection in" in result.summary and "and a TLS handshake" in result.summary
    assert "did not answer HTTP HEAD /" in result.summary
    assert "does not verify here either: certificate rejected (self-signed" in result.summary


def test_untrusted_certificate_is_named_but_the_answer_still_proves_reachability(tls_server):
    server = tls_server(answer=True)
    clients = _clients(blob=_blob(f"https://127.0.0.1:{server.port}"), timeout_s=QUICK)
    result = blob_acl(clients, {})
    assert result.status is Status.WARN
    assert "answered HEAD / with HTTP 403" in result.summary and "the network path is open" in result.summary
    assert "certificate does not verify here: certificate rejected" in result.summary
    assert result.observed["tls_ms"] >= 0


def test_blob_endpoint_name_that_does_not_resolve_fails():
    result = blob_acl(_clients(blob=_blob("https://s3.nowhere.invalid")), {})
    assert result.status is Status.FAIL and "the name does not resolve" in result.summary


def test_blob_endpoint_falls_back_to_langsmiths_s3_api_url(servers, s3_endpoint):
    objects = production()
    for dep in objects["deployments"]:
        for var in dep["spec"]["template"]["spec"]["containers"][0].get("env", []):
            if var["name"] == "S3_API_URL":
                var["value"] = s3_endpoint
    result = blob_acl(_clients(servers, objects), {})
    assert (
        result.status is Status.PASS and result.observed["from"] == "S3_API_URL on the LangSmith Deployments"
    )


# -- network.service_latency ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("postgresql://u:p@db.example:6432/x", ("db.example", 6432, "")),
        ("postgres://u@db.example/x?sslmode=require", ("db.example", 5432, "")),
        ("postgresql://u@[::1]:5433/x", ("::1", 5433, "")),
        ("postgresql://u@h1:5001,h2:5002/x", ("h1", 5001, "")),
        ("postgresql://u@/x?host=/run/pg&port=5433", ("", 0, "/run/pg/.s.PGSQL.5433")),
        ("postgresql://u@%2Frun%2Fpg/x", ("", 0, "/run/pg/.s.PGSQL.5432")),
        ("postgresql://u@ignored/x?hostaddr=10.0.0.5", ("10.0.0.5", 5432, "")),
    ],
)
def test_postgres_urls_point_where_libpq_would_connect(url, target):
    t = postgres_target(url)
    assert (t.host, t.port, t.path) == target and t.ask is POSTGRES_SSLREQUEST


def test_datastores_without_a_network_endpoint_are_not_measured():
    assert "libpq's default local socket" in postgres_target("postgresql://u@/db")
    assert "chdb" in clickhouse_target("chdb:///tmp/ch")
    with pytest.raises(LsreadyError, match=r"nothing to measure.*clickhouse not measured \(embedded chdb"):
        service_latency(_clients(clickhouse={"url": "chdb:///tmp/ch"}), LATENCY)


def test_silent_datastores_are_not_reported_as_answering(blackhole):
    hole = f"127.0.0.1:{blackhole.port}"
    clients = _clients(
        timeout_s=QUICK,
        redis={"url": f"redis://:secret@{hole}/0"},
        postgres={"url": f"postgresql://u:secret@{hole}/db"},
        clickhouse={"url": f"http://default:secret@{hole}/default"},
    )
    result = service_latency(clients, LATENCY)
    assert result.status is Status.WARN
    assert "3 of 3 target(s)" in result.summary and "answered" not in result.summary
    for name, request in (
        ("redis", "Redis PING"),
        ("postgres", "PostgreSQL SSLRequest"),
        ("clickhouse", "HTTP GET /ping"),
    ):
        assert f"{name} accepted a TCP connection in" in result.summary
        assert f"did not answer {request} within 0.33 s" in result.summary
        assert result.observed["targets"][name]["stage"] == "reply"
        assert "reply_ms" not in result.observed["targets"][name]
    assert "secret" not in str(result.observed) and "secret" not in result.summary


def test_silent_datastore_on_a_unix_socket_is_not_answering(unix_blackhole):
    clients = _clients(timeout_s=QUICK, redis={"url": f"unix://{unix_blackhole}?db=0"})
    result = service_latency(clients, LATENCY)
    assert result.status is Status.WARN and "did not answer Redis PING" in result.summary
    assert result.observed["targets"]["redis"]["target"] == f"unix:{unix_blackhole}"


def test_a_reply_in_another_protocol_is_named_not_taken_for_an_answer(clickhouse_http):
    # A Redis URL pointing at an HTTP server: the server replies, but not in RESP.
    clients = _clients(timeout_s=QUICK, redis={"url": clickhouse_http.replace("http://", "redis://", 1)})
    result = service_latency(clients, LATENCY)
    assert result.status is Status.WARN
    assert (
        "redis answered Redis PING with '<!DOCTYPE HTML>'," in result.summary
        and "which is not Redis" in result.summary
    )


def test_missing_postgres_socket_warns():
    clients = _clients(timeout_s=QUICK, postgres={"url": "postgresql://u@/db?host=/nonexistent-lsr"})
    result = service_latency(clients, LATENCY)
    assert result.status is Status.WARN and "postgres: no socket at that path" in result.summary


def test_real_datastores_answer_and_services_only_accept(
    servers, blackhole, monkeypatch, redis_url, postgres_url, clickhouse_http
):
    real = transport._resolve

    def cluster_dns(host, port):
        # Stand-in for cluster DNS: every Service name lands on the silent listener.
        return ("127.0.0.1", blackhole.port) if host.endswith(".svc.cluster.local") else real(host, port)

    monkeypatch.setattr(transport, "_resolve", cluster_dns)
    clients = _clients(
        servers,
        production(),
        "api",
        timeout_s=QUICK,
        redis={"url": redis_url},
        postgres={"url": postgres_url},
        clickhouse={"url": clickhouse_http},
    )
    result = service_latency(clients, {"warn_ms": 500})
    assert result.status is Status.PASS, result.summary
    targets = result.observed["targets"]
    assert targets["redis"]["reply"].startswith(("+PONG", "-NOAUTH"))
    assert targets["postgres"]["reply"] in ("S (TLS offered)", "N (no TLS)")
    assert targets["clickhouse"]["reply"] == "HTTP 200"
    assert "the datastores answered a protocol request within 500 ms" in result.summary
    assert "redis answered PING in" in result.summary and "clickhouse answered GET /ping in" in result.summary
    assert "Service(s) accepted a TCP connection within 500 ms (connect time only" in result.summary
    assert "reply_ms" not in targets["service langsmith-backend"]


def test_snapshot_run_measures_datastores_but_not_services(servers, redis_url):
    # The password is in the URL lsready reads, but PING is sent without it and it is never reported.
    url = redis_url.replace("redis://", "redis://:secret@", 1)
    clients = _clients(servers, production(), timeout_s=QUICK, redis={"url": url})
    result = service_latency(clients, LATENCY)
    assert result.status is Status.UNKNOWN and "read from a snapshot" in result.summary
    assert "the datastores answered a protocol request within 50 ms (redis answered PING in" in result.summary
    assert result.observed["targets"]["redis"]["target"] == url.split("@", 1)[1].rsplit("/", 1)[0]
    assert "secret" not in str(result.observed)


def test_out_of_cluster_run_reports_that_service_names_do_not_resolve(servers, postgres_url, monkeypatch):
    monkeypatch.setattr(latency, "CLUSTER_DOMAIN", "cluster.invalid")
    clients = _clients(servers, production(), "api", timeout_s=3, postgres={"url": postgres_url})
    result = service_latency(clients, LATENCY)
    assert result.status is Status.UNKNOWN and "do not resolve where lsready runs" in result.summary
    assert "postgres answered SSLRequest in" in result.summary


def test_in_cluster_run_measures_every_langsmith_service(servers, blackhole, monkeypatch):
    real = transport._resolve

    def cluster_dns(host, port):
        # Stand-in for cluster DNS: every Service name answers on the local listener.
        return ("127.0.0.1", blackhole.port) if host.endswith(".svc.cluster.local") else real(host, port)

    monkeypatch.setattr(transport, "_resolve", cluster_dns)
    result = service_latency(_clients(servers, production(), "api"), LATENCY)
    assert result.status is Status.PASS
    assert "accepted a TCP connection" in result.summary and "answered" not in result.summary
    services = {n for n in result.observed["targets"] if n.startswith("service ")}
    assert "service langsmith-backend" in services and "service langsmith-clickhouse" in services
    assert result.observed["targets"]["service langsmith-backend"]["target"].endswith(":1984")


def test_refused_datastore_warns_with_the_reason(unused_port):
    clients = _clients(clickhouse={"url": f"http://default:pw@127.0.0.1:{unused_port}/default"})
    result = service_latency(clients, LATENCY)
    assert result.status is Status.WARN and "clickhouse: connection refused" in result.summary


def test_nothing_to_measure_is_unknown():
    with pytest.raises(LsreadyError, match="nothing to measure"):
        service_latency(_clients(), LATENCY)
