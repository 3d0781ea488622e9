"""A support bundle: what LangSmith's support asks for, collected read-only, scrubbed, size- and time-bounded.

Three stages, so each can be tested on its own: `collect` reads every source on its own thread until a
deadline (a source still running then is recorded as timed out, with what it had so far); `render`
scrubs every part, applies the size cap (logs are trimmed to their newest lines, other parts dropped
last-first) and writes the manifest; `pack` makes the .tar.gz or .zip. `build_bundle` does all three.
The manifest says what was collected from where, what failed and why, what is missing, sha256 and
size of every file, and how many values were redacted, by kind.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from checks import collect
from checks.backends import describe
from checks.clients import Clients
from checks.cluster import ClusterError
from checks.config import Config
from checks.errors import LsreadyError
from checks.prepared import Prepared, prepare
from checks.scrub import Scrubber

MB = 1_000_000
DEFAULT_MAX_BYTES = 50 * MB
DEFAULT_DEADLINE_S = 120.0
WRITE_RESERVE_S = 3.0  # of the deadline, kept for scrubbing and packing
FILE_OVERHEAD = 1024  # tar header and padding per member, counted against the size cap
MIN_LOG_BYTES = 2048  # a log trimmed below this is dropped instead


class BadSize(LsreadyError):
    pass


def parse_size(text: str) -> int:
    """'50MB', '500k', '1GB', '2000000' -> bytes (decimal units, as Slack counts)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?)b?\s*", text, re.I)
    if not m or float(m.group(1)) <= 0:
        raise BadSize(f"'{text}' is not a size; use a number of bytes or e.g. 500KB, 50MB, 1GB")
    n = float(m.group(1)) * {"": 1, "k": 1_000, "m": MB, "g": 1_000 * MB}[m.group(2).lower()]
    if n < 64_000:
        raise BadSize(f"'{text}' is too small for a bundle; allow at least 64KB")
    return int(n)


def lsready_version() -> str:
    try:
        return version("lsready")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class BundleOptions:
    since_s: int = 86400
    logs: bool = True
    max_bytes: int = DEFAULT_MAX_BYTES
    deadline_s: float = DEFAULT_DEADLINE_S
    keep_emails: bool = False
    log_tail_lines: int = 5000  # per container, newest kept
    log_max_bytes: int = 2 * MB  # per container, newest lines kept
    fmt: str = "tar.gz"  # or "zip"
    triage_sample_s: float | None = None  # the triage's queue sample interval (default: the runbook's)


@dataclass
class Part:
    path: str  # inside the bundle, e.g. kubernetes/pods.json
    data: Any  # JSON-able, or the text of a log
    log: bool = False


@dataclass
class Source:
    """One source's collection: its parts so far, what failed, and how it ended."""

    name: str
    where: str = ""
    status: str = "running"  # ok, partial, failed, timeout, skipped
    problems: list[str] = field(default_factory=list)  # "<what>: <why>", one per failure
    parts: list[Part] = field(default_factory=list)
    doing: str = ""
    duration_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, path: str, data: Any, *, log: bool = False) -> None:
        with self._lock:
            if self.status == "running":  # a source cut off at the deadline adds nothing after it
                self.parts.append(Part(path, data, log))

    def fail(self, what: str, why: str) -> None:
        with self._lock:
            if self.status == "running":
                self.problems.append(f"{what}: {why}")

    def end(self, status: str, duration_s: float, problem: str | None = None) -> None:
        """Settle how the source ended, once: the first of its own end and the deadline wins."""
        with self._lock:
            if self.status != "running":
                return
            if problem:
                self.problems.append(problem)
            self.status = "partial" if status == "ok" and self.problems else status
            self.duration_s = duration_s

    def snapshot(self) -> tuple[list[Part], list[str]]:
        with self._lock:
            return list(self.parts), list(self.problems)


@dataclass
class Collection:
    target: str
    started_at: datetime
    options: BundleOptions
    sources: dict[str, Source]
    duration_s: float = 0.0


# -- collect --------------------------------------------------------------------------------------


def _strip(obj: dict[str, Any]) -> dict[str, Any]:
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj


def _kubernetes(clients: Clients, opts: BundleOptions, src: Source) -> None:
    cluster = clients.cluster
    src.where = cluster.source
    for plural in collect.BUNDLE_KINDS:
        src.doing = f"listing {plural}"
        try:
            items = [_strip(o) for o in cluster.objects(plural)]
        except ClusterError as exc:
            if _unreachable(exc):
                raise  # every other kind would wait as long, or fail the same way
            src.fail(plural, str(exc))
            continue
        if plural == "nodes":
            src.add("kubernetes/nodes.json", [collect.node_summary(n) for n in items])
            continue
        src.add(f"kubernetes/{plural}.json", items)
        if plural == "pods":
            src.add("kubernetes/pod-states.json", [collect.pod_summary(p) for p in items])
        if plural in cluster.notes:
            src.add(f"kubernetes/{plural}.note.json", {"note": cluster.notes[plural]})
    src.doing = "listing events"
    try:
        src.add("kubernetes/events.json", collect.sorted_events(cluster))
    except ClusterError as exc:
        src.fail("events", str(exc))


def _unreachable(exc: ClusterError) -> bool:
    """The API did not answer or refused lsready itself, as opposed to one kind or one log."""
    return any(s in str(exc) for s in ("did not answer", "did not send", "credentials"))


def _logs(clients: Clients, opts: BundleOptions, src: Source) -> None:
    cluster = clients.cluster
    src.where = cluster.source
    pods = cluster.objects("pods")
    wanted = [(p, c) for p in pods for c in collect.containers(p)]
    done = 0
    try:
        for pod, container in wanted:
            name = str((pod.get("metadata") or {}).get("name"))
            restarts = collect.restarted(pod)
            for previous in (False, True) if container in restarts else (False,):
                which = f"{name}/{container}" + (" (previous)" if previous else "")
                src.doing = f"reading the log of {which}"
                try:
                    text = cluster.log(
                        name,
                        container,
                        since_s=opts.since_s,
                        tail_lines=opts.log_tail_lines,
                        previous=previous,
                    )
                except ClusterError as exc:
                    if _unreachable(exc):
                        raise
                    src.fail(f"log of {which}", str(exc))
                    if "denied" in str(exc) or "holds no container logs" in str(exc):
                        return
                    continue
                suffix = ".previous.log" if previous else ".log"
                src.add(
                    f"kubernetes/logs/{name}/{container}{suffix}", _newest(text, opts.log_max_bytes), log=True
                )
            done += 1
    finally:
        if done < len(wanted):
            src.fail("logs", f"{done} of {len(wanted)} containers' logs collected")


def _newest(text: str, limit: int) -> str:
    """The newest whole lines of `text` that fit in `limit` bytes."""
    data = text.encode()
    if len(data) <= limit:
        return text
    cut = data[-limit:]
    return cut[cut.find(b"\n") + 1 :].decode(errors="replace")


def _clickhouse(clients: Clients, opts: BundleOptions, src: Source) -> None:
    ch = clients.clickhouse
    src.where = f"ClickHouse {ch.cfg.url}" + (f" (cluster {ch.cluster})" if ch.cluster else "")
    src.doing = "running the support queries"
    collect.run_support_queries(
        ch, opts.since_s, lambda n, rows: src.add(f"clickhouse/{n}.json", rows), src.fail
    )


def _redis(clients: Clients, opts: BundleOptions, src: Source) -> None:
    src.where = f"Redis {clients.target.redis.url}"  # scrubbed with the rest of the manifest
    src.doing = "reading INFO, queues and clients"
    data = collect.redis_support(clients.redis)
    for key, value in data.items():
        src.add(f"redis/{key}.json", value)


def _postgres(clients: Clients, opts: BundleOptions, src: Source) -> None:
    src.where = f"PostgreSQL {clients.target.postgres.url}"
    src.doing = "running the support queries"
    collect.postgres_support(clients.postgres, lambda n, rows: src.add(f"postgres/{n}.json", rows), src.fail)


def _lsready(
    config: Config, run: Prepared, opts: BundleOptions, evidence: dict[str, Any] | None, src: Source
) -> None:
    """The target's config, a triage and a check, each under its own deadlines (not the bundle's)."""
    from checks.engine import check
    from runbooks.triage import triage

    src.where = "lsready's own probes"
    src.add("lsready/config.json", run.target.model_dump(mode="json", exclude_none=True))
    if evidence and evidence.get("triage"):
        src.add("lsready/triage.json", evidence["triage"])
    else:
        src.doing = "running the triage"
        result = triage(config, run.name, sample_interval_s=opts.triage_sample_s, catalog=run.catalog)
        src.add("lsready/triage.json", result.to_dict())
    src.doing = "running the checks"
    src.add("lsready/check.json", check(config, run.name, catalog=run.catalog).to_dict())


SOURCES: dict[str, Callable[[Clients, BundleOptions, Source], None]] = {
    "kubernetes": _kubernetes,
    "logs": _logs,
    "clickhouse": _clickhouse,
    "redis": _redis,
    "postgres": _postgres,
}
_BACKEND = {key: "kubernetes" if key == "logs" else key for key in SOURCES}


def collect_bundle(
    config: Config, target: str | None, opts: BundleOptions, *, evidence: dict[str, Any] | None = None
) -> Collection:
    """Every source on its own thread until the deadline; never raises for a source's trouble."""
    # A source connects, then reads: each call may take at most half the bundle's deadline.
    prepared = prepare(config, target, deadline_s=opts.deadline_s, probe_cap_s=opts.deadline_s / 2)
    name = prepared.name
    t0, started_at = time.monotonic(), datetime.now(UTC)
    until = t0 + max(1.0, opts.deadline_s - min(WRITE_RESERVE_S, opts.deadline_s / 4))
    clients = prepared.open_clients()  # closed on a thread of its own once the deadline passes
    sources = {"lsready": Source("lsready")}
    for key in SOURCES:
        sources[key] = Source(key)
        if not clients.has(_BACKEND[key]):
            sources[key].status = "skipped"
            sources[key].problems.append(f"{_BACKEND[key]} is not configured for target {name}")
        elif key == "logs" and not opts.logs:
            sources[key].status = "skipped"
            sources[key].problems.append("not asked for (--no-logs)")

    def run(src: Source, work: Callable[[], None]) -> None:
        t = time.monotonic()
        try:
            work()
        except Exception as exc:
            src.end("failed", time.monotonic() - t, f"{src.doing or 'connecting'}: {describe(exc)}")
        else:
            src.end("ok", time.monotonic() - t)

    threads = [
        threading.Thread(
            target=run,
            args=(sources["lsready"], lambda: _lsready(config, prepared, opts, evidence, sources["lsready"])),
            name="bundle-lsready",
            daemon=True,
        )
    ]
    for key, fn in SOURCES.items():
        if sources[key].status != "skipped":
            work = partial(fn, clients, opts, sources[key])
            threads.append(
                threading.Thread(target=run, args=(sources[key], work), name=f"bundle-{key}", daemon=True)
            )
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, until - time.monotonic()))
    waited = time.monotonic() - t0
    late = f"did not finish within the bundle's {opts.deadline_s:g} s deadline (stopped after {waited:.1f} s)"
    for src in sources.values():
        src.end("timeout", waited, f"{src.doing or 'connecting'}: {late}")
    # Sources still running are cut off: a PostgreSQL query is cancelled, the others end on their timeouts.
    threading.Thread(target=clients.close, name="bundle-close", daemon=True).start()
    return Collection(name, started_at, opts, sources, waited)


# -- render ---------------------------------------------------------------------------------------

ORDER = ("lsready", "kubernetes", "clickhouse", "redis", "postgres", "logs")


def _encode(part: Part, scrubber: Scrubber) -> bytes:
    if part.log:
        return "\n".join(scrubber.log_line(x) for x in str(part.data).split("\n")).encode()
    return (json.dumps(scrubber.value(part.data), indent=1, default=str, ensure_ascii=False) + "\n").encode()


def _trim_log(data: bytes, room: int) -> bytes:
    cut = data[-room:]
    return cut[cut.find(b"\n") + 1 :]


def render(coll: Collection, scrubber: Scrubber) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    """Scrubbed files within the size cap, and the manifest that describes them."""
    opts = coll.options
    reserve = max(64_000, opts.max_bytes // 50)  # the manifest, and compression's worst case
    room = opts.max_bytes - reserve
    files: list[tuple[str, bytes]] = []
    dropped: list[str] = []
    trimmed: list[str] = []
    sources: dict[str, Any] = {}
    for key in ORDER:
        src = coll.sources[key]
        parts, problems = src.snapshot()
        for part in parts:
            data = _encode(part, scrubber)
            need = len(data) + FILE_OVERHEAD
            if need > room and part.log and room - FILE_OVERHEAD >= MIN_LOG_BYTES:
                data = _trim_log(data, room - FILE_OVERHEAD)
                need = len(data) + FILE_OVERHEAD
                trimmed.append(part.path)
            if need > room:
                dropped.append(part.path)
                continue
            room -= need
            files.append((part.path, data))
        sources[key] = {
            "status": src.status,
            "from": scrubber.text(src.where) if src.where else None,
            "duration_s": round(src.duration_s, 2),
            "files": len(parts),
            "problems": [scrubber.text(p) for p in problems],
        }
    missing = [
        f"{key}: {p}"
        for key, s in sources.items()
        if s["status"] not in ("ok", "skipped")
        for p in s["problems"] or [s["status"]]
    ]
    missing += [f"{path}: dropped, the bundle reached its {opts.max_bytes:,} byte cap" for path in dropped]
    manifest = {
        "kind": "lsready support bundle",
        "lsready_version": lsready_version(),
        "target": coll.target,
        "created_at": coll.started_at.isoformat(timespec="seconds"),
        "collected_in_s": round(coll.duration_s, 2),
        "complete": not missing,
        "options": {
            "since_s": opts.since_s,
            "logs": opts.logs,
            "max_bytes": opts.max_bytes,
            "deadline_s": opts.deadline_s,
            "keep_emails": opts.keep_emails,
            "log_tail_lines": opts.log_tail_lines,
            "log_max_bytes": opts.log_max_bytes,
        },
        "sources": sources,
        "missing": missing,
        "not_configured": [
            f"{k}: {s['problems'][0]}" for k, s in sources.items() if s["status"] == "skipped"
        ],
        "trimmed_logs": trimmed,
        "redacted": dict(sorted(scrubber.counts.items())),
        "never_collected": [
            "Secrets (Helm release values live in one: not collected)",
            "Redis keys' contents",
            "run inputs, outputs and payload fields",
            "ClickHouse query literals (query text is normalized)",
        ],
        "files": [{"path": p, "bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()} for p, d in files],
    }
    return files, manifest


# -- pack -----------------------------------------------------------------------------------------


def pack(files: list[tuple[str, bytes]], manifest: dict[str, Any], root: str, fmt: str) -> bytes:
    """The archive: `<root>/manifest.json` first, then every file under `<root>/`."""
    members = [("manifest.json", (json.dumps(manifest, indent=1) + "\n").encode()), *files]
    buf = io.BytesIO()
    stamp = time.time()
    if fmt == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for path, data in members:
                z.writestr(f"{root}/{path}", data)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for path, data in members:
                info = tarfile.TarInfo(f"{root}/{path}")
                info.size, info.mtime, info.mode = len(data), int(stamp), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass(frozen=True)
class Bundle:
    path: Path
    size: int
    manifest: dict[str, Any]


def default_name(target: str, fmt: str, at: datetime | None = None) -> str:
    stamp = (at or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", target)[:40]
    return f"lsready-bundle-{safe}-{stamp}.{fmt}"


def build_bundle(
    config: Config,
    target: str | None,
    opts: BundleOptions,
    out: Path | None = None,
    *,
    evidence: dict[str, Any] | None = None,
) -> Bundle:
    """Collect, scrub, cap and write the bundle; returns where it is, its size and its manifest."""
    fmt = "zip" if out is not None and out.suffix == ".zip" else opts.fmt
    coll = collect_bundle(config, target, opts, evidence=evidence)
    scrubber = Scrubber(config.redactor(), keep_emails=opts.keep_emails)
    files, manifest = render(coll, scrubber)
    path = out or Path(default_name(coll.target, fmt, coll.started_at))
    root = path.name.removesuffix(".tar.gz").removesuffix(".zip").removesuffix(".tgz")
    data = pack(files, manifest, root, fmt)
    while len(data) > opts.max_bytes and files:  # only when compression made things bigger
        path_dropped, _ = max(files, key=lambda f: len(f[1]))
        files = [f for f in files if f[0] != path_dropped]
        manifest["missing"].append(
            f"{path_dropped}: dropped, the bundle reached its {opts.max_bytes:,} byte cap"
        )
        manifest["complete"] = False
        manifest["files"] = [f for f in manifest["files"] if f["path"] != path_dropped]
        data = pack(files, manifest, root, fmt)
    path.write_bytes(data)
    return Bundle(path, len(data), manifest)


def summary_line(bundle: Bundle) -> str:
    """One line for a terminal or a Slack thread: size, files, complete or what is missing, redactions."""
    m = bundle.manifest
    redacted = sum(m["redacted"].values())
    head = f"Support bundle of {m['target']}: {len(m['files'])} files, {bundle.size / MB:.1f} MB"
    state = "complete" if m["complete"] else f"partial ({len(m['missing'])} missing: {m['missing'][0][:160]})"
    return f"{head}, {state}; {redacted} values redacted; see manifest.json"
