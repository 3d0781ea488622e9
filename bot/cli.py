"""`lsready`: the same engine as the Slack bot, from a terminal or CI."""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
from pathlib import Path
from typing import Any

import click

from bot import cli_store
from bot.cli_context import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_UNVERIFIED,
    EXIT_USAGE,
    actor,
    config_of,
    has_store,
    is_terminal,
    readiness_of,
    store_path,
)
from bot.logs import setup_logging
from bot.render.report import FORMATS, render_report
from checks.engine import catalog_for, check
from checks.errors import ConfigError, LsreadyError, UnknownTarget
from runbooks.readiness import parse_duration
from storage.db import StorageError


class _UsageLine(click.UsageError):
    """A usage error told in one line (click's own takes four), naming where help is."""

    def show(self, file: Any = None) -> None:
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx else ""
        click.echo(f"lsready: {self.format_message()}{hint}", err=True)


def _usage_line(exc: click.UsageError) -> click.UsageError:
    if isinstance(exc, (_UsageLine, click.exceptions.NoArgsIsHelpError)):  # bare `lsready`: the help
        return exc
    return _UsageLine(exc.format_message(), exc.ctx)


def _global_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        obj = ctx.ensure_object(dict)
        obj["config_path"] = value
        obj.pop("config", None)


def _global_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        setup_logging(logging.DEBUG, ctx.ensure_object(dict).get("log_format", "text"))


def _global_log_format(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)["log_format"] = value
        setup_logging(logging.getLogger().level, value)


def _global_options() -> list[click.Option]:
    """The group's own options, accepted after any subcommand too (as kubectl and helm take flags)."""
    return [
        click.Option(["--config", "_global_config"], metavar="PATH", expose_value=False,
                     callback=_global_config, help="Config file (default $LSREADY_CONFIG, ./lsready.yaml)."),
        click.Option(["-v", "--verbose", "_global_verbose"], is_flag=True, expose_value=False,
                     callback=_global_verbose, help="Log debug details to stderr."),
        click.Option(["--log-format", "_global_log_format"], type=click.Choice(["text", "json"]),
                     expose_value=False, callback=_global_log_format,
                     help="Log lines as text or JSON (default text, or $LSREADY_LOG_FORMAT)."),
    ]  # fmt: skip


class _Group(click.Group):
    """Turns every user-facing error into one line on stderr and exit code 2, never a traceback.

    Every command added to it (now or later, nested groups too) also takes the global options,
    after its name as well as before, and lists them in its help.
    """

    group_class = type  # subgroups are _Group too

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        taken = {opt for p in cmd.params for opt in p.opts}
        cmd.params.extend(o for o in _global_options() if not taken & set(o.opts))
        super().add_command(cmd, name)

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise _usage_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a subcommand's options, parsed here
            raise _usage_line(exc) from None
        except ConfigError as exc:
            for line in exc.lines():
                click.echo(f"lsready: {line}", err=True)
            ctx.exit(EXIT_USAGE)
        except (LsreadyError, StorageError) as exc:
            click.echo(f"lsready: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except sqlite3.Error as exc:
            # The store opened (read-only files open fine) but a write failed: read-only volume, full disk.
            text = f"cannot write the lsready database at {store_path(ctx)}: {exc}; make it writable"
            click.echo(f"lsready: {text}", err=True)
            ctx.exit(EXIT_USAGE)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_path", metavar="PATH", help="Config file (default $LSREADY_CONFIG, ./lsready.yaml)."
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug details to stderr.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="LSREADY_LOG_FORMAT",
    help="Log lines as text or JSON (secrets are always masked).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool, log_format: str) -> None:
    """Readiness checks and incident triage for self-hosted LangSmith."""
    setup_logging(logging.DEBUG if verbose else logging.WARNING, log_format)
    ctx.ensure_object(dict)["log_format"] = log_format
    ctx.ensure_object(dict)["config_path"] = config_path


@cli.command("catalog")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def catalog_cmd(ctx: click.Context, fmt: str) -> None:
    """List every checklist item: section, id, kind, required, severity, title (json: all fields)."""
    # Overrides from the config, when there is one, so the thresholds shown are those in force.
    catalog = catalog_for(config_of(ctx))
    if fmt == "json":
        click.echo(json.dumps([i.to_dict() for i in catalog.items], indent=2, ensure_ascii=False))
        return
    click.echo(f"{'section':>7}  {'id':<40} {'kind':<8} {'required':<8} {'severity':<8}  title")
    for item in catalog.items:
        req, severity = "required" if item.required else "-", item.severity.value
        click.echo(
            f"{item.section:>7}  {item.id:<40} {item.kind.value:<8} {req:<8} {severity:<8}  {item.title}"
        )


@cli.command("check")
@click.option("--target", metavar="NAME", help="Configured target (default: default_target).")
@click.option("--section", metavar="N|ID", help="A section (1-11, signoff) or an item id.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option(
    "--fail-under", type=click.FloatRange(0, 100), metavar="PCT", help="Exit 1 when the score is lower."
)
@click.option(
    "--allow-unknown",
    is_flag=True,
    help="Exit 0 even when a required item could not be verified (default: exit 3).",
)
@click.option("--strict", is_flag=True, hidden=True)  # failing closed is the default; kept so old gates run
@click.pass_context
def check_cmd(
    ctx: click.Context,
    target: str | None,
    section: str | None,
    fmt: str,
    fail_under: float | None,
    allow_unknown: bool,
    strict: bool,
) -> None:
    """Run the readiness probes of one target.

    Exit 0 when every required item passes (or is attested), 1 when one fails or the score is under
    --fail-under, 2 on a usage or configuration error, 3 when a required item could not be verified
    (unknown) and none fails; --allow-unknown turns that 3 into 0.
    """
    config = config_of(ctx)
    if has_store(config):
        readiness = readiness_of(ctx)
        report = readiness.check(target, section)
        detail = f"{section or 'all'}: {report.score.percent}%"
        readiness.audit.record(actor(), "check", target=report.target, detail=detail)
    else:
        report = check(config, target, selector=section)
    click.echo(render_report(report, fmt), nl=False)
    failing = bool(report.score.required_failing)
    under = fail_under is not None and report.score.percent < fail_under
    if failing or under:
        ctx.exit(EXIT_FINDINGS)
    # A gate that cannot see the deployment does not go green: unknown is not a pass.
    ctx.exit(EXIT_UNVERIFIED if report.score.required_unknown and not allow_unknown else EXIT_OK)


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Validate the config file and the environment overrides, as every command does."""
    config = config_of(ctx)
    if not config.targets:  # what `check` and `triage` would say: the same error, the same exit code
        raise UnknownTarget(None, [])
    catalog_for(config)
    for name, target in config.targets.items():
        backends = [b for b in ("redis", "postgres", "clickhouse", "kubernetes", "blob", "langsmith")
                    if getattr(target, b) is not None]  # fmt: skip
        default = " (default)" if name == config.default_target or len(config.targets) == 1 else ""
        click.echo(f"target {name}{default}: {', '.join(backends) or 'no backends'}")
        if target.blob is not None and target.blob.throughput_probe:
            click.echo(
                f"  note: blob.throughput_probe writes small objects under lsready-probe/ in bucket "
                f"{target.blob.bucket} and deletes them; every other probe only reads"
            )
    click.echo("config OK")


@cli.command("demo")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--scenario", metavar="NAME",
              help="First create an incident (healthy, clickhouse-saturation, queue-backlog, "
                   "ingestion-delay), then triage and check; --format text or json.")  # fmt: skip
@click.pass_context
def demo_cmd(ctx: click.Context, fmt: str, scenario: str | None) -> None:
    """Start embedded ClickHouse, PostgreSQL and Redis with a LangSmith-shaped schema, then check them."""
    from runbooks.demo import run_demo

    if scenario is None:
        click.echo(render_report(run_demo(), fmt), nl=False)
        return
    from bot.render.report import render_check_brief
    from bot.render.triage import FORMATS as TRIAGE_FORMATS
    from bot.render.triage import render_triage

    if fmt not in TRIAGE_FORMATS:
        raise click.UsageError("--scenario prints text or json")
    run = run_demo(scenario)
    if fmt == "json":
        click.echo(render_triage(run.triage, fmt), nl=False)
        return
    # The check in brief first, so the last thing on the screen is the diagnosis and what to do.
    click.echo(render_check_brief(run.report))
    click.echo(render_triage(run.triage, fmt), nl=False)


@cli.command("serve")
@click.option("--port", type=click.IntRange(0, 65535), default=3000, show_default=True,
              help="HTTP mode: port of /slack/events and /healthz (unused in Socket Mode).")  # fmt: skip
@click.option("--host", default="0.0.0.0", show_default=True, help="HTTP mode: address to listen on.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=9100, show_default=True,
              help="Port of /healthz and /metrics for probes and Prometheus; 0 turns it off.")  # fmt: skip
@click.pass_context
def serve_cmd(ctx: click.Context, port: int, host: str, metrics_port: int) -> None:
    """Run the Slack bot: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on --port."""
    from bot.app import serve
    from bot.settings import load_settings

    settings = load_settings()
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    serve(settings, readiness_of(ctx), port=port, host=host, metrics_port=metrics_port,
          say=lambda line: click.echo(line, err=True))  # fmt: skip


@cli.command("exporter")
@click.option("--port", type=click.IntRange(0, 65535), default=9100, show_default=True,
              help="Port of /metrics and /healthz.")  # fmt: skip
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option(
    "--target", "targets", multiple=True, metavar="NAME", help="Export only these targets (repeat)."
)
@click.pass_context
def exporter_cmd(ctx: click.Context, port: int, host: str, targets: tuple[str, ...]) -> None:
    """Export the write path to Prometheus without Slack, refreshed every `exporter.interval` seconds."""
    from bot.exporter import run_exporter, store_attestations

    config = config_of(ctx)
    for name in targets:
        config.target(name)  # an unknown name fails before anything starts
    if not (targets or config.targets):
        raise click.UsageError(
            "no targets configured: add one to the config file (see `lsready config check`)"
        )
    acks = store_attestations(readiness_of(ctx)) if has_store(config) else None
    run_exporter(config, port=port, host=host, targets=targets or None, attestations_for=acks,
                 say=lambda line: click.echo(line, err=True))  # fmt: skip


@cli.command("alert-rules")
@click.option("--format", "fmt", type=click.Choice(["rules", "operator", "tests"]), default="rules",
              show_default=True, help="Rules file, PrometheusRule or promtool tests.")  # fmt: skip
@click.option("--namespace", default="langsmith", show_default=True, help="The PrometheusRule's namespace.")
@click.option("--write", "directory", metavar="DIR", help="Write all three files into DIR instead.")
@click.pass_context
def alert_rules_cmd(ctx: click.Context, fmt: str, namespace: str, directory: str | None) -> None:
    """Print the shipped alert rules with this config's thresholds (see deploy/prometheus)."""
    from runbooks.alert_rules import FILES, render_operator, render_rules, render_tests

    catalog = catalog_for(config_of(ctx))
    texts = {
        "rules": render_rules(catalog),
        "operator": render_operator(catalog, namespace),
        "tests": render_tests(catalog),
    }
    if directory is None:
        click.echo(texts[fmt], nl=False)
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    for kind, text in texts.items():
        (Path(directory) / FILES[kind]).write_text(text)
        click.echo(str(Path(directory) / FILES[kind]))


# Triage exit codes: 0 healthy, 1 a diagnosed bottleneck, 3 could not tell (2 stays usage errors).
TRIAGE_EXIT = {"healthy": 0, "clickhouse_saturation": 1, "ingestion_backpressure": 1, "insert_path_delay": 1,
               "inconclusive": 3}  # fmt: skip


@cli.command("triage")
@click.option("--target", metavar="NAME", help="Configured target (default: default_target).")
@click.option("--runbook", default="trace-visibility", show_default=True, metavar="NAME",
              help="trace-visibility, queue-depth, merge-pressure or ingestion-delay.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--sample-interval", type=click.FloatRange(0, 10), metavar="SECONDS",
              help="Seconds between the two queue samples (default 2.5).")  # fmt: skip
@click.pass_context
def triage_cmd(ctx: click.Context, target: str | None, runbook: str, fmt: str,
               sample_interval: float | None) -> None:  # fmt: skip
    """Walk a triage runbook, read-only; exit 0 healthy, 1 a diagnosed bottleneck, 3 inconclusive."""
    from bot.render.triage import render_triage, step_line
    from runbooks.model import StepResult
    from runbooks.triage import triage

    config = config_of(ctx)
    # On a terminal each step shows on stderr as it finishes; stdout still gets the whole result.
    live = fmt == "text" and is_terminal(sys.stderr)
    shown = [0]

    def on_step(step: StepResult) -> None:
        shown[0] += 1
        click.echo(step_line(shown[0], step), err=True)

    if live:
        click.echo(f"lsready triage: walking {runbook}...", err=True)
    result = triage(
        config, target, runbook, sample_interval_s=sample_interval, on_step=on_step if live else None
    )
    if has_store(config):
        detail = f"{runbook}: {result.diagnosis.kind.value}"
        readiness_of(ctx).audit.record(actor(), "triage", target=result.target, detail=detail)
    # Steps already on this very terminal are not printed twice.
    click.echo(render_triage(result, fmt, steps=not (live and is_terminal(sys.stdout))), nl=False)
    ctx.exit(TRIAGE_EXIT[result.diagnosis.kind.value])


# Preflight exit codes: 0 ready (warnings included), 1 not ready, 3 could not tell.
PREFLIGHT_EXIT = {"ready": 0, "ready_with_warnings": 0, "not_ready": 1, "inconclusive": 3}


@cli.command("preflight")
@click.option("--target", metavar="NAME", help="Configured target (default: default_target).")
@click.option("--values", "values_file", metavar="FILE", help="The values file the upgrade will use (-f).")
@click.option("--current-values", metavar="FILE",
              help="`helm get values` output to compare with (default: the deployed objects).")  # fmt: skip
@click.option("--to", "to_version", metavar="CHART_VERSION", help="The chart version to upgrade to.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def preflight_cmd(ctx: click.Context, target: str | None, values_file: str | None, current_values: str | None,
                  to_version: str | None, fmt: str) -> None:  # fmt: skip
    """Before `helm upgrade`, read-only: exit 0 ready, 1 not ready, 3 could not tell."""
    from bot.render.preflight import render_preflight
    from runbooks.preflight import check_version, load_values, preflight

    config = config_of(ctx)
    result = preflight(
        config, target, to_version=check_version(to_version) if to_version else None,
        new_values=load_values(values_file) if values_file else None, values_name=values_file,
        current_values=load_values(current_values) if current_values else None,
    )  # fmt: skip
    if has_store(config):
        readiness_of(ctx).audit.record(
            actor(), "preflight", target=result.target, detail=result.verdict.value
        )
    click.echo(render_preflight(result, fmt), nl=False)
    ctx.exit(PREFLIGHT_EXIT[result.verdict.value])


@cli.command("bundle")
@click.option("--target", metavar="NAME", help="Configured target (default: default_target).")
@click.option(
    "--out",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write it (.tar.gz or .zip; default lsready-bundle-<target>-<time>.tar.gz).",
)
@click.option(
    "--since", default="24h", show_default=True, metavar="DURATION", help="Logs and query stats since."
)
@click.option("--no-logs", is_flag=True, help="Leave container logs out.")
@click.option("--max-size", default="50MB", show_default=True, metavar="SIZE", help="Cap on the archive.")
@click.option("--deadline", type=click.FloatRange(5, 3600), default=120, show_default=True, metavar="SECONDS")
@click.option("--keep-emails", is_flag=True, help="Do not mask email addresses.")
@click.pass_context
def bundle_cmd(ctx: click.Context, target: str | None, out: Path | None, since: str, no_logs: bool,
               max_size: str, deadline: float, keep_emails: bool) -> None:  # fmt: skip
    """Collect a redacted, size-bounded support bundle for LangSmith support; exit 1 when partial."""
    from runbooks.bundle import BundleOptions, build_bundle, parse_size, summary_line

    config = config_of(ctx)
    since_s = int(parse_duration(since).total_seconds())
    opts = BundleOptions(since_s=since_s, logs=not no_logs, max_bytes=parse_size(max_size),
                         deadline_s=deadline, keep_emails=keep_emails)  # fmt: skip
    bundle = build_bundle(config, target, opts, out)
    if has_store(config):
        readiness_of(ctx).audit.record(
            actor(), "bundle", target=bundle.manifest["target"], detail=str(bundle.path)
        )
    click.echo(f"{bundle.path}: {summary_line(bundle)}")
    for line in bundle.manifest["missing"]:
        click.echo(f"  missing {line}", err=True)
    ctx.exit(EXIT_OK if bundle.manifest["complete"] else EXIT_FINDINGS)


@cli.command("snapshot-commands")
@click.option("--namespace", default="langsmith", show_default=True)
@click.option("--dir", "directory", default="lsready-snapshot", show_default=True)
def snapshot_commands_cmd(namespace: str, directory: str) -> None:
    """Print the kubectl lines that make an offline snapshot (a support bundle) for `snapshot_dir`."""
    from checks.cluster import snapshot_commands

    for line in snapshot_commands(namespace, directory):
        click.echo(line)


for command in cli_store.COMMANDS:
    cli.add_command(command)


def main() -> None:
    try:
        cli(obj={})
    except KeyboardInterrupt:
        click.echo("lsready: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
