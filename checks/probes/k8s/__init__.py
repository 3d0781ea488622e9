"""Kubernetes probes: EKS storage, ClickHouse volumes, autoscaling, KEDA, monitoring, LangSmith env.

Every probe reads `clients.cluster` (live API or snapshot, the same dicts either way). Object names
follow the chart: `<fullname>-<component>`, e.g. `langsmith-backend`, PVC `data-langsmith-clickhouse-0`.
`objects` is the helper library shared with the blob, network and release probes and the runbooks.
"""

from __future__ import annotations

from checks.probes.k8s.autoscaling import (
    hpa_configured,
    hpa_metrics,
    hpa_scaled,
    keda_hpa_interaction,
    keda_in_use,
    read_write_scaling,
    resources_set,
)
from checks.probes.k8s.monitoring import alerts, monitoring
from checks.probes.k8s.sizing import (
    async_insert_wait,
    clickhouse_disk_expansion,
    clickhouse_iops,
    clickhouse_ssd,
)
from checks.probes.k8s.storage import (
    clickhouse_pvcs_bound,
    default_storage_class,
    ebs_csi_driver,
    volume_expansion,
)

PROBES = {
    "kubernetes.ebs_csi_driver": ebs_csi_driver,
    "kubernetes.default_storage_class": default_storage_class,
    "kubernetes.clickhouse_pvcs_bound": clickhouse_pvcs_bound,
    "kubernetes.volume_expansion": volume_expansion,
    "kubernetes.clickhouse_ssd": clickhouse_ssd,
    "kubernetes.clickhouse_iops": clickhouse_iops,
    "kubernetes.clickhouse_disk_expansion": clickhouse_disk_expansion,
    # Not bound in the catalog: the ClickHouse items ask ClickHouse, and fall back to these views of
    # the bundled StatefulSet when it cannot be asked (checks/probes/incluster.py).
    "kubernetes.read_write_scaling": read_write_scaling,
    "kubernetes.hpa_configured": hpa_configured,
    "kubernetes.resources_set": resources_set,
    "kubernetes.hpa_metrics": hpa_metrics,
    "kubernetes.hpa_scaled": hpa_scaled,
    "kubernetes.keda_in_use": keda_in_use,
    "kubernetes.keda_hpa_interaction": keda_hpa_interaction,
    "kubernetes.async_insert_wait": async_insert_wait,
    "kubernetes.monitoring": monitoring,
    "kubernetes.alerts": alerts,
}
