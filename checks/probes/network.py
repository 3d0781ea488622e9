"""Networking probes: body-size and timeout limits on every hop in front of LangSmith, and latency.

The hops are the frontend's nginx (chart ConfigMap `<fullname>-frontend`, key nginx.conf), any
Ingress routing to the frontend Service (ingress-nginx annotations or AWS ALB attributes), and the
frontend Service's cloud load balancer. Latency is measured as TCP connect time from where lsready runs.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from checks.clients import Clients
from checks.cluster import Cluster, ClusterError
from checks.errors import LsreadyError, NotConfigured
from checks.model import Evidence, Status
from checks.probes.blob import BLOB_COMPONENTS
from checks.probes.kubernetes import deployments, env_on, is_eks, meta, name_of, release_objects

MIB = 1024 * 1024
NGINX_BODY = "nginx.ingress.kubernetes.io/proxy-body-size"
NGINX_READ = "nginx.ingress.kubernetes.io/proxy-read-timeout"
ALB_ATTRIBUTES = "alb.ingress.kubernetes.io/load-balancer-attributes"
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_INGRESS_CLASS = "ingressclass.kubernetes.io/is-default-class"
AWS_LB_TYPE = "service.beta.kubernetes.io/aws-load-balancer-type"
AWS_CLB_IDLE = "service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout"
# Defaults of the things in front, when nothing overrides them.
NGINX_DEFAULT_BODY = "1m"  # nginx and the ingress-nginx controller
NGINX_DEFAULT_READ_S = 60.0
ALB_DEFAULT_IDLE_S = 60.0
CLB_DEFAULT_IDLE_S = 60.0
NLB_IDLE_S = 350.0  # fixed TCP idle timeout of an AWS NLB
CLUSTER_DOMAIN = "cluster.local"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)\s*$", re.I)
_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.I)


# -- parsing ---------------------------------------------------------------------------------------


def nginx_size(text: str) -> int | None:
    """An nginx size ("25M", "512k", "0") in bytes; 0 means unlimited; None when unparsable."""
    m = _SIZE.match(str(text))
    if not m:
        return None
    factor = {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[m.group(2).lower()]
    return int(float(m.group(1)) * factor)


def nginx_seconds(text: str) -> float | None:
    """An nginx time ("300", "300s", "5m") in seconds; None when unparsable."""
    m = _TIME.match(str(text))
    if not m:
        return None
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[(m.group(2) or "s").lower()]
    return float(m.group(1)) * factor


def nginx_directive(conf: str, directive: str) -> str | None:
    m = re.search(rf"^\s*{directive}\s+([^;]+);", conf, re.M)
    return m.group(1).strip() if m else None


def _size_text(n: int | None) -> str:
    if n is None:
        return "unknown"
    return "unlimited" if n == 0 else f"{n / MIB:g} MiB"


# -- the hops in front of LangSmith ----------------------------------------------------------------


@dataclass
class Hop:
    """One proxy on the request path and the limit it applies."""

    name: str
    value: float | None  # bytes or seconds; 0 bytes = unlimited; None = no such limit
    source: str  # where the value comes from: the object's setting, or whose default
    inferred: bool = False  # the value is lsready's guess about the platform, not a setting


def frontend_nginx_conf(cluster: Cluster) -> tuple[str, str]:
    """(ConfigMap name, nginx.conf) of the chart's frontend."""
    name = cluster.name("frontend")
    cm = cluster.get("configmaps", name)
    if cm is None:
        raise ClusterError(
            f"ConfigMap {name} (the frontend's nginx.conf) is not in namespace {cluster.namespace}"
        )
    conf = (cm.get("data") or {}).get("nginx.conf")
    if not conf:
        raise ClusterError(f"ConfigMap {name} has no nginx.conf key")
    return name, conf


def frontend_ingresses(cluster: Cluster) -> list[dict[str, Any]]:
    """Ingresses whose rules or default backend send traffic to the frontend Service."""
    service = cluster.name("frontend")
    found = []
    for ing in cluster.objects("ingresses"):
        spec = ing.get("spec") or {}
        backends = [spec.get("defaultBackend") or {}]
        for rule in spec.get("rules") or []:
            backends += [p.get("backend") or {} for p in (rule.get("http") or {}).get("paths") or []]
        if any((b.get("service") or {}).get("name") == service for b in backends):
            found.append(ing)
    return found


def ingress_controller(cluster: Cluster, ing: Mapping[str, Any]) -> str:
    """The controller behind an Ingress: nginx, alb, or the controller's own name."""
    class_name = (ing.get("spec") or {}).get("ingressClassName") or (meta(ing).get("annotations") or {}).get(
        INGRESS_CLASS_ANNOTATION
    )
    classes = cluster.objects("ingressclasses")
    ic = next((c for c in classes if name_of(c) == class_name), None)
    if class_name is None:
        ic = next(
            (c for c in classes if (meta(c).get("annotations") or {}).get(DEFAULT_INGRESS_CLASS) == "true"),
            None,
        )
    controller = str(((ic or {}).get("spec") or {}).get("controller") or class_name or "unknown")
    if "ingress-nginx" in controller or "nginx" in controller.lower():
        return "nginx"
    if "ingress.k8s.aws/alb" in controller or controller.lower() == "alb":
        return "alb"
    return controller


def _alb_idle(annotations: Mapping[str, str]) -> float | None:
    attrs = dict(
        pair.strip().split("=", 1) for pair in annotations.get(ALB_ATTRIBUTES, "").split(",") if "=" in pair
    )
    value = attrs.get("idle_timeout.timeout_seconds")
    return float(value) if value else None


def body_hops(cluster: Cluster) -> list[Hop]:
    """The request-body limit of the frontend nginx and of each Ingress in front of it."""
    cm_name, conf = frontend_nginx_conf(cluster)
    raw = nginx_directive(conf, "client_max_body_size")
    hops = [
        Hop(
            f"frontend nginx (ConfigMap {cm_name})",
            nginx_size(raw or NGINX_DEFAULT_BODY),
            f"client_max_body_size {raw}" if raw else "nginx default 1m",
        )
    ]
    for ing in frontend_ingresses(cluster):
        controller = ingress_controller(cluster, ing)
        annotations = meta(ing).get("annotations") or {}
        label = f"Ingress {name_of(ing)} ({controller})"
        if controller == "nginx":
            raw = annotations.get(NGINX_BODY)
            source = f"{NGINX_BODY} {raw}" if raw else "ingress-nginx default 1m"
            hops.append(Hop(label, nginx_size(raw or NGINX_DEFAULT_BODY), source))
        elif controller == "alb":
            hops.append(Hop(label, 0, "an ALB has no body size limit"))
        else:
            hops.append(Hop(label, None, f"controller {controller}: body limit unknown", inferred=True))
    return hops


def timeout_hops(cluster: Cluster) -> list[Hop]:
    """The read/idle timeout of the frontend nginx, each Ingress, and the frontend's load balancer."""
    cm_name, conf = frontend_nginx_conf(cluster)
    raw = nginx_directive(conf, "proxy_read_timeout")
    hops = [
        Hop(
            f"frontend nginx (ConfigMap {cm_name})",
            nginx_seconds(raw) if raw else NGINX_DEFAULT_READ_S,
            f"proxy_read_timeout {raw}" if raw else "nginx default 60s",
        )
    ]
    for ing in frontend_ingresses(cluster):
        controller = ingress_controller(cluster, ing)
        annotations = meta(ing).get("annotations") or {}
        label = f"Ingress {name_of(ing)} ({controller})"
        if controller == "nginx":
            raw = annotations.get(NGINX_READ)
            value = nginx_seconds(raw) if raw else NGINX_DEFAULT_READ_S
            hops.append(Hop(label, value, f"{NGINX_READ} {raw}" if raw else "ingress-nginx default 60s"))
        elif controller == "alb":
            idle = _alb_idle(annotations)
            source = f"idle_timeout.timeout_seconds={idle:g}" if idle else "ALB default idle timeout 60s"
            hops.append(Hop(label, idle or ALB_DEFAULT_IDLE_S, source))
        else:
            hops.append(Hop(label, None, f"controller {controller}: timeout unknown", inferred=True))
    lb = _load_balancer_hop(cluster)
    if lb is not None:
        hops.append(lb)
    return hops


def _load_balancer_hop(cluster: Cluster) -> Hop | None:
    """The frontend Service's AWS load balancer idle timeout, when it is of type LoadBalancer."""
    svc = cluster.get("services", cluster.name("frontend"))
    if svc is None or (svc.get("spec") or {}).get("type") != "LoadBalancer":
        return None
    annotations = meta(svc).get("annotations") or {}
    label = f"Service {name_of(svc)} load balancer"
    if annotations.get(AWS_CLB_IDLE):
        return Hop(label, float(annotations[AWS_CLB_IDLE]), f"{AWS_CLB_IDLE} {annotations[AWS_CLB_IDLE]}")
    if annotations.get(AWS_LB_TYPE) in ("nlb", "nlb-ip", "external"):
        return Hop(label, NLB_IDLE_S, "NLB fixed TCP idle timeout 350s")
    eks, _ = is_eks(cluster)
    if eks:
        # Without annotations the AWS cloud provider makes a Classic ELB, whose idle timeout is 60 s.
        return Hop(label, CLB_DEFAULT_IDLE_S, "Classic ELB default idle timeout 60s", inferred=True)
    return None


def _hops_text(hops: list[Hop], fmt: Any) -> str:
    return "; ".join(f"{h.name}: {fmt(h.value)} ({h.source})" for h in hops)


def max_body_size(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Every hop in front of LangSmith accepts request bodies of the expected payload size."""
    cluster = clients.cluster
    expected_mb = params["expected_payload_mb"]
    expected = int(expected_mb * MIB)
    hops = body_hops(cluster)
    threshold = {"expected_payload_mb": expected_mb}
    observed = {h.name: {"limit_bytes": h.value, "source": h.source} for h in hops}
    small = [h for h in hops if h.value is not None and h.value != 0 and h.value < expected]
    unknown = [h for h in hops if h.value is None]
    if small:
        tightest = min(small, key=lambda h: h.value or 0)
        return Evidence(
            Status.FAIL,
            f"{tightest.name} accepts bodies up to {_size_text(int(tightest.value or 0))} "
            f"({tightest.source}), "
            f'below the expected {expected_mb} MB payloads; raise it (e.g. frontend.maxBodySize "100M").',
            observed,
            threshold,
        )
    if unknown:
        return Evidence(
            Status.WARN,
            f"lsready cannot read the body limit of {', '.join(h.name for h in unknown)}; check it allows "
            f"{expected_mb} MB (other hops: {_hops_text(hops, _size_text)}).",
            observed,
            threshold,
        )
    return Evidence(
        Status.PASS,
        f"Every hop accepts {expected_mb} MB bodies: {_hops_text(hops, _size_text)}.",
        observed,
        threshold,
    )


def proxy_timeouts(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Every hop's read or idle timeout is at least the minimum for large reads."""
    cluster = clients.cluster
    minimum = params["min_read_timeout_s"]
    hops = timeout_hops(cluster)
    threshold = {"min_read_timeout_s": minimum}
    observed = {h.name: {"timeout_s": h.value, "source": h.source, "inferred": h.inferred} for h in hops}

    def secs(v: float | None) -> str:
        return "unknown" if v is None else f"{v:g} s"

    short = [h for h in hops if h.value is not None and h.value < minimum]
    if any(not h.inferred for h in short):
        h = next(h for h in short if not h.inferred)
        return Evidence(
            Status.FAIL,
            f"{h.name} cuts reads at {secs(h.value)} ({h.source}), below {minimum} s; raise it.",
            observed,
            threshold,
        )
    doubtful = short + [h for h in hops if h.value is None]
    if doubtful:
        return Evidence(
            Status.WARN,
            f"Check {_hops_text(doubtful, secs)}; required: {minimum} s or more on every hop.",
            observed,
            threshold,
        )
    return Evidence(
        Status.PASS, f"Every hop allows {minimum} s reads: {_hops_text(hops, secs)}.", observed, threshold
    )


# -- reachability and latency ----------------------------------------------------------------------


def _resolve(host: str, port: int) -> tuple[Any, ...]:
    """The first address for host:port (kept separate so tests can stand in for cluster DNS)."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4]


def connect_ms(host: str, port: int, timeout_s: float) -> tuple[float, socket.socket]:
    """TCP connect time in ms and the open socket; raises OSError with the reason."""
    address = _resolve(host, port)
    started = time.perf_counter()
    sock = socket.create_connection(address[:2], timeout=timeout_s)
    return (time.perf_counter() - started) * 1000, sock


def _failure(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, socket.gaierror):
        return "the name does not resolve"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate rejected ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    return f"{exc.__class__.__name__}: {exc}"


def _blob_endpoint(clients: Clients) -> tuple[str, str]:
    """(endpoint URL, where it came from): lsready's blob config, else LangSmith's S3_API_URL."""
    if clients.has("blob"):
        return clients.blob.endpoint_url, "lsready's blob config"
    if clients.has("kubernetes"):
        cluster = clients.cluster
        urls = {u for u in env_on(cluster, deployments(cluster, BLOB_COMPONENTS), "S3_API_URL").values() if u}
        if urls:
            return sorted(urls)[0], "S3_API_URL on the LangSmith Deployments"
    raise NotConfigured("blob", clients.target_name)


def blob_acl(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """The blob endpoint accepts a TCP connection (and a TLS handshake for https) from here."""
    url, source = _blob_endpoint(clients)
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if tls else 80)
    budget = max(clients.timeout_s * 0.4, 0.5)
    observed: dict[str, Any] = {"endpoint": f"{host}:{port}", "from": source, "tls": tls}
    try:
        tcp_ms, sock = connect_ms(host, port, budget)
        observed["tcp_ms"] = round(tcp_ms, 1)
        with sock:
            if tls:
                started = time.perf_counter()
                sock.settimeout(budget)
                with ssl.create_default_context().wrap_socket(sock, server_hostname=host):
                    observed["tls_ms"] = round((time.perf_counter() - started) * 1000, 1)
    except OSError as exc:
        stage = "TLS handshake with" if "tcp_ms" in observed else "TCP connect to"
        observed["error"] = _failure(exc, budget)
        return Evidence(
            Status.FAIL,
            f"{stage} blob endpoint {host}:{port} failed from where lsready runs: {observed['error']}; "
            "allow egress to it.",
            observed,
        )
    handshake = f" and the TLS handshake {observed['tls_ms']} ms" if tls else " (plain HTTP, no TLS)"
    return Evidence(
        Status.PASS,
        f"TCP connect to blob endpoint {host}:{port} took {observed['tcp_ms']} ms{handshake} from where "
        "lsready runs.",
        observed,
    )


DEFAULT_PORTS = {
    "redis": 6379,
    "rediss": 6379,
    "postgresql": 5432,
    "postgres": 5432,
    "http": 8123,
    "https": 8443,
}


def datastore_targets(clients: Clients) -> dict[str, tuple[str, int]]:
    """Configured Redis, PostgreSQL and ClickHouse host:port (never their credentials)."""
    found = {}
    for backend in ("redis", "postgres", "clickhouse"):
        section = getattr(clients.target, backend, None)
        if section is None:
            continue
        parts = urlsplit(section.url)
        if parts.scheme in DEFAULT_PORTS and parts.hostname:
            found[backend] = (parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme])
    return found


def service_targets(cluster: Cluster) -> dict[str, tuple[str, int]]:
    """Each LangSmith Service's cluster DNS name and first port."""
    found = {}
    for svc in release_objects(cluster, "services"):
        ports = (svc.get("spec") or {}).get("ports") or []
        if ports:
            host = f"{name_of(svc)}.{cluster.namespace}.svc.{CLUSTER_DOMAIN}"
            found[name_of(svc)] = (host, int(ports[0]["port"]))
    return found


def _measure(targets: Mapping[str, tuple[str, int]], timeout_s: float) -> dict[str, dict[str, Any]]:
    """Connect to every target in parallel; each gets its latency or the reason it failed."""

    def one(host: str, port: int) -> dict[str, Any]:
        try:
            ms, sock = connect_ms(host, port, timeout_s)
        except OSError as exc:
            resolved = not isinstance(exc, socket.gaierror)
            return {"target": f"{host}:{port}", "error": _failure(exc, timeout_s), "resolved": resolved}
        sock.close()
        return {"target": f"{host}:{port}", "ms": round(ms, 1), "resolved": True}

    if not targets:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(16, len(targets)))
    futures = {name: pool.submit(one, host, port) for name, (host, port) in targets.items()}
    wait(futures.values(), timeout=timeout_s * 2)
    pool.shutdown(wait=False)  # a stuck DNS lookup must not hold the probe past its budget
    late = {"error": "no answer (DNS or connect)", "resolved": False}
    return {name: f.result() if f.done() else {"target": name, **late} for name, f in futures.items()}


def service_latency(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """TCP connect latency to the LangSmith Services and the configured datastores, against warn_ms."""
    warn_ms = params["warn_ms"]
    threshold = {"warn_ms": warn_ms}
    budget = max(min(clients.timeout_s / 3, 2.0), 0.2)
    targets = datastore_targets(clients)
    why_no_services = "kubernetes is not configured"
    if clients.has("kubernetes"):
        cluster = clients.cluster
        if cluster.in_cluster is False:
            why_no_services = (
                f"the cluster is read from a {cluster.source}, so Service names are not reachable"
            )
        else:
            why_no_services = ""
            targets.update({f"service {n}": t for n, t in service_targets(cluster).items()})
    results = _measure(targets, budget)
    services = {n: r for n, r in results.items() if n.startswith("service ")}
    if services and not any(r["resolved"] for r in services.values()):
        why_no_services = f"Service names (*.svc.{CLUSTER_DOMAIN}) do not resolve where lsready runs"
        results = {n: r for n, r in results.items() if n not in services}
    if not results:
        reason = why_no_services or "the release has no Services"
        raise LsreadyError(f"nothing to measure: {reason}, and no datastore URL is configured")
    observed: dict[str, Any] = {"targets": results}
    slow = {n: r["ms"] for n, r in results.items() if r.get("ms", 0) > warn_ms}
    failed = {n: r["error"] for n, r in results.items() if "error" in r}
    slowest = sorted(((r["ms"], n) for n, r in results.items() if "ms" in r), reverse=True)
    measured = ", ".join(f"{n} {ms:g} ms" for ms, n in slowest[:4]) or "none"
    if slow or failed:
        problems = [f"{n} {ms:g} ms" for n, ms in slow.items()] + [f"{n}: {e}" for n, e in failed.items()]
        return Evidence(
            Status.WARN,
            f"{len(problems)} connection(s) from where lsready runs took over {warn_ms} ms or failed: "
            f"{'; '.join(problems[:5])}.",
            observed,
            threshold,
        )
    if why_no_services:
        observed["services"] = why_no_services
        return Evidence(
            Status.UNKNOWN,
            f"Service-to-service latency not measured: {why_no_services}; the datastores answered within "
            f"{warn_ms} ms ({measured}); run lsready in the cluster to measure the Services.",
            observed,
            threshold,
        )
    return Evidence(
        Status.PASS,
        f"All {len(results)} connections from where lsready runs opened within {warn_ms} ms "
        f"(slowest: {measured}).",
        observed,
        threshold,
    )


PROBES = {
    "network.max_body_size": max_body_size,
    "network.proxy_timeouts": proxy_timeouts,
    "network.blob_acl": blob_acl,
    "network.service_latency": service_latency,
}
