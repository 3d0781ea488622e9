"""Keep secrets out of every output: configured values and anything shaped like a credential."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

MASK = "***"

# user:password@ inside any URL-like string; the user name is kept, the password masked. The password
# runs to the last "@" of the token, since unencoded passwords may contain "@" or "/".
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s'\"]*):(?P<pw>[^\s'\"]+)@(?=[^@\s'\"]*(?:[\s'\"]|$))"
)
# LangSmith's POSTGRES_DATABASE_URI has no scheme: user:password@host[:port]/db.
_BARE_CREDENTIALS = re.compile(
    r"(?<![\w/:@])(?P<user>[A-Za-z0-9_.\-]+):(?!//)(?P<pw>[^\s'\"@/]+)@(?=[A-Za-z0-9.\-]+(?::\d+)?/\w)"
)
_TOKEN_PATTERNS = [
    re.compile(r"xox[abposr]-[A-Za-z0-9-]{6,}"),  # Slack bot/user/app tokens
    re.compile(r"xapp-[A-Za-z0-9-]{6,}"),  # Slack app-level tokens
    re.compile(r"lsv2_(?:pt|sk)_[A-Za-z0-9_]{8,}"),  # LangSmith API keys
    re.compile(r"ls__[A-Za-z0-9]{16,}"),  # legacy LangSmith API keys
    re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),  # AWS access key ids
    re.compile(
        r"(?i)([\"']?(?:password|passwd|pwd|secret|token|api[_-]?key)[\w-]*[\"']?)(\s*[=:]\s*[\"']?)([^\s,;&'\"]+)"
    ),
]


def url_password(url: str | None) -> str | None:
    """The password embedded in a URL, if any."""
    if not url:
        return None
    m = _URL_CREDENTIALS.search(url) or _BARE_CREDENTIALS.search(url)
    if m:
        return unquote(m["pw"])
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return unquote(parts.password) if parts.password else None


def mask_url(url: str) -> str:
    """The URL with its password masked, for display."""
    return Redactor().text(url)


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
            quoted = quote(secret, safe="")
            if quoted != secret:
                self._secrets.add(quoted)  # the form it takes inside a URL

    def text(self, value: str) -> str:
        out = value
        # Known values first: a pattern could otherwise cut a secret in two and leave half of it.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in out:
                out = out.replace(secret, MASK)
        out = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", out)
        out = _BARE_CREDENTIALS.sub(lambda m: f"{m['user']}:{MASK}@", out)
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
