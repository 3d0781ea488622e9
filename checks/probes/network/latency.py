"""Reachability and latency from where lsready runs: datastores, blob endpoint and LangSmith Services."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from checks import endpoints
from checks.clients import MIN_INNER_S, Clients
from checks.cluster import Cluster
from checks.errors import LsreadyError, NotConfigured
from checks.model import Evidence, Status
from checks.probes.blob import BLOB_COMPONENTS
from checks.probes.k8s.objects import deployments, env_on, name_of, release_objects
from checks.probes.network.transport import (
    POSTGRES_SSLREQUEST,
    REDIS_PING,
    Target,
    host_header_for,
    http_ask,
    measure,
)

CLUSTER_DOMAIN = "cluster.local"


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
    target = Target(host, port, tls=tls, ask=http_ask("HEAD", "/", host_header_for(host, port, tls)))
    within = clients.inner_timeout_s
    step = max(within / 2, MIN_INNER_S)  # each stage (connect, TLS, reply) waits at most this
    r = measure({"blob": target}, step, within)["blob"]
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
        ep.host, ep.port, tls=ep.tls, ask=http_ask("GET", "/ping", host_header_for(ep.host, ep.port, ep.tls))
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
    results = measure(targets, step, 2 * step)
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
