"""The one place an OpenAI-compatible chat client is built (OpenAI, Ollama, vLLM, llama.cpp).

Timeouts and retries are always explicit: the openai client's default waits 600 s per attempt,
far past the point where a chat member has given up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from bot.settings import Settings

log = logging.getLogger(__name__)


class ChatModel(Protocol):
    """What the answer service needs from a language model."""

    name: str

    def complete(self, messages: Sequence[tuple[str, str]], *,
                 on_token: Callable[[str], None] | None = None) -> str:
        """Reply to ``(role, text)`` messages; stream deltas to ``on_token`` when given."""
        ...


class LLMError(RuntimeError):
    """The model did not answer (timeout, connection, HTTP error); the caller falls back."""


class OpenAIChatModel:
    """LangChain's ChatOpenAI with explicit timeout, retries and streaming."""

    def __init__(self, settings: Settings) -> None:
        from langchain_openai import ChatOpenAI  # heavy; only when a model is configured

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        self.name = settings.llm_model
        self._chat = ChatOpenAI(
            model=settings.llm_model,
            base_url=settings.openai_base_url,
            # Local servers (Ollama, llama.cpp) accept any key but the client requires one.
            api_key=key or "not-needed",
            timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
        )

    def complete(self, messages: Sequence[tuple[str, str]], *,
                 on_token: Callable[[str], None] | None = None) -> str:
        try:
            if on_token is None:
                return str(self._chat.invoke(list(messages)).content)
            parts: list[str] = []
            for chunk in self._chat.stream(list(messages)):
                delta = chunk.content if isinstance(chunk.content, str) else ""
                if delta:
                    parts.append(delta)
                    on_token(delta)
            return "".join(parts)
        except Exception as exc:  # openai/httpx raise many types; the caller only falls back
            log.warning("chat model %s failed: %s: %s", self.name, type(exc).__name__, exc)
            raise LLMError(f"{type(exc).__name__}: {exc}") from exc


def build_chat_model(settings: Settings) -> ChatModel | None:
    """The configured chat model, or None for extractive answers."""
    return OpenAIChatModel(settings) if settings.llm_enabled else None
