"""Errors a user can act on; each message says what to change."""

from __future__ import annotations


class LsreadyError(Exception):
    """Base for errors shown to the user as one line, never as a traceback."""


class ConfigError(LsreadyError):
    """The configuration is missing, unreadable or invalid; `problems` names each bad key."""

    def __init__(
        self, problems: list[str], source: str | None = "config", origins: list[str | None] | None = None
    ) -> None:
        self.problems = problems
        # Where each problem comes from: the file, or the environment variable that set the key.
        self.origins = origins if origins is not None else [source] * len(problems)
        super().__init__("; ".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{o}: {p}" if o else p for o, p in zip(self.origins, self.problems, strict=True)]


class CatalogError(LsreadyError):
    """The checklist catalog is inconsistent (duplicate id, unknown probe, bad field)."""


class NotConfigured(LsreadyError):
    """A probe needs a backend the target does not configure."""

    def __init__(self, backend: str, target: str) -> None:
        self.backend = backend
        super().__init__(f"{backend} is not configured for target '{target}'")


class UnknownTarget(LsreadyError):
    def __init__(self, name: str | None, known: list[str]) -> None:
        if not known:
            message = (
                "no targets are configured: write lsready.yaml (see README, Configuration), "
                "pass --config PATH, or try `lsready demo`"
            )
        elif name is None:
            message = f"several targets are configured ({', '.join(known)}): name one, or set default_target"
        else:
            message = f"unknown target '{name}'; configured targets: {', '.join(known)}"
        super().__init__(message)
