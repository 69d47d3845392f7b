"""A small HTTP server on 127.0.0.1 for tests that fetch web pages and feeds.

Routes map a path (with its query string, if any) to a canned response; anything else is a
404. Every request is recorded so tests can check what was asked for and with which headers,
and the bytes written for each path are counted so a test can tell how much a client read.

    with StaticServer() as server:
        server.add("/feed.xml", feed_bytes, content_type="application/rss+xml")
        load(server.url("/feed.xml"))

A route can also answer conditional requests (``etag``, ``last_modified``), send its body in
chunked encoding, produce a body lazily (``chunks``) with any declared length, and trickle
its response a byte at a time (``trickle_s``, headers too with ``trickle_head``), the way a
slow or hostile server would.
"""

from __future__ import annotations

import contextlib
import ssl
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Route:
    """A canned response."""

    body: bytes = b""
    status: int = 200
    content_type: str | None = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    """Sent on every response; a request whose If-None-Match carries it gets a 304."""
    last_modified: str | None = None
    """Sent on every response; a request whose If-Modified-Since equals it gets a 304."""
    chunked: bool = False
    """Send the body with Transfer-Encoding: chunked and no Content-Length."""
    chunks: Callable[[], Iterable[bytes]] | None = None
    """Produces the body lazily, in place of ``body`` (for responses too big to hold)."""
    length: int | None = None
    """The Content-Length to declare, when it is not the length of ``body``."""
    trickle_s: float | None = None
    """Send the body one byte at a time, this many seconds apart."""
    trickle_head: bool = False
    """Trickle the status line and headers as well."""


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that reset its connection (after giving up, or while the server waited
        for its next request) is no error worth a trace on the tests' stderr."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class StaticServer:
    """Serves registered routes from a background thread on a free local port; over TLS
    with ``tls``, a server-side context holding the certificate to present."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[RecordedRequest] = []
        self.sent: dict[str, int] = {}
        """Bytes written per path (head and body), over all requests."""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self._scheme = "https" if tls is not None else "http"
        # A short poll interval keeps shutdown (once per test) from adding half a second.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True, name="static-http-server")

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    def url(self, path: str) -> str:
        """Absolute URL of a path on this server."""
        return self.base_url + path

    def add(self, path: str, body: bytes | str = b"", *, status: int = 200,
            content_type: str | None = "text/html; charset=utf-8",
            headers: dict[str, str] | None = None, **options: object) -> str:
        """Serve ``body`` at ``path``; ``options`` are the other :class:`Route` fields.

        Returns the absolute URL.
        """
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = Route(data, status, content_type, dict(headers or {}),
                                  **options)  # type: ignore[arg-type]
        return self.url(path)

    def redirect(self, path: str, target: str, *, status: int = 301) -> str:
        """Answer ``path`` with a redirect to ``target`` (a path or an absolute URL)."""
        return self.add(path, status=status, content_type=None, headers={"Location": target})

    def paths(self) -> list[str]:
        """The paths requested so far, in order."""
        with self._lock:
            return [r.path for r in self.requests]

    def start(self) -> StaticServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # trickling responses give up
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StaticServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server._lock:
                    server.requests.append(RecordedRequest("GET", self.path, headers))
                route = server.routes.get(self.path) or Route(b"not found", 404, "text/plain")
                # The client may stop reading early (a size limit, a deadline): its choice.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._respond(route, headers)

            def _respond(self, route: Route, request: dict[str, str]) -> None:
                status = route.status
                unchanged = ((route.etag is not None
                              and request.get("if-none-match") in (route.etag, "*"))
                             or (route.last_modified is not None
                                 and request.get("if-modified-since") == route.last_modified))
                if unchanged:
                    status = 304
                head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
                if route.content_type and status != 304:
                    head.append(f"Content-Type: {route.content_type}")
                head += [f"{k}: {v}" for k, v in route.headers.items()]
                if route.etag is not None:
                    head.append(f"ETag: {route.etag}")
                if route.last_modified is not None:
                    head.append(f"Last-Modified: {route.last_modified}")
                if status == 304:
                    head.append("Content-Length: 0")
                elif route.chunked:
                    head.append("Transfer-Encoding: chunked")
                else:
                    size = route.length if route.length is not None else len(route.body)
                    head.append(f"Content-Length: {size}")
                self._write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"),
                            route.trickle_s if route.trickle_head else None)
                if status == 304:
                    return
                for chunk in route.chunks() if route.chunks is not None else [route.body]:
                    if not chunk:
                        continue
                    if route.chunked:
                        chunk = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
                    self._write(chunk, route.trickle_s)
                if route.chunked:
                    self._write(b"0\r\n\r\n", None)

            def _write(self, data: bytes, trickle_s: float | None) -> None:
                if trickle_s is None:
                    self.wfile.write(data)
                    self._count(len(data))
                    return
                for i in range(len(data)):
                    if server._stopping.wait(trickle_s):
                        raise BrokenPipeError("server stopping")
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    self._count(1)

            def _count(self, n: int) -> None:
                with server._lock:
                    server.sent[self.path] = server.sent.get(self.path, 0) + n

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        return Handler
