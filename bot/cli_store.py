"""`lsready ack|acks|revoke|digest|audit`: the commands that read or write the store."""

from __future__ import annotations

import json
from typing import Any

import click

from bot.cli_context import actor, config_of, readiness_of
from bot.render.digest import render_digest
from runbooks.readiness import parse_duration


@click.command("ack")
@click.argument("item_id")
@click.option("--by", required=True, help="Who attests it (a name, or a Slack user id).")
@click.option("--note", default="", help="What was done, e.g. 'restore drill 2026-11-20, 40 min'.")
@click.option("--expires", metavar="DURATION", help="Validity, e.g. 90d, 2w, 3mo (default from config: 90d).")
@click.option(
    "--link", "evidence_link", metavar="URL", help="Link to the evidence (runbook, ticket, recording)."
)
@click.option("--target", metavar="NAME")
@click.pass_context
def ack_cmd(ctx: click.Context, item_id: str, by: str, note: str, expires: str | None,
            evidence_link: str | None, target: str | None) -> None:  # fmt: skip
    """Attest a manual checklist item."""
    config_of(ctx).target(target)  # no target, no store: an error leaves no lsready.db behind
    ack = readiness_of(ctx).acknowledge(
        target, item_id, by, note=note, expires=expires, evidence_link=evidence_link
    )
    click.echo(f"{ack.item_id} attested by {ack.by} for {ack.target} until {ack.expires:%Y-%m-%d}")
    old = ack.supersedes
    if old is not None:
        until = f", until {old.expires:%Y-%m-%d}" if old.expires else ""
        said = f": {old.note}" if old.note else ""
        click.echo(f"  supersedes #{old.id} by {old.by} of {old.created:%Y-%m-%d}{until}{said}")


@click.command("acks")
@click.option("--target", metavar="NAME")
@click.option("--all", "include_inactive", is_flag=True, help="Include expired, superseded and revoked ones.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True
)
@click.pass_context
def acks_cmd(ctx: click.Context, target: str | None, include_inactive: bool, fmt: str) -> None:
    """List acknowledgements."""
    readiness = readiness_of(ctx)
    name = readiness.target_name(target) if target or readiness.config.targets else None
    acks = readiness.acks.list(name, include_inactive=include_inactive)
    states = readiness.acks.states(readiness.acks.list(name, include_inactive=True))
    rows = [{**a.to_dict(), "state": states[a.id]} for a in acks]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        _csv(
            rows,
            [
                "id",
                "target",
                "item_id",
                "by",
                "note",
                "created",
                "expires",
                "evidence_link",
                "revoked",
                "state",
            ],
        )
    elif not rows:
        click.echo("no acknowledgements")
    else:
        for r in rows:
            state = "" if r["state"] == "active" else f" ({r['state']})"
            click.echo(f"{r['target']}  {r['item_id']:<36} {r['by']:<14} until {(r['expires'] or '-')[:10]}"
                       f"{state}  {r['note']}")  # fmt: skip


@click.command("revoke")
@click.argument("item_id")
@click.option("--by", required=True)
@click.option("--target", metavar="NAME")
@click.pass_context
def revoke_cmd(ctx: click.Context, item_id: str, by: str, target: str | None) -> None:
    """Revoke an item's acknowledgement; it goes back to manual."""
    config_of(ctx).target(target)
    count = readiness_of(ctx).revoke(target, item_id, by)
    click.echo(
        f"revoked {count} acknowledgement(s) of {item_id}"
        if count
        else f"{item_id} had no live acknowledgement"
    )


@click.command("digest")
@click.option("--target", metavar="NAME")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True
)
@click.option("--post", is_flag=True, help="Post it to the digest channel (needs SLACK_BOT_TOKEN).")
@click.pass_context
def digest_cmd(ctx: click.Context, target: str | None, fmt: str, post: bool) -> None:
    """Check a target and show what changed since the last digest."""
    from runbooks.digest import build_digest

    config_of(ctx).target(target)
    readiness = readiness_of(ctx)
    digest = build_digest(readiness, target)
    if post:
        from bot.slack_post import post_digest
        from runbooks.digest import record_hand_post

        channel, ts = post_digest(readiness, digest)
        record_hand_post(readiness, digest, channel, ts, actor())
        click.echo(f"posted to {channel} ({ts})")
        return
    click.echo(render_digest(digest, fmt), nl=False)


@click.command("audit")
@click.option("--since", default="7d", show_default=True, metavar="DURATION")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True
)
@click.pass_context
def audit_cmd(ctx: click.Context, since: str, fmt: str) -> None:
    """Show the audit log."""
    readiness = readiness_of(ctx)
    rows = [e.to_dict() for e in readiness.audit.since(readiness.clock() - parse_duration(since))]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        _csv(rows, ["id", "at", "actor", "action", "target", "detail", "place", "outcome"])
    else:
        for r in rows:
            click.echo(f"{r['at']}  {r['actor']:<14} {r['action']:<10} {r['target'] or '-':<10} "
                       f"{r['outcome']:<8} {r['detail']}")  # fmt: skip


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> None:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    click.echo(buf.getvalue(), nl=False)


COMMANDS = (ack_cmd, acks_cmd, revoke_cmd, digest_cmd, audit_cmd)
