"""Preflight steps on versions: what runs now, and the notes for the chart version upgraded to."""

from __future__ import annotations

from typing import Any

from checks.errors import LsreadyError
from checks.probes.release import api_info, parse_version, versions
from runbooks.preflight.context import Context
from runbooks.preflight.model import Finding, Level, Outcome
from runbooks.preflight.notes import notes_for


def running_versions(ctx: Context) -> Outcome:
    """Image tags, chart labels and /api/info; a mixed rollout and a downgrade are findings."""
    findings: list[Finding] = []
    evidence: dict[str, Any] = {}
    parts: list[str] = []
    cluster_error: Exception | None = None
    chart = None
    try:
        v = versions(ctx.cluster)
        evidence.update(v.to_dict())
        chart = v.chart
        tags = sorted(set(v.images.values()))
        parts.append(
            f"LangSmith {v.app or 'version unknown'} ({len(v.images)} Deployments), chart "
            f"{'langsmith-' + chart if chart else 'unknown (no helm.sh/chart label)'}"
        )
        if len(tags) > 1:
            by_tag = ", ".join(f"{d} {t}" for d, t in sorted(v.images.items()))
            findings.append(
                Finding(
                    "versions.mixed",
                    Level.WARNING,
                    f"Deployments run different image tags ({by_tag}): an earlier rollout has not finished.",
                    f"Find the Deployment that lags (`kubectl -n {ctx.namespace} rollout status "
                    "deploy/<name>`) and let it finish before upgrading again.",
                )
            )
        if len(v.charts) > 1:
            findings.append(
                Finding(
                    "versions.mixed_chart",
                    Level.WARNING,
                    f"Objects of release {v.release} carry several chart versions "
                    f"({', '.join(sorted(v.charts))}).",
                    "Check `helm history` for a failed or partial upgrade before running another.",
                )
            )
    except Exception as exc:  # /api/info may still tell the version; else this is the step's reason
        cluster_error = exc
    if ctx.config.langsmith is not None:
        try:
            info = api_info(
                ctx.config.langsmith.base_url, ctx.config.langsmith.api_key, ctx.clients.timeout_s
            )
            evidence["api_info_version"] = info.get("version")
            parts.append(f"/api/info version {info.get('version', 'not given')}")
        except LsreadyError as exc:
            evidence["api_info_error"] = str(exc)
            parts.append(f"/api/info not read ({exc})")
    if cluster_error is not None and "api_info_version" not in evidence:
        raise cluster_error
    if ctx.to_version:
        parts.append(f"upgrading to chart {ctx.to_version}")
        findings += _direction(chart, ctx.to_version)
    return Outcome("; ".join(parts) + ".", tuple(findings), evidence)


def _direction(chart: str | None, to: str) -> list[Finding]:
    now, target = parse_version(chart or ""), parse_version(to)
    if now is None or target is None:
        return []
    if target < now:
        return [
            Finding(
                "versions.downgrade",
                Level.BLOCKING,
                f"Chart {to} is older than the running {chart}: a downgrade does not undo the database "
                "migrations the newer version ran, and the older code may not read the newer schema.",
                f"Upgrade to {chart} or later, or restore the backups taken before {chart} was installed.",
            )
        ]
    if target == now:
        return [
            Finding("versions.same", Level.NOTE, f"Chart {to} is already running: only the values change.")
        ]
    return []


def version_notes(ctx: Context) -> Outcome:
    """The notes of notes.yaml for an upgrade from the running chart to --to."""
    if not ctx.to_version:
        return Outcome("No --to given: version notes are read only for a target chart version.")
    chart = versions(ctx.cluster).chart
    if chart is None:
        raise LsreadyError(
            "the running chart version is unknown (no helm.sh/chart label), so no note can be chosen"
        )
    notes = notes_for(chart, ctx.to_version)
    findings = tuple(n.finding(ctx.fullname) for n in notes)
    if not notes:
        return Outcome(
            f"No version note applies from chart {chart} to {ctx.to_version}.", evidence={"from": chart}
        )
    names = ", ".join(n.at for n in notes)
    return Outcome(
        f"{len(notes)} note(s) apply from chart {chart} to {ctx.to_version} (at {names}).",
        findings,
        {"from": chart, "to": ctx.to_version, "notes": [n.id for n in notes]},
    )
