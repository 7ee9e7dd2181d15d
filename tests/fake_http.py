"""What the fake REST servers in ``tests/`` share: serving a handler on a free 127.0.0.1 port in a thread, and
shutting it down again."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps test output clean and sends GET, POST and DELETE to one ``_handle(method)``
    (a subclass defines it; a fake that answers only some methods overrides ``do_<METHOD>`` instead)."""

    def log_message(self, *args: object) -> None:
        pass

    def _handle(self, method: str) -> None:
        self.send_error(405)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class LocalHTTPServer:
    """A fake API: subclasses build their request handler class and pass it to :meth:`serve`."""

    _server: ThreadingHTTPServer | None = None

    def serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"
