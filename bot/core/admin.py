"""Sources in and out, reindexing without downtime, and status.

The SQLite registry is the source of truth; the store follows it. Chunks are written before
the registry row, so a crash in between only means the article is indexed again next time
(chunk ids are deterministic, so that rewrite is harmless).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bot.core.models import NewsbotError
from bot.core.state import State, utcnow
from bot.settings import Settings
from retrieval.articles import Article
from retrieval.indexer import Indexer
from retrieval.search import Retriever
from retrieval.sources import Skipped, SourceError, load_source, source_kind
from retrieval.store import VectorStore

log = logging.getLogger(__name__)

Callback = Callable[[int], None]
BATCH_ARTICLES = 512  # about 2,300 chunks: the embedder batches them by length


@dataclass(slots=True)
class IngestReport:
    """What an ingest did, for the summary line."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0  # chunks written
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for s in self.skipped:
            key = s.reason.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
        why = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda x: -x[1]))
        rate = (f" ({self.chunks / self.seconds:.1f} chunks/s)"
                if self.chunks and self.seconds else "")
        return (f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
                f"{len(self.skipped)} skipped{f' ({why})' if why else ''}; "
                f"{self.chunks} chunks written in {self.seconds:.1f}s{rate}")


@dataclass(frozen=True, slots=True)
class SourceSummary:
    outlet: str
    source: str
    articles: int
    newest: datetime | None


@dataclass(slots=True)
class Progress:
    """Callbacks an adapter passes to follow a long job (the CLI draws rich bars)."""

    articles: Callback | None = None
    chunks: Callback | None = None


def normalise_spec(spec: str) -> str:
    """Sources are remembered as absolute paths or URLs, so removal finds them again."""
    if spec.startswith(("http://", "https://")):
        return spec.strip()
    return str(Path(spec).expanduser().resolve())


class AdminService:
    """Ingest, remove, reindex, status. Writes are serialised inside the process."""

    def __init__(self, settings: Settings, state: State, store: VectorStore, indexer: Indexer,
                 retriever: Retriever) -> None:
        self.settings = settings
        self.state = state
        self.store = store
        self.indexer = indexer
        self.retriever = retriever
        self._write = threading.Lock()

    # -- ingest ----------------------------------------------------------------------------
    def ingest(self, specs: Iterable[str], progress: Progress | None = None) -> IngestReport:
        """Load every source and sync its articles into the registry and the store."""
        report = IngestReport()
        progress = progress or Progress()
        t0 = time.perf_counter()
        seen: set[str] = set()
        with self._write:
            for raw in specs:
                try:
                    spec = normalise_spec(raw)
                    kind = source_kind(spec)
                except SourceError as exc:
                    report.skipped.append(Skipped(raw, str(exc)))
                    continue
                batch: list[Article] = []
                for item in load_source(spec):
                    if isinstance(item, Skipped):
                        report.skipped.append(item)
                        continue
                    if item.id in seen:
                        report.skipped.append(Skipped(item.url or item.title, "duplicate url"))
                        continue
                    seen.add(item.id)
                    batch.append(item)
                    if len(batch) >= BATCH_ARTICLES:
                        self._sync(batch, report, progress)
                        batch = []
                self._sync(batch, report, progress)
                self.state.record_source(spec, kind)
            if report.added or report.updated:
                # When content last changed: an ingest that finds nothing new changes nothing.
                self.state.set_meta("last_ingest", utcnow().isoformat())
        self.retriever.invalidate()
        report.seconds = time.perf_counter() - t0
        return report

    def _sync(self, batch: list[Article], report: IngestReport, progress: Progress) -> None:
        if not batch:
            return
        known = self.state.article_hashes(a.id for a in batch)
        todo = [a for a in batch if known.get(a.id) != a.content_hash]
        changed = [a.id for a in todo if a.id in known]
        report.unchanged += len(batch) - len(todo)
        report.updated += len(changed)
        report.added += len(todo) - len(changed)
        if todo:
            counts = self.indexer.index(todo, changed=changed, on_chunks=progress.chunks)
            self.state.upsert_articles((a, counts[a.id]) for a in todo)
            report.chunks += sum(counts.values())
        if progress.articles:
            progress.articles(len(batch))

    def remove_source(self, spec: str) -> int:
        """Forget a source and take its articles out of the store; returns how many."""
        spec = normalise_spec(spec)
        with self._write:
            ids = self.state.article_ids_for_source(spec)
            known = any(row["spec"] == spec for row in self.state.sources())
            if not ids and not known:
                raise NewsbotError(f"no source {spec!r} is registered; see `newsbot sources`")
            self.indexer.remove(ids)
            self.state.delete_articles(ids)
            self.state.forget_source(spec)
        self.retriever.invalidate()
        return len(ids)

    # -- reindex ---------------------------------------------------------------------------
    def reindex(self, progress: Progress | None = None) -> tuple[int, int]:
        """Rebuild the store from the registry into a new collection, verify, then switch.

        The live collection serves questions throughout; a failure leaves it untouched.
        Returns (articles, chunks) of the new collection.
        """
        progress = progress or Progress()
        with self._write:
            staging = self.store.begin_rebuild()
            try:
                counts: dict[str, int] = {}
                articles = 0
                for batch in _batches(self.state.iter_articles(), BATCH_ARTICLES):
                    counts.update(self.indexer.index(batch, collection=staging,
                                                     on_chunks=progress.chunks))
                    articles += len(batch)
                    if progress.articles:
                        progress.articles(len(batch))
                self._verify(staging, counts)
            except BaseException:
                self.store.abort_rebuild(staging)
                raise
            self.store.finish_rebuild(staging)
            self.state.set_chunk_counts(counts)
            self.state.set_meta("last_reindex", utcnow().isoformat())
        self.retriever.invalidate()
        return articles, sum(counts.values())

    def _verify(self, staging: object, counts: dict[str, int]) -> None:
        expected = sum(counts.values())
        got = int(staging.count())  # type: ignore[attr-defined]
        if got != expected:
            raise NewsbotError(f"reindex check failed: {got} chunks stored, {expected} expected; "
                               "the live store was left as it was")
        if not counts:
            return
        # A few articles must find themselves by headline in the new collection.
        for aid in random.Random(0).sample(sorted(counts), min(3, len(counts))):
            article = self.state.get_article(aid)
            if article is None or not counts[aid]:
                continue
            vec = self.indexer.embedder.embed_query(article.title)
            hits = self.store.query(vec, 10, collection=staging)
            if aid not in {h.article_id for h in hits}:
                raise NewsbotError(f"reindex check failed: {article.title!r} is not found by "
                                   "its own headline; the live store was left as it was")

    # -- status ----------------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        articles, _ = self.state.counts()
        return {
            "articles": articles,
            "chunks": self.store.count(),
            "embedding_model": self.store.model_id,
            "store": self.store.location,
            "collection": self.store.collection_name,
            "model": self.settings.llm_model if self.settings.llm_enabled else None,
            "mode": "model" if self.settings.llm_enabled else "extractive",
            "last_ingest": self.state.get_meta("last_ingest"),
        }

    def sources(self) -> list[SourceSummary]:
        return [
            SourceSummary(outlet=r["outlet"] or "(unknown outlet)", source=r["source"],
                          articles=int(r["articles"]),
                          newest=datetime.fromisoformat(r["newest"]) if r["newest"] else None)
            for r in self.state.outlet_summary()
        ]


def _batches(items: Iterable[Article], size: int) -> Iterator[list[Article]]:
    batch: list[Article] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
