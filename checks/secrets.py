"""Keep secrets out of every output: configured values and anything shaped like a credential."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"

# user:password@ inside any URL-like string; the user name is kept, the password masked.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s/]+)@")
_TOKEN_PATTERNS = [
    re.compile(r"xox[abposr]-[A-Za-z0-9-]{6,}"),  # Slack bot/user/app tokens
    re.compile(r"xapp-[A-Za-z0-9-]{6,}"),  # Slack app-level tokens
    re.compile(r"lsv2_(?:pt|sk)_[A-Za-z0-9_]{8,}"),  # LangSmith API keys
    re.compile(r"ls__[A-Za-z0-9]{16,}"),  # legacy LangSmith API keys
    re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),  # AWS access key ids
    re.compile(r"(?i)(password|passwd|pwd|secret|token|api[_-]?key)(\s*[=:]\s*)([^\s,;&'\"]+)"),
]


def url_password(url: str | None) -> str | None:
    """The password embedded in a URL, if any."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return unquote(parts.password) if parts.password else None


def mask_url(url: str) -> str:
    """The URL with its password masked, for display."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)


class Redactor:
    """Replaces known secret values and credential-shaped text with a mask."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        # Very short values would mask ordinary words; they are weak secrets anyway.
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def text(self, value: str) -> str:
        out = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", value)
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in out:
                out = out.replace(secret, MASK)
        for pattern in _TOKEN_PATTERNS[:-1]:
            out = pattern.sub(MASK, out)
        return _TOKEN_PATTERNS[-1].sub(lambda m: f"{m[1]}{m[2]}{MASK}", out)

    def value(self, value: Any) -> Any:
        """Redact strings anywhere inside JSON-like data."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value
