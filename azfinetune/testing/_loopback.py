"""A fake service served on 127.0.0.1 from a background thread: the base of the fakes whose real clients cannot be
intercepted by `responses` (openai's httpx, the kubernetes client's urllib3 pool), so they get a real HTTP server.

A subclass gives `handle(request)` — the answer (status, headers, body) or None to close the connection without one
(a lost response) — and `request_type` (a LoopbackRequest subclass), and may extend `start`/`stop`. The server
listens on a free port, serves keep-alive connections in daemon threads, never outlives the test (it stops itself
after `lifetime_s`), and under pytest-socket says which mark the test needs."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlsplit

__all__ = ["Answer", "LoopbackRequest", "LoopbackService"]

#: What a fake answers a request with: (status, headers, body); None closes the connection without an answer.
Answer = tuple[int, Mapping[str, str], bytes]


@dataclass
class LoopbackRequest:
    """One request the fake saw, and what it answered (`status` None: the connection was closed instead)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    fault: str | None = None

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def __repr__(self) -> str:
        return f"<{self.method} {self.path} -> {self.status} {self.fault or ''}>"


_S = TypeVar("_S", bound="LoopbackService")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up stop()
    allow_reuse_address = True


class LoopbackService:
    """Start/stop, the context manager and the URL of a fake served on http://127.0.0.1:<port>."""

    #: The fake's name in messages and in its server thread's name.
    service_name = "fake service"
    #: The request record the fake's `handle` takes.
    request_type: ClassVar[type[LoopbackRequest]] = LoopbackRequest
    #: Headers added to every answer (the service's own, e.g. Azure's x-ms-region).
    answer_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(self, *, lifetime_s: float = 600.0) -> None:
        self.lifetime_s = lifetime_s
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    def handle(self, request: Any) -> Answer | None:
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the clients expect
            timeout = 10  # an idle keep-alive connection ends on its own

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms per request.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = fake.request_type(
                    method=self.command,
                    path=parts.path,
                    query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                answer = fake.handle(request)
                if answer is None:
                    self.close_connection = True
                    return
                status, headers, data = answer
                self.send_response(status)
                for key, value in {**headers, **fake.answer_headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:  # the request log is `fake.requests`
                return None

        return Handler

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Listen on a free loopback port and serve from a background thread."""
        if self._server is not None:
            raise RuntimeError(f"{self.service_name} is already running")
        try:
            server = _Server(("127.0.0.1", 0), self._handler())
        except RuntimeError as error:  # pytest-socket's SocketBlockedError
            raise RuntimeError(
                f"{self.service_name} serves on 127.0.0.1 and sockets are disabled: mark the test "
                "@pytest.mark.allow_hosts(['127.0.0.1'])"
            ) from error
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.service_name, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        """Stop serving and close the port (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        self._timer = None

    @property
    def active(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port> while running."""
        if self._server is None:
            raise RuntimeError(
                f"{self.service_name} is not running: use it as a context manager or call start()"
            )
        return f"http://127.0.0.1:{self._server.server_port}"
