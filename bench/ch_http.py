"""A minimal ClickHouse HTTP interface in front of the embedded engine (chdb), in its own process.

`python -m bench.ch_http DATA_DIR [--port N] [--demo-schema]` opens chdb on DATA_DIR, optionally
builds `lsready demo`'s ClickHouse schema there, then serves on 127.0.0.1 and prints
`listening on 127.0.0.1:PORT` on stdout once ready. It answers what clickhouse-connect's HTTP
client sends, so a bot configured with `http://127.0.0.1:PORT/default` talks to ClickHouse as a
production bot does, and never loads the engine into its own process:

- `GET /ping` -> `Ok.`;
- `GET`/`POST /` with the SQL in the `query` URL parameter and/or the body (concatenated, as
  ClickHouse does); `param_<name>` URL parameters bind `{name:Type}` placeholders (chdb binds them
  itself); `database` selects the database; `default_format`, or a trailing `FORMAT x`, the output
  format (TabSeparated otherwise); `max_execution_time` is applied; other settings (`readonly`,
  `log_comment`, `wait_end_of_query`, `session_id`, ...) are accepted and ignored;
- the response carries `X-ClickHouse-Summary` (read_rows, read_bytes, elapsed_ns...),
  `X-ClickHouse-Query-Id`, `X-ClickHouse-Format` and `X-ClickHouse-Timezone: UTC`; an engine error
  is HTTP 500 with the exception text and `X-ClickHouse-Exception-Code`.

Queries run on a small pool of chdb connection handles (one engine per process, any number of
handles to it). Bench-only: no authentication, no compression, no sessions, no external data.
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

POOL_SIZE = 4
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_CODE = re.compile(r"Code:\s*(\d+)")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SETTINGS_APPLIED = ("max_execution_time",)  # the rest is accepted and ignored


class _Handle:
    """One chdb connection handle with its session state (current database, applied settings)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.database: str | None = None
        self.settings: dict[str, str] = {}


class Engine:
    """chdb on one data path, shared by the server's threads through a pool of handles."""

    def __init__(self, path: str, pool_size: int = POOL_SIZE) -> None:
        import chdb

        self._pool: queue.Queue[_Handle] = queue.Queue()
        for _ in range(pool_size):
            self._pool.put(_Handle(chdb.connect(path)))

    def run(
        self, sql: str, fmt: str, params: dict[str, str], database: str | None, settings: dict[str, str]
    ) -> tuple[bytes, dict[str, str]]:
        handle = self._pool.get()
        try:
            if database and database != handle.database:
                if not _IDENT.match(database):
                    raise ValueError(f"Code: 81. DB::Exception: Database {database!r} does not exist")
                handle.conn.query(f"USE `{database}`", "TabSeparated")
                handle.database = database
            for key in _SETTINGS_APPLIED:
                value = settings.get(key)
                if value is not None and handle.settings.get(key) != value:
                    handle.conn.query(f"SET {key} = {int(value)}", "TabSeparated")
                    handle.settings[key] = value
            result = handle.conn.query(sql, fmt, params=params)
            body = result.bytes() or b""
            summary = {
                "read_rows": str(result.rows_read()),
                "read_bytes": str(result.bytes_read()),
                "written_rows": "0",
                "written_bytes": "0",
                "total_rows_to_read": str(result.rows_read()),
                "result_rows": "0",
                "result_bytes": str(len(body)),
                "elapsed_ns": str(int(result.elapsed() * 1e9)),
            }
            return body, summary
        finally:
            self._pool.put(handle)


class Handler(BaseHTTPRequestHandler):
    server_version = "ch_http"
    protocol_version = "HTTP/1.1"  # keep-alive, as clickhouse-connect's connection pool expects
    engine: Engine  # set on the subclass made by serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the bench's stderr is for progress

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length) if length else b"")

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, body: bytes) -> None:
        url = urlsplit(self.path)
        if url.path == "/ping":
            self._reply(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
            return
        if url.path not in ("/", ""):
            self._reply(404, b"Not found\n", {"Content-Type": "text/plain; charset=UTF-8"})
            return
        args = dict(parse_qsl(url.query, keep_blank_values=True))
        params = {k[6:]: v for k, v in args.items() if k.startswith("param_")}
        sql = args.get("query", "")
        if body:
            sql = f"{sql} {body.decode()}" if sql else body.decode()
        query_id = args.get("query_id") or str(uuid.uuid4())
        found = _TRAILING_FORMAT.search(sql)
        fmt = found.group(1) if found else args.get("default_format") or "TabSeparated"
        headers = {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": "UTC"}
        try:
            data, summary = self.engine.run(sql, fmt, params, args.get("database"), args)
        except Exception as exc:  # the engine's error, as ClickHouse's HTTP interface reports it
            text = str(exc)
            code = _CODE.search(text)
            headers |= {
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": code.group(1) if code else "1001",
            }
            self._reply(500, (text.rstrip() + "\n").encode(), headers)
            return
        headers |= {
            "Content-Type": "application/octet-stream" if fmt == "Native" else "text/plain; charset=UTF-8",
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Summary": json.dumps(summary),
        }
        self._reply(200, data, headers)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client went away (a bot stopped with connections in its pool): nothing to say
        super().handle_error(request, client_address)


def serve(path: str, port: int = 0) -> ThreadingHTTPServer:
    """A server on 127.0.0.1:port (0: any free port) for the engine at `path`; not yet serving."""
    handler = type("BoundHandler", (Handler,), {"engine": Engine(path)})
    return Server(("127.0.0.1", port), handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ch_http")
    parser.add_argument("path", help="chdb data directory")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--demo-schema", action="store_true", help="build lsready demo's schema first")
    args = parser.parse_args(argv)
    if args.demo_schema:
        import clickhouse_connect

        from runbooks.demo.schema import build_clickhouse

        client = clickhouse_connect.get_client(dsn=f"chdb://{args.path}")
        build_clickhouse(client)
        client.close()
    server = serve(args.path, args.port)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


class ChHttp:
    """`python -m bench.ch_http` as a subprocess: its URL for lsready, its pid, stop() to end it."""

    def __init__(self, path: Path, demo_schema: bool = False, start_timeout: float = 120) -> None:
        args = [sys.executable, "-m", "bench.ch_http", str(path), *(["--demo-schema"] if demo_schema else [])]
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(args, cwd=root, stdout=subprocess.PIPE, text=True)
        ready: queue.Queue[str] = queue.Queue()
        # Read the ready line on a thread so a shim that hangs before printing it cannot hang us.
        threading.Thread(target=lambda: ready.put(self.proc.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
        try:
            line = ready.get(timeout=start_timeout)
        except queue.Empty:
            line = ""
        found = re.search(r"listening on ([\d.]+):(\d+)", line)
        if not found:
            self.stop()
            raise RuntimeError(f"bench.ch_http did not start (exit code {self.proc.returncode})")
        self.port = int(found.group(2))
        self.url = f"http://127.0.0.1:{self.port}/default"
        self.pid = self.proc.pid

    def stop(self) -> None:
        from runbooks.demo.processes import stop_process  # not at the top: the shim process needs none of it

        stop_process(self.proc, 10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
