"""What is installed now, for the upgrade preflight: versions, the chart's hook Jobs, migration heads.

Public reads (no grading here; runbooks.preflight decides what they mean for an upgrade):
- `versions(cluster)`: image tags of LangSmith's Deployments and the `helm.sh/chart` and
  `app.kubernetes.io/version` labels of the release's objects;
- `api_info(base_url, api_key, timeout_s)`: `/api/info` of the running LangSmith;
- `hook_jobs(cluster)`: the last run of each of the chart's migration, backfill-check and e2e Jobs;
- `alembic_heads(pg)`: the rows of PostgreSQL's `alembic_version`, one per head.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from checks.cluster import CHART_NAME, Cluster
from checks.errors import LsreadyError
from checks.probes.k8s.objects import COMPONENTS, containers, deployments, meta, name_of, release_objects

CHART_LABEL = "helm.sh/chart"
VERSION_LABEL = "app.kubernetes.io/version"
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-.]?([0-9A-Za-z.]+))?$")


# --- Versions ----------------------------------------------------------------------------------


def parse_version(text: str) -> tuple[int, int, int, tuple[Any, ...]] | None:
    """'0.17.0', 'v0.16.10', '0.17.0-rc.12' as a sortable key; a pre-release sorts before its release."""
    m = _VERSION.match(str(text).strip())
    if not m:
        return None
    pre = m.group(4)
    # (0,) + parts for a pre-release, (1,) for a release: 0.17.0-rc.12 < 0.17.0.
    tail: tuple[Any, ...] = (1,)
    if pre:
        tail = (0, *((0, int(p)) if p.isdigit() else (1, p) for p in pre.split(".")))
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), tail


def chart_version(label: str) -> str | None:
    """'langsmith-0.17.0' -> '0.17.0' (the chart's `helm.sh/chart` label is `<name>-<version>`)."""
    prefix = f"{CHART_NAME}-"
    if not label.startswith(prefix):
        return None
    version = label[len(prefix) :].replace("_", "+")
    return version if parse_version(version) else None


def image_tag(image: str) -> str | None:
    """The tag of `repo/name:tag` (None for a digest-only or untagged image)."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


@dataclass(frozen=True)
class Versions:
    """What the release's objects say is installed."""

    charts: dict[str, int]  # chart version -> objects labelled with it
    app_versions: dict[str, int]  # app.kubernetes.io/version -> objects
    images: dict[str, str]  # Deployment -> image tag of its main container
    release: str

    @property
    def chart(self) -> str | None:
        """The chart version most of the release's objects carry."""
        return max(self.charts, key=lambda v: self.charts[v]) if self.charts else None

    @property
    def app(self) -> str | None:
        tags = Counter(t for t in self.images.values() if t)
        if tags:
            return tags.most_common(1)[0][0]
        return max(self.app_versions, key=lambda v: self.app_versions[v]) if self.app_versions else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "chart": self.chart, "app": self.app}


def versions(cluster: Cluster) -> Versions:
    charts: Counter[str] = Counter()
    apps: Counter[str] = Counter()
    for plural in ("deployments", "statefulsets"):
        for obj in release_objects(cluster, plural):
            labels = meta(obj).get("labels") or {}
            version = chart_version(str(labels.get(CHART_LABEL, "")))
            if version:
                charts[version] += 1
            if labels.get(VERSION_LABEL):
                apps[str(labels[VERSION_LABEL])] += 1
    images = {}
    for name, obj in deployments(cluster, COMPONENTS).items():
        main = next(iter(containers(obj)), {})
        tag = image_tag(str(main.get("image", "")))
        if tag:
            images[name] = tag
    return Versions(dict(charts), dict(apps), images, cluster.release)


class ApiInfoError(LsreadyError):
    """`/api/info` did not answer with LangSmith's info document."""


def api_info(base_url: str, api_key: str | None, timeout_s: float) -> dict[str, Any]:
    """`/api/info` (then `/api/v1/info`) of the running LangSmith, as JSON."""
    last = ""
    for path in ("/api/info", "/api/v1/info"):
        req = urllib.request.Request(base_url.rstrip("/") + path, headers={"Accept": "application/json"})
        if api_key:
            req.add_header("X-API-Key", api_key)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                data = json.loads(resp.read(1_000_000))
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code} from {path}"
            continue
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiInfoError(f"{path} did not answer ({reason})") from None
        if isinstance(data, dict):
            return data
        last = f"{path} did not return a JSON object"
    raise ApiInfoError(last)


# --- Hook Jobs ---------------------------------------------------------------------------------

# The chart's hook Jobs: `<fullname>-<suffix>`, with `-xxxxx` appended when randomizeName is on.
HOOK_JOBS = {
    "backend-migrations": "PostgreSQL migrations",
    "backend-ch-migrations": "ClickHouse migrations",
    "backend-backfill-check": "backfill check",
    "e2e-test": "end-to-end test",
}


@dataclass(frozen=True)
class JobRun:
    """The newest Job of one hook: how it ended and when."""

    hook: str
    job: str
    state: str  # succeeded, failed, running
    finished_age_s: float | None  # since completion or failure; None while running
    started_age_s: float | None
    message: str = ""


def _age(stamp: Any, now: datetime) -> float | None:
    if not stamp:
        return None
    try:
        at = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (now - at).total_seconds())


def job_state(job: Mapping[str, Any]) -> tuple[str, str]:
    """(succeeded|failed|running, the condition's message) from a Job's status."""
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return "succeeded", ""
        if cond.get("type") == "Failed":
            return "failed", str(cond.get("message") or cond.get("reason") or "")
    if status.get("succeeded"):
        return "succeeded", ""
    if status.get("failed") and not status.get("active"):
        return "failed", ""
    return "running", ""


def hook_jobs(cluster: Cluster, now: datetime | None = None) -> dict[str, JobRun | None]:
    """The newest Job of each hook, or None when none is left (hooks are deleted ttlSecondsAfterFinished)."""
    now = now or datetime.now(UTC)
    jobs = cluster.objects("jobs")
    out: dict[str, JobRun | None] = {}
    for suffix in HOOK_JOBS:
        name = cluster.name(suffix)
        pattern = re.compile(rf"^{re.escape(name)}(-[a-z0-9]{{5}})?$")
        matching = [j for j in jobs if pattern.match(name_of(j))]
        if not matching:
            out[suffix] = None
            continue
        newest = max(matching, key=lambda j: str(meta(j).get("creationTimestamp", "")))
        state, message = job_state(newest)
        status = newest.get("status") or {}
        finished = status.get("completionTime")
        if state == "failed":
            finished = next(
                (
                    c.get("lastTransitionTime")
                    for c in status.get("conditions") or []
                    if c.get("type") == "Failed"
                ),
                finished,
            )
        out[suffix] = JobRun(
            hook=suffix,
            job=name_of(newest),
            state=state,
            finished_age_s=None if state == "running" else _age(finished, now),
            started_age_s=_age(status.get("startTime") or meta(newest).get("creationTimestamp"), now),
            message=message[:300],
        )
    return out


# --- PostgreSQL migrations ---------------------------------------------------------------------


def alembic_heads(pg: Any) -> tuple[str | None, list[str]]:
    """(schema holding alembic_version or None if there is none, its version_num rows)."""
    found = pg.query(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'alembic_version' "
        "ORDER BY table_schema = 'public' DESC, table_schema LIMIT 1"
    )
    if not found:
        return None, []
    schema = str(found[0]["table_schema"])
    quoted = '"' + schema.replace('"', '""') + '"'
    rows = pg.query(f"SELECT version_num FROM {quoted}.alembic_version ORDER BY version_num LIMIT 20")
    return schema, [str(r["version_num"]) for r in rows]
