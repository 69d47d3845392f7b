"""Test doubles that live in one place: a deterministic embedding, a scripted chat model,
and a factory for real services on a temporary data dir."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bot.core.llm import ChatModelBase, Completion, StopStreaming
from bot.core.services import Services, build_services, sample_dir
from bot.settings import Settings


class FakeEmbedder:
    """Hashed bag of words (with crude suffix folding): similar wording, similar vectors."""

    model_id = "fake-hash-384"
    dim = 384

    def __init__(self) -> None:
        self.calls = 0

    @staticmethod
    def _vector(text: str) -> np.ndarray:
        v = np.zeros(FakeEmbedder.dim, dtype=np.float32)
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            word = re.sub(r"(ing|ed|es|s)$", "", word) if len(word) > 4 else word
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            v[h % FakeEmbedder.dim] += 1.0 if (h >> 20) & 1 else -1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


class ScriptedModel(ChatModelBase):
    """A chat model that records prompts and returns queued replies (or raises)."""

    name = "scripted"

    def __init__(self, *replies: str | Exception) -> None:
        self.replies: list[str | Exception] = list(replies)
        self.prompts: list[list[tuple[str, str]]] = []
        self.deadlines: list[float | None] = []

    def generate(self, messages: Sequence[tuple[str, str]], *,
                 on_token: Callable[[str], None] | None = None,
                 deadline: float | None = None,
                 max_tokens: int | None = None) -> Completion:
        self.prompts.append(list(messages))
        self.deadlines.append(deadline)
        reply = self.replies.pop(0) if self.replies else "NOT_IN_ARTICLES"
        if isinstance(reply, Exception):
            raise reply
        sent = 0
        if on_token:
            try:
                for i in range(0, len(reply), 10):
                    on_token(reply[i : i + 10])
                    sent += 1
            except StopStreaming:
                return Completion(reply[: sent * 10 + 10], "stopped", sent + 1, 0.0, 0.0)
        return Completion(reply, "stop", max(1, len(reply) // 10), 0.0, 0.0)


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings isolated from the developer's environment and .env."""
    values: dict[str, Any] = {
        "data_dir": data_dir, "chroma_url": None, "openai_api_key": None,
        "openai_base_url": None, "discord_token": None, "user_cooldown_s": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def make_services(data_dir: Path, *, sample: bool = True, model: Any = None,
                  **overrides: Any) -> Services:
    """Real services with the fake embedding, optionally loaded with the bundled sample."""
    services = build_services(make_settings(data_dir, **overrides), embedder=FakeEmbedder(),
                              model=model)
    if sample:
        services.admin.ingest([str(sample_dir())])
    return services
