"""The values step: what running `helm upgrade -f NEW` would change, judged by runbooks.preflight.values.

The pure judgement lives in values.py; this module reads what it needs from the running system:
the judged keys as the deployed objects show them, each bundled datastore's StatefulSet and PVCs
(and ClickHouse's data size), and how much of `runs` a shorter TTL would make eligible for deletion.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from checks.cluster import Cluster
from checks.errors import LsreadyError
from checks.probes.clickhouse.reads import query_rows
from checks.probes.k8s.autoscaling import autoscalers
from checks.probes.k8s.objects import containers, deployments, name_of, workload_env
from checks.probes.network.ingress import frontend_nginx_conf, nginx_directive
from runbooks.preflight import values as vd
from runbooks.preflight.context import PROBE_TAG, Context
from runbooks.preflight.model import Level, Outcome


def new_values(ctx: Context) -> Outcome:
    """Compare --values with what runs now and name each destructive or risky change."""
    if ctx.new_values is None:
        return Outcome("No --values given: only the state above was checked.")
    name = ctx.values_name or "the new values"
    new = vd.effective(ctx.new_values, name)
    if ctx.current_values is not None:
        current = vd.effective(ctx.current_values, "the current values")
        source = "the current values file"
    else:
        current = deployed_settings(ctx.cluster)
        source = "the deployed objects"
    facts = vd.Facts(stores=_store_data(ctx), fullname=ctx.fullname)
    for tier, (_, after) in vd.ttl_changes(current, new).items():
        facts.ttl[tier] = _ttl_estimate(ctx, after)
    limits = vd.Limits(
        float(ctx.params["min_cpus"]),
        float(ctx.params["min_memory_gib"]),
        float(ctx.params["expected_payload_mb"]),
    )
    findings = [*vd.diff(current, new, facts, limits), *vd.unknown_keys(ctx.new_values)]
    skipped = vd.not_compared(current)
    evidence = {
        "compared_with": source,
        "set_in_new_values": sorted(new.explicit),
        "not_compared": skipped,
        "current": {k: v for k, v in current.values.items() if v is not None},
    }
    blocking = sum(f.level is Level.BLOCKING for f in findings)
    risky = len(findings) - blocking
    summary = (
        f"{name} compared with {source}: {blocking} destructive and {risky} risky change(s)"
        if findings
        else f"{name} compared with {source}: no destructive or risky change"
    )
    if skipped:
        summary += f"; {len(skipped)} key(s) not compared (their running value is not visible)"
    return Outcome(summary + ".", tuple(findings), evidence)


def deployed_settings(cluster: Cluster) -> vd.Settings:
    """The judged keys as the running objects show them; a key they do not show is left out."""
    out: dict[str, Any] = {}
    fullname = cluster.fullname
    deps = deployments(cluster)
    for store in vd.DATASTORES:
        out[f"{store}.external.enabled"] = cluster.get("statefulsets", f"{fullname}-{store}") is None
    out["clickhouse.enabled"] = True
    app = [
        deps[n]
        for n in (f"{fullname}-backend", f"{fullname}-platform-backend", f"{fullname}-queue")
        if n in deps
    ]
    if app:
        env = workload_env(cluster, app[0])
        out["config.blobStorage.enabled"] = (
            str(env.get("FF_BLOB_STORAGE_ENABLED") or "false").lower() == "true"
        )
        tiers = env.get("TRACE_TIER_TTL_DURATION_SEC_MAP")
        if tiers:
            try:
                parsed = json.loads(tiers)
                out["config.ttl.enabled"] = True
                for tier in vd.TIERS:
                    if tier in parsed:
                        out[f"config.ttl.ttl_period_seconds.{tier}"] = parsed[tier]
            except ValueError:
                pass
        elif "FF_TRACE_TIERS_ENABLED" in env:
            out["config.ttl.enabled"] = str(env["FF_TRACE_TIERS_ENABLED"]).lower() == "true"
    with contextlib.suppress(LsreadyError):  # no frontend ConfigMap: the body size is not compared
        out["frontend.maxBodySize"] = nginx_directive(frontend_nginx_conf(cluster)[1], "client_max_body_size")
    scalers = autoscalers(cluster)
    for component, key in vd.SERVICES.items():
        dep = deps.get(f"{fullname}-{component}")
        if dep is None:
            continue
        kinds = {s["kind"] for s in scalers.get(name_of(dep), [])}
        out[f"{key}.autoscaling.hpa.enabled"] = "HPA" in kinds and "ScaledObject" not in kinds
        out[f"{key}.autoscaling.keda.enabled"] = "ScaledObject" in kinds
        if not kinds and (dep.get("spec") or {}).get("replicas") is not None:
            out[f"{key}.deployment.replicas"] = int(dep["spec"]["replicas"])
        out.update(_requests(dep, f"{key}.deployment.resources.requests"))
    ch = cluster.get("statefulsets", f"{fullname}-clickhouse")
    if ch is not None:
        out.update(_requests(ch, "clickhouse.statefulSet.resources.requests"))
    return vd.Settings(out, source="the deployed objects")


def _requests(workload: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    main = next(iter(containers(workload)), {})
    req = (main.get("resources") or {}).get("requests") or {}
    return {f"{prefix}.{res}": req[res] for res in ("cpu", "memory") if res in req}


def _store_data(ctx: Context) -> dict[str, vd.StoreData]:
    """Each bundled datastore's StatefulSet and PVCs; ClickHouse's data size when it answers."""
    if not ctx.clients.has("kubernetes"):
        return {}
    cluster = ctx.cluster
    pvcs = {name_of(p): p for p in cluster.objects("persistentvolumeclaims")}
    out = {}
    for store in vd.DATASTORES:
        sts = cluster.get("statefulsets", cluster.name(store))
        if sts is None:
            continue
        spec = sts.get("spec") or {}
        names = [
            f"{name_of(t)}-{name_of(sts)}-{i}"
            for t in spec.get("volumeClaimTemplates") or []
            for i in range(int(spec.get("replicas", 1)))
        ]
        claims = tuple(
            (
                n,
                str(((pvcs.get(n) or {}).get("status") or {}).get("phase", "missing")),
                str(
                    (((pvcs.get(n) or {}).get("spec") or {}).get("resources") or {})
                    .get("requests", {})
                    .get("storage", "?")
                ),
            )
            for n in names
        )
        size, what = (None, "")
        if store == "clickhouse" and ctx.clients.has("clickhouse"):
            size, what = _clickhouse_bytes(ctx)
        out[store] = vd.StoreData(name_of(sts), claims, size, what)
    return out


def _clickhouse_bytes(ctx: Context) -> tuple[int | None, str]:
    try:
        ch = ctx.clients.clickhouse
        rows = query_rows(
            ch,
            PROBE_TAG,
            "SELECT sum(bytes_on_disk) AS b FROM system.parts WHERE database = {db:String} AND active",
            {"db": ch.database},
            reads="system.parts",
            purpose="measure the data at risk",
        )
        return int(rows[0]["b"] or 0), f"active parts of database {ch.database}"
    except Exception:  # the size is a detail of the finding; the PVC names stand without it
        return None, ""


def _ttl_estimate(ctx: Context, ttl_s: float) -> vd.TtlEstimate | None:
    """Rows and bytes of runs in partitions whose newest data is older than the TTL."""
    if not ctx.clients.has("clickhouse"):
        return None
    try:
        ch = ctx.clients.clickhouse
        newest = (
            "if(max_time > toDateTime(0), max_time, "
            "if(max_date > toDate(0), toDateTime(max_date) + 86399, NULL))"
        )
        rows = query_rows(
            ch,
            PROBE_TAG,
            f"SELECT sumIf(rows, {newest} < now() - toIntervalSecond({{ttl:UInt64}})) AS r, "
            f"sumIf(bytes_on_disk, {newest} < now() - toIntervalSecond({{ttl:UInt64}})) AS b, "
            f"countIf({newest} IS NULL) AS undated "
            "FROM system.parts WHERE database = {db:String} AND table = 'runs' AND active",
            {"db": ch.database, "ttl": int(ttl_s)},
            reads="system.parts",
            purpose="estimate what a shorter TTL deletes",
        )
    except Exception:
        return None
    r = rows[0]
    return vd.TtlEstimate(int(r["r"] or 0), int(r["b"] or 0), int(r["undated"] or 0))
