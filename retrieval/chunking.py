"""Split articles into chunks with the article's metadata on every chunk.

Chunk ids are ``{article_id}:{n}``, so re-chunking the same text yields the same ids and an
upsert replaces rather than duplicates. The text that is embedded and lexically indexed
starts with the headline: a chunk from the middle of a story otherwise loses what the story
is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_text_splitters import RecursiveCharacterTextSplitter

from retrieval.articles import Article

# MiniLM reads at most 256 word pieces (about 1,000 characters of English news prose). Chunks
# stay below that with room for the headline, so nothing is silently truncated.
DEFAULT_CHUNK_SIZE = 700
DEFAULT_CHUNK_OVERLAP = 120


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of an article, ready to embed and store."""

    id: str
    article_id: str
    n: int
    text: str  # the article text of this chunk, as shown to readers
    metadata: dict[str, Any]

    @property
    def indexed_text(self) -> str:
        """What is embedded and lexically indexed: headline, then the chunk."""
        return indexed_text(self.metadata.get("title", ""), self.text)


def chunk_id(article_id: str, n: int) -> str:
    """The id of an article's ``n``-th chunk (0: the one its text starts with)."""
    return f"{article_id}:{n}"


def indexed_text(title: str, text: str) -> str:
    return f"{title}\n{text}" if title else text


def chunk_metadata(article: Article, n: int) -> dict[str, Any]:
    """Metadata stored with every chunk (Chroma accepts only scalars; None is left out).

    Only what a search shows or filters on: every field costs index time on each chunk.
    """
    meta: dict[str, Any] = {
        "article_id": article.id,
        "chunk": n,
        "title": article.title,
    }
    if article.outlet:
        meta["outlet"] = article.outlet
    if article.url:
        meta["url"] = article.url
    if article.published_at:
        # A number, so that date ranges can be Chroma `where` filters.
        meta["published_ts"] = int(article.published_at.timestamp())
    return meta


class Chunker:
    """LangChain's recursive splitter, paragraph first, then sentence, then word."""

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 chunk_overlap: int = DEFAULT_CHUNK_OVERLAP) -> None:
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            separators=["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""],
            keep_separator="end",
            strip_whitespace=True,
        )

    @property
    def signature(self) -> str:
        """Identifies the chunking settings (part of what an index was built with)."""
        return f"recursive-{self.chunk_size}-{self.chunk_overlap}"

    def split(self, article: Article) -> list[Chunk]:
        pieces = [p for p in self._splitter.split_text(article.text) if p.strip()]
        return [
            Chunk(id=chunk_id(article.id, n), article_id=article.id, n=n, text=piece,
                  metadata=chunk_metadata(article, n))
            for n, piece in enumerate(pieces)
        ]
