"""Plain data passed between the core services and their adapters (CLI, Discord)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit


class NewsbotError(Exception):
    """Base class for errors whose message is safe and useful to show a user as one line."""


class QuestionError(NewsbotError):
    """The question cannot be asked as given (empty, too long, ...). Nothing was touched."""


class StoreError(NewsbotError):
    """The vector store cannot be opened or used (locked, wrong model, unreachable)."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier message of a conversation."""

    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True, slots=True)
class Source:
    """A numbered source of an answer; ``n`` is the number cited in the text as [n]."""

    n: int
    article_id: str
    title: str
    outlet: str | None
    url: str | None
    published_at: datetime | None

    def to_json(self) -> dict[str, object]:
        return {
            "n": self.n,
            "article_id": self.article_id,
            "title": self.title,
            "outlet": self.outlet,
            "url": self.url,
            "published_at": self.published_at.isoformat() if self.published_at else None,
        }


def origin_label(mode: str, abstained: bool) -> str:
    """Where the shown text came from, for footers: the model, the articles' own sentences,
    or no answer at all (the note then says why)."""
    if abstained:
        return "No answer"
    return "Model answer" if mode == "model" else "Extractive answer (quoted from articles)"


@dataclass(slots=True)
class Answer:
    """A grounded answer: text citing ``[n]`` markers, each n one of ``sources``."""

    text: str
    sources: list[Source]
    abstained: bool
    mode: Literal["model", "extractive"]
    question: str = ""
    standalone_question: str = ""
    note: str | None = None  # e.g. why the extractive fallback was used
    history_cut: bool = False  # earlier turns were dropped to fit the history cap
    closest: list[Source] = field(default_factory=list)  # named when abstaining
    ranked_article_ids: list[str] = field(default_factory=list)  # retrieval order, best first

    @property
    def as_of(self) -> datetime | None:
        """Date of the newest source, for "as of ..." footers."""
        dates = [s.published_at for s in self.sources if s.published_at]
        return max(dates) if dates else None

    def to_json(self) -> dict[str, object]:
        return {
            "answer": self.text,
            "sources": [s.to_json() for s in self.sources],
            "abstained": self.abstained,
            "mode": self.mode,
            "closest": [s.to_json() for s in self.closest],
            "note": self.note,
        }


# Query parameters whose value is a credential: a word of the name is one of these, or ends
# in key, token, secret or password ("apikey", "x-auth-token"), and "keyword" or "author"
# are not.
_SECRET_WORDS = frozenset(("key", "token", "secret", "password", "passwd", "pwd", "pass",
                           "auth", "authorization", "sig", "signature", "session",
                           "sessionid", "sid", "credential", "credentials", "jwt"))
_SECRET_ENDINGS = ("key", "token", "secret", "password")
REDACTED = "REDACTED"  # no markdown in it: shown in Discord as it is


def _secret_param(name: str) -> bool:
    words = re.split(r"[^a-z0-9]+", unquote(name).lower())
    return any(w in _SECRET_WORDS or w.endswith(_SECRET_ENDINGS) for w in words if w)


def _redact_params(text: str) -> str:
    pieces = []
    for piece in text.split("&"):
        name, eq, value = piece.partition("=")
        pieces.append(f"{name}={REDACTED}" if eq and value and _secret_param(name) else piece)
    return "&".join(pieces)


def redact_url(spec: str) -> str:
    """A source's address as shown to people: a user and password in it, and the values of
    query parameters named like keys or tokens (``api_key=``, ``token=``, ``sig=``), become
    ``REDACTED``. Anything else, and a file's path, is shown as stored."""
    try:
        parts = urlsplit(spec)
    except ValueError:
        return spec
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return spec
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    return urlunsplit((parts.scheme, netloc, parts.path, _redact_params(parts.query),
                       _redact_params(parts.fragment)))


# Where the sources are listed, for an error naming one that is not there: in Discord
# (/feeds list, admins) and in a terminal.
SOURCES_LISTED = "`/feeds list` or `newsbot sources` lists them"
SUBSCRIPTIONS_LISTED = "`/brief list` or `newsbot subscriptions list` lists them"


def counted(n: int, noun: str) -> str:
    """``n`` and its noun, singular for one: "1 article", "3 articles"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def source_label(name: str | None, spec: str) -> str:
    """How a source is named to people: its name, else its address with secrets hidden."""
    return name or redact_url(spec)
