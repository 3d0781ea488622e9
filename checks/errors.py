"""Errors a user can act on; each message says what to change."""

from __future__ import annotations


class LsreadyError(Exception):
    """Base for errors shown to the user as one line, never as a traceback."""


class ConfigError(LsreadyError):
    """The configuration is missing, unreadable or invalid; `problems` names each bad key."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__("; ".join(problems))

    def lines(self) -> list[str]:
        return [f"{self.source}: {p}" for p in self.problems]


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
