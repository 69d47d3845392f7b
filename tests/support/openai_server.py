"""A small OpenAI-compatible HTTP server for tests.

It speaks the wire format of the real API closely enough for the `openai` client and
`langchain_openai` to run unmodified against it: chat completions (plain JSON and SSE
streaming), embeddings (float or base64) and the model list. Chat replies come from a FIFO
queue filled by the test; every request is recorded.

It also plays the ways real servers misbehave: one that reads only ``max_tokens`` (as
llama.cpp's does) or refuses both cap fields at once (as OpenAI does), replies that echo the
prompt, never stop, hang, drop the connection or end the body halfway, trickle out, or are
refused with 429 and Retry-After; and it records how each stream ended (finished, or the
client left).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

import numpy as np

_SLEEP_STEP = 0.02
_WORD = re.compile(r"\w+")
_PIECE = re.compile(r"\S+\s*")  # one "token" of a reply, for length caps

# Which request fields the server reads as the length cap: "either" (max_completion_tokens,
# else max_tokens), "max_tokens" (llama.cpp: max_completion_tokens is ignored), "openai"
# (either one alone, but a 400 when both are sent), "none" (no cap at all).
CapMode = Literal["either", "max_tokens", "openai", "none"]


@dataclass(frozen=True)
class QueuedReply:
    """One scripted answer to a chat completion (or embeddings) request."""

    text: str
    delay: float = 0.0
    status: int = 200
    stream_chunk_size: int = 8
    chunk_delay: float = 0.0
    retry_after: float | None = None
    finish_reason: str = "stop"
    retry_after_header: str = "retry-after-ms"
    echo: bool = False  # reply with the prompt's own text
    forever: bool = False  # repeat the text without end (until the cap or the client leaves)
    hang_after: int | None = None  # stream this many characters, then send nothing more
    drop_after: int | None = None  # stream this many characters, then drop the connection
    # Stream this many characters, then end the response cleanly with no finish reason and no
    # [DONE] (a proxy or a crashed worker closing the body).
    end_after: int | None = None
    # Sent as the whole body of a 200 reply instead of a completion (malformed JSON, a proxy's
    # HTML page), with ``raw_type`` as its Content-Type.
    raw: str | None = None
    raw_type: str = "text/event-stream"


@dataclass(frozen=True)
class StreamRecord:
    """How one streamed reply ended."""

    chars_sent: int
    completed: bool  # the last chunk and [DONE] were sent
    client_left: bool  # the client closed the connection first
    capped: bool  # the length cap ended it


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None


@dataclass
class _State:
    replies: deque[QueuedReply] = field(default_factory=deque)
    embedding_failures: deque[QueuedReply] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _ClientGone(Exception):
    """The client closed the connection (e.g. after its own timeout)."""


class _Stopping(Exception):
    """The server is shutting down."""


class _Dropped(Exception):
    """The reply was scripted to drop the connection."""


class _Ended(Exception):
    """The reply was scripted to end its body early, without a finish reason."""


def _count_tokens(text: str) -> int:
    """Rough token count: one per word."""
    return len(_WORD.findall(text))


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _cap(body: dict[str, Any], mode: CapMode) -> int | None:
    """The length cap the server honours for this request, in reply pieces."""
    fields = {"either": ("max_completion_tokens", "max_tokens"), "openai":
              ("max_completion_tokens", "max_tokens"), "max_tokens": ("max_tokens",),
              "none": ()}[mode]
    for name in fields:
        value = body.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return None


@lru_cache(maxsize=65536)
def _token_vector(token: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(token.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim)


def fake_embedding(text: str, dim: int) -> list[float]:
    """Deterministic unit vector for `text`: a hashed bag of words.

    Identical texts get identical vectors and texts sharing words are close, so
    similarity search over these vectors ranks sensibly.
    """
    words = [w.lower() for w in _WORD.findall(text)]
    vec = np.zeros(dim)
    for word in words:
        vec += _token_vector(word, dim)
    if not words:
        vec = _token_vector("\x00" + text, dim).copy()
    norm = float(np.linalg.norm(vec))
    return (vec / norm).tolist() if norm else vec.tolist()


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, owner: FakeOpenAIServer) -> None:
        self.owner = owner
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that reset its connection (after giving up) is no error worth a trace."""
        if isinstance(sys.exc_info()[1], ConnectionError | _ClientGone | _Stopping | _Dropped):
            return
        super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections."""
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def owner(self) -> FakeOpenAIServer:
        return self.server.owner

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw.decode("utf-8", "replace")

    def _record(self, body: Any) -> None:
        rec = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        with self.owner._state.lock:
            self.owner._state.requests.append(rec)

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError as exc:  # broken pipe / reset: the client went away
            raise _ClientGone from exc

    def _sleep(self, seconds: float) -> None:
        """Sleep in small steps so a stopping server is never held up."""
        deadline = time.monotonic() + seconds
        while True:
            if self.owner._stop.is_set():
                raise _Stopping
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(_SLEEP_STEP, remaining))

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex}")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self._write(data)

    def _send_error(
        self,
        status: int,
        message: str,
        *,
        retry_after: float | None = None,
        should_retry: bool | None = None,
        retry_after_header: str = "retry-after-ms",
        code_override: str | None = None,
    ) -> None:
        kind, code = {
            400: ("invalid_request_error", None),
            401: ("invalid_request_error", "invalid_api_key"),
            404: ("invalid_request_error", "not_found"),
            429: ("requests", "rate_limit_exceeded"),
        }.get(status, ("server_error", None))
        code = code_override or code
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers[retry_after_header] = (str(int(retry_after * 1000))
                                           if retry_after_header == "retry-after-ms"
                                           else f"{retry_after:g}")
        if should_retry is not None:
            headers["x-should-retry"] = "true" if should_retry else "false"
        payload = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        self._send_json(status, payload, headers)

    def _guarded(self, fn: Any) -> None:
        try:
            fn()
        except (_ClientGone, _Stopping, _Dropped, OSError):
            self.close_connection = True

    # -- routing ----------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._guarded(self._route_get)

    def do_POST(self) -> None:
        self._guarded(self._route_post)

    def _route_get(self) -> None:
        self._record(None)
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/v1/models":
            models = [self.owner.model, self.owner.embedding_model]
            data = [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "system"}
                for m in models
            ]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_error(404, f"Unknown path: GET {self.path}")

    def _route_post(self) -> None:
        body = self._read_json()
        self._record(body)
        path = self.path.split("?", 1)[0].rstrip("/")
        if not isinstance(body, dict):
            self._send_error(400, "Request body must be a JSON object.")
        elif path == "/v1/chat/completions":
            self._chat(body)
        elif path == "/v1/embeddings":
            self._embeddings(body)
        else:
            self._send_error(404, f"Unknown path: POST {self.path}")

    # -- chat completions -------------------------------------------------------------------

    def _next_reply(self, body: dict[str, Any]) -> QueuedReply | None:
        state = self.owner._state
        with state.lock:
            if state.replies:
                return state.replies.popleft()
        if self.owner.responder is not None:
            made = self.owner.responder(body)
            return QueuedReply(text=made) if isinstance(made, str) else made
        if self.owner.default_reply is None:
            return None
        return QueuedReply(text=self.owner.default_reply)

    def _chat(self, body: dict[str, Any]) -> None:
        reply = self._next_reply(body)
        if reply is None:
            self._send_error(
                500,
                "FakeOpenAIServer: no reply queued for this chat completion "
                "(call server.queue_reply(...) first).",
                should_retry=False,
            )
            return
        self._sleep(reply.delay)
        if reply.status != 200:
            self._send_error(
                reply.status,
                reply.text or f"Scripted error {reply.status}",
                retry_after=reply.retry_after,
                retry_after_header=reply.retry_after_header,
            )
            return
        if reply.raw is not None:
            data = reply.raw.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", reply.raw_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self._write(data)
            return
        cap_mode = self.owner.cap_mode
        if cap_mode == "openai" and "max_tokens" in body and "max_completion_tokens" in body:
            self._send_error(
                400,
                "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not "
                "supported.",
                code_override="invalid_parameter_combination",
            )
            return
        cap = _cap(body, cap_mode)
        if reply.echo:
            prompt = "\n\n".join(
                _message_text(m.get("content"))
                for m in body.get("messages") or []
                if isinstance(m, dict)
            )
            reply = replace(reply, text=prompt)
        if body.get("stream") and reply.forever:
            self._stream_forever(reply, body, cap)
            return
        if cap is not None:
            pieces = _PIECE.findall(reply.text)
            if len(pieces) > cap:
                reply = replace(reply, text="".join(pieces[:cap]), finish_reason="length")
        model = str(body.get("model") or self.owner.model)
        prompt_tokens = sum(
            _count_tokens(_message_text(m.get("content")))
            for m in body.get("messages") or []
            if isinstance(m, dict)
        )
        completion_tokens = _count_tokens(reply.text)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if body.get("stream"):
            stream_options = body.get("stream_options") or {}
            include_usage = bool(stream_options.get("include_usage"))
            self._stream_chat(
                reply, completion_id, created, model, usage if include_usage else None
            )
            return
        self._send_json(
            200,
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": reply.text,
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": reply.finish_reason,
                    }
                ],
                "usage": usage,
                "service_tier": "default",
            },
        )

    def _stream_chat(
        self,
        reply: QueuedReply,
        completion_id: str,
        created: int,
        model: str,
        usage: dict[str, Any] | None,
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex}")
        self.end_headers()

        def event(choices: list[dict[str, Any]], usage_value: Any = None) -> None:
            chunk: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": choices,
            }
            if usage is not None:
                chunk["usage"] = usage_value
            self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        sent = 0
        try:
            event([choice({"role": "assistant", "content": "", "refusal": None})])
            size = max(1, reply.stream_chunk_size)
            for start in range(0, len(reply.text), size):
                if start and reply.chunk_delay:
                    self._sleep(reply.chunk_delay)
                self._misbehave(reply, sent)
                piece = reply.text[start : start + size]
                event([choice({"content": piece})])
                sent += len(piece)
            self._misbehave(reply, sent)
            event([choice({}, reply.finish_reason)])
            if usage is not None:
                event([], usage)
            self._write_chunk(b"data: [DONE]\n\n")
            self._write(b"0\r\n\r\n")
        except _ClientGone:
            self._stream_ended(sent, completed=False, client_left=True)
            raise
        except (_Dropped, _Stopping):
            self._stream_ended(sent, completed=False, client_left=False)
            raise
        except _Ended:
            self._write(b"0\r\n\r\n")
            self._stream_ended(sent, completed=False, client_left=False)
            return
        self._stream_ended(sent, completed=True, client_left=False,
                           capped=reply.finish_reason == "length")

    def _misbehave(self, reply: QueuedReply, sent: int) -> None:
        """Hang, drop the connection or end the body once ``sent`` characters reached the
        scripted point."""
        if reply.end_after is not None and sent >= reply.end_after:
            raise _Ended
        if reply.drop_after is not None and sent >= reply.drop_after:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            raise _Dropped
        if reply.hang_after is not None and sent >= reply.hang_after:
            while True:  # until the client leaves or the server stops
                self._sleep(0.1)
                if self._client_left():
                    raise _ClientGone

    def _client_left(self) -> bool:
        """True when the peer closed its side (a readable socket with nothing to read)."""
        import select

        # poll, not select: a busy test process has descriptors past select's limit of 1024.
        poller = select.poll()
        poller.register(self.connection, select.POLLIN | select.POLLHUP)
        try:
            if not poller.poll(0):
                return False
            return not self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True

    def _stream_ended(self, sent: int, *, completed: bool, client_left: bool,
                      capped: bool = False) -> None:
        with self.owner._state.lock:
            self.owner._state.streams.append(StreamRecord(sent, completed, client_left, capped))

    def _stream_forever(self, reply: QueuedReply, body: dict[str, Any], cap: int | None) -> None:
        """Repeat the reply's text in deltas until the cap, the client leaving, or shutdown."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        model = str(body.get("model") or self.owner.model)
        pieces = _PIECE.findall(reply.text or "more ") or ["more "]

        def event(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {"id": completion_id, "object": "chat.completion.chunk",
                     "created": int(time.time()), "model": model,
                     "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                  "finish_reason": finish}]}
            self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())

        sent = tokens = 0
        try:
            event({"role": "assistant", "content": ""})
            while cap is None or tokens < cap:
                piece = pieces[tokens % len(pieces)]
                # A real server streams at a finite pace; an unpaced loop here would hold the
                # GIL against the client in this same process and delay its closing the stream.
                self._sleep(reply.chunk_delay or 0.001)
                event({"content": piece})
                sent += len(piece)
                tokens += 1
            event({}, "length")
            self._write_chunk(b"data: [DONE]\n\n")
            self._write(b"0\r\n\r\n")
        except _ClientGone:
            self._stream_ended(sent, completed=False, client_left=True)
            raise
        except _Stopping:
            self._stream_ended(sent, completed=False, client_left=False)
            raise
        self._stream_ended(sent, completed=True, client_left=False, capped=True)

    def _write_chunk(self, data: bytes) -> None:
        self._write(f"{len(data):X}\r\n".encode() + data + b"\r\n")

    # -- embeddings -------------------------------------------------------------------------

    def _embeddings(self, body: dict[str, Any]) -> None:
        self._sleep(self.owner.embedding_delay)
        state = self.owner._state
        with state.lock:
            failure = state.embedding_failures.popleft() if state.embedding_failures else None
        if failure is not None:
            self._sleep(failure.delay)
            if failure.status != 200:
                self._send_error(
                    failure.status,
                    failure.text or f"Scripted error {failure.status}",
                    retry_after=failure.retry_after,
                )
                return
        raw = body.get("input")
        if isinstance(raw, str):
            inputs: list[Any] = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            inputs = [raw]  # a single pre-tokenised input
        elif isinstance(raw, list) and raw:
            inputs = raw
        else:
            self._send_error(400, "'input' must be a non-empty string or array.")
            return
        dim = int(body.get("dimensions") or self.owner.embedding_dim)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        total_tokens = 0
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(f"t{t}" for t in item)
            total_tokens += max(1, _count_tokens(text))
            vector = fake_embedding(text, dim)
            embedding: Any = (
                base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
                if as_base64
                else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": str(body.get("model") or self.owner.embedding_model),
                "usage": {"prompt_tokens": total_tokens, "total_tokens": total_tokens},
            },
        )


class FakeOpenAIServer:
    """OpenAI-compatible server on 127.0.0.1 (free port), served from a background thread.

    Use as a context manager or call `start()` / `stop()`. Chat completion requests take
    replies from the FIFO queue (`queue_reply`); with the queue empty they get what
    `responder` makes of the request, else `default_reply`, or a non-retryable 500
    explaining that nothing was queued.
    """

    def __init__(
        self,
        *,
        default_reply: str | None = None,
        embedding_dim: int = 64,
        model: str = "fake-chat-model",
        embedding_model: str = "fake-embedding-model",
        cap_mode: CapMode = "either",
        responder: Callable[[dict[str, Any]], QueuedReply | str] | None = None,
    ) -> None:
        self.default_reply = default_reply
        # Makes the reply from the request when nothing is queued (a scripted model).
        self.responder = responder
        self.cap_mode: CapMode = cap_mode
        self.embedding_dim = embedding_dim
        self.embedding_delay = 0.0  # seconds added to every embeddings request
        self.model = model
        self.embedding_model = embedding_model
        self._state = _State()
        self._stop = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        """Bind a free port and begin serving."""
        if self._httpd is not None:
            return self
        self._stop.clear()
        self._httpd = _Server(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-openai-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; pending delays are cut short and all handler threads joined."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stop.set()
        httpd.shutdown()
        httpd.drop_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (server must be started)."""
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """Base URL for OpenAI clients, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting --------------------------------------------------------------------------

    def queue_reply(
        self,
        text: str,
        *,
        delay: float = 0,
        status: int = 200,
        stream_chunk_size: int = 8,
        chunk_delay: float = 0,
        retry_after: float | None = None,
        finish_reason: str = "stop",
        retry_after_header: str = "retry-after-ms",
        echo: bool = False,
        forever: bool = False,
        hang_after: int | None = None,
        drop_after: int | None = None,
        end_after: int | None = None,
        raw: str | None = None,
        raw_type: str = "text/event-stream",
    ) -> None:
        """Queue the answer to the next chat completion.

        `delay` is waited before any byte is sent. A non-200 `status` sends an OpenAI-style
        error whose message is `text`; `retry_after` (seconds) adds a `retry_after_header`
        header (``retry-after-ms``, or ``retry-after`` in seconds). Streamed replies are
        split into `stream_chunk_size`-character deltas with `chunk_delay` seconds between
        them. `echo` replies with the prompt; `forever` repeats `text` until the length cap
        (when the server honours one) or the client leaves; `hang_after` / `drop_after` /
        `end_after` stop sending, drop the connection, or end the response without a finish
        reason, after that many streamed characters. `raw` is sent as the whole body of a
        200 reply, as `raw_type`, in place of a completion.
        """
        reply = QueuedReply(
            text=text,
            delay=delay,
            status=status,
            stream_chunk_size=stream_chunk_size,
            chunk_delay=chunk_delay,
            retry_after=retry_after,
            finish_reason=finish_reason,
            retry_after_header=retry_after_header,
            echo=echo,
            forever=forever,
            hang_after=hang_after,
            drop_after=drop_after,
            end_after=end_after,
            raw=raw,
            raw_type=raw_type,
        )
        with self._state.lock:
            self._state.replies.append(reply)

    def queue_embedding_failure(
        self,
        status: int = 500,
        *,
        delay: float = 0,
        message: str = "",
        retry_after: float | None = None,
    ) -> None:
        """Make the next embeddings request fail with `status` (or only be delayed, if 200)."""
        failure = QueuedReply(text=message, delay=delay, status=status, retry_after=retry_after)
        with self._state.lock:
            self._state.embedding_failures.append(failure)

    @property
    def pending_replies(self) -> int:
        """How many queued chat replies have not been consumed yet."""
        with self._state.lock:
            return len(self._state.replies)

    # -- inspection -------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def streams(self) -> list[StreamRecord]:
        """How each streamed chat reply ended, oldest first."""
        with self._state.lock:
            return list(self._state.streams)

    def wait_for_streams(self, n: int, timeout: float = 5.0) -> list[StreamRecord]:
        """The stream records once at least `n` have ended (or after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while len(self.streams) < n and time.monotonic() < deadline:
            time.sleep(_SLEEP_STEP)
        return self.streams

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Recorded requests whose path (without query) ends with `path`."""
        return [r for r in self.requests if r.path.split("?", 1)[0].rstrip("/").endswith(path)]

    def last_messages(self) -> list[dict[str, Any]]:
        """The `messages` of the most recent chat completion request."""
        chats = self.requests_to("/chat/completions")
        if not chats:
            raise AssertionError("FakeOpenAIServer received no chat completion request")
        body = chats[-1].body
        return list(body.get("messages") or []) if isinstance(body, dict) else []
