"""Plain data passed between the core services and their adapters (CLI, Discord)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal


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
