"""Networking probes: body-size and timeout limits on every hop in front of LangSmith, and latency.

The hops are the frontend's nginx (chart ConfigMap `<fullname>-frontend`, key nginx.conf), any
Ingress routing to the frontend Service (ingress-nginx annotations or AWS ALB attributes), and the
frontend Service's cloud load balancer. Reachability and latency are measured from where lsready runs:
a datastore or the blob endpoint counts as answering only when it replied to a request of its own
protocol (Redis PING, PostgreSQL SSLRequest, HTTP), since the kernel accepts TCP connections for a hung
server too; the LangSmith Services are measured by TCP connect time only, and reported as such.
"""

from __future__ import annotations

from checks.probes.network.ingress import max_body_size, proxy_timeouts
from checks.probes.network.latency import blob_acl, service_latency

PROBES = {
    "network.max_body_size": max_body_size,
    "network.proxy_timeouts": proxy_timeouts,
    "network.blob_acl": blob_acl,
    "network.service_latency": service_latency,
}
