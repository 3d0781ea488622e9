"""What probes share: the probe type, grading a value against warn/fail limits, formatting sizes."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from checks.model import Evidence, Status

if TYPE_CHECKING:
    from checks.clients import Clients

T = TypeVar("T")
ProbeFn = Callable[["Clients", Mapping[str, Any]], Evidence]


def grade_high(value: float, warn: float, fail: float) -> Status:
    """Higher is worse: pass below warn, warn from warn, fail from fail."""
    if value >= fail:
        return Status.FAIL
    if value >= warn:
        return Status.WARN
    return Status.PASS


def pct(ratio: float, *limits: float) -> str:
    """A ratio as a percentage with the precision that decides.

    Alone (a limit, or a value graded against nothing), exact to two decimals: '70%', '87.5%'.
    Given the limits it is graded against, with the decimals it takes for the shown value to compare
    with each shown limit as the values do: '69.5%' under a 70% warn, never '70%'.
    """
    if not limits:
        return f"{round(ratio * 100, 2):g}%"
    for digits in range(7):
        shown = round(ratio * 100, digits)
        if all(
            (shown >= round(limit * 100, 2)) == (ratio >= limit)
            and (shown > round(limit * 100, 2)) == (ratio > limit)
            for limit in limits
        ):
            return f"{ratio * 100:.{digits}f}%"
    return f"{ratio * 100!r}%"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


# --- Shared by the Redis and PostgreSQL probes -------------------------------------------------


def grade_above(value: float, warn: float, fail: float) -> Status:
    """Higher is worse, limits exclusive: pass up to warn, warn above warn, fail above fail."""
    if value > fail:
        return Status.FAIL
    if value > warn:
        return Status.WARN
    return Status.PASS


def worst(*statuses: Status) -> Status:
    """The most serious of pass/manual/warn/fail: a definite finding outranks a question."""
    order = (Status.FAIL, Status.WARN, Status.MANUAL, Status.PASS)
    return next((s for s in order if s in statuses), Status.PASS)


@dataclass(frozen=True)
class Placement:
    """Where a datastore runs, as far as its address tells: managed, in-cluster, local or unknown."""

    kind: str  # "managed" | "in-cluster" | "local" | "unknown"
    reason: str
    provider: str | None = None


_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def classify_host(
    host: str | None, managed: Sequence[tuple[str, str]], components: Sequence[str]
) -> Placement:
    """Classify a hostname by managed-service DNS suffixes, Kubernetes Service names and loopback."""
    if not host:
        return Placement("local", "a Unix socket on the lsready host")
    name = host.lower().rstrip(".")
    for suffix, provider in managed:
        if name.endswith(suffix):
            return Placement("managed", f"host name ends with {suffix}", provider)
    try:
        ip = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        ip = None
    if name in _LOCAL_NAMES or (ip is not None and ip.is_loopback):
        return Placement("local", "a loopback address (a local server or a port-forward)")
    if ip is not None:
        scope = "private" if ip.is_private else "public"
        return Placement("unknown", f"a {scope} IP address, which does not name its provider")
    labels = name.split(".")
    if name.endswith((".svc", ".svc.cluster.local", ".cluster.local")):
        return Placement("in-cluster", "a Kubernetes Service DNS name")
    first = labels[0]
    if len(labels) <= 2 and any(first == c or first.endswith(f"-{c}") for c in components):
        return Placement("in-cluster", f"a Kubernetes Service name like <release>-{components[0]}")
    if len(labels) == 1:
        return Placement("in-cluster", "a single-label name, which resolves through cluster DNS")
    return Placement("unknown", "a host name that matches no known managed service")


def cluster_lookup(clients: Any, read: Callable[[Any], T]) -> T | None:
    """`read(clients.cluster)`, or None when Kubernetes is not configured or cannot be read.

    The cluster is optional evidence for datastore probes: a missing kubeconfig, RBAC denial or
    unreachable API must not turn a Redis or PostgreSQL verdict into `unknown`.
    """
    if not clients.has("kubernetes"):
        return None
    try:
        return read(clients.cluster)
    except Exception:
        return None


def human_duration(seconds: float | None, *limits: float) -> str:
    """'45 s', '12 min', '3.5 h', '2.0 d'; None reads as 'unknown'.

    Given the limits it is graded against, in seconds to the tenth when the rounded form would
    compare with a limit otherwise than the value does: '59.6 s' under a 1 min warn, never '60 s'.
    """
    if seconds is None:
        return "unknown"
    for scale, unit, fmt in ((86400, "d", ".1f"), (3600, "h", ".1f"), (60, "min", ".0f"), (1, "s", ".0f")):
        if seconds >= scale or unit == "s":
            shown = float(format(seconds / scale, fmt)) * scale
            if all(
                (shown >= limit) == (seconds >= limit) and (shown > limit) == (seconds > limit)
                for limit in limits
            ):
                return f"{seconds / scale:{fmt}} {unit}"
            return f"{seconds:.1f} s" if seconds < 3600 else f"{seconds:.0f} s"
    return f"{seconds:.0f} s"


def quantity(value: Any) -> float | None:
    """A Kubernetes quantity ("500m", "2Gi", "500M") as a number of cores or bytes; None if it is not one."""
    if value is None:
        return None
    from kubernetes.utils import parse_quantity

    try:
        return float(parse_quantity(value))
    except (ValueError, TypeError):
        return None
