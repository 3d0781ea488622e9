"""A support bundle built behind the ack and uploaded, with its summary, into the caller's thread."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from slack_sdk import WebClient

from bot.common import Caller, audit
from bot.render.limits import BUNDLE_MAX_BYTES, FILE_MAX_BYTES
from bot.replies import SnapshotGone
from runbooks.bundle import BundleOptions, build_bundle, default_name, summary_line

if TYPE_CHECKING:
    from bot.services import Services


def prepare_bundle(
    services: Services, client: WebClient, caller: Caller, name: str, snapshot: str | None
) -> None:
    """Build the bundle and upload it, with its one-line summary, into the caller's thread."""
    evidence = None
    if snapshot:
        try:
            evidence = {"triage": services.snapshots.get(snapshot)["data"]}
        except SnapshotGone:
            evidence = None  # the bot restarted since: the bundle runs a fresh triage
    opts = BundleOptions(max_bytes=min(BUNDLE_MAX_BYTES, FILE_MAX_BYTES))
    with tempfile.TemporaryDirectory(prefix="lsready-bundle-") as tmp:
        bundle = build_bundle(
            services.config, name, opts, Path(tmp) / default_name(name, opts.fmt), evidence=evidence
        )
        line = services.redactor.text(summary_line(bundle))
        client.files_upload_v2(
            channel=caller.channel,
            thread_ts=caller.thread_ts,
            file=str(bundle.path),
            filename=bundle.path.name,
            title=f"Support bundle of {name[:60]}",
            initial_comment=line,
        )
    audit(services, caller, "bundle", name, line, outcome="ok" if bundle.manifest["complete"] else "partial")
