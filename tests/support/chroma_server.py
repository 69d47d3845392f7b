"""Runs the real Chroma server (`chroma run`) as a subprocess for tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.config import Settings


class _PortTaken(RuntimeError):
    """The chosen port was grabbed by another process before the server bound it."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chroma_executable() -> Path:
    """The `chroma` CLI installed next to the running interpreter."""
    return Path(sys.executable).parent / "chroma"


class ChromaServer:
    """A `chroma run` process on 127.0.0.1 with its data in `path` (a temp dir by default).

    Use as a context manager or call `start()` / `stop()`. `start()` returns once an
    `HttpClient` heartbeat succeeds and raises `RuntimeError` with the server log otherwise.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.host = "127.0.0.1"
        self._auto_port = port is None
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self._owns_path = path is None
        self.path = Path(tempfile.mkdtemp(prefix="chroma-test-")) if path is None else path
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path = self.path.parent / f"{self.path.name}-chroma-server.log"
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """HTTP base URL of the server."""
        return f"http://{self.host}:{self.port}"

    def client(self) -> ClientAPI:
        """A fresh `chromadb.HttpClient` for this server (telemetry off)."""
        return chromadb.HttpClient(
            host=self.host, port=self.port, settings=Settings(anonymized_telemetry=False)
        )

    def log_text(self) -> str:
        """Everything the server wrote to stdout/stderr so far."""
        try:
            return self._log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> ChromaServer:
        """Launch the server and wait until it answers a heartbeat."""
        if self._proc is not None:
            return self
        exe = chroma_executable()
        if not exe.exists():
            raise RuntimeError(f"chroma CLI not found at {exe}")
        for _ in range(3):
            try:
                return self._start_once(exe)
            except _PortTaken:
                if not self._auto_port:
                    raise
                self.port = free_port()
        return self._start_once(exe)

    def _start_once(self, exe: Path) -> ChromaServer:
        self.path.mkdir(parents=True, exist_ok=True)
        self._log = self._log_path.open("wb")
        cmd = [str(exe), "run", "--path", str(self.path)]
        cmd += ["--host", self.host, "--port", str(self.port)]
        started = time.monotonic()
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = started + self.startup_timeout
        last_error: Exception | None = None
        with httpx.Client(timeout=1.0, trust_env=False) as probe:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    code = self._proc.returncode
                    output = self.log_text()
                    self._cleanup()
                    error = _PortTaken if "is not available" in output else RuntimeError
                    raise error(
                        f"chroma server exited with code {code} before answering.\n"
                        f"command: {' '.join(cmd)}\n--- server output ---\n{output}"
                    )
                try:
                    # A bounded raw probe first: the client itself has no connect/read timeout.
                    probe.get(f"{self.url}/api/v2/heartbeat").raise_for_status()
                    self.client().heartbeat()
                except Exception as exc:  # not up yet
                    last_error = exc
                    time.sleep(0.05)
                    continue
                self.startup_seconds = time.monotonic() - started
                return self
        output = self.log_text()
        self.stop()
        raise RuntimeError(
            f"chroma server did not answer a heartbeat within {self.startup_timeout:.0f}s "
            f"(last error: {last_error!r}).\ncommand: {' '.join(cmd)}\n"
            f"--- server output ---\n{output}"
        )

    def stop(self) -> None:
        """Terminate the server (kill if it does not exit) and remove owned data."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._cleanup()

    def _cleanup(self) -> None:
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._owns_path:
            shutil.rmtree(self.path, ignore_errors=True)
            self._log_path.unlink(missing_ok=True)

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
