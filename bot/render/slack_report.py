"""A check report, full (`check`) or short (`status`), as a Slack message."""

from __future__ import annotations

from collections import Counter
from typing import Any

from slack_sdk.models.blocks import Block, SectionBlock

from bot import actions
from bot.render.blocks import actions_row, button, context, evidence_button, header, section, section_lines
from bot.render.limits import MAX_BLOCKS, Message, button_value, finish, fit_blocks
from bot.render.report import sections
from bot.render.slack_text import line, macros
from checks.model import Status
from checks.runner import Report
from checks.secrets import Redactor

# Shown item by item; passing, attested and n/a items are counted unless the report is small.
ATTENTION = (Status.FAIL, Status.UNKNOWN, Status.WARN, Status.MANUAL)
SMALL_REPORT = 12


def _t() -> Any:
    return macros("slack_report.j2")


def render_report(
    report: Report,
    redactor: Redactor,
    *,
    snapshot: str | None = None,
    selector: str | None = None,
    by: str | None = None,
) -> Message:
    """The full report: score, then each section's items that need attention."""
    t = _t()
    blocks: list[Block] = [header(line(t.header, report.target))]
    blocks.append(_score_block(report))
    small = len(report.results) <= SMALL_REPORT
    for key, name, results in sections(report):
        counts = Counter(r.status.value for r in results)
        shown = [r for r in results if small or r.status in ATTENTION]
        shown.sort(
            key=lambda r: (ATTENTION.index(r.status) if r.status in ATTENTION else 9, not r.item.required)
        )
        lines = [line(t.section_title, key, name, dict(sorted(counts.items())))]
        lines += [line(t.item, r.to_dict()) for r in shown]
        if len(shown) < len(results):
            lines.append(line(t.passing, len(results) - len(shown)))
        blocks.append(section_lines(lines))
    tail = [context(line(t.footer, report, by))]
    tail += _buttons(report, snapshot, selector, full=True)
    blocks = fit_blocks(blocks, MAX_BLOCKS["message"] - len(tail)) + tail
    return finish(
        line(t.fallback, report), blocks, redactor, metadata=actions.metadata(report.target, "check")
    )


def render_status(
    report: Report, redactor: Redactor, *, snapshot: str | None = None, by: str | None = None
) -> Message:
    """The short form: score buckets, failing required items, how many wait for a person."""
    t = _t()
    blocks: list[Block] = [header(line(t.status_header, report.target))]
    blocks.append(_score_block(report))
    failing = [r for r in report.results if r.item.id in report.score.required_failing]
    if failing:
        lines = [line(t.item, r.to_dict()) for r in failing]
        blocks.append(section_lines(lines))
    waiting = sum(1 for r in report.results if r.status is Status.MANUAL)
    if waiting:
        blocks.append(section(line(t.manual_waiting, waiting)))
    blocks.append(context(line(t.footer, report, by)))
    blocks += _buttons(report, snapshot, None, full=False)
    return finish(
        line(t.status_fallback, report), blocks, redactor, metadata=actions.metadata(report.target, "status")
    )


def _score_block(report: Report) -> SectionBlock:
    t = _t()
    lines = [line(t.score, report.score), line(t.buckets, report.score.buckets)]
    lines += [line(t.unreachable, u) for u in report.unreachable]
    if report.score.required_failing:
        lines.append(line(t.required_failing, report.score.required_failing))
    if report.score.required_unknown:
        lines.append(line(t.required_unknown, list(report.score.required_unknown)))
    if not report.score.required_failing and not report.score.required_unknown and len(report.results) > 1:
        lines.append(line(t.no_required_failing))
    return section_lines(lines)


def _buttons(report: Report, snapshot: str | None, selector: str | None, *, full: bool) -> list[Block]:
    rerun = button_value(t=report.target, s=selector)
    buttons = []
    if rerun is not None:
        buttons.append(button("Re-run" if full else "Full report", actions.CHECK_RERUN, rerun, primary=True))
    waiting = [r.item.id for r in report.results if r.status is Status.MANUAL and r.item.attestable]
    ack = button_value(t=report.target, i=waiting[0] if len(waiting) == 1 else None)
    if waiting and ack is not None:
        buttons.append(button("Acknowledge…", actions.ACK_OPEN, ack))
    return actions_row(buttons + evidence_button(snapshot))
