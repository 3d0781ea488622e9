"""Networking probes: body-size and timeout limits on every hop in front of LangSmith, and latency.

The hops are the frontend's nginx (chart ConfigMap `<fullname>-frontend`, key nginx.conf), any
Ingress routing to the frontend Service (ingress-nginx annotations or AWS ALB attributes), and the
frontend Service's cloud load balancer. Reachability and latency are measured from where lsready runs:
a datastore or the blob endpoint counts as answering only when it replied to a request of its own
protocol (Redis PING, PostgreSQL SSLRequest, HTTP), since the kernel accepts TCP connections for a hung
server too; the LangSmith Services are measured by TCP connect time only, and reported as such.
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from checks import endpoints
from checks.clients import Clients
from checks.cluster import Cluster, ClusterError
from checks.errors import LsreadyError, NotConfigured
from checks.model import Evidence, Status
from checks.probes.blob import BLOB_COMPONENTS
from checks.probes.k8s.objects import deployments, env_on, is_eks, meta, name_of, release_objects

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
#
# The kernel completes a TCP handshake for any listening socket, so a hung server "accepts" as fast as
# a healthy one. A server is only said to answer when it replied to a request of its own protocol.


@dataclass(frozen=True)
class Ask:
    """A request that makes a server of one protocol reply, and how to recognise that reply."""

    name: str  # the request, as the report names it: "PING", "SSLRequest", "HEAD /"
    speaks: str  # the protocol: "Redis", "PostgreSQL", "HTTP"
    request: bytes
    valid: Callable[[bytes], bool]  # the first bytes are a reply of that protocol
    complete: Callable[[bytes], bool]  # enough has arrived to describe the reply
    describe: Callable[[bytes], str]


def _first_line(data: bytes, limit: int = 60) -> str:
    return data.split(b"\n", 1)[0].rstrip(b"\r")[:limit].decode("ascii", "backslashreplace")


def _http_status(data: bytes) -> str:
    fields = _first_line(data).split(" ", 2)
    return f"HTTP {fields[1]}" if len(fields) > 1 else "HTTP"


def http_ask(method: str, path: str, host_header: str) -> Ask:
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: lsready\r\nAccept: */*\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return Ask(
        f"{method} {path}",
        "HTTP",
        request,
        valid=lambda d: d.startswith(b"HTTP/"),
        complete=lambda d: b"\r\n" in d,
        describe=_http_status,
    )


_RESP_TYPES = b"+-:$*_,#!=(%~>|"  # first byte of every RESP2/RESP3 reply
# Any reply proves the server is alive: +PONG, or -NOAUTH / -ERR / -DENIED when it wants credentials
# lsready does not send here.
REDIS_PING = Ask(
    "PING",
    "Redis",
    b"PING\r\n",
    valid=lambda d: d[0] in _RESP_TYPES,
    complete=lambda d: b"\r\n" in d,
    describe=_first_line,
)
# SSLRequest: length 8, code 80877103; the server answers one byte, S (TLS offered) or N (no TLS), or an
# ErrorResponse (E) from a server too old to know it. lsready closes right after: no credentials are sent.
# A server that answered S may log "could not accept SSL connection: EOF detected" once.
_PG_REPLIES = {"S": "S (TLS offered)", "N": "N (no TLS)", "E": "an ErrorResponse"}
POSTGRES_SSLREQUEST = Ask(
    "SSLRequest",
    "PostgreSQL",
    struct.pack("!ii", 8, 80877103),
    valid=lambda d: d[:1].decode("latin-1") in _PG_REPLIES,
    complete=lambda d: len(d) >= 1,
    describe=lambda d: _PG_REPLIES[d[:1].decode("latin-1")],
)


@dataclass(frozen=True)
class Target:
    """Where one server listens, and what to ask it (None: measure the TCP connect only)."""

    host: str = ""
    port: int = 0
    path: str = ""  # a Unix socket, instead of host:port
    tls: bool = False
    ask: Ask | None = None

    @property
    def label(self) -> str:
        if self.path:
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _host_header(host: str, port: int, tls: bool) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if tls else 80) else f"{name}:{port}"


def _resolve(host: str, port: int) -> tuple[Any, ...]:
    """The first address for host:port (kept separate so tests can stand in for cluster DNS)."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4]


def connect_ms(host: str, port: int, timeout_s: float) -> tuple[float, socket.socket]:
    """TCP connect time in ms (name resolution not included) and the open socket; raises OSError."""
    address = _resolve(host, port)
    started = time.perf_counter()
    sock = socket.create_connection(address[:2], timeout=timeout_s)
    return (time.perf_counter() - started) * 1000, sock


def _connect(target: Target, timeout_s: float) -> tuple[float, socket.socket]:
    if not target.path:
        return connect_ms(target.host, target.port, timeout_s)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    started = time.perf_counter()
    try:
        sock.connect(target.path)
    except OSError:
        sock.close()
        raise
    return (time.perf_counter() - started) * 1000, sock


def _secs(s: float) -> str:
    return f"{round(s, 2):g} s"


def _failure(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, socket.gaierror):
        return "the name does not resolve"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, FileNotFoundError):
        return "no socket at that path"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {_secs(timeout_s)}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate rejected ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    return f"{exc.__class__.__name__}: {exc}"


def _read_reply(conn: socket.socket, ask: Ask, until: float) -> tuple[float, bytes]:
    """(ms to the first reply bytes, the reply's first bytes); b"" when the server closed instead."""
    started = time.perf_counter()
    conn.sendall(ask.request)
    data = conn.recv(256)
    first_ms = (time.perf_counter() - started) * 1000
    while data and not ask.complete(data) and len(data) < 256:
        left = until - time.monotonic()
        if left <= 0:
            break
        conn.settimeout(left)
        try:
            more = conn.recv(256)
        except TimeoutError:
            break
        if not more:
            break
        data += more
    return first_ms, data


def exchange(target: Target, step_s: float, total_s: float) -> dict[str, Any]:
    """Connect (and shake hands for TLS), ask the server one request and time its first reply.

    Never raises. Each stage waits at most step_s, the whole exchange at most about total_s. The
    result has connect_ms, tls_ms and reply_ms for the stages reached; on failure, `stage`
    (connect, tls or reply) and `error`. A certificate that does not verify is recorded as
    `cert_error` and the exchange goes on without verification: the server did answer.
    """
    deadline = time.monotonic() + total_s
    out: dict[str, Any] = {"target": target.label, "resolved": True}
    if target.path:
        out["local_socket"] = True

    def step() -> float:
        return max(min(step_s, deadline - time.monotonic()), 0.01)

    for verify in (True, False):
        wait_s = step()
        try:
            took_ms, sock = _connect(target, wait_s)
        except OSError as exc:
            out["resolved"] = not isinstance(exc, socket.gaierror)
            return {**out, "stage": "connect", "error": _failure(exc, wait_s)}
        out["connect_ms"] = round(took_ms, 1)
        conn = sock
        try:
            if target.tls:
                context = ssl.create_default_context()
                if not verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                wait_s = step()
                sock.settimeout(wait_s)
                started = time.perf_counter()
                try:
                    conn = context.wrap_socket(sock, server_hostname=target.host)
                except ssl.SSLCertVerificationError as exc:
                    out["cert_error"] = _failure(exc, wait_s)
                    continue  # the server answered the handshake; ask again, unverified
                except OSError as exc:
                    return {**out, "stage": "tls", "error": _failure(exc, wait_s)}
                out["tls_ms"] = round((time.perf_counter() - started) * 1000, 1)
            if target.ask is None:
                return out
            return {**out, **_ask(conn, target, step(), out["connect_ms"])}
        finally:
            conn.close()
            sock.close()
    raise AssertionError("unreachable: the unverified handshake cannot reject a certificate")


def _ask(conn: socket.socket, target: Target, wait_s: float, connect: float) -> dict[str, Any]:
    ask = target.ask
    assert ask is not None
    accepted = f"accepted a TCP connection in {connect:g} ms{' and a TLS handshake' if target.tls else ''}"
    request = f"{ask.speaks} {ask.name}"
    conn.settimeout(wait_s)
    try:
        reply_ms, data = _read_reply(conn, ask, time.monotonic() + wait_s)
    except TimeoutError:
        return {"stage": "reply", "error": f"{accepted} but did not answer {request} within {_secs(wait_s)}"}
    except OSError as exc:
        return {"stage": "reply", "error": f"{accepted} but failed on {request}: {_failure(exc, wait_s)}"}
    if not data:
        return {"stage": "reply", "error": f"{accepted} but closed it without answering {request}"}
    if not ask.valid(data):
        got = _first_line(data, 24)
        return {"stage": "reply", "error": f"answered {request} with {got!r}, which is not {ask.speaks}"}
    return {"reply_ms": round(reply_ms, 1), "reply": ask.describe(data)}


def _measure(targets: Mapping[str, Target], step_s: float, total_s: float) -> dict[str, dict[str, Any]]:
    """Run `exchange` on every target in parallel; a target still busy after total_s is reported late."""
    if not targets:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(16, len(targets)))
    futures = {name: pool.submit(exchange, t, step_s, total_s) for name, t in targets.items()}
    wait(futures.values(), timeout=total_s + 0.2)
    pool.shutdown(wait=False)  # a stuck DNS lookup must not hold the probe past its budget
    late = {
        "resolved": False,
        "stage": "connect",
        "error": f"no answer within {_secs(total_s)} (DNS or connect)",
    }
    return {
        name: f.result() if f.done() else {"target": targets[name].label, **late}
        for name, f in futures.items()
    }


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


def _timings(r: Mapping[str, Any]) -> str:
    parts = [f"TCP connect {r['connect_ms']:g} ms"]
    if "tls_ms" in r:
        parts.append(f"TLS handshake {r['tls_ms']:g} ms")
    return ", ".join(parts)


def blob_acl(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """The blob endpoint answers an HTTP request (HEAD /, after the TLS handshake for https) from here."""
    url, source = _blob_endpoint(clients)
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host = parts.hostname or ""
    if not host:
        raise LsreadyError(f"the blob endpoint {url!r} ({source}) names no host")
    port = parts.port or (443 if tls else 80)
    target = Target(host, port, tls=tls, ask=http_ask("HEAD", "/", _host_header(host, port, tls)))
    step = max(clients.timeout_s * 0.4, 0.5)
    r = _measure({"blob": target}, step, max(clients.timeout_s * 0.8, step))["blob"]
    keys = ("connect_ms", "tls_ms", "reply_ms", "reply", "cert_error", "error")
    observed: dict[str, Any] = {"endpoint": target.label, "from": source, "tls": tls}
    observed.update({k: r[k] for k in keys if k in r})
    where = "from where lsready runs"
    cert = (
        f" Its TLS certificate does not verify here either: {r['cert_error']}." if "cert_error" in r else ""
    )
    if r.get("stage") == "connect":
        return Evidence(
            Status.FAIL,
            f"TCP connect to blob endpoint {target.label} failed {where}: {r['error']}; "
            f"allow egress to it.{cert}",
            observed,
        )
    if r.get("stage") == "tls":
        return Evidence(
            Status.FAIL,
            f"TLS handshake with blob endpoint {target.label} failed {where}: {r['error']}; check the URL's "
            f"scheme and port, and any proxy or firewall in between.{cert}",
            observed,
        )
    if "error" in r:
        return Evidence(
            Status.FAIL,
            f"Blob endpoint {target.label} accepts TCP but does not answer HTTP {where}: it {r['error']}. "
            f"Check the URL's port, and any proxy or firewall that holds connections open.{cert}",
            observed,
        )
    answered = (
        f"Blob endpoint {target.label} answered HEAD / with {r['reply']} in {r['reply_ms']:g} ms "
        f"({_timings(r)}{'' if tls else ', plain HTTP'}) {where}"
    )
    if "cert_error" in r:
        return Evidence(
            Status.WARN,
            f"{answered}, so the network path is open, but its TLS certificate does not verify here: "
            f"{r['cert_error']}. Make sure LangSmith's pods trust the CA that signed it.",
            observed,
        )
    return Evidence(Status.PASS, f"{answered}.", observed)


def redis_target(url: str) -> Target | str:
    """Where a Redis URL points, or why it is not measured."""
    ep = endpoints.redis(url)
    if ep.unix:
        return Target(path=ep.socket, ask=REDIS_PING) if ep.socket else "unix:// URL without a path"
    if not ep.host:
        return "no host in the URL"
    return Target(ep.host, ep.port or endpoints.REDIS_PORT, tls=ep.tls, ask=REDIS_PING)


def postgres_target(url: str) -> Target | str:
    """Where a libpq URL points (its first host; ?host= and ?port= win, as in libpq), or why not measured."""
    ep = endpoints.postgres(url)
    port = ep.port or endpoints.POSTGRES_PORT
    if ep.abstract:
        return "abstract Unix socket: not a network path"
    if ep.socket:
        return Target(path=f"{ep.socket.rstrip('/')}/.s.PGSQL.{port}", ask=POSTGRES_SSLREQUEST)
    if not ep.connect_host:
        return "no host in the URL: libpq's default local socket, not a network path"
    return Target(ep.connect_host, port, ask=POSTGRES_SSLREQUEST)


def clickhouse_target(url: str) -> Target | str:
    """Where a ClickHouse HTTP URL points, or why it is not measured."""
    ep = endpoints.clickhouse(url)
    if ep.embedded:
        return "embedded chdb engine: no network path"
    if not ep.host or ep.port is None:
        return "no host in the URL"
    return Target(
        ep.host, ep.port, tls=ep.tls, ask=http_ask("GET", "/ping", _host_header(ep.host, ep.port, ep.tls))
    )


_DATASTORES: dict[str, Callable[[str], Target | str]] = {
    "redis": redis_target,
    "postgres": postgres_target,
    "clickhouse": clickhouse_target,
}


def datastore_targets(clients: Clients) -> tuple[dict[str, Target], dict[str, str]]:
    """Configured Redis, PostgreSQL and ClickHouse endpoints (never their credentials), and the
    datastores that are not measured with the reason."""
    found: dict[str, Target] = {}
    skipped: dict[str, str] = {}
    for backend, parse in _DATASTORES.items():
        section = getattr(clients.target, backend, None)
        if section is None:
            continue
        try:
            target = parse(section.url)
        except ValueError:
            target = "cannot read a host and port from the URL"
        if isinstance(target, str):
            skipped[backend] = target
        else:
            found[backend] = target
    return found, skipped


def service_targets(cluster: Cluster) -> dict[str, Target]:
    """Each LangSmith Service's cluster DNS name and first port (TCP connect only)."""
    found = {}
    for svc in release_objects(cluster, "services"):
        ports = (svc.get("spec") or {}).get("ports") or []
        if ports:
            host = f"{name_of(svc)}.{cluster.namespace}.svc.{CLUSTER_DOMAIN}"
            found[name_of(svc)] = Target(host, int(ports[0]["port"]))
    return found


def service_latency(clients: Clients, params: Mapping[str, Any]) -> Evidence:
    """Reply latency of the configured datastores and TCP connect latency of the LangSmith Services."""
    warn_ms = params["warn_ms"]
    threshold = {"warn_ms": warn_ms}
    step = max(min(clients.timeout_s / 3, 2.0), 0.2)
    targets: dict[str, Target]
    targets, not_measured = datastore_targets(clients)
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
    results = _measure(targets, step, 2 * step)
    services = {n: r for n, r in results.items() if n.startswith("service ")}
    if services and not any(r["resolved"] for r in services.values()):
        why_no_services = f"Service names (*.svc.{CLUSTER_DOMAIN}) do not resolve where lsready runs"
        results = {n: r for n, r in results.items() if n not in services}
    skipped = "; ".join(f"{n} not measured ({why})" for n, why in not_measured.items())
    if not results:
        reason = why_no_services or "the release has no Services"
        raise LsreadyError(
            f"nothing to measure: {reason}, and no datastore URL names an endpoint to measure"
            + (f" ({skipped})" if skipped else "")
        )
    observed: dict[str, Any] = {"targets": results}
    if not_measured:
        observed["not_measured"] = not_measured

    def graded(name: str) -> float:
        # A datastore is graded on its reply; a Service on its TCP connect, the only thing asked of it.
        r = results[name]
        return float(r["reply_ms"] if targets[name].ask is not None else r["connect_ms"])

    def said(name: str) -> str:
        r, ask = results[name], targets[name].ask
        local = " (local socket)" if r.get("local_socket") else ""
        if ask is None:
            return f"{name} accepted a TCP connection in {r['connect_ms']:g} ms"
        return f"{name} answered {ask.name} in {r['reply_ms']:g} ms{local}"

    ok = [n for n, r in results.items() if "error" not in r]
    slow = [n for n in ok if graded(n) > warn_ms]
    failed = {n: r for n, r in results.items() if "error" in r}
    notes = [f"{n}: {r['cert_error']}" for n, r in results.items() if "cert_error" in r]
    extras = [skipped] if skipped else []
    if notes:
        extras.append(f"Certificates that do not verify here: {'; '.join(notes)}")
    tail = "".join(f" {e}." for e in extras)
    if slow or failed:
        problems = [f"{said(n)} (TCP connect {results[n]['connect_ms']:g} ms)" for n in slow]
        for n, r in failed.items():
            if r["stage"] == "reply":
                problems.append(f"{n} {r['error']}")
            elif r["stage"] == "tls":
                problems.append(f"{n}: TLS handshake failed: {r['error']}")
            else:
                problems.append(f"{n}: {r['error']}")
        return Evidence(
            Status.WARN,
            f"{len(problems)} of {len(results)} target(s) from where lsready runs did not answer or took "
            f"over {warn_ms} ms: {'; '.join(problems[:5])}.{tail}",
            observed,
            threshold,
        )
    ordered = sorted(ok, key=graded, reverse=True)
    datastores = [n for n in ordered if targets[n].ask is not None]
    connected = [n for n in ordered if targets[n].ask is None]
    answered = (
        f"the datastores answered a protocol request within {warn_ms} ms ({', '.join(map(said, datastores))})"
        if datastores
        else ""
    )
    if why_no_services:
        observed["services"] = why_no_services
        return Evidence(
            Status.UNKNOWN,
            f"Service-to-service latency not measured: {why_no_services}; {answered}; run lsready in the "
            f"cluster to measure the Services.{tail}",
            observed,
            threshold,
        )
    accepted = (
        f"{len(connected)} Service(s) accepted a TCP connection within {warn_ms} ms (connect time only, "
        f"nothing asked; slowest: {', '.join(f'{n} {graded(n):g} ms' for n in connected[:4])})"
        if connected
        else ""
    )
    return Evidence(
        Status.PASS,
        f"From where lsready runs, {'; '.join(s for s in (answered, accepted) if s)}.{tail}",
        observed,
        threshold,
    )


PROBES = {
    "network.max_body_size": max_body_size,
    "network.proxy_timeouts": proxy_timeouts,
    "network.blob_acl": blob_acl,
    "network.service_latency": service_latency,
}
