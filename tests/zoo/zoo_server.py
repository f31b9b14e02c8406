"""A local HTTP server for the zoo tests: files from the shared data folder, with the faults downloads meet.

``ModelServer`` serves ``files`` (URL path → bytes) on 127.0.0.1 at a random port, in a thread. It supports
``Range`` (206 / 416) and ``If-Range`` with an ETag like a release host, and can be told, per path, to:

* ``drop_after[path] = n``: send the full ``Content-Length`` but close the connection after ``n`` body bytes,
  once (the next request is served normally);
* ``no_range = True``: ignore ``Range`` and always answer 200 with the whole file;
* ``corrupt.add(path)``: serve the file with one byte flipped;
* ``delay``: wait before answering (concurrency tests).

Every request is recorded in ``requests`` as ``(path, Range header, status)``.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ModelServer:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.requests: list[tuple[str, str | None, int]] = []
        self.drop_after: dict[str, int] = {}
        self.no_range = False
        self.corrupt: set[str] = set()
        self.delay = 0.0
        self.on_drop: Any = None  # called with the path after a dropped response (to change the file, say)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def hits(self, path: str) -> list[tuple[str, str | None, int]]:
        return [r for r in self.requests if r[0] == "/" + path.lstrip("/")]

    def __enter__(self) -> ModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def body(self, path: str) -> bytes | None:
        data = self.files.get(path.lstrip("/"))
        if data is None:
            return None
        if path.lstrip("/") in self.corrupt:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        return data


def _handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def do_GET(self) -> None:
            if server.delay:
                time.sleep(server.delay)
            path = self.path.split("?")[0]
            data = server.body(path)
            range_header = self.headers.get("Range")
            if data is None:
                self._record(path, range_header, 404)
                self.send_error(404, "Not Found")
                return
            etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
            if_range = self.headers.get("If-Range")
            if match and not server.no_range and (if_range is None or if_range == etag):
                start = int(match.group(1))
                if start >= len(data):
                    self._record(path, range_header, 416)
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            status = 206 if start else 200
            self._record(path, range_header, status)
            body = data[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            with server._lock:
                drop = server.drop_after.pop(path.lstrip("/"), None)
            if drop is not None:
                self.wfile.write(body[:drop])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                if server.on_drop is not None:
                    server.on_drop(path.lstrip("/"))
                return
            self.wfile.write(body)

        def _record(self, path: str, range_header: str | None, status: int) -> None:
            with server._lock:
                server.requests.append((path, range_header, status))

    return Handler


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def isolate(monkeypatch: Any, tmp_path: Any) -> Any:
    """Point the zoo at an empty cache under *tmp_path* and clear every zoo environment variable."""
    for name in ("TRTAPPS_MODEL_PATH", "TRTAPPS_OFFLINE", "TRTAPPS_ZOO_MIRROR", "TRTAPPS_TRUST_UNVERIFIED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRTAPPS_CACHE", str(tmp_path / "cache"))
    for name in ("no_proxy", "NO_PROXY"):  # a CI proxy must not route the local server's requests
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    return tmp_path / "cache" / "models"
