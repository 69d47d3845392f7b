"""The one place an OpenAI-compatible chat client is built (OpenAI, Ollama, vLLM, llama.cpp).

Every request is bounded three ways: a length cap sent as both ``max_completion_tokens`` and
``max_tokens`` (llama.cpp's server reads only the older field, OpenAI refuses the pair, so
the fields adapt to the first refusal); a deadline shared by all attempts of one answer,
after which the stream is closed so the server can stop generating; and retries that are
made only while the deadline leaves room for them, honouring Retry-After.

The client runs on a private event loop in a background thread: an asyncio deadline cancels
a read that is blocked on a silent server, which a blocking client cannot do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.settings import Settings

log = logging.getLogger(__name__)

TokenFields = Literal["auto", "both", "max_tokens", "max_completion_tokens"]

# Attempts are not started with less time than this left: an answer cannot arrive sooner.
MIN_ATTEMPT_S = 0.5
# Backoff before a retry when the server does not say how long to wait.
BACKOFF_S = (0.5, 1.5, 3.0)
# How long a caller that gave up waits for the stream to be closed, so the connection is
# gone (and a local server told to stop) when the caller moves on.
CLOSE_WAIT_S = 0.5
# How long close() waits for the client's loop to finish its work and stop.
CLOSE_TIMEOUT_S = 5.0


class LLMError(RuntimeError):
    """The model did not answer in time or at all; the caller falls back.

    ``reason`` is a short phrase for notes and logs ("timed out", "HTTP 500", ...);
    ``partial`` is the text that had arrived before the failure; ``status`` the HTTP status
    the server answered with, if any; ``message`` what the server said about it.
    """

    def __init__(self, reason: str, *, partial: str = "", detail: str = "",
                 status: int | None = None, message: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.partial = partial
        self.status = status
        self.message = message


class Unfinished(Exception):
    """The reply's body ended without a finish reason: a proxy or a failing worker cut it."""


class StopStreaming(Exception):
    """Raised by an ``on_token`` callback that has all it wants: the stream is closed."""


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished reply and how it ended."""

    text: str
    # "stop" (the model ended), "length" (the token cap), "stopped" (the caller closed it).
    finish_reason: str | None
    chunks: int  # streamed deltas; servers send about one token per delta
    seconds: float
    first_token_s: float | None  # from the request to the first delta
    attempts: int = 1


class ChatModel(Protocol):
    """What the answer service needs from a language model."""

    name: str

    def generate(self, messages: Sequence[tuple[str, str]], *,
                 on_token: Callable[[str], None] | None = None,
                 deadline: float | None = None,
                 max_tokens: int | None = None) -> Completion:
        """Reply to ``(role, text)`` messages, streaming deltas to ``on_token``.

        ``deadline`` is a ``time.monotonic()`` instant; past it LLMError("timed out") is
        raised, carrying the text received so far.
        """
        ...

    def complete(self, messages: Sequence[tuple[str, str]], *,
                 on_token: Callable[[str], None] | None = None,
                 deadline: float | None = None) -> str:
        """The reply text alone (see ``generate``)."""
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...


class ChatModelBase:
    """``complete`` in terms of ``generate``."""

    name: str = "model"

    def generate(self, messages: Sequence[tuple[str, str]], *,
                 on_token: Callable[[str], None] | None = None,
                 deadline: float | None = None,
                 max_tokens: int | None = None) -> Completion:
        raise NotImplementedError

    def complete(self, messages: Sequence[tuple[str, str]], *,
                 on_token: Callable[[str], None] | None = None,
                 deadline: float | None = None) -> str:
        return self.generate(messages, on_token=on_token, deadline=deadline).text

    def close(self) -> None:
        """Release connections and threads (nothing by default)."""


def _status_reason(exc: Any) -> tuple[str, bool, float | None]:
    """(reason, retryable, seconds the server asked to wait) for an openai/httpx error."""
    import httpx
    import openai

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        wait = _retry_after(exc.response.headers)
        if status == 429:
            return "rate limited (HTTP 429)", True, wait
        if status in (401, 403):
            return f"the server refused the API key (HTTP {status})", False, None
        if status == 404:  # OpenAI, Ollama and vLLM say so of a model they do not serve
            return "the server does not know the model or its address (HTTP 404)", False, None
        if status in (501, 505):  # the server lacks the endpoint: asking again won't help
            return f"not implemented (HTTP {status})", False, None
        if status in (408, 409) or status >= 500:
            return f"server error (HTTP {status})", True, wait
        return f"refused (HTTP {status})", False, None
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
        return "timed out", True, None
    if isinstance(exc, Unfinished):
        return "ended the reply unfinished", True, None
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        return "unreachable or dropped the connection", True, None
    if isinstance(exc, json.JSONDecodeError | openai.APIResponseValidationError) or (
            isinstance(exc, ValueError) and "no generation chunks" in str(exc).lower()):
        # Malformed JSON, or no event stream at all (a proxy's HTML page): asking the same
        # server again gets the same.
        return "its reply could not be read", False, None
    if isinstance(exc, openai.APIError):  # an error event inside the stream
        return "server error (reported in its reply)", True, None
    return f"failed ({type(exc).__name__})", False, None


def _hint(status: int | None) -> str:
    """The setting to check after a refusal, for the log."""
    if status in (401, 403):
        return "; check OPENAI_API_KEY"
    if status == 404:
        return "; check NEWSBOT_LLM_MODEL and OPENAI_BASE_URL (the API root, often ending in /v1)"
    return ""


def _server_message(exc: Any) -> str:
    """What the server said in an error reply (its ``error.message``, else the body), short."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        body = body.get("message") or body.get("error") or ""
    text = " ".join(str(body or "").split())
    return text[:160] + ("…" if len(text) > 160 else "")


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    from email.utils import parsedate_to_datetime

    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _refuses_cap_field(exc: Any) -> str | None:
    """The cap field a 400 says the server will not take (OpenAI refuses the pair;
    some servers forbid unknown fields), or None."""
    import openai

    if not isinstance(exc, openai.BadRequestError):
        return None
    text = str(exc).lower()
    if "max_completion_tokens" in text and ("extra" in text or "unrecognized" in text
                                            or "not permitted" in text):
        return "max_completion_tokens"
    if "max_tokens" in text and ("same time" in text or "unsupported" in text
                                 or "not supported" in text or "combination" in text):
        return "max_tokens"
    return None


class OpenAIChatModel(ChatModelBase):
    """LangChain's ChatOpenAI on its own event loop, with the bounds described above."""

    def __init__(self, settings: Settings) -> None:
        import httpx
        from langchain_openai import ChatOpenAI  # heavy; only when a model is configured

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        self.name = settings.llm_model
        self.max_tokens = settings.llm_max_tokens
        self.max_retries = settings.llm_max_retries
        self.budget_s = settings.answer_budget_s
        self.fields: TokenFields = settings.llm_token_fields
        timeout = httpx.Timeout(settings.llm_timeout_s, connect=min(5.0, settings.llm_timeout_s))
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Future[None] = self._loop.create_future()
        self._closing = False
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run_loop, name="chat-model", daemon=True)
        self._thread.start()
        # A client of our own, used only on our loop (a shared one would be bound to another).
        self._http = httpx.AsyncClient(timeout=timeout)
        self._chat = ChatOpenAI(
            model=settings.llm_model,
            base_url=settings.openai_base_url,
            # Local servers (Ollama, llama.cpp) accept any key but the client requires one.
            api_key=key or "not-needed",
            timeout=timeout,
            max_retries=0,  # retried here, within the answer's deadline
            temperature=settings.llm_temperature,
            http_async_client=self._http,
            # Off: its per-chunk asyncio.wait_for swallows a cancellation that arrives as a
            # chunk does (Python 3.11), so a fast runaway stream could never be closed. The
            # answer's deadline and the read timeout bound the stream instead.
            stream_chunk_timeout=None,
        )

    # -- the cap -----------------------------------------------------------------------------
    def cap_kwargs(self, cap: int) -> dict[str, Any]:
        """Request fields carrying the length cap, as this server accepts them."""
        if self.fields == "max_tokens":
            return {"extra_body": {"max_tokens": cap}}
        if self.fields == "max_completion_tokens":
            return {"max_completion_tokens": cap}
        return {"max_completion_tokens": cap, "extra_body": {"max_tokens": cap}}

    # -- requests ----------------------------------------------------------------------------
    def generate(self, messages: Sequence[tuple[str, str]], *,
                 on_token: Callable[[str], None] | None = None,
                 deadline: float | None = None,
                 max_tokens: int | None = None) -> Completion:
        start = time.monotonic()
        deadline = deadline if deadline is not None else start + self.budget_s
        events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        closed = threading.Event()
        coro = self._attempts(list(messages), max_tokens or self.max_tokens, deadline, events,
                              closed)
        try:
            if self._closing:
                raise RuntimeError("closing")
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # closed (or closing): the caller falls back
            coro.close()
            raise LLMError("closed", detail="the chat client was closed") from None
        parts: list[str] = []
        first: float | None = None
        try:
            while True:
                try:
                    kind, value = events.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise LLMError("timed out", partial="".join(parts)) from None
                if kind == "delta":
                    if first is None:
                        first = time.monotonic() - start
                    parts.append(value)
                    if on_token is not None:
                        try:
                            on_token(value)
                        except StopStreaming:
                            return Completion("".join(parts), "stopped", len(parts),
                                              time.monotonic() - start, first)
                elif kind == "done":
                    finish, attempts = value
                    return Completion("".join(parts), finish, len(parts),
                                      time.monotonic() - start, first, attempts)
                else:
                    err: LLMError = value
                    err.partial = "".join(parts)
                    raise err
        finally:
            if not future.done():
                # Cancelling the task closes the stream: the server sees the client leave.
                self._loop.call_soon_threadsafe(future.cancel)
                closed.wait(CLOSE_WAIT_S)

    async def _attempts(self, messages: list[tuple[str, str]], cap: int, deadline: float,
                        events: queue.SimpleQueue[tuple[str, Any]],
                        closed: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        progress = {"sent": False}  # a delta has gone to the caller: no retry after that
        try:
            while True:
                attempt += 1
                try:
                    async with asyncio.timeout_at(deadline):
                        finish = await self._stream_once(messages, cap, events, progress)
                    events.put(("done", (finish, attempt)))
                    return
                except TimeoutError:
                    events.put(("error", LLMError("timed out")))
                    return
                except Exception as exc:
                    sent = progress["sent"]
                    refused = _refuses_cap_field(exc)
                    if refused and self.fields in ("auto", "both") and not sent:
                        # Adapt once and for all: this server takes only the other field.
                        self.fields = ("max_completion_tokens" if refused == "max_tokens"
                                       else "max_tokens")
                        log.info("chat model %s refuses %s; the cap is sent as %s",
                                 self.name, refused, self.fields)
                        attempt -= 1
                        continue
                    reason, retryable, wait = _status_reason(exc)
                    detail = f"{type(exc).__name__}: {exc}"
                    if sent:
                        reason = "stopped mid-answer" if retryable else reason
                    wait = wait if wait is not None else BACKOFF_S[min(attempt - 1, 2)]
                    room = deadline - loop.time() - wait
                    if sent or not retryable or attempt > self.max_retries or room < MIN_ATTEMPT_S:
                        status = getattr(exc, "status_code", None)
                        log.warning("chat model %s: %s (%s)%s", self.name, reason, detail,
                                    _hint(status))
                        events.put(("error", LLMError(reason, detail=detail, status=status,
                                                      message=_server_message(exc))))
                        return
                    log.info("chat model %s: %s; retrying in %.1f s", self.name, reason, wait)
                    await asyncio.sleep(wait)
        except asyncio.CancelledError:
            # Closing the client (the service stops) cancels this: a caller still waiting
            # must hear so now, not at its deadline (the process waited out the answer
            # budget before it could exit).
            events.put(("error", LLMError("closed", detail="the chat client was closed")))
            raise
        finally:
            closed.set()

    async def _stream_once(self, messages: list[tuple[str, str]], cap: int,
                           events: queue.SimpleQueue[tuple[str, Any]],
                           progress: dict[str, bool]) -> str | None:
        finish: str | None = None
        async for chunk in self._chat.astream(messages, **self.cap_kwargs(cap)):
            delta = chunk.content if isinstance(chunk.content, str) else ""
            if delta:
                progress["sent"] = True
                events.put(("delta", delta))
            finish = chunk.response_metadata.get("finish_reason") or finish
        if finish is None:
            # Every compatible server ends a reply with its reason; a body that ends without
            # one was cut, and its last words may be half a sentence.
            raise Unfinished("the reply ended without a finish reason")
        return finish

    # -- the loop and its shutdown -----------------------------------------------------------
    def _run_loop(self) -> None:
        """Serve requests until ``close()``; then leave nothing pending on the loop."""
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except Exception:  # closing is best effort; the process may be ending anyway
            log.debug("closing the chat client failed", exc_info=True)
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        await self._stop
        loop = asyncio.get_running_loop()
        await _drain()
        await self._http.aclose()
        # The openai client leaves its SSE generators unfinished after [DONE]; when they are
        # collected, asyncio schedules their aclose() as tasks. Closing the loop before those
        # ran is what printed "Task was destroyed but it is pending!" at exit.
        await loop.shutdown_asyncgens()
        await _drain()
        await loop.shutdown_default_executor()

    def close(self) -> None:
        """Cancel what is in flight, close the HTTP client on its own loop, stop the thread."""
        with self._close_lock:
            if self._closing:
                return
            self._closing = True
        try:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        except RuntimeError:  # the loop is already closed
            return
        self._thread.join(timeout=CLOSE_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("the chat client did not close within %.0f s", CLOSE_TIMEOUT_S)


async def _drain() -> None:
    """Cancel and await every other task on this loop, including tasks started meanwhile."""
    me = asyncio.current_task()
    while pending := [t for t in asyncio.all_tasks() if t is not me]:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class LazyChatModel(ChatModelBase):
    """The configured model, built on first use and only once: a command that never asks a
    model (status, ingest, a poll) starts no client and no thread for it."""

    def __init__(self, settings: Settings) -> None:
        self.name = settings.llm_model
        self._settings = settings
        self._model: ChatModel | None = None
        self._closed = False
        self._lock = threading.Lock()

    @property
    def fields(self) -> str:
        """The cap fields sent: what the client learnt, else the setting."""
        return str(getattr(self._model, "fields", self._settings.llm_token_fields))

    def _get(self) -> ChatModel:
        with self._lock:  # two first questions at once still build one client
            if self._closed:
                raise LLMError("closed", detail="the chat client was closed")
            if self._model is None:
                self._model = OpenAIChatModel(self._settings)
            return self._model

    def generate(self, messages: Sequence[tuple[str, str]], *,
                 on_token: Callable[[str], None] | None = None,
                 deadline: float | None = None,
                 max_tokens: int | None = None) -> Completion:
        start = time.monotonic()
        model = self._get()
        if deadline is not None:
            # Building the client (importing langchain takes seconds on a busy machine) is
            # not the server's time: the budget starts when the request can be sent.
            deadline += time.monotonic() - start
        return model.generate(messages, on_token=on_token, deadline=deadline,
                              max_tokens=max_tokens)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            model, self._model = self._model, None
        if model is not None:
            model.close()


def build_chat_model(settings: Settings) -> ChatModel | None:
    """The configured chat model (built when first asked), or None for extractive answers."""
    return LazyChatModel(settings) if settings.llm_enabled else None
