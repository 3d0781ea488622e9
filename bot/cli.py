"""`lsready`: the same engine as the Slack bot, from a terminal or CI."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from bot.render.report import FORMATS, render_report
from checks.config import Config, load_config
from checks.engine import catalog_for, check
from checks.errors import ConfigError, LsreadyError
from checks.registry import load_catalog

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class _Group(click.Group):
    """Turns every user-facing error into one line on stderr and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for line in exc.lines():
                click.echo(f"lsready: {line}", err=True)
            ctx.exit(EXIT_USAGE)
        except LsreadyError as exc:
            click.echo(f"lsready: {exc}", err=True)
            ctx.exit(EXIT_USAGE)


def _config(ctx: click.Context) -> Config:
    obj = ctx.ensure_object(dict)
    if "config" not in obj:
        obj["config"] = load_config(obj.get("config_path"))
    return obj["config"]


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_path", metavar="PATH", help="Config file (default $LSREADY_CONFIG, ./lsready.yaml)."
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug details to stderr.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """Readiness checks and incident triage for self-hosted LangSmith."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    ctx.ensure_object(dict)["config_path"] = config_path


@cli.command("catalog")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def catalog_cmd(ctx: click.Context, fmt: str) -> None:
    """List every checklist item."""
    catalog = load_catalog()
    if fmt == "json":
        click.echo(json.dumps([i.to_dict() for i in catalog.items], indent=2, ensure_ascii=False))
        return
    for item in catalog.items:
        req = " required" if item.required else ""
        probe = f" [{item.probe}]" if item.probe else ""
        click.echo(f"{item.section:>7}  {item.id:<40} {item.kind.value:<8}{req}{probe}  {item.title}")


@cli.command("check")
@click.option("--target", metavar="NAME", help="Configured target (default: default_target).")
@click.option("--section", metavar="N|ID", help="A section (1-11, signoff) or an item id.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option(
    "--fail-under", type=click.FloatRange(0, 100), metavar="PCT", help="Exit 1 when the score is lower."
)
@click.pass_context
def check_cmd(
    ctx: click.Context, target: str | None, section: str | None, fmt: str, fail_under: float | None
) -> None:
    """Run the readiness probes; exit 1 when a required item fails."""
    config = _config(ctx)
    report = check(config, target, selector=section)
    click.echo(render_report(report, fmt), nl=False)
    failing = bool(report.score.required_failing)
    under = fail_under is not None and report.score.percent < fail_under
    ctx.exit(EXIT_FINDINGS if failing or under else EXIT_OK)


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Validate the config file and the environment overrides."""
    config = _config(ctx)
    catalog_for(config)  # thresholds and severity overrides must name real items and keys
    for name, target in config.targets.items():
        backends = [b for b in ("redis", "postgres", "clickhouse", "kubernetes", "blob", "langsmith")
                    if getattr(target, b) is not None]  # fmt: skip
        default = " (default)" if name == config.default_target or len(config.targets) == 1 else ""
        click.echo(f"target {name}{default}: {', '.join(backends) or 'no backends'}")
    if not config.targets:
        click.echo("no targets configured; every probe will report unknown")
    click.echo("config OK")


@cli.command("demo")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.pass_context
def demo_cmd(ctx: click.Context, fmt: str) -> None:
    """Start embedded ClickHouse, PostgreSQL and Redis with a LangSmith-shaped schema, then check them."""
    from runbooks.demo import run_demo

    report = run_demo()
    click.echo(render_report(report, fmt), nl=False)


def main() -> None:
    try:
        cli(obj={})
    except KeyboardInterrupt:
        click.echo("lsready: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
