"""The "Prepare support bundle" button: build the bundle behind the ack, upload it to the thread.

Any message can carry the button (`bot.render.slack_triage.bundle_button(target, snapshot)`): with a
snapshot key, the triage that message shows goes into the bundle as its triage evidence.
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot import actions as ids
from bot.listeners.common import Caller, SnapshotGone, audit, guard
from bot.listeners.errors import ack_now, lazy
from bot.listeners.work import Request, start
from bot.render.limits import BUNDLE_MAX_BYTES, FILE_MAX_BYTES
from bot.render.slack_text import line, replies
from runbooks.bundle import BundleOptions, build_bundle, default_name, summary_line

if TYPE_CHECKING:
    from bot.app import Services


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


def register(app: App, services: Services) -> None:
    def prepare(body: dict[str, Any], context: Any, client: WebClient, respond: Respond) -> None:
        context["lsready_action"] = "bundle"
        data = ids.decode((body.get("actions") or [{}])[0].get("value"))
        caller = Caller.of(body, context)
        name = services.readiness.target_name(data.get("t"))
        guard(services, "bundle", caller, name)
        work = partial(prepare_bundle, services, client, caller, name, data.get("k"))
        start(services, Request("bundle", name), caller, work, client=client, respond=respond)
        respond(
            text=line(replies().preparing_bundle, name), response_type="ephemeral", replace_original=False
        )

    app.action(ids.pattern(ids.BUNDLE_PREPARE))(ack=ack_now, lazy=[lazy(services, prepare)])
