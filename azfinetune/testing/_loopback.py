"""A fake service served on 127.0.0.1 from a background thread: the base of the fakes whose real clients cannot be
intercepted by `responses` (openai's httpx, the kubernetes client's urllib3 pool), so they get a real HTTP server.

A subclass gives `_handler()` (its BaseHTTPRequestHandler class) and may extend `start`/`stop`. The server listens
on a free port, serves keep-alive connections in daemon threads, never outlives the test (it stops itself after
`lifetime_s`), and under pytest-socket says which mark the test needs."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TypeVar

__all__ = ["LoopbackService"]

_S = TypeVar("_S", bound="LoopbackService")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up stop()
    allow_reuse_address = True


class LoopbackService:
    """Start/stop, the context manager and the URL of a fake served on http://127.0.0.1:<port>."""

    #: The fake's name in messages and in its server thread's name.
    service_name = "fake service"

    def __init__(self, *, lifetime_s: float = 600.0) -> None:
        self.lifetime_s = lifetime_s
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

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
