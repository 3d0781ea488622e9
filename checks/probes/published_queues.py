"""Queue depth as LangSmith publishes it: the JSON endpoints its KEDA ScaledObjects read.

The chart's ScaledObjects scale `queue` on backend `/metrics/queue/default` (field `queued`),
`listener` on `/metrics/queue/host`, and `ingest-queue` on platform-backend `/metrics?format=json`
(fields `ingestion_queue.pending`, `feedback_queue.pending`, `adhoc_queue.pending`). These are the
numbers the autoscaler acts on; lsready also reads the Redis lists themselves
(checks.probes.redis `queue_depths`). Both are shown side by side and a disagreement is evidence.

Queue labels line up with the Redis reading: backend queue `default` is `saq:default`; the
platform-backend's `<name>_queue` is read as asynq queue `<name>` (asynq queue names are not
public, so that pairing is a best guess and is only compared when Redis has such a queue).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from checks.cluster import CHART_NAME
from checks.config import KubernetesConfig, TargetConfig
from checks.errors import LsreadyError

BACKEND_PORT = 1984
PLATFORM_BACKEND_PORT = 1986
BACKEND_QUEUES = ("default", "host")  # saq queues of `queue` and `listener`
PLATFORM_FIELDS = ("ingestion_queue", "feedback_queue", "adhoc_queue")
MAX_BODY = 1 << 20  # a metrics document is a few hundred bytes; never read an unbounded answer
# Two readings of one queue disagree when they differ by more than this many jobs and this share.
DISAGREE_MIN_JOBS = 10
DISAGREE_MIN_SHARE = 0.2


class EndpointError(LsreadyError):
    """A published-depth endpoint did not answer, or answered something else."""


@dataclass(frozen=True)
class Endpoints:
    """Base URLs of the two services; `derived` says they were built from the release, not configured."""

    backend: str | None
    platform_backend: str | None
    derived: bool


def fullname_of(release: str) -> str:
    """The chart's `langsmith.fullname`: the release itself when it contains the chart name."""
    return release if CHART_NAME in release else f"{release}-{CHART_NAME}"


def endpoints(target: TargetConfig, discover_release: Any = None) -> Endpoints | None:
    """Configured base URLs, else `http://<fullname>-backend.<namespace>:1984` and its sibling.

    `discover_release` is called (no arguments) when the release is not configured; None when it
    cannot be told: no `queue_endpoints` and no `kubernetes` section.
    """
    configured = target.queue_endpoints
    if configured is not None and not configured.enabled:
        return None
    if configured is not None and (configured.backend_url or configured.platform_backend_url):
        return Endpoints(configured.backend_url, configured.platform_backend_url, derived=False)
    k8s: KubernetesConfig | None = target.kubernetes
    if k8s is None:
        return None
    release = k8s.release or (discover_release() if discover_release else None)
    if not release:
        return None
    full, ns = fullname_of(release), k8s.namespace
    return Endpoints(
        f"http://{full}-backend.{ns}:{BACKEND_PORT}",
        f"http://{full}-platform-backend.{ns}:{PLATFORM_BACKEND_PORT}",
        derived=True,
    )


@dataclass(frozen=True)
class PublishedDepth:
    """One queue's depth as a LangSmith service reports it."""

    service: str  # "backend" or "platform-backend"
    queue: str  # aligned with checks.probes.redis QueueDepth.label
    pending: int
    read_at: float  # epoch seconds


def _get_json(url: str, timeout_s: float) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            body = resp.read(MAX_BODY + 1)
    except urllib.error.HTTPError as exc:
        raise EndpointError(f"{_where(url)} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", None) or exc
        raise EndpointError(f"{_where(url)} did not answer ({why})") from None
    if len(body) > MAX_BODY:
        raise EndpointError(f"{_where(url)} answered more than {MAX_BODY} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise EndpointError(f"{_where(url)} did not answer JSON") from None


def _where(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}{parts.path}" if parts.port else f"{parts.hostname}{parts.path}"


def _number(doc: Any, path: str) -> int | None:
    node = doc
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return int(node)


def backend_depths(base_url: str, timeout_s: float) -> list[PublishedDepth]:
    """`queued` of each saq queue from backend `/metrics/queue/<queue>`; a queue it lacks is skipped.

    Raises EndpointError when no queue could be read (the service is down or is not LangSmith's).
    """
    out, errors = [], []
    for queue in BACKEND_QUEUES:
        url = f"{base_url.rstrip('/')}/metrics/queue/{queue}"
        try:
            doc = _get_json(url, timeout_s)
        except EndpointError as exc:
            errors.append(str(exc))
            if "did not answer (" in str(exc):  # unreachable: the second path will not do better
                break
            continue
        value = _number(doc, "queued")
        if value is None:
            errors.append(f"{_where(url)} has no numeric `queued`")
            continue
        out.append(PublishedDepth("backend", f"saq:{queue}", value, time.time()))
    if not out:
        raise EndpointError("; ".join(errors))
    return out


def platform_depths(base_url: str, timeout_s: float) -> list[PublishedDepth]:
    """`<name>_queue.pending` from platform-backend `/metrics?format=json`, as asynq queue `<name>`."""
    url = f"{base_url.rstrip('/')}/metrics?format=json"
    doc = _get_json(url, timeout_s)
    now = time.time()
    out = [
        PublishedDepth("platform-backend", f"asynq:{field.removesuffix('_queue')}", value, now)
        for field in PLATFORM_FIELDS
        if (value := _number(doc, f"{field}.pending")) is not None
    ]
    if not out:
        raise EndpointError(f"{_where(url)} has none of {', '.join(f + '.pending' for f in PLATFORM_FIELDS)}")
    return out


@dataclass(frozen=True)
class Disagreement:
    queue: str
    service: str
    published: int
    redis: int
    stale: str  # which reading is stale: "redis" or the service's name
    apart_s: float

    def sentence(self) -> str:
        if self.stale == "redis":
            why = f"the Redis reading is {self.apart_s:.0f} s older, so it is the stale one"
        else:
            why = (
                f"read {self.apart_s:.1f} s apart, so {self.service}'s figure is the stale one (it is what "
                "KEDA scales on), unless lsready reads another Redis or database than LangSmith"
            )
        return (
            f"{self.service} reports {self.published} waiting in {self.queue}, Redis has {self.redis} ({why})"
        )


def disagreements(
    published: Iterable[PublishedDepth], redis: Mapping[str, int], redis_read_at: float
) -> list[Disagreement]:
    """Queues whose two readings differ by more than DISAGREE_MIN_JOBS and DISAGREE_MIN_SHARE.

    The Redis lists are the ground truth the services derive their figure from; the reading taken
    later is the fresher one, and when both were taken within a second the service's is named stale.
    """
    out = []
    for p in published:
        if p.queue not in redis:
            continue
        r = redis[p.queue]
        gap = abs(p.pending - r)
        if gap <= DISAGREE_MIN_JOBS or gap <= DISAGREE_MIN_SHARE * max(p.pending, r):
            continue
        apart = p.read_at - redis_read_at
        stale = "redis" if apart > 1.0 else p.service
        out.append(Disagreement(p.queue, p.service, p.pending, r, stale, abs(apart)))
    return out


class NoEndpoints(LsreadyError):
    def __str__(self) -> str:
        return "no queue endpoints (set queue_endpoints, or kubernetes with its release)"


def read_published(
    target: TargetConfig, timeout_s: float, discover_release: Any = None
) -> tuple[list[PublishedDepth], dict[str, str]]:
    """Both services' published depths, and why a service could not be read (by service name).

    Raises NoEndpoints when neither URL is known.
    """
    found = endpoints(target, discover_release)
    if found is None or not (found.backend or found.platform_backend):
        raise NoEndpoints()
    depths: list[PublishedDepth] = []
    errors: dict[str, str] = {}
    reads = [
        (service, url, read)
        for service, url, read in (
            ("backend", found.backend, backend_depths),
            ("platform-backend", found.platform_backend, platform_depths),
        )
        if url is not None
    ]
    # The two services answer independently: one that hangs costs the other nothing.
    with ThreadPoolExecutor(len(reads), thread_name_prefix="published-queues") as pool:
        futures = {service: pool.submit(read, url, timeout_s) for service, url, read in reads}
        for service, future in futures.items():
            try:
                depths.extend(future.result())
            except EndpointError as exc:
                errors[service] = str(exc)
    return depths, errors
