"""Every Slack action id, callback id and metadata type the bot uses, in one place.

A parameterised action id is `<base>:<n>`: Slack wants action ids unique within a block, so
repeated buttons (one Acknowledge per item) differ by a suffix and are matched by `pattern(base)`.
The data a button acts on travels in its value, as compact JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

COMMAND = "/langsmith"

CHECK_RERUN = "lsready.check.rerun"
TRIAGE_RERUN = "lsready.triage.rerun"
TRIAGE_RUN = "lsready.triage.run"  # parameterised: one button per other runbook
TRIAGE_RUN_ALL = "lsready.triage.run_all"
EVIDENCE = "lsready.evidence"
PREFLIGHT_RERUN = "lsready.preflight.rerun"  # the same preflight again, in the same thread
ACK_OPEN = "lsready.ack.open"  # parameterised: one button per item
HOME_CHECK = "lsready.home.check"  # parameterised: one button per target
BUNDLE_PREPARE = "lsready.bundle.prepare"  # "Prepare support bundle" under a triage (or an alert)
ALERT_RERUN = "lsready.alert.rerun"  # on an alert's message: its runbook again, in its thread
ALERT_EVIDENCE = "lsready.alert.evidence"
ALERT_SILENCE = "lsready.alert.silence"  # parameterised: one button per duration

ACK_MODAL = "lsready.ack.modal"  # view callback id
ACK_ITEM_BLOCK, ACK_ITEM = "ack_item", "item"
ACK_NOTE_BLOCK, ACK_NOTE = "ack_note", "note"
ACK_EXPIRY_BLOCK, ACK_EXPIRY = "ack_expiry", "expiry"
ACK_LINK_BLOCK, ACK_LINK = "ack_link", "link"

# Message metadata on every report, digest and triage message: a thread reply under it knows its target.
METADATA_EVENT = "lsready_report"


def param(base: str, n: int | str) -> str:
    return f"{base}:{n}"


def pattern(base: str) -> re.Pattern[str]:
    """Matches the base action id and every parameterised form of it."""
    return re.compile(rf"^{re.escape(base)}(?::[^:]+)?$")


def decode(value: str | None) -> dict[str, Any]:
    """A button value back into its data; a value from elsewhere decodes to nothing."""
    try:
        data = json.loads(value or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def metadata(target: str, kind: str) -> dict[str, Any]:
    return {"event_type": METADATA_EVENT, "event_payload": {"target": target, "kind": kind}}
