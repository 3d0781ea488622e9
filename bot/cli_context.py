"""What every `lsready` command shares: exit codes, the config and store it opened, who runs it."""

from __future__ import annotations

import getpass
import logging
import os
from pathlib import Path
from typing import Any

import click

from bot.logs import setup_logging
from checks.config import DEFAULT_PATH, Config, load_config
from runbooks.readiness import Readiness
from storage.db import default_path

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_UNVERIFIED = 0, 1, 2, 3


def store_path(ctx: click.Context) -> str:
    """The path of the store this invocation opened, for error messages."""
    readiness = ctx.ensure_object(dict).get("readiness")
    if readiness is None:
        return "(not opened)"
    return str(readiness.db.execute("PRAGMA database_list").fetchone()[2])


def config_of(ctx: click.Context) -> Config:
    obj = ctx.ensure_object(dict)
    if "config" not in obj:
        obj["config"] = load_config(obj.get("config_path"))
        # Now that the secrets are known, mask them in every log line too.
        setup_logging(logging.getLogger().level, obj.get("log_format", "text"), obj["config"].redactor())
    return obj["config"]


def config_available(ctx: click.Context) -> bool:
    obj = ctx.ensure_object(dict)
    return bool(obj.get("config_path") or os.environ.get("LSREADY_CONFIG") or Path(DEFAULT_PATH).exists())


def has_store(config: Config) -> bool:
    """Attestations and history come from the store when one is configured or already exists."""
    return bool(config.storage.path or os.environ.get("LSREADY_DATA_DIR") or default_path().exists())


def actor() -> str:
    """Who ran a command from the terminal, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # a container user with no passwd entry and no USER variable
        return "cli"


def readiness_of(ctx: click.Context) -> Readiness:
    obj = ctx.ensure_object(dict)
    if "readiness" not in obj:
        obj["readiness"] = Readiness.open(config_of(ctx))
    return obj["readiness"]


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
