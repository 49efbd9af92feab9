"""The HTTP plumbing the BPJS/E-Klaim/SATUSEHAT simulators share: a threaded server on 127.0.0.1
(port 0) that can be stopped and started on the same port, and faults queued per request."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    outcome: str = ""


@dataclass
class SimServer:
    """Subclasses implement `handle(seen) -> Reply`. Faults: `fail_next(kind, n)` with kind
    'rate_limit' (429 + Retry-After), 'server_error' (503), 'malformed' (200, a body that is not
    the protocol's), 'drop' (close without answering); `delay(seconds)` holds every answer back."""

    port: int = 0
    requests: list[Seen] = field(default_factory=list)
    _faults: list[str] = field(default_factory=list)
    _delay: float = 0.0
    _server: ThreadingHTTPServer | None = None
    _open: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, seen: Seen) -> Reply:
        raise NotImplementedError

    def malformed(self) -> Reply:
        return 200, {"Content-Type": "text/html"}, b"<html><body>Gateway error</body></html>"

    def fail_next(self, kind: str, count: int = 1) -> None:
        with self._lock:
            self._faults.extend([kind] * count)

    def delay(self, seconds: float) -> None:
        self._delay = seconds

    def _answer(self, seen: Seen) -> Reply | None:
        with self._lock:
            self.requests.append(seen)
            fault = self._faults.pop(0) if self._faults else ""
        seen.outcome = fault or "served"
        if fault == "rate_limit":
            return 429, {"Retry-After": "1", "Content-Type": "application/json"}, b'{"message":"Too Many Requests"}'
        if fault == "server_error":
            return 503, {"Content-Type": "text/plain"}, b"Service Unavailable"
        if fault == "malformed":
            return self.malformed()
        if fault == "drop":
            return None
        return self.handle(seen)

    def start(self) -> None:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
                reply = sim._answer(seen)
                if sim._delay:
                    time.sleep(sim._delay)
                if reply is None:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, headers, payload = reply
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def process_request(self, request: Any, client_address: Any) -> None:
                with sim._lock:
                    sim._open.append(request)
                super().process_request(request, client_address)

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:       # a stopped peer also drops its kept-alive connections
            open_sockets, self._open = self._open, []
        for sock in open_sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "SimServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


JsonHandler = Callable[[Seen], Reply]
