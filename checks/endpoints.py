"""Where a datastore URL points: one parser per datastore, for clients, probes and network checks alike.

An endpoint never holds a password: `ClickHouseEndpoint.password` is read from the URL by the
client that needs it and is kept out of `repr`, so an endpoint can be logged or shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

REDIS_PORT, POSTGRES_PORT, CLICKHOUSE_HTTP_PORT, CLICKHOUSE_HTTPS_PORT = 6379, 5432, 8123, 8443


def _query(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))


def _split_host_port(hostspec: str) -> tuple[str, str]:
    """`host:port`, `[v6]:port` or a bare host, as text."""
    if hostspec.startswith("["):
        host, _, rest = hostspec[1:].partition("]")
        return host, rest.lstrip(":")
    host, _, port = hostspec.partition(":")
    return host, port


def _port(text: str | None) -> int | None:
    first = (text or "").split(",")[0].strip()
    return int(first) if first.isdigit() else None


@dataclass(frozen=True)
class RedisEndpoint:
    """A redis://, rediss:// or unix:// URL's address and database, without credentials."""

    host: str | None
    port: int | None
    socket: str | None  # the Unix socket file of a unix:// URL
    db: int = 0
    tls: bool = False
    unix: bool = False  # a unix:// URL, with or without a path

    def display(self) -> str:
        if self.unix:
            return f"unix socket {self.socket or '(no path)'}"
        return f"{self.host}:{self.port or REDIS_PORT}"


def redis(url: str) -> RedisEndpoint:
    """Host, port, socket path and database (`/N` or `?db=N`) of a Redis URL."""
    parts = urlsplit(url)
    unix = parts.scheme == "unix"
    db_text = _query(parts.query).get("db") or ("" if unix else parts.path.strip("/")) or "0"
    db = int(db_text) if db_text.isdigit() else 0
    if unix:
        return RedisEndpoint(None, None, unquote(parts.path) or None, db, unix=True)
    return RedisEndpoint(parts.hostname, parts.port, None, db, tls=parts.scheme == "rediss")


@dataclass(frozen=True)
class PgEndpoint:
    """A libpq URL's first address, without credentials.

    `host` is the name (what placement and TLS go by), `hostaddr` the numeric address libpq
    connects to when given; `socket` is a socket directory, `abstract` an abstract socket name.
    """

    host: str | None
    port: int | None
    socket: str | None
    hostaddr: str | None = None
    abstract: str | None = None

    @property
    def connect_host(self) -> str | None:
        """The address a TCP connection goes to: `hostaddr` wins over `host`, as in libpq."""
        return self.hostaddr or self.host

    def display(self) -> str:
        if self.socket:
            return f"socket {self.socket}"
        if self.abstract:
            return f"abstract socket {self.abstract}"
        return f"{self.connect_host}:{self.port or POSTGRES_PORT}"


def postgres(url: str) -> PgEndpoint:
    """The first host of a libpq URL; `?host=`, `?hostaddr=` and `?port=` win over the netloc, as in libpq."""
    parts = urlsplit(url)
    query = _query(parts.query)
    host_text, port_text = _split_host_port(parts.netloc.rpartition("@")[2].split(",")[0])
    host = unquote(query.get("host") or host_text).split(",")[0] or None
    hostaddr = (query.get("hostaddr") or "").split(",")[0] or None
    port = _port(query.get("port") or port_text)
    if host and host.startswith("/"):
        return PgEndpoint(None, port, host.rstrip("/") or "/", hostaddr)
    if host and host.startswith("@"):
        return PgEndpoint(None, port, None, hostaddr, abstract=host)
    return PgEndpoint(host, port, None, hostaddr)


@dataclass(frozen=True)
class ClickHouseEndpoint:
    """An http://, https:// or chdb:// URL: address, database and user; the password stays out of repr."""

    host: str | None
    port: int | None
    tls: bool
    database: str
    user: str = "default"
    password: str = field(default="", repr=False)
    embedded_path: str | None = None  # chdb:///path: the embedded engine's data directory

    @property
    def embedded(self) -> bool:
        return self.embedded_path is not None

    def display(self) -> str:
        if self.embedded:
            return f"embedded chdb at {self.embedded_path}"
        return f"{self.host}:{self.port}"


def clickhouse(url: str) -> ClickHouseEndpoint:
    """Host, port (8123, or 8443 over https), database (path, or chdb's `?database=`) and user."""
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        database = _query(parts.query).get("database") or "default"
        return ClickHouseEndpoint(None, None, False, database, embedded_path=parts.path)
    tls = parts.scheme == "https"
    return ClickHouseEndpoint(
        parts.hostname,
        parts.port or (CLICKHOUSE_HTTPS_PORT if tls else CLICKHOUSE_HTTP_PORT),
        tls,
        parts.path.strip("/") or "default",
        user=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
    )
