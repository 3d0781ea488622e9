"""`preflight`: before `helm upgrade`, say whether it is safe and what the new values would destroy.

Every step starts at once on its own daemon thread (they read different things); results are
placed in step order, each waited for until its budget or the deadline, so a hung backend costs
its own steps, which become `unknown` with the reason. Nothing here writes anywhere.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from checks.config import Config, TargetConfig
from checks.errors import LsreadyError
from checks.execution import run_probe, settled
from checks.model import Evidence, Status
from checks.prepared import prepare
from checks.registry import Catalog
from checks.secrets import Redactor
from runbooks.model import FromCatalog
from runbooks.preflight.model import (
    Finding,
    Level,
    Outcome,
    PreflightResult,
    PreflightStep,
    Verdict,
    step_status,
    verdict,
)
from runbooks.preflight.steps import STEPS, Context, Step

__all__ = [
    "STEPS",
    "THRESHOLDS",
    "Finding",
    "Level",
    "PreflightResult",
    "PreflightStep",
    "Verdict",
    "preflight",
]

log = logging.getLogger(__name__)

DEADLINE_CAP_S = 30.0  # the default deadline: config.timeouts.run_s, but never longer than this
_GRACE_S = 0.25

UPGRADE_ITEM = (
    "postgres.migrations_tested"  # the checklist's upgrade item holds the preflight's own thresholds
)
THRESHOLDS: dict[str, FromCatalog] = {
    "queue_warn": FromCatalog("redis.monitored", "queue_warn"),
    "runs_expiry_s": FromCatalog("redis.monitored", "runs_expiry_seconds"),
    "queue_sample_keys": FromCatalog("redis.monitored", "sample_keys"),
    "disk_warn_ratio": FromCatalog("clickhouse.disk_usage", "warn_ratio"),
    "disk_fail_ratio": FromCatalog("clickhouse.disk_usage", "fail_ratio"),
    "pg_disk_warn_ratio": FromCatalog("postgres.disk", "warn_ratio"),
    "pg_disk_fail_ratio": FromCatalog("postgres.disk", "fail_ratio"),
    "min_cpus": FromCatalog("clickhouse.node_size", "min_cpus"),
    "min_memory_gib": FromCatalog("clickhouse.node_size", "min_memory_gib"),
    "expected_payload_mb": FromCatalog("network.max_body_size", "expected_payload_mb"),
    "restart_window_s": FromCatalog(UPGRADE_ITEM, "restart_window_s"),
    "backup_max_age_hours": FromCatalog(UPGRADE_ITEM, "backup_max_age_hours"),
    "parts_warn_ratio": FromCatalog(UPGRADE_ITEM, "parts_warn_ratio"),
    "stuck_mutation_minutes": FromCatalog(UPGRADE_ITEM, "stuck_mutation_minutes"),
}


class PreflightError(LsreadyError):
    """The preflight cannot start: a threshold it reads is missing from the catalog."""


def resolve(catalog: Catalog) -> dict[str, Any]:
    """The preflight's thresholds read from the catalog (config overrides applied)."""
    out: dict[str, Any] = {}
    for key, ref in THRESHOLDS.items():
        item = catalog.get(ref.item)
        if item is None or ref.key not in item.thresholds:
            raise PreflightError(
                f"preflight threshold {key} refers to {ref.item}.{ref.key}, which is not in the catalog"
            )
        out[key] = item.thresholds[ref.key]
    return out


def preflight(
    config: Config,
    target: str | None = None,
    *,
    new_values: Mapping[str, Any] | None = None,
    values_name: str | None = None,
    current_values: Mapping[str, Any] | None = None,
    to_version: str | None = None,
    on_step: Callable[[PreflightStep], None] | None = None,
    deadline_s: float | None = None,
    catalog: Catalog | None = None,
) -> PreflightResult:
    """Run every step against `target` and decide; never raises for a backend's trouble.

    Values not given come from the target's `preflight.values` / `preflight.current_values`.

    `on_step` gets each redacted step in order, as soon as it and the steps before it are done,
    from the caller's thread. An exception from it is logged and ignored.
    `catalog` is the config's (`catalog_for`), when the caller already holds it.
    Raises LsreadyError subclasses for bad input only (UnknownTarget, ConfigError, PreflightError).
    """
    run = prepare(config, target, deadline_s=deadline_s, deadline_cap_s=DEADLINE_CAP_S, catalog=catalog)
    configured = run.target.preflight
    if configured is not None and new_values is None and configured.values:
        new_values, values_name = load_values(configured.values), configured.values
    if configured is not None and current_values is None and configured.current_values:
        current_values = load_values(configured.current_values)
    params = resolve(run.catalog)
    remediation = {i.id: i.remediation for i in run.catalog.items}
    deadline, probe_s, redactor = run.deadline_s, run.probe_s, run.redactor
    started_at, t0 = datetime.now(UTC), time.monotonic()
    done: list[PreflightStep] = []
    ended: dict[str, float] = {}
    with run.clients() as clients:
        ctx = Context(
            run.name,
            run.target,
            clients,
            params,
            new_values,
            values_name,
            current_values,
            to_version,
            remediation,
        )
        futures = [
            (step, time.monotonic(), run_probe(_as_probe(step, ctx, ended), clients, params))
            for step in STEPS
        ]
        for step, began, future in futures:
            # A step may read two backends one after the other (the cluster, then /api/info).
            budget = min(t0 + 2 * probe_s + _GRACE_S, t0 + deadline) - time.monotonic()
            with contextlib.suppress(Exception):  # a timeout, or the step's error: _result reports both
                future.result(timeout=max(0.0, budget))
            # The step's own time, not the wait for the steps before it.
            took = ended.get(step.id, time.monotonic()) - began
            result = _result(step, future, probe_s, took, redactor)
            done.append(result)
            _emit(on_step, result)
    steps = tuple(done)
    return PreflightResult(
        run.name, verdict(steps), steps, started_at, time.monotonic() - t0, to_version, values_name
    )


def _as_probe(step: Step, ctx: Context, ended: dict[str, float]) -> Callable[[Any, Any], Any]:
    def run(_clients: Any, _params: Any) -> Outcome:
        try:
            return step.fn(ctx)
        finally:
            ended[step.id] = time.monotonic()

    return run


def _result(
    step: Step, future: Future[Any], probe_s: float, took: float, redactor: Redactor
) -> PreflightStep:
    at = datetime.now(UTC)
    if not future.done():
        text = f"No answer within {took:.1f} s; the backend is slow or unreachable."
        return PreflightStep(step.id, step.title, Status.UNKNOWN, text, (), {"timed_out": True}, at, took)
    if future.exception() is not None:
        ev: Evidence = settled(future, probe_s, to="run this step", name="a preflight step")
        return PreflightStep(step.id, step.title, Status.UNKNOWN, redactor.text(ev.summary), (), {}, at, took)
    outcome: Outcome = future.result()
    findings = tuple(
        Finding(f.id, f.level, redactor.text(f.text), redactor.text(f.action)) for f in outcome.findings
    )
    return PreflightStep(
        step.id,
        step.title,
        step_status(findings),
        redactor.text(outcome.summary),
        findings,
        redactor.value(outcome.evidence or {}),
        at,
        took,
    )


def _emit(on_step: Callable[[PreflightStep], None] | None, result: PreflightStep) -> None:
    if on_step is None:
        return
    try:
        on_step(result)
    except Exception:
        log.warning("on_step callback failed for preflight step %s", result.step_id, exc_info=True)


class ValuesFileError(LsreadyError):
    """A values file that cannot be used, said in one line with what to change."""


def load_values(path: str) -> dict[str, Any]:
    """A Helm values file as a mapping; a missing, unreadable or non-mapping file is a ValuesFileError."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ValuesFileError(f"values file {path} does not exist") from None
    except OSError as exc:
        raise ValuesFileError(f"values file {path} cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ValuesFileError(f"values file {path} is not valid YAML{line}; fix it and run again") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValuesFileError(
            f"values file {path} must be a YAML mapping (like values.yaml), not a {type(data).__name__}"
        )
    return data


def configured_values(
    target: TargetConfig,
) -> tuple[dict[str, Any] | None, str | None, dict[str, Any] | None]:
    """(new values, their file, current values) from the target's `preflight:` section, read now."""
    cfg = target.preflight
    if cfg is None:
        return None, None, None
    new = load_values(cfg.values) if cfg.values else None
    current = load_values(cfg.current_values) if cfg.current_values else None
    return new, cfg.values, current


def check_version(text: str) -> str:
    """A chart version such as 0.17.2 (a leading `langsmith-` or `v` is dropped); else ValuesFileError."""
    from checks.probes.release import parse_version

    version = text.strip().removeprefix("langsmith-").removeprefix("v")
    if parse_version(version) is None:
        raise ValuesFileError(f"--to '{text}' is not a chart version; give one like 0.17.2")
    return version
