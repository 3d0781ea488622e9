"""A raw-socket client: connect, send one protocol-native request (HTTP, Redis PING, SSLRequest), time it."""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

# -- reachability and latency ----------------------------------------------------------------------
#
# The kernel completes a TCP handshake for any listening socket, so a hung server "accepts" as fast as
# a healthy one. A server is only said to answer when it replied to a request of its own protocol.


@dataclass(frozen=True)
class Ask:
    """A request that makes a server of one protocol reply, and how to recognise that reply."""

    name: str  # the request, as the report names it: "PING", "SSLRequest", "HEAD /"
    speaks: str  # the protocol: "Redis", "PostgreSQL", "HTTP"
    request: bytes
    valid: Callable[[bytes], bool]  # the first bytes are a reply of that protocol
    complete: Callable[[bytes], bool]  # enough has arrived to describe the reply
    describe: Callable[[bytes], str]


def _first_line(data: bytes, limit: int = 60) -> str:
    return data.split(b"\n", 1)[0].rstrip(b"\r")[:limit].decode("ascii", "backslashreplace")


def _http_status(data: bytes) -> str:
    fields = _first_line(data).split(" ", 2)
    return f"HTTP {fields[1]}" if len(fields) > 1 else "HTTP"


def http_ask(method: str, path: str, host_header: str) -> Ask:
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: lsready\r\nAccept: */*\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return Ask(
        f"{method} {path}",
        "HTTP",
        request,
        valid=lambda d: d.startswith(b"HTTP/"),
        complete=lambda d: b"\r\n" in d,
        describe=_http_status,
    )


_RESP_TYPES = b"+-:$*_,#!=(%~>|"  # first byte of every RESP2/RESP3 reply
# Any reply proves the server is alive: +PONG, or -NOAUTH / -ERR / -DENIED when it wants credentials
# lsready does not send here.
REDIS_PING = Ask(
    "PING",
    "Redis",
    b"PING\r\n",
    valid=lambda d: d[0] in _RESP_TYPES,
    complete=lambda d: b"\r\n" in d,
    describe=_first_line,
)
# SSLRequest: length 8, code 80877103; the server answers one byte, S (TLS offered) or N (no TLS), or an
# ErrorResponse (E) from a server too old to know it. lsready closes right after: no credentials are sent.
# A server that answered S may log "could not accept SSL connection: EOF detected" once.
_PG_REPLIES = {"S": "S (TLS offered)", "N": "N (no TLS)", "E": "an ErrorResponse"}
POSTGRES_SSLREQUEST = Ask(
    "SSLRequest",
    "PostgreSQL",
    struct.pack("!ii", 8, 80877103),
    valid=lambda d: d[:1].decode("latin-1") in _PG_REPLIES,
    complete=lambda d: len(d) >= 1,
    describe=lambda d: _PG_REPLIES[d[:1].decode("latin-1")],
)


@dataclass(frozen=True)
class Target:
    """Where one server listens, and what to ask it (None: measure the TCP connect only)."""

    host: str = ""
    port: int = 0
    path: str = ""  # a Unix socket, instead of host:port
    tls: bool = False
    ask: Ask | None = None

    @property
    def label(self) -> str:
        if self.path:
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def host_header_for(host: str, port: int, tls: bool) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if tls else 80) else f"{name}:{port}"


def _resolve(host: str, port: int) -> tuple[Any, ...]:
    """The first address for host:port (kept separate so tests can stand in for cluster DNS)."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4]


def connect_ms(host: str, port: int, timeout_s: float) -> tuple[float, socket.socket]:
    """TCP connect time in ms (name resolution not included) and the open socket; raises OSError."""
    address = _resolve(host, port)
    started = time.perf_counter()
    sock = socket.create_connection(address[:2], timeout=timeout_s)
    return (time.perf_counter() - started) * 1000, sock


def _connect(target: Target, timeout_s: float) -> tuple[float, socket.socket]:
    if not target.path:
        return connect_ms(target.host, target.port, timeout_s)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    started = time.perf_counter()
    try:
        sock.connect(target.path)
    except OSError:
        sock.close()
        raise
    return (time.perf_counter() - started) * 1000, sock


def _secs(s: float) -> str:
    return f"{round(s, 2):g} s"


def _failure(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, socket.gaierror):
        return "the name does not resolve"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, FileNotFoundError):
        return "no socket at that path"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {_secs(timeout_s)}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate rejected ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    return f"{exc.__class__.__name__}: {exc}"


def _read_reply(conn: socket.socket, ask: Ask, until: float) -> tuple[float, bytes]:
    """(ms to the first reply bytes, the reply's first bytes); b"" when the server closed instead."""
    started = time.perf_counter()
    conn.sendall(ask.request)
    data = conn.recv(256)
    first_ms = (time.perf_counter() - started) * 1000
    while data and not ask.complete(data) and len(data) < 256:
        left = until - time.monotonic()
        if left <= 0:
            break
        conn.settimeout(left)
        try:
            more = conn.recv(256)
        except TimeoutError:
            break
        if not more:
            break
        data += more
    return first_ms, data


def exchange(target: Target, step_s: float, total_s: float) -> dict[str, Any]:
    """Connect (and shake hands for TLS), ask the server one request and time its first reply.

    Never raises. Each stage waits at most step_s, the whole exchange at most about total_s. The
    result has connect_ms, tls_ms and reply_ms for the stages reached; on failure, `stage`
    (connect, tls or reply) and `error`. A certificate that does not verify is recorded as
    `cert_error` and the exchange goes on without verification: the server did answer.
    """
    deadline = time.monotonic() + total_s
    out: dict[str, Any] = {"target": target.label, "resolved": True}
    if target.path:
        out["local_socket"] = True

    def step() -> float:
        return max(min(step_s, deadline - time.monotonic()), 0.01)

    for verify in (True, False):
        wait_s = step()
        try:
            took_ms, sock = _connect(target, wait_s)
        except OSError as exc:
            out["resolved"] = not isinstance(exc, socket.gaierror)
            return {**out, "stage": "connect", "error": _failure(exc, wait_s)}
        out["connect_ms"] = round(took_ms, 1)
        conn = sock
        try:
            if target.tls:
                context = ssl.create_default_context()
                if not verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                wait_s = step()
                sock.settimeout(wait_s)
                started = time.perf_counter()
                try:
                    conn = context.wrap_socket(sock, server_hostname=target.host)
                except ssl.SSLCertVerificationError as exc:
                    out["cert_error"] = _failure(exc, wait_s)
                    continue  # the server answered the handshake; ask again, unverified
                except OSError as exc:
                    return {**out, "stage": "tls", "error": _failure(exc, wait_s)}
                out["tls_ms"] = round((time.perf_counter() - started) * 1000, 1)
            if target.ask is None:
                return out
            return {**out, **_ask(conn, target, step(), out["connect_ms"])}
        finally:
            conn.close()
            sock.close()
    raise AssertionError("unreachable: the unverified handshake cannot reject a certificate")


def _ask(conn: socket.socket, target: Target, wait_s: float, connect: float) -> dict[str, Any]:
    ask = target.ask
    assert ask is not None
    accepted = f"accepted a TCP connection in {connect:g} ms{' and a TLS handshake' if target.tls else ''}"
    request = f"{ask.speaks} {ask.name}"
    conn.settimeout(wait_s)
    try:
        reply_ms, data = _read_reply(conn, ask, time.monotonic() + wait_s)
    except TimeoutError:
        return {"stage": "reply", "error": f"{accepted} but did not answer {request} within {_secs(wait_s)}"}
    except OSError as exc:
        return {"stage": "reply", "error": f"{accepted} but failed on {request}: {_failure(exc, wait_s)}"}
    if not data:
        return {"stage": "reply", "error": f"{accepted} but closed it without answering {request}"}
    if not ask.valid(data):
        got = _first_line(data, 24)
        return {"stage": "reply", "error": f"answered {request} with {got!r}, which is not {ask.speaks}"}
    return {"reply_ms": round(reply_ms, 1), "reply": ask.describe(data)}


def measure(targets: Mapping[str, Target], step_s: float, total_s: float) -> dict[str, dict[str, Any]]:
    """Run `exchange` on every target in parallel; a target still busy after total_s is reported late."""
    if not targets:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(16, len(targets)))
    futures = {name: pool.submit(exchange, t, step_s, total_s) for name, t in targets.items()}
    wait(futures.values(), timeout=total_s + 0.2)
    pool.shutdown(wait=False)  # a stuck DNS lookup must not hold the probe past its budget
    late = {
        "resolved": False,
        "stage": "connect",
        "error": f"no answer within {_secs(total_s)} (DNS or connect)",
    }
    return {
        name: f.result() if f.done() else {"target": targets[name].label, **late}
        for name, f in futures.items()
    }
