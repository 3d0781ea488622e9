"""The weekly digest as a Slack message: the thread parent people acknowledge items under."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block

from bot import actions
from bot.render.blocks import actions_row, button, context, evidence_button, header, section_lines
from bot.render.limits import Message, button_value, finish
from bot.render.slack_text import line, macros
from checks.secrets import Redactor
from runbooks.digest import Digest


def _t() -> Any:
    return macros("slack_digest.j2")


def render_digest(
    digest: Digest, redactor: Redactor, *, snapshot: str | None = None, preview: bool = False
) -> Message:
    """The digest message; a `preview` (ephemeral, to one person) has no thread to reply in."""
    t, r = _t(), macros("slack_report.j2")
    score = digest.report.score
    blocks: list[Block] = [
        header(line(t.title, digest.target)),
        section_lines([line(r.score, score), line(r.buckets, score.buckets), line(t.since, digest)]),
    ]
    for label, changes in (
        ("New failures", digest.new_failures),
        ("Fixed", digest.fixed),
        ("Regressions", digest.regressions),
        ("New unknowns", digest.new_unknowns),
    ):
        if changes:
            blocks.append(
                section_lines([line(t.label, label, len(changes)), *(line(t.change, c) for c in changes)])
            )
    for label, acks, macro in (
        ("Attested", digest.acks_added, t.attested),
        ("Attestations expired", digest.acks_expired, t.expired),
        ("Attestations revoked", digest.acks_revoked, t.revoked),
    ):
        if acks:
            blocks.append(section_lines([line(t.label, label, len(acks)), *(line(macro, a) for a in acks)]))
    if digest.failing_required:
        lines = [line(t.label, "Required items failing", len(digest.failing_required))]
        blocks.append(section_lines(lines + [line(t.failing, c) for c in digest.failing_required]))
    if digest.manual_waiting:
        lines = [line(t.label, "Waiting for a person to acknowledge", len(digest.manual_waiting))]
        blocks.append(section_lines(lines + [line(t.waiting, c) for c in digest.manual_waiting]))
    if digest.expiring:
        lines = [line(t.label, "Acknowledgements expiring soon", len(digest.expiring))]
        blocks.append(section_lines(lines + [line(t.expiring, a) for a in digest.expiring]))
    footer = t.preview_footer if preview else t.footer
    blocks.append(context(line(footer)))
    buttons = []
    rerun = button_value(t=digest.target)
    if rerun is not None:
        buttons.append(button("Run check", actions.CHECK_RERUN, rerun))
        if digest.manual_waiting:
            buttons.append(button("Acknowledge…", actions.ACK_OPEN, rerun))
    blocks += actions_row(buttons + evidence_button(snapshot))
    text = line(t.fallback, digest.target, score)
    return finish(text, blocks, redactor, metadata=actions.metadata(digest.target, "digest"))
