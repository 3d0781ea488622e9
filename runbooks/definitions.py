"""The four triage runbooks, as data: steps, transitions, thresholds and diagnosis rules.

Read a runbook top to bottom: each step measures one thing (runbooks.measure.MEASURES), speaks for
one signal, and its `next` says where to go; after the last step, the rules decide, first match
wins. tests/rehearsals/ walks every branch of every runbook.
"""

from __future__ import annotations

from checks.model import Status
from runbooks.model import END, DiagnosisKind, FromCatalog, Go, Rule, Runbook, Step, When

P, W, F, U = Status.PASS, Status.WARN, Status.FAIL, Status.UNKNOWN
BAD = frozenset({W, F})

# What each signal stands for; a step's status is graded against the thresholds below.
SIGNALS = {
    "clickhouse": "ClickHouse load, merges and parts",
    "queues": "Redis queue depth and drain",
    "delay": "ingestion delay",
}

# Every number is in checks/catalog.yaml: the checklist items' own thresholds (so a `thresholds:`
# override of the item moves the triage too, and both grade a reading the same way) and the
# triage-only signals (`triage.*`). The runbooks only name them.
THRESHOLDS: dict[str, FromCatalog] = {
    "queue_warn": FromCatalog("redis.monitored", "queue_warn"),
    "queue_fail": FromCatalog("redis.monitored", "queue_fail"),
    "runs_expiry_s": FromCatalog("redis.monitored", "runs_expiry_seconds"),
    "queue_sample_keys": FromCatalog("redis.monitored", "sample_keys"),
    "concurrency_warn": FromCatalog("clickhouse.concurrency", "warn_queries"),
    "concurrency_fail": FromCatalog("clickhouse.concurrency", "fail_queries"),
    "parts_warn_ratio": FromCatalog("clickhouse.concurrency", "parts_warn_ratio"),
    # Disk fill fails the ClickHouse signal only at the fail ratio; past warn it is a capacity note.
    "disk_warn_ratio": FromCatalog("clickhouse.disk_usage", "warn_ratio"),
    "disk_fail_ratio": FromCatalog("clickhouse.disk_usage", "fail_ratio"),
    "delay_warn_s": FromCatalog("ops.alerts", "ingestion_delay_p95_s"),
    "delay_fail_s": FromCatalog("triage.delay", "delay_fail_s"),
    "delay_window_minutes": FromCatalog("triage.delay", "delay_window_minutes"),
    "delay_max_rows": FromCatalog("triage.delay", "delay_max_rows"),
    "sample_interval_s": FromCatalog("triage.queues", "sample_interval_s"),
    "oldest_warn_s": FromCatalog("triage.queues", "oldest_warn_s"),
    "oldest_fail_s": FromCatalog("triage.queues", "oldest_fail_s"),
    "stalled_min_depth": FromCatalog("triage.queues", "stalled_min_depth"),
    "queue_scan_window": FromCatalog("triage.queues", "queue_scan_window"),
    "stuck_mutation_minutes": FromCatalog("triage.merges", "stuck_mutation_minutes"),
}

_TITLES = {
    "snapshot": ("Evidence snapshot: running queries, merges, parts, disks, queue depths", "snapshot", None),
    "clickhouse-load": ("ClickHouse query concurrency and disk I/O", "clickhouse_load", "clickhouse"),
    "queue-drain": ("Queue depth and worker drain rate", "queue_drain", "queues"),
    "merges": ("Merges and part counts vs insert limits, stuck mutations", "merges", "clickhouse"),
    "ingestion-delay": ("Ingestion delay p50/p95 (received to inserted)", "ingestion_delay", "delay"),
}


def step(step_id: str, *nexts: Go) -> Step:
    title, measure, signal = _TITLES[step_id]
    return Step(step_id, title, measure, signal, tuple(nexts))


def when(step_id: str, *statuses: Status) -> When:
    return When(step_id, frozenset(statuses))


def accept(*statuses: Status | None) -> frozenset[Status | None]:
    return frozenset(statuses)


# --- Actions -------------------------------------------------------------------------------------

_NO_WORKERS = (
    "Do not add queue workers ({fullname}-queue, {fullname}-ingest-queue): more workers send more inserts "
    "into a saturated ClickHouse and deepen the hole."
)
_REDUCE_LOAD = (
    "Reduce query load: find the heaviest running queries (`SELECT query_id, user, elapsed FROM "
    "system.processes ORDER BY elapsed DESC LIMIT 10`) and pause the dashboards, exports or bulk API "
    "readers behind them."
)
_MERGES_AND_DISK = (
    "Check merges and disk: active parts per partition in `system.parts`, running `system.merges`, "
    "`system.mutations WHERE is_done = 0` (kill a stuck one with `KILL MUTATION`), free space in "
    "`system.disks`; never raise parts_to_throw_insert to hide a merge backlog."
)
_SCALE_CH = (
    "Scale ClickHouse: more CPU and IOPS for {fullname}-clickhouse (or the external cluster), and blob "
    "storage to move run payloads out of it."
)
_ASYNC_LEVER = (
    "CLICKHOUSE_ASYNC_INSERT_WAIT_PCT_FLOAT=0 (commonEnv) can cut insert latency while you recover; it is a "
    "lever, not a fix for saturation."
)
_RECHECK = "Re-run `lsready triage` after each change and compare: act on one layer at a time."

SATURATION_ACTIONS = (_NO_WORKERS, _REDUCE_LOAD, _MERGES_AND_DISK, _SCALE_CH, _ASYNC_LEVER, _RECHECK)

# Every ClickHouse signal passed: no action asks to scale it unless it names the unmeasured reading
# (insert durations) that would implicate it.
INSERT_PATH_ACTIONS = (
    "Look at the insert path, which the triage does not measure: insert durations in `system.query_log` "
    "(query_kind = 'Insert', the last 15 min), pending `system.asynchronous_inserts`, and errors or retries "
    "in the ingest-queue logs (`kubectl -n {namespace} logs deploy/{fullname}-ingest-queue`).",
    "Do not add queue workers: the queues already drain, so more workers would not land runs sooner.",
    "Only if those insert durations are long is ClickHouse the bottleneck after all: then reduce its "
    "query load and give {fullname}-clickhouse more CPU and IOPS.",
    _ASYNC_LEVER,
    _RECHECK,
)

BACKPRESSURE_ACTIONS = (
    "Scale the ingest workers: `kubectl -n {namespace} scale deploy/{fullname}-ingest-queue --replicas=<n>` "
    "for asynq queues and deploy/{fullname}-queue for saq queues, or raise their HPA / KEDA maxReplicas.",
    "Re-run `lsready triage --runbook queue-depth` a few minutes later: drain must exceed arrivals and the "
    "oldest job must get younger.",
    "Watch ClickHouse while the workers scale: if concurrency or part counts climb, stop adding workers; "
    "ClickHouse has become the bottleneck.",
    "Runs that wait longer than REDIS_RUNS_EXPIRY_SECONDS are dropped from Redis: act before the oldest "
    "job reaches it.",
)

HEALTHY_ACTIONS = (
    "Nothing to scale. Look for the trace in the right project and time range: runs are shown by their "
    "start time, taken from the client's clock.",
    "If one trace is still missing, check the client: API key and workspace, project name, sampling, and "
    "rejected requests (HTTP 4xx, 413, 429) in the SDK logs.",
)

INCONCLUSIVE_ACTIONS = (
    "Restore access to what could not be measured (see 'not measured'), then re-run `lsready triage`.",
    "Until then, do not add queue workers: that is only safe once ClickHouse is known to be healthy.",
    "Collect the same evidence by hand: `system.processes`, `system.parts`, `system.merges` on ClickHouse; "
    "`LLEN saq:default:queued` and `LLEN asynq:{{<queue>}}:pending` on Redis.",
)

# --- Rules, shared by every runbook: signals a runbook did not measure read as None --------------

RULES = (
    Rule(
        "clickhouse-fails",
        DiagnosisKind.CLICKHOUSE_SATURATION,
        {"clickhouse": accept(F)},
        "ClickHouse saturation: ClickHouse is at its limits, so it is the bottleneck; do not add queue "
        "workers.",
        SATURATION_ACTIONS,
    ),
    Rule(
        "clickhouse-strained-with-backlog",
        DiagnosisKind.CLICKHOUSE_SATURATION,
        {"clickhouse": accept(W), "queues": accept(W, F)},
        "ClickHouse saturation: the queues back up while ClickHouse is strained; more workers would only "
        "push harder on it.",
        SATURATION_ACTIONS,
    ),
    Rule(
        "clickhouse-strained-with-delay",
        DiagnosisKind.CLICKHOUSE_SATURATION,
        {"clickhouse": accept(W), "delay": accept(W, F)},
        "ClickHouse saturation: runs land late while ClickHouse is strained.",
        SATURATION_ACTIONS,
    ),
    Rule(
        "backlog-clickhouse-unmeasured",
        DiagnosisKind.INCONCLUSIVE,
        {"clickhouse": accept(U), "queues": accept(W, F)},
        "Inconclusive: the Redis queues are backing up, but ClickHouse could not be measured, so it is "
        "unknown whether workers or ClickHouse are the bottleneck.",
        INCONCLUSIVE_ACTIONS,
    ),
    Rule(
        "backlog-clickhouse-healthy",
        DiagnosisKind.INGESTION_BACKPRESSURE,
        {"clickhouse": accept(P), "queues": accept(W, F)},
        "Ingestion backpressure: runs wait in the Redis queues while ClickHouse has headroom; the workers "
        "do not keep up.",
        BACKPRESSURE_ACTIONS,
    ),
    Rule(
        "delay-after-the-queues",
        DiagnosisKind.INSERT_PATH_DELAY,
        {"clickhouse": accept(P), "queues": accept(P), "delay": accept(W, F)},
        "Insert-path delay: runs leave Redis promptly and ClickHouse's load, merges and parts pass, yet "
        "runs land late; the time is spent between the workers and ClickHouse's inserts, which the triage "
        "does not measure.",
        INSERT_PATH_ACTIONS,
    ),
    Rule(
        "healthy",
        DiagnosisKind.HEALTHY,
        {"clickhouse": accept(P, W, None), "queues": accept(P, None), "delay": accept(P, None)},
        "Healthy: the queues drain and runs land promptly; the data is not missing, it is on its way or "
        "already visible.",
        HEALTHY_ACTIONS,
    ),
)

FALLBACK = Rule(
    "not-measured",
    DiagnosisKind.INCONCLUSIVE,
    {},
    "Inconclusive: {unmeasured} could not be measured, so do not scale anything yet.",
    INCONCLUSIVE_ACTIONS,
)

# --- The runbooks --------------------------------------------------------------------------------

CH_UNREACHABLE = when("clickhouse-load", U)

TRACE_VISIBILITY = Runbook(
    name="trace-visibility",
    title="Traces created but not visible, long delays, 500s",
    description="Evidence first, then the write path in order: ClickHouse load, queues, merges, delay.",
    steps=(
        step("snapshot", Go(END, when("snapshot", U)), Go("clickhouse-load")),
        step("clickhouse-load"),
        # ClickHouse did not answer its first read: the merges and delay reads would not either.
        step("queue-drain", Go(END, CH_UNREACHABLE), Go("merges")),
        step("merges"),
        step("ingestion-delay"),
    ),
    rules=RULES,
    fallback=FALLBACK,
    thresholds=THRESHOLDS,
)

QUEUE_DEPTH = Runbook(
    name="queue-depth",
    title="Queue depth and worker drain rate",
    description="Do the queues drain? If not, is ClickHouse healthy enough for more workers?",
    steps=(
        step("queue-drain", Go(END, when("queue-drain", P)), Go("clickhouse-load")),
        step("clickhouse-load", Go(END, CH_UNREACHABLE), Go("merges")),
        step("merges"),
    ),
    rules=RULES,
    fallback=FALLBACK,
    thresholds=THRESHOLDS,
)

MERGE_PRESSURE = Runbook(
    name="merge-pressure",
    title="Merges and part counts vs insert limits",
    description="Do merges keep up? If not, is query load competing and does ingestion already suffer?",
    steps=(
        step("merges", Go(END, when("merges", P)), Go("clickhouse-load")),
        step("clickhouse-load"),
        step("ingestion-delay"),
    ),
    rules=RULES,
    fallback=FALLBACK,
    thresholds=THRESHOLDS,
)

INGESTION_DELAY = Runbook(
    name="ingestion-delay",
    title="Ingestion delay (received to inserted)",
    description="Do runs land promptly? If not, is the time spent in the queues or in ClickHouse?",
    steps=(
        step("ingestion-delay", Go(END, when("ingestion-delay", P)), Go("queue-drain")),
        step("queue-drain"),
        step("clickhouse-load", Go(END, CH_UNREACHABLE), Go("merges")),
        step("merges"),
    ),
    rules=RULES,
    fallback=FALLBACK,
    thresholds=THRESHOLDS,
)

RUNBOOKS: dict[str, Runbook] = {
    book.name: book for book in (TRACE_VISIBILITY, QUEUE_DEPTH, MERGE_PRESSURE, INGESTION_DELAY)
}
