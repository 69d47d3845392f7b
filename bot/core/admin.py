"""Sources in and out, reindexing without downtime, status, export and import.

The SQLite registry is the source of truth; the store follows it. Additions write chunks
before the registry row, removals delete the registry rows before the chunks: a crash in
between leaves the store with chunks the registry does not list, or missing chunks of an
article it does, and an incremental reindex (which the service runs at start) repairs both.
Chunk ids are deterministic, so rewriting chunks is harmless.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from bot.core.models import SOURCES_LISTED, NewsbotError, counted
from bot.core.state import BriefIntake, SourceRecord, State, source_url, utcnow
from bot.settings import Settings
from retrieval.articles import (
    Article,
    make_article_id,
    other_scheme,
    own_article_id,
    text_hash,
)
from retrieval.indexer import Indexer
from retrieval.search import Retriever
from retrieval.sources import Skipped, SourceError, fetch_url, load_source, source_kind
from retrieval.sources.feeds import Feed, read_feed
from retrieval.sources.web import Failure, Fetcher, page_article
from retrieval.store import StoreReadOnly, VectorStore

if TYPE_CHECKING:
    from retrieval.embeddings import Embedder

log = logging.getLogger(__name__)

Callback = Callable[[int], None]
# (spec, the feed, the fetcher it was read with, report, progress) -> why nothing was recorded
FeedIngest = Callable[[str, "Feed", "Fetcher", "IngestReport", "Progress"], str | None]
BATCH_ARTICLES = 512  # about 2,300 chunks: the embedder batches them by length
READ_PROGRESS_S = 0.2  # how often an ingest reports the articles it has read
FILE_KINDS = frozenset({"dir", "json", "jsonl", "markdown", "feed"})
# The page at an article's own address replaces another source's text only when it holds at
# least this share of it: a consent wall or a paywall there is much shorter than the story,
# an outlet's edit seldom is.
OWN_PAGE_MIN_SHARE = 0.5
# A chunk embedded again is this close to its stored vector (int8 activations are quantized
# per batch, so not exactly); another text is far further.
SAME_TEXT_DISTANCE = 0.02


class Cancelled(NewsbotError):
    """A long job stopped between batches because the service is shutting down."""

    def __init__(self) -> None:
        super().__init__("stopped because the service is shutting down; what was written is "
                         "kept, and running the command again completes it")


@dataclass(slots=True)
class Progress:
    """Callbacks an adapter passes to follow a long job (the CLI draws rich bars)."""

    articles: Callback | None = None
    chunks: Callback | None = None
    # A new step of the job and how many articles it covers (None: not known in advance).
    phase: Callable[[str, int | None], None] | None = None
    # Asked between batches: a shutting-down service stops the job there.
    cancelled: Callable[[], bool] | None = None

    @classmethod
    def emitting(cls, emit: Callable[[dict[str, Any]], None],
                 cancelled: Callable[[], bool] | None = None) -> Progress:
        """Progress reported as events: {"phase", "total"}, {"articles"}, {"chunks"}."""
        return cls(articles=lambda n: emit({"articles": n}),
                   chunks=lambda n: emit({"chunks": n}),
                   phase=lambda name, total: emit({"phase": name, "total": total}),
                   cancelled=cancelled)

    def start(self, name: str, total: int | None) -> None:
        if self.phase:
            self.phase(name, total)

    def done_articles(self, n: int) -> None:
        if self.articles:
            self.articles(n)

    def check(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise Cancelled()


@dataclass(slots=True)
class IngestReport:
    """What an ingest did, for the summary line."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0  # chunks written
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Skipped] = field(default_factory=list)  # sources that gave nothing usable
    seconds: float = 0.0
    added_ids: list[str] = field(default_factory=list)
    updated_ids: list[str] = field(default_factory=list)

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
                f"{counted(self.chunks, 'chunk')} written in {self.seconds:.1f}s{rate}")

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added, "updated": self.updated, "unchanged": self.unchanged,
            "chunks": self.chunks, "seconds": round(self.seconds, 2),
            "skipped": [{"name": s.name, "reason": s.reason} for s in self.skipped],
            "failed": [{"name": s.name, "reason": s.reason} for s in self.failed],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IngestReport:
        return cls(added=data["added"], updated=data["updated"], unchanged=data["unchanged"],
                   chunks=data["chunks"], seconds=data["seconds"],
                   skipped=[Skipped(s["name"], s["reason"]) for s in data["skipped"]],
                   failed=[Skipped(s["name"], s["reason"]) for s in data["failed"]])


@dataclass(slots=True)
class ReindexReport:
    """What a reindex did (or, with ``dry_run``, would do)."""

    full: bool
    dry_run: bool
    articles: int = 0  # articles in the registry
    added: int = 0  # articles whose chunks were missing from the store
    updated: int = 0  # articles whose stored chunks did not match the registry
    deleted: int = 0  # articles in the store the registry no longer holds
    chunks: int = 0  # chunks in the live collection afterwards
    collection: str = ""
    seconds: float = 0.0

    def summary(self) -> str:
        articles = counted(self.articles, "article")
        if self.full:
            if self.dry_run:
                return (f"a full reindex would rebuild {articles} into a new collection; "
                        "nothing was written")
            return (f"reindexed {articles} into {counted(self.chunks, 'chunk')} in "
                    f"{self.seconds:.1f}s; the new collection {self.collection} is live")
        tail = ("; nothing was written" if self.dry_run
                else f"; {counted(self.chunks, 'chunk')} live, {self.seconds:.1f}s")
        if not (self.added or self.updated or self.deleted):
            return f"the store matches the registry ({articles}){tail}"
        if self.dry_run:
            return (f"a sync of the store to the registry ({articles}) would add "
                    f"{self.added}, update {self.updated}, delete {self.deleted}{tail}")
        return (f"synced the store to the registry ({articles}): {self.added} added, "
                f"{self.updated} updated, {self.deleted} deleted{tail}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 2)
        return data


@dataclass(frozen=True, slots=True)
class SourceSummary:
    """One outlet as members see it: no paths or URLs of the server's own."""

    outlet: str
    articles: int
    newest: datetime | None


def normalise_spec(spec: str) -> str:
    """Sources are remembered as absolute paths or canonical URLs (scheme and host in lower
    case, no fragment or tracking parameters, no ``..``; the query's order kept, as the
    server may need it), so one source is recorded once and removal finds it again."""
    spec = spec.strip()
    if spec.lower().startswith(("http://", "https://")):
        try:
            urlsplit(spec).port  # noqa: B018  (raises on a port out of range)
        except ValueError:
            raise SourceError(f"not a valid URL: {spec}") from None
        return source_url(spec) or spec
    if "://" in spec:  # an address of another scheme, not a relative path: left to refuse
        return spec
    return str(Path(spec).expanduser().resolve())


def source_kind_of(spec: str) -> str:
    """The registry's kind for a spec loaded by ``ingest``: file, feed or page."""
    kind = source_kind(spec)
    return "file" if kind in FILE_KINDS else "page"


class WriteLock:
    """One write at a time in the process, by the store's keeper only: entering it is
    refused with one line when the store is another data dir's (see VectorStore.open)."""

    def __init__(self, store: VectorStore) -> None:
        self._lock = threading.RLock()
        self._store = store

    def __enter__(self) -> WriteLock:
        self._lock.acquire()
        try:
            self._store.check_writable()
        except StoreReadOnly as exc:
            self._lock.release()
            raise NewsbotError(str(exc)) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class AdminService:
    """Ingest, remove, reindex, status. Writes are serialised inside the process."""

    def __init__(self, settings: Settings, state: State, store: VectorStore, indexer: Indexer,
                 retriever: Retriever, *, target_embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.state = state
        self.store = store
        self.indexer = indexer
        self.retriever = retriever
        # The configured model; differs from the serving one until a full reindex switches.
        self.target_embedder = target_embedder or indexer.embedder
        self.write_lock = WriteLock(store)
        # How a feed URL given to ingest is read and recorded: as its polls are (set where
        # the services are wired; without it, each item is stored at its own link).
        self.feed_ingest: FeedIngest | None = None

    @property
    def model_change_pending(self) -> bool:
        return self.target_embedder.model_id != self.indexer.embedder.model_id

    # -- ingest ----------------------------------------------------------------------------
    def ingest(self, specs: Iterable[str], progress: Progress | None = None) -> IngestReport:
        """Load every source, record it, and sync its articles into the registry and store."""
        report = IngestReport()
        progress = progress or Progress()
        progress.start("ingest", None)
        t0 = time.perf_counter()
        with self.write_lock:
            for raw in specs:
                try:
                    if not raw.strip():
                        raise SourceError("an empty name is not a file, folder or URL")
                    spec = normalise_spec(raw)
                    kind = source_kind_of(spec)
                except SourceError as exc:
                    report.failed.append(Skipped(raw, str(exc)))
                    continue
                fetcher = Fetcher(timeout_s=self.settings.fetch_timeout_s,
                                  max_bytes=self.settings.max_feed_bytes,
                                  allow_private=self.settings.allow_private_urls)
                items: Iterable[Article | Skipped] = ()
                if kind == "page" and self.feed_ingest is not None:
                    got = fetch_url(spec, fetcher)
                    if isinstance(got, Skipped):
                        items = [got]
                    elif got[1] is None:
                        items = [page_article(got[0], name=spec, source=spec)]
                    else:
                        # A feed URL: its items are recorded as a poll of it records them.
                        feed = read_feed(got[0], got[1], spec)
                        why = (feed.reason if isinstance(feed, Failure)
                               else self.feed_ingest(spec, feed, fetcher, report, progress))
                        if why:
                            report.failed.append(Skipped(raw, why))
                        continue
                else:
                    items = load_source(spec, fetcher=fetcher)
                articles: list[Article] = []
                skipped: list[Skipped] = []
                unreported, reported_at = 0, time.monotonic()
                for item in items:
                    if isinstance(item, Skipped):
                        skipped.append(item)
                        continue
                    articles.append(item)
                    unreported += 1
                    # Counted as read (a feed's pages can take a while), a few times a second.
                    if time.monotonic() - reported_at >= READ_PROGRESS_S:
                        progress.done_articles(unreported)
                        unreported, reported_at = 0, time.monotonic()
                if unreported:
                    progress.done_articles(unreported)
                report.skipped += skipped
                if not articles:
                    # Nothing usable: no source row is recorded, and the command says why.
                    why = skipped[0].reason if len(skipped) == 1 else (
                        f"no usable articles ({len(skipped)} skipped)" if skipped
                        else "no articles in it")
                    report.failed.append(Skipped(raw, why))
                    continue
                if kind == "page" and (len(articles) > 1 or articles[0].url != spec):
                    kind = "feed"  # a URL that gave several items, or items elsewhere
                # Articles were counted as read; the write moves the chunk count.
                self.record(spec, kind, articles, report, replace(progress, articles=None))
            self.note_ingest(report)
        self.retriever.refresh()  # whoever ingested may ask next
        report.seconds = time.perf_counter() - t0
        return report

    def record(self, spec: str, kind: str, articles: list[Article], report: IngestReport,
               progress: Progress | None = None) -> list[Article]:
        """Record ``articles``, read from ``spec`` in one go, under its source (added as
        ``kind`` if new; dropped again if stopped before anything landed). Call under
        ``write_lock``; returns the articles as recorded (see :meth:`sync_articles`)."""
        new_source = self.state.find_source(spec) is None
        source = self.state.add_source(spec, kind)
        if not new_source:
            articles = self._as_followed(source.id, articles)
        recorded: list[Article] = []
        with self.fetched_once(source, new=new_source):
            for batch in _batches(articles, BATCH_ARTICLES):
                if progress is not None:
                    progress.check()
                recorded += self.sync_articles(batch, source.id, report, progress)
        return recorded

    @contextmanager
    def fetched_once(self, source: SourceRecord, *, new: bool) -> Iterator[None]:
        """Around a one-off load of ``source``: recorded as a good fetch when it ends, and a
        ``new`` source dropped again if it stops before anything landed."""
        with self.dropped_if_stopped(source, new=new):
            yield
        now = utcnow()
        self.state.update_source(source.id, last_fetch=now, last_ok=now,
                                 polls=source.polls + 1, last_error=None)

    @contextmanager
    def dropped_if_stopped(self, source: SourceRecord, *, new: bool) -> Iterator[None]:
        """Around the first load of ``source``: when ``new``, it is dropped again if the load
        stops (Ctrl-C, a fault, a stopping service) before any of its articles landed."""
        try:
            yield
        except BaseException:
            if new and not self.state.article_ids_for_source(source.id):
                self.state.delete_source(source.id)
            raise

    def _as_followed(self, source_id: int, articles: list[Article]) -> list[Article]:
        """``articles`` (read at their items' links), where one whose link this source
        holds as a followed feed's item is that article as the feed recorded it: at the
        address its link led to, so reading a followed feed in one go adds no copy."""
        by_link = {link: aid for aid, (_, _, link) in self.state.source_items(source_id).items()
                   if link}
        ids = {a.id for a in articles}
        out: list[Article] = []
        for article in articles:
            held = by_link.get(article.url or "")
            current = self.state.get_article(held) if held and held not in ids else None
            out.append(article if current is None else
                       article.model_copy(update={"id": current.id, "url": current.url}))
        return out

    def note_ingest(self, report: IngestReport) -> None:
        """When content last changed: an ingest that finds nothing new changes nothing."""
        if report.added or report.updated:
            self.state.set_meta("last_ingest", utcnow().isoformat())

    def sync_articles(self, batch: list[Article], source_id: int, report: IngestReport,
                      progress: Progress | None = None,
                      guids: dict[str, str | None] | None = None,
                      briefs: BriefIntake | None = None) -> list[Article]:
        """Index new and changed articles of ``batch``, and record that the source holds
        all of them (with their feed GUIDs, when given); with ``briefs``, the new and
        changed ones are queued for planning as they are recorded. Call under
        ``write_lock``.

        Returns the articles as recorded: one registered under the other of http and https
        is that article (see :meth:`_same_address`); one that would rewrite an article
        another source delivered is recorded as that article, or under an id of its own
        (see :meth:`_leave_others_articles`)."""
        if not batch:
            return []
        pages: set[str] = set()
        batch = self._leave_others_articles(self._same_address(batch), source_id, pages)
        known = self.state.article_hashes(a.id for a in batch)
        todo = [a for a in batch if known.get(a.id) != a.content_hash]
        changed = [a.id for a in todo if a.id in known]
        report.unchanged += len(batch) - len(todo)
        report.updated += len(changed)
        report.added += len(todo) - len(changed)
        report.updated_ids += changed
        report.added_ids += [a.id for a in todo if a.id not in known]
        counts: dict[str, int] = {}
        if todo:
            on_chunks = progress.chunks if progress else None
            counts = self.indexer.index(todo, changed=changed, on_chunks=on_chunks)
            report.chunks += sum(counts.values())
        # The articles and their membership land together: no article without its source.
        self.state.record_articles(
            ((a, counts[a.id]) for a in todo), source_id,
            [(a.id, (guids or {}).get(a.id, a.ext_id)) for a in batch],
            briefs=replace(briefs, changed=frozenset(changed)) if briefs else None)
        if pages:
            self._drop_page_copies([a for a in batch if a.id in pages], source_id)
        if progress:
            progress.done_articles(len(batch))
        return batch

    def _same_address(self, batch: list[Article]) -> list[Article]:
        """``batch``, where an article not registered under its URL takes the id of the one
        registered at the same address under the other of http and https (a feed listing
        http links to a site ingested by its https pages): one story, one article."""
        twins = {a.id: make_article_id(t, "", "") for a in batch if (t := other_scheme(a.url))}
        if not twins:
            return batch
        known = self.state.article_hashes([*twins, *twins.values()])
        ids = {a.id for a in batch}
        return [a.model_copy(update={"id": twins[a.id]})
                if a.id in twins and a.id not in known and twins[a.id] in known
                and twins[a.id] not in ids else a for a in batch]

    def _drop_page_copies(self, articles: list[Article], source_id: int) -> None:
        """After a page updated the article at its own address, the copies of that page
        kept apart under ids of their own (as they were before a page could update another
        source's article) leave the page's source, and the registry and store when no
        other source holds them: one story, one article."""
        copies = [aid for a in articles if a.url
                  for aid in self.state.source_articles_at(source_id, a.url) if aid != a.id]
        if copies:
            # Registry first, as in remove_source: a crash before the store catches up
            # leaves chunks that the next incremental sync deletes.
            orphans = self.state.release_articles(source_id, copies)
            self.indexer.remove(orphans)
            log.info("source %s: %d earlier copies of its page dropped", source_id, len(copies))

    def _leave_others_articles(self, batch: list[Article], source_id: int,
                               pages: set[str] | None = None) -> list[Article]:
        """``batch``, with no article that would change one another source delivered; the
        ids of those the page at their own address updates are added to ``pages``.

        Ids come from the URL alone, so any feed can list an item under another outlet's
        link with text of its own. A version that differs from a registered article held
        by other sources is therefore never written over it: with the same words (only
        another headline, outlet name or date) it is that article, now held by this source
        too;
        with other words it is kept under an id of its own, cited with this source's outlet,
        so neither version is lost or passed off as the other. The source that first
        delivered the article still updates it (an outlet editing a story that an aggregator
        also lists), and so does the article's own page, read at the article's own address
        (see :func:`_own_page`): that is the story as its outlet now tells it. Whichever of
        the two edits last gives the article's text. A page much shorter than the article
        (less than :data:`OWN_PAGE_MIN_SHARE` of its text) changes nothing: a consent wall or
        a paywall at the story's address is not the story.
        """
        known = self.state.article_hashes(a.id for a in batch)
        contested = [a for a in batch if a.id in known and known[a.id] != a.content_hash]
        source = self.state.get_source(source_id) if contested else None
        if source is None:
            return batch
        kept: dict[str, Article] = {}
        for article in contested:
            if not self.state.source_ids_of(article.id) - {source_id}:
                continue  # its own article, or one no source holds
            current = self.state.get_article(article.id)
            if current is None or current.source == source.spec:
                continue
            if _words(current) == _words(article):
                kept[article.id] = current
            elif _own_page(source, article):
                if len(article.text) < OWN_PAGE_MIN_SHARE * len(current.text):
                    # A consent wall or a paywall at the story's address tells less than
                    # the article: the page holds the article as it is.
                    log.info("page source %s is much shorter than article %s; kept as it was",
                             source.id, article.id)
                    kept[article.id] = current
                    continue
                log.info("page source %s updates article %s, which source %s delivered first",
                         source.id, article.id, current.source)
                if pages is not None:
                    pages.add(article.id)
            else:
                own = own_article_id(article.url, article.title, source.spec)
                log.info("source %s lists %s with other text than the article another source "
                         "delivered there; kept apart as %s", source.id, article.url, own)
                kept[article.id] = article.model_copy(update={"id": own})
        return [kept.get(a.id, a) for a in batch]

    def remove_source(self, spec: str, *, path: str | None = None,
                      ) -> tuple[SourceRecord, int]:
        """Forget a source (by id, name, URL or path; ``path`` is ``spec`` resolved where
        the caller is, when it named no existing file); the articles no other source holds
        leave the registry and the store. Returns the source and how many articles left."""
        with self.write_lock:
            source = self.state.find_source(spec)
            if source is None and not spec.strip().isdigit():
                with suppress(SourceError):  # a malformed URL names no source
                    source = self.state.find_source(normalise_spec(spec))
            if source is None and path:
                source = self.state.find_source(path)
            if source is None:
                raise NewsbotError(f"no source {spec!r} is registered; {SOURCES_LISTED}")
            # Registry first, in one transaction: a crash before the store catches up leaves
            # chunks the next incremental sync deletes, never an article without a source.
            orphans = self.state.delete_source(source.id)
            self.indexer.remove(orphans)
        self.retriever.refresh()  # a removed source's words are gone when this returns
        return source, len(orphans)

    # -- reindex ---------------------------------------------------------------------------
    def reindex(self, progress: Progress | None = None, *, full: bool = False,
                dry_run: bool = False, record: bool = True) -> ReindexReport:
        """Sync the store to the registry, or (``full``) rebuild it into a new collection.

        Incremental: articles missing from the store are added, those whose stored chunks
        do not match the registry are rewritten, and chunks of unregistered articles are
        deleted. Full: a new collection is filled, verified, then switched to; the live one
        serves questions throughout, and a failure or a crash leaves it untouched.
        """
        progress = progress or Progress()
        t0 = time.perf_counter()
        with self.write_lock:
            articles = self.state.counts()[0]
            if full:
                report = ReindexReport(full=True, dry_run=dry_run, articles=articles)
                if not dry_run:
                    self._rebuild(progress, report)
            else:
                report = self._sync_store(progress, dry_run=dry_run)
            report.collection = self.store.collection_name
            report.chunks = self.store.count()
        report.seconds = time.perf_counter() - t0
        # The service's own sync at start is recorded only when it repaired something.
        changed = report.full or report.added or report.updated or report.deleted
        if not dry_run and (record or changed):
            # After a full one: the index built at the switch goes live (if no question has
            # put it there yet) and the old collection's folder goes.
            self.retriever.refresh()
            self.state.set_meta("last_reindex", json.dumps(
                {"at": utcnow().isoformat(), "ok": True, "summary": report.summary()}))
        return report

    def _sync_store(self, progress: Progress, *, dry_run: bool) -> ReindexReport:
        # Articles no source holds (left by an older version's crash) leave the registry;
        # the comparison below then takes their chunks out of the store.
        orphans = self.state.orphan_article_ids()
        if orphans and not dry_run:
            self.state.delete_articles(orphans)
        registry = self.state.chunk_counts()
        if dry_run:
            for aid in orphans:
                registry.pop(aid, None)
        stored = self.store.chunk_numbers()
        report = ReindexReport(full=False, dry_run=dry_run, articles=len(registry))
        missing = [aid for aid in registry if aid not in stored]
        wrong = [aid for aid, n in registry.items()
                 if aid in stored and stored[aid] != set(range(n))]
        extra = [aid for aid in stored if aid not in registry]
        report.added, report.updated, report.deleted = len(missing), len(wrong), len(extra)
        if dry_run:
            return report
        progress.start("sync", len(missing) + len(wrong))
        if extra:
            self.indexer.remove(extra)
        todo = missing + wrong
        for start in range(0, len(todo), BATCH_ARTICLES):
            progress.check()
            batch = [a for aid in todo[start : start + BATCH_ARTICLES]
                     if (a := self.state.get_article(aid)) is not None]
            counts = self.indexer.index(batch, changed=[a.id for a in batch if a.id in stored],
                                        on_chunks=progress.chunks)
            self.state.set_chunk_counts(counts)
            progress.done_articles(len(batch))
        return report

    def _rebuild(self, progress: Progress, report: ReindexReport) -> None:
        embedder = self.target_embedder
        progress.start("rebuild", report.articles)
        staging = self.store.begin_rebuild(model_id=embedder.model_id)
        indexer = Indexer(self.store, embedder, self.indexer.chunker)
        try:
            counts: dict[str, int] = {}
            for batch in _batches(self.state.iter_articles(), BATCH_ARTICLES):
                progress.check()
                counts.update(indexer.index(batch, collection=staging,
                                            on_chunks=progress.chunks))
                progress.done_articles(len(batch))
            self._verify(staging, counts, embedder)
            progress.start("keyword index", None)
            self.retriever.prime((staging.name, self.store.version_after_switch(staging)),
                                 staging)
        except BaseException as exc:
            self.store.abort_rebuild(staging)
            self.state.set_meta("last_reindex", json.dumps(
                {"at": utcnow().isoformat(), "ok": False, "summary": str(exc) or repr(exc)}))
            raise
        self.store.finish_rebuild(staging)
        self.state.set_chunk_counts(counts)
        if embedder is not self.indexer.embedder:
            # The new model serves from now on: searches and ingests switch with the store.
            self.indexer.embedder = embedder
            self.retriever.embedder = embedder

    def _verify(self, staging: object, counts: dict[str, int], embedder: Embedder) -> None:
        expected = sum(counts.values())
        got = int(staging.count())  # type: ignore[attr-defined]
        if got != expected:
            raise NewsbotError(f"reindex check failed: {got} chunks stored, {expected} expected; "
                               "the live store was left as it was")
        if not counts:
            return
        # A few articles must find themselves by their first chunk in the new collection.
        # Not by headline: a column a feed runs daily gives many articles the same one.
        for aid in random.Random(0).sample(sorted(counts), min(3, len(counts))):
            article = self.state.get_article(aid)
            if article is None or not counts[aid]:
                continue
            first = self.indexer.chunker.split(article)[0]
            hits = self.store.query(embedder.embed_documents([first.indexed_text])[0], 10,
                                    collection=staging)
            # A copy of it under other ids (the same report syndicated) may fill the top
            # ten; its words are stored then, at next to no distance.
            if first.id not in {h.id for h in hits} and not (
                    hits and hits[0].distance < SAME_TEXT_DISTANCE):
                raise NewsbotError(f"reindex check failed: {article.title!r} is not found by "
                                   "its own text; the live store was left as it was")

    # -- status ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        articles, _ = self.state.counts()
        last_reindex = self.state.get_meta("last_reindex")
        try:
            reindex = json.loads(last_reindex) if last_reindex else None
        except ValueError:  # written by an older version as a bare timestamp
            reindex = {"at": last_reindex, "ok": True, "summary": ""}
        counts = self.state.source_article_counts()
        return {
            "articles": articles,
            "chunks": self.store.count(),
            "embedding_model": self.store.built_with,
            "configured_embedding_model": self.target_embedder.model_id,
            "full_reindex_needed": self.model_change_pending,
            "store": self.store.location,
            "collection": self.store.collection_name,
            "model": self.settings.llm_model if self.settings.llm_enabled else None,
            "mode": "model" if self.settings.llm_enabled else "extractive",
            "last_ingest": self.state.get_meta("last_ingest"),
            "last_reindex": reindex,
            "sources": [source_json(s, counts.get(s.id, 0), self.settings)
                        for s in self.state.list_sources()],
        }

    def sources(self) -> list[SourceSummary]:
        """What members see: outlets with article counts and newest dates."""
        return [
            SourceSummary(outlet=r["outlet"] or "(unknown outlet)", articles=int(r["articles"]),
                          newest=datetime.fromisoformat(r["newest"]) if r["newest"] else None)
            for r in self.state.outlet_summary()
        ]

    def source_list(self) -> list[dict[str, Any]]:
        """What admins see: every source with its health."""
        counts = self.state.source_article_counts()
        return [source_json(s, counts.get(s.id, 0), self.settings)
                for s in self.state.list_sources()]

    # -- export and import -----------------------------------------------------------------
    def export(self, path: Path) -> dict[str, int]:
        """Write the sources and the registry (full texts) as JSONL; returns the counts."""
        path = Path(path)
        if path.is_file() and not _is_export(path):
            # A typo or a tab completion must not cost someone their file.
            raise NewsbotError(f"{path} exists and is not a newsbot export; nothing was "
                               "written (give another name, or remove it first)")
        tmp = path.with_name(path.name + ".part")
        n_sources = n_articles = 0
        with tmp.open("w", encoding="utf-8") as out:
            for s in self.state.list_sources():
                out.write(json.dumps({"type": "source", "spec": s.spec, "kind": s.kind,
                                      "name": s.name, "watch": s.watch,
                                      "every_min": s.every_min, "backfill": s.backfill,
                                      "added_at": s.added_at.isoformat()}) + "\n")
                n_sources += 1
            members = self.state.memberships()
            for a in self.state.iter_articles():
                record = {"type": "article", **a.model_dump(mode="json", exclude={"content_hash"}),
                          "sources": members.get(a.id, [])}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                n_articles += 1
        tmp.replace(path)  # a reader never sees half a backup
        return {"sources": n_sources, "articles": n_articles}

    def import_(self, path: Path, progress: Progress | None = None) -> dict[str, Any]:
        """Restore sources and articles from an export, then sync the store to them."""
        progress = progress or Progress()
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise NewsbotError(f"{path.name} is not a newsbot export (not UTF-8 text); nothing "
                               "was imported") from None
        except OSError as exc:
            raise NewsbotError(f"cannot read {path}: {exc.strerror or exc}") from None
        sources: list[dict[str, Any]] = []
        articles: list[tuple[Article, list[dict[str, Any]]]] = []
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if record.get("type") == "source":
                    if not {"spec", "kind"} <= set(record):
                        raise ValueError("a source needs spec and kind")
                    sources.append(record)
                elif record.get("type") == "article":
                    members = record.pop("sources", [])
                    record.pop("type")
                    articles.append((Article.model_validate(record), members))
                else:
                    raise ValueError("unknown record type")
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(map(str, first["loc"])) or "record"
                raise NewsbotError(f"{path.name}:{i} is not a newsbot export record ({where}: "
                                   f"{first['msg']}); nothing was imported") from None
            except (ValueError, TypeError, AttributeError) as exc:
                raise NewsbotError(f"{path.name}:{i} is not a newsbot export record ({exc}); "
                                   "nothing was imported") from None
        with self.write_lock:
            restored = self.state.import_records(sources, articles)
            report = self.reindex(progress)
        return {"sources": len(sources), "articles": len(articles), "restored": restored,
                "reindex": report.to_json()}


def source_json(s: SourceRecord, articles: int, settings: Settings) -> dict[str, Any]:
    """One source as `sources list --json` and `/feeds list` show it."""
    def iso(dt: datetime | None) -> str | None:
        return dt.isoformat() if dt else None

    return {
        "id": s.id, "kind": s.kind, "name": s.name, "spec": s.spec,
        "watched": s.watch,
        "every_min": (s.every_min or settings.poll_minutes) if s.watch else None,
        "status": s.status, "failures": s.failures, "last_error": s.last_error,
        "last_fetch": iso(s.last_fetch), "last_ok": iso(s.last_ok),
        "next_poll": iso(s.next_poll) if s.watch and s.status != "disabled" else None,
        "articles": articles,
    }


def _own_page(source: SourceRecord, article: Article) -> bool:
    """Whether ``article`` is the page ``source`` fetched at the article's own address.

    A page source is fetched at its spec, and its article's URL is that spec unless the page
    redirected or names another address as its own (a canonical link): such a page is not
    taken for that address's. A feed's item, whatever link it lists, is never one.
    """
    return source.kind == "page" and article.url is not None and article.url == source.spec


def _words(article: Article) -> str:
    """The hash of an article's words, whatever the spacing and paragraph breaks between
    them (a feed's one block and its page's paragraphs say the same). The headline is left
    out: a feed's item often names the story otherwise than its page does, and the same
    text under another headline is the same story."""
    return text_hash("", " ".join(article.text.split()))


def _batches(items: Iterable[Article], size: int) -> Iterator[list[Article]]:
    batch: list[Article] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _is_export(path: Path) -> bool:
    """Whether ``path`` is empty or opens with a record an export writes (one ``export``
    may replace: last night's backup). Its opening is enough: every record starts with its
    type."""
    try:
        with path.open("rb") as f:
            head = f.read(64).lstrip()
    except OSError:
        return False
    return not head or head.startswith((b'{"type": "source"', b'{"type": "article"'))
