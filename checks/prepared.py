"""One target resolved once for a run: its config, effective thresholds, redactor and deadlines.

A check, triage, preflight, signal collection or support bundle starts with `prepare(...)` and
hands the result down; nothing below it goes back to the Config. The probe timeout travels one
way: `Prepared.clients()` opens the target's `Clients` with it, and the runner, the probes and the
runbooks' reads all take it from there (`clients.timeout_s`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from checks.clients import Clients
from checks.config import Config, TargetConfig
from checks.registry import Catalog, load_catalog
from checks.secrets import Redactor


def catalog_for(config: Config) -> Catalog:
    """The catalog with this config's threshold and severity overrides applied."""
    return load_catalog(thresholds=config.thresholds, severity=config.severity)


@dataclass(frozen=True)
class Prepared:
    """What a run of one target needs, resolved once."""

    name: str
    target: TargetConfig
    catalog: Catalog  # thresholds and severities with the config's overrides applied
    redactor: Redactor  # knows every secret in the config
    probe_s: float  # each probe's time and its clients' socket timeout; never past the deadline
    deadline_s: float  # the whole run's

    def open_clients(self) -> Clients:
        """The target's clients, carrying the probe timeout; the caller closes them."""
        return Clients(self.name, self.target, timeout_s=self.probe_s)

    @contextmanager
    def clients(self) -> Iterator[Clients]:
        """The target's clients for the length of a `with` block, closed when it ends."""
        clients = self.open_clients()
        try:
            yield clients
        finally:
            clients.close()


def prepare(
    config: Config,
    target: str | None = None,
    *,
    deadline_s: float | None = None,
    deadline_cap_s: float | None = None,
    probe_cap_s: float | None = None,
    catalog: Catalog | None = None,
) -> Prepared:
    """Resolve `target` (the default one when None) for one run; UnknownTarget names the choices.

    The deadline is `deadline_s` when given, else `timeouts.run_s`, no longer than `deadline_cap_s`
    (a triage answers mid-incident, so it caps the configured one). The probe timeout is
    `timeouts.probe_s`, no longer than the deadline nor `probe_cap_s`.
    """
    name, target_cfg = config.target(target)
    deadline = deadline_s if deadline_s is not None else config.timeouts.run_s
    if deadline_s is None and deadline_cap_s is not None:
        deadline = min(deadline, deadline_cap_s)
    probe_s = min(config.timeouts.probe_s, deadline, math.inf if probe_cap_s is None else probe_cap_s)
    return Prepared(
        name=name,
        target=target_cfg,
        catalog=catalog if catalog is not None else catalog_for(config),
        redactor=config.redactor(),
        probe_s=probe_s,
        deadline_s=deadline,
    )
