"""The running service's control endpoint: a Unix socket only the machine's user can use.

The service serves it with aiohttp on its own event loop; the command line talks to it with
httpx. A call is one POST whose response streams newline-delimited JSON events: progress
events while the operation runs, then one ``result`` or ``error``. The socket file is mode
0600 and every connection's peer credentials are checked against the service's own user,
so neither another user nor another host can reach it. A socket left by a killed service
refuses connections; the next service replaces it, and the CLI works on the store itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import struct
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bot.core.models import NewsbotError
from bot.threads import call_soon

log = logging.getLogger(__name__)

Event = dict[str, Any]
Emit = Callable[[Event], None]
# (operation, arguments, emit) -> result; raises NewsbotError for a user-facing refusal.
Handler = Callable[[str, dict[str, Any], Emit], Awaitable[dict[str, Any]]]

SOCKET_NAME = "newsbot.sock"
_MAX_UNIX_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


class ServiceRunning(NewsbotError):
    """Another service already answers on the control socket of this data dir."""


class ServiceError(RuntimeError):
    """The service refused or failed an operation; ``user`` marks a refusal to show as is."""

    def __init__(self, message: str, *, user: bool) -> None:
        super().__init__(message)
        self.user = user


class ServiceGone(ServiceError):
    """The service went away (stopped, killed, crashed) after it took the call and before
    it answered: the operation may have run in part."""

    def __init__(self) -> None:
        super().__init__("the service stopped before it answered", user=True)


class ServiceUnreachable(ServiceError):
    """The service stopped between being found and being called: the call never reached it."""

    def __init__(self) -> None:
        super().__init__("the service stopped before the call reached it", user=True)


def socket_path(data_dir: Path) -> Path:
    """The control socket of a data dir: inside it, or (for a long path that a Unix socket
    cannot name) in a private runtime folder, under a name derived from the data dir."""
    path = Path(data_dir).resolve() / SOCKET_NAME
    if len(str(path).encode()) <= _MAX_UNIX_PATH:
        return path
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    folder = base / f"newsbot-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
        raise ServiceError(f"{folder} is not private to this user; remove it and retry",
                           user=True)
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return folder / f"{digest}.sock"


def _answers(path: Path, timeout: float = 2.0) -> bool:
    """Whether something accepts connections on the socket at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _peer_uid(transport: asyncio.BaseTransport | None) -> int | None:
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


class ControlServer:
    """Serves operations on the control socket."""

    def __init__(self, path: Path, handler: Handler, info: Callable[[], dict[str, Any]]) -> None:
        self.path = Path(path)
        self.handler = handler
        self.info = info
        self._runner: Any = None

    async def start(self) -> None:
        from aiohttp import web

        if self.path.exists() or self.path.is_symlink():
            if _answers(self.path):
                raise ServiceRunning(f"a newsbot service already answers on {self.path}")
            log.info("replacing a stale control socket left by a stopped service")
            self.path.unlink()
        @web.middleware
        async def same_user(request: Any, handler: Any) -> Any:
            return await self._same_user(request, handler)

        app = web.Application(middlewares=[same_user], client_max_size=1 << 20)
        app.router.add_get("/v1/ping", self._ping)
        app.router.add_post("/v1/call", self._call)
        # A stop does not wait for calls in progress: their jobs stop or are abandoned
        # on their own, and aiohttp's default would hold the shutdown for a minute.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        # The socket is created by bind(): a umask keeps it private from the first moment.
        old = os.umask(0o177)
        try:
            await web.UnixSite(self._runner, str(self.path)).start()
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _same_user(self, request: Any, handler: Any) -> Any:
        from aiohttp import web

        uid = _peer_uid(request.transport)
        if uid is not None and uid != os.getuid():
            log.warning("refused a control connection from uid %s", uid)
            raise web.HTTPForbidden(text="only the service's own user may control it")
        return await handler(request)

    async def _ping(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response(self.info())

    async def _call(self, request: Any) -> Any:
        from aiohttp import web

        try:
            body = await request.json()
            op, args = str(body["op"]), dict(body.get("args") or {})
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest(text="expected JSON {op, args}") from None
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()

        def emit(event: Event) -> None:  # called from worker threads
            call_soon(loop, events.put_nowait, event)

        task = asyncio.ensure_future(self.handler(op, args, emit))
        try:
            while not task.done() or not events.empty():
                getter = asyncio.ensure_future(events.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    await response.write(_line({"progress": getter.result()}))
                else:
                    getter.cancel()
            try:
                final: Event = {"result": task.result()}
            except NewsbotError as exc:
                final = {"error": str(exc), "user": True}
            except Exception as exc:
                log.exception("control operation %s failed", op)
                final = {"error": f"{type(exc).__name__}: {exc}", "user": False}
            await response.write(_line(final))
        except (ConnectionResetError, asyncio.CancelledError):
            # The client went away (Ctrl-C): the operation carries on to its end.
            log.info("the client of %s disconnected; the operation continues", op)
        return response


def _line(event: Event) -> bytes:
    return (json.dumps(event, ensure_ascii=False) + "\n").encode()


class ControlClient:
    """The command line's side: calls operations of a running service."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def find(cls, data_dir: Path) -> ControlClient | None:
        """A client of the service running on ``data_dir``, or None (none, or a stale
        socket of a killed one)."""
        try:
            path = socket_path(data_dir)
        except (ServiceError, OSError):
            return None
        if not path.exists() or not _answers(path):
            return None
        return cls(path)

    def _client(self, read_timeout: float | None) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.path)),
                            base_url="http://newsbot",
                            timeout=httpx.Timeout(5.0, read=read_timeout))

    def call(self, op: str, args: dict[str, Any],
             on_progress: Callable[[Event], None] | None = None) -> dict[str, Any]:
        """Run ``op`` in the service; progress events go to ``on_progress``."""
        # No read timeout: a reindex streams progress, but an ask may think for a while.
        with self._client(None) as client:
            try:
                with client.stream("POST", "/v1/call",
                                   json={"op": op, "args": args}) as response:
                    return self._read(response, on_progress)
            except httpx.ConnectError:
                raise ServiceUnreachable() from None
            except httpx.TransportError:
                raise ServiceGone() from None

    @staticmethod
    def _read(response: httpx.Response,
              on_progress: Callable[[Event], None] | None) -> dict[str, Any]:
        if response.status_code != 200:
            response.read()
            raise ServiceError(f"the service refused the call: HTTP "
                               f"{response.status_code} {response.text.strip()}", user=False)
        for line in response.iter_lines():
            if not line.strip():
                continue
            event = json.loads(line)
            if "progress" in event:
                if on_progress:
                    on_progress(event["progress"])
            elif "result" in event:
                return dict(event["result"])
            elif "error" in event:
                raise ServiceError(event["error"], user=bool(event.get("user")))
        raise ServiceGone()  # the stream ended cleanly but without an answer
