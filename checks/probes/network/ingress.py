"""The hops in front of LangSmith: frontend nginx, Ingresses and load balancers, their limits."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from checks.clients import Clients
from checks.cluster import Cluster, ClusterError
from checks.model import Evidence, Status
from checks.probes.k8s.objects import is_eks, meta, name_of

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


Reading = tuple[float | None, str]  # a limit and where it comes from


def _hops(
    cluster: Cluster,
    directive: str,
    frontend: Callable[[str | None], Reading],
    ingress: Callable[[str, Mapping[str, str]], Reading | None],
    what: str,
) -> list[Hop]:
    """The frontend nginx's `directive`, then each Ingress in front of it: `ingress(controller,
    annotations)` reads one, None for a controller whose `what` cannot be told."""
    cm_name, conf = frontend_nginx_conf(cluster)
    hops = [Hop(f"frontend nginx (ConfigMap {cm_name})", *frontend(nginx_directive(conf, directive)))]
    for ing in frontend_ingresses(cluster):
        controller = ingress_controller(cluster, ing)
        label = f"Ingress {name_of(ing)} ({controller})"
        found = ingress(controller, meta(ing).get("annotations") or {})
        unknown = Hop(label, None, f"controller {controller}: {what} unknown", inferred=True)
        hops.append(unknown if found is None else Hop(label, *found))
    return hops


def body_hops(cluster: Cluster) -> list[Hop]:
    """The request-body limit of the frontend nginx and of each Ingress in front of it."""

    def frontend(raw: str | None) -> Reading:
        return nginx_size(
            raw or NGINX_DEFAULT_BODY
        ), f"client_max_body_size {raw}" if raw else "nginx default 1m"

    def ingress(controller: str, annotations: Mapping[str, str]) -> Reading | None:
        if controller == "nginx":
            raw = annotations.get(NGINX_BODY)
            source = f"{NGINX_BODY} {raw}" if raw else "ingress-nginx default 1m"
            return nginx_size(raw or NGINX_DEFAULT_BODY), source
        return (0, "an ALB has no body size limit") if controller == "alb" else None

    return _hops(cluster, "client_max_body_size", frontend, ingress, "body limit")


def timeout_hops(cluster: Cluster) -> list[Hop]:
    """The read/idle timeout of the frontend nginx, each Ingress, and the frontend's load balancer."""

    def frontend(raw: str | None) -> Reading:
        return (
            nginx_seconds(raw) if raw else NGINX_DEFAULT_READ_S,
            f"proxy_read_timeout {raw}" if raw else "nginx default 60s",
        )

    def ingress(controller: str, annotations: Mapping[str, str]) -> Reading | None:
        if controller == "nginx":
            raw = annotations.get(NGINX_READ)
            value = nginx_seconds(raw) if raw else NGINX_DEFAULT_READ_S
            return value, f"{NGINX_READ} {raw}" if raw else "ingress-nginx default 60s"
        if controller == "alb":
            idle = _alb_idle(annotations)
            return idle or ALB_DEFAULT_IDLE_S, (
                f"idle_timeout.timeout_seconds={idle:g}" if idle else "ALB default idle timeout 60s"
            )
        return None

    hops = _hops(cluster, "proxy_read_timeout", frontend, ingress, "timeout")
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
