"""Which backend did not answer, and why, said once per run instead of on every item that needed it.

A probe that fails because its datastore refused or dropped the connection is not a finding about
that item: `unreachable(exc)` names the backend such an error comes from, `endpoint` says where it
was reached for (host and port, never credentials) and `why` puts the cause in a few words.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from checks.backends import BackendUnavailable, describe
from checks.config import TargetConfig

LABELS = {"redis": "Redis", "postgres": "PostgreSQL", "clickhouse": "ClickHouse",
          "kubernetes": "Kubernetes", "blob": "Blob storage"}  # fmt: skip

# Causes worth naming as they are, in the words people search for.
_CAUSES = (
    (re.compile(r"(?i)connection refused"), "connection refused"),
    (re.compile(r"(?i)timed? ?out"), "connection timed out"),
    (re.compile(r"(?i)name or service not known|nodename nor servname|getaddrinfo|could not translate host"),
     "host name does not resolve"),
    (re.compile(r"(?i)no route to host|network is unreachable"), "no route to host"),
    (re.compile(r"(?i)certificate verify failed|ssl"), "TLS handshake failed"),
    (re.compile(r"(?i)password authentication failed|wrongpass|authentication failed|invalid password"),
     "authentication failed"),
    (re.compile(r"(?i)connection reset|broken pipe|remote end closed|server closed the connection"),
     "the server closed the connection"),
)  # fmt: skip


def unreachable(exc: BaseException) -> str | None:
    """The backend an error says could not be reached, or None for any other error."""
    backend = getattr(exc, "backend", None)
    if isinstance(exc, BackendUnavailable) and backend:
        return str(backend)
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeout

        if isinstance(exc, (RedisConnectionError, RedisTimeout)):
            return "redis"
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    try:
        import psycopg

        # A cancelled query is the server's answer; a failed connection is not.
        cancelled = isinstance(exc, psycopg.errors.QueryCanceled)
        if isinstance(exc, psycopg.OperationalError) and not cancelled and "connect" in str(exc).lower():
            return "postgres"
    except ImportError:  # pragma: no cover
        pass
    try:
        from clickhouse_connect.driver.exceptions import OperationalError

        if isinstance(exc, OperationalError):
            return "clickhouse"
    except ImportError:  # pragma: no cover
        pass
    return None


def endpoint(target: TargetConfig, backend: str) -> str:
    """Where the backend was asked: host:port (or the socket or data path), never a credential."""
    section = getattr(target, backend, None)
    url = getattr(section, "url", None)
    if not url:
        return "its configured endpoint"
    parts = urlsplit(url)
    if parts.scheme in ("unix", "chdb"):
        return parts.path or url.split("://", 1)[-1].split("?", 1)[0]
    defaults = {
        "redis": 6379,
        "rediss": 6379,
        "postgresql": 5432,
        "postgres": 5432,
        "http": 8123,
        "https": 8443,
    }
    try:
        port = parts.port or defaults.get(parts.scheme)
    except ValueError:
        port = None
    host = parts.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def why(exc: BaseException) -> str:
    """The cause in a few words ('connection refused'), else the error's own short description."""
    text = describe(exc)
    for pattern, cause in _CAUSES:
        if pattern.search(text):
            return cause
    return text if len(text) <= 160 else text[:157] + "..."
