"""What the bot follows: adding, polling and backing off feeds and pages.

One poll of a source: fetch it (conditionally, with the validators of the last fetch),
drop items already known (by GUID, then link, then the article body), ingest what is new or
changed in one batch, and record the outcome. Failures back off exponentially; after
``feed_max_failures`` in a row the source is disabled with its reason kept, and the poll
report says so once, so the service can tell moderators once.

The first successful fetch of a new source stores its items; whoever posts briefs posts
none of them unless the source was added with a backfill.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from bot.core.admin import AdminService, IngestReport, Progress, normalise_spec
from bot.core.models import SOURCES_LISTED, NewsbotError
from bot.core.state import BriefIntake, SourceRecord, State, utcnow
from bot.settings import Settings
from retrieval.articles import Article, make_article_id, own_article_id
from retrieval.sources import Skipped, feeds
from retrieval.sources.feeds import Feed, FeedEntry, Probe, complete_entries, poll_feed
from retrieval.sources.web import Failure, Fetcher, NotModified, page_article

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=6)
POLL_BUDGET_TIMEOUTS = 4  # page reads of one poll: at most this many fetch timeouts
MAX_SOURCE_NAME = 80  # characters, as /feeds add's name option allows


@dataclass(slots=True)
class Fetched:
    """One fetch of a source: its new or changed items, or why there are none."""

    articles: list[Article] = field(default_factory=list)
    item_hashes: dict[str, str | None] = field(default_factory=dict)  # article id -> feed hash
    item_links: dict[str, str | None] = field(default_factory=dict)  # article id -> item link
    skipped: list[Skipped] = field(default_factory=list)
    known: int = 0  # items dropped before any page fetch: delivered before, unchanged
    deferred: int = 0  # new items left for the next poll: their pages did not fit the budget
    error: str | None = None
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None


Known = Callable[[FeedEntry], bool]


def fetch_source(fetcher: Fetcher, source: SourceRecord, is_known: Known, *,
                 budget_s: float) -> Fetched:
    """Poll a feed (entries the source already delivered unchanged are dropped before any
    page is fetched) or a page, conditionally on the validators of the last fetch."""
    if source.kind == "page":
        got = fetcher.get(source.spec, etag=source.etag, last_modified=source.last_modified)
        if isinstance(got, Failure):
            return Fetched(error=got.reason)
        if isinstance(got, NotModified):
            return Fetched(not_modified=True, etag=got.etag, last_modified=got.last_modified)
        item = page_article(got, name=source.spec, source=source.spec)
        if isinstance(item, Skipped):
            return Fetched(error=item.reason, skipped=[item])
        return Fetched(articles=[item], etag=got.etag, last_modified=got.last_modified)
    feed = poll_feed(fetcher, source.spec, etag=source.etag,
                     last_modified=source.last_modified)
    if isinstance(feed, Failure):
        return Fetched(error=feed.reason)
    if isinstance(feed, NotModified):
        return Fetched(not_modified=True, etag=feed.etag, last_modified=feed.last_modified)
    return read_items(fetcher, feed, is_known, budget_s=budget_s)


def read_items(fetcher: Fetcher, feed: Feed, is_known: Known, *, budget_s: float | None,
               on_read: Callable[[int], None] | None = None) -> Fetched:
    """The new or changed items of ``feed``, each read from the page its link leads to when
    the feed gives only a teaser; within ``budget_s`` (None: all of them), ``on_read``
    told how many articles each step read."""
    out = Fetched(skipped=list(feed.skipped), etag=feed.etag, last_modified=feed.last_modified)
    fresh = [e for e in feed.entries if not is_known(e)]
    out.known = len(feed.entries) - len(fresh)
    # Pages are read a few at a time within one budget for the poll: items not reached are
    # left for the next poll (they are still new then), so a slow site cannot hold the
    # watcher for longer than the budget however many new items its feed lists.
    deadline = None if budget_s is None else time.monotonic() + budget_s
    step = fetcher.concurrency * 2
    read: list[tuple[FeedEntry, Article]] = []
    for start in range(0, len(fresh), step):
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            out.deferred = len(fresh) - start
            if out.deferred:
                out.etag = out.last_modified = None  # the next poll must see them again
            break
        group = fresh[start : start + step]
        before = len(read)
        for entry, item in zip(group, complete_entries(fetcher, group, budget_s=left),
                               strict=True):
            if isinstance(item, Skipped):
                out.skipped.append(item)
            else:
                read.append((entry, item))
        if on_read is not None and len(read) > before:
            on_read(len(read) - before)
    # A page that several items lead to (a consent wall, a home page) is none of theirs.
    reached = Counter(item.id for _, item in read)
    for entry, item in read:
        if reached[item.id] > 1:
            item = _at_link(item, entry.link)
        out.articles.append(item)
        out.item_hashes[item.id] = entry.content_hash
        out.item_links[item.id] = entry.link
    return out


def _shortened(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a word where it can be, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2:]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"


def _at_link(article: Article, link: str | None) -> Article:
    """``article`` under the item's own link rather than the page it was read from."""
    if link is None or article.url == link:
        return article
    return article.model_copy(update={"id": make_article_id(link, article.title, article.text),
                                      "url": link})


def probe(url: str, *, timeout_s: float, max_bytes: int, allow_private: bool = False) -> Probe:
    """Whether ``url`` is a feed or an article page (see retrieval.sources.feeds.probe)."""
    return feeds.probe(Fetcher(timeout_s=timeout_s, max_bytes=max_bytes,
                               allow_private=allow_private), url)


@dataclass(slots=True)
class SourcePoll:
    """One source's share of a poll."""

    id: int
    label: str
    outcome: str  # changed | unchanged | not modified | failed | disabled
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    deferred: int = 0  # new items whose pages did not fit this poll: read at the next
    error: str | None = None
    first_fetch: bool = False
    backfill: int = 0
    newly_disabled: bool = False
    seconds: float = 0.0
    added_ids: list[str] = field(default_factory=list)
    updated_ids: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.outcome in ("failed", "disabled"):
            return f"{self.label}: {self.outcome} ({self.error})"
        if self.outcome == "not modified":
            return f"{self.label}: not modified"
        first = " (first fetch)" if self.first_fetch else ""
        later = f", {self.deferred} left for the next poll" if self.deferred else ""
        return (f"{self.label}: {self.added} new, {self.updated} updated, "
                f"{self.unchanged} unchanged{later}{first}")


@dataclass(slots=True)
class PollReport:
    sources: list[SourcePoll] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"sources": [asdict(s) for s in self.sources], "seconds": round(self.seconds, 2)}


class SourceService:
    """Follows feeds and pages: add, poll, back off, disable."""

    def __init__(self, settings: Settings, state: State, admin: AdminService) -> None:
        self.settings = settings
        self.state = state
        self.admin = admin

    # -- adding ----------------------------------------------------------------------------
    def add(self, url: str, *, name: str | None = None, every_min: int | None = None,
            backfill: int = 0, progress: Progress | None = None) -> dict[str, Any]:
        """Check that ``url`` is a feed or an article page, follow it, and fetch it once.

        Nothing is recorded when the check fails. Adding a source that is already followed
        re-enables it when it was disabled.
        """
        url = url.strip()
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (raises on a port out of range)
        except ValueError:
            raise NewsbotError(f"not a feed or page URL: {url!r} (it is malformed)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            why = ("it names no host" if parts.scheme in ("http", "https")
                   else "it must start with http:// or https://")
            raise NewsbotError(f"not a feed or page URL: {url!r} ({why})")
        if every_min is not None and not 1 <= every_min <= 10080:
            raise NewsbotError("the interval must be between 1 and 10080 minutes")
        if backfill < 0:
            raise NewsbotError("backfill must be 0 or more")
        # Followed and recorded in the one form ingest and removal use: "HTTP://Host/feed"
        # or the feed with a tracking parameter is the source already followed, not another.
        url = normalise_spec(url)
        if name is not None:
            name = " ".join(name.split()) or None  # one line: it heads a listing's entry
            if name and len(name) > MAX_SOURCE_NAME:
                raise NewsbotError(f"a source name is 1 to {MAX_SOURCE_NAME} characters")
            other = self.state.find_source(name) if name else None
            if name and name.isdigit():
                raise NewsbotError("a source name cannot be a number (numbers are ids)")
            if other is not None and other.spec != url:
                raise NewsbotError(f"the name {name!r} is taken by source {other.id}")
        found = probe(url, timeout_s=self.settings.fetch_timeout_s,
                      max_bytes=self.settings.max_feed_bytes,
                      allow_private=self.settings.allow_private_urls)
        if found.kind == "none":
            raise NewsbotError(f"cannot follow {url}: {found.reason}")
        with self.admin.write_lock:
            new = self.state.find_source(url) is None
            source = self.state.add_source(url, found.kind, name=name, watch=True,
                                           every_min=every_min, backfill=backfill)
            # A feed's own title is only a default name: for a source that has none (and
            # not one another source holds). Added again, to re-enable it or to change its
            # interval, a source keeps the name it was given.
            title = _shortened(" ".join((found.title or "").split()), MAX_SOURCE_NAME)
            if source.name is None and title and not title.isdigit() and not (
                    (taken := self.state.find_source(title)) and taken.id != source.id):
                self.state.update_source(source.id, name=title)
            if source.status == "disabled" or source.failures:
                self.state.update_source(source.id, status="ok", failures=0, last_error=None,
                                         next_poll=utcnow())
            source = self.state.get_source(source.id) or source
            with self.admin.dropped_if_stopped(source, new=new):
                result = self.poll_source(source, progress)
        return {"id": source.id, "kind": source.kind, "name": source.name, "spec": source.spec,
                "title": found.title, "found": found.reason,
                "every_min": source.every_min or self.settings.poll_minutes,
                "poll": asdict(result)}

    # -- polling ---------------------------------------------------------------------------
    def poll(self, *, only: str | None = None, due_only: bool = True,
             progress: Progress | None = None, now: datetime | None = None) -> PollReport:
        """Poll the watched sources that are due (all of them with ``due_only=False``, or
        the one ``only`` names)."""
        t0 = time.perf_counter()
        if only is not None:
            source = self.state.find_source(only)
            if source is None:
                raise NewsbotError(f"no source {only!r} is registered; {SOURCES_LISTED}")
            if source.kind == "file":
                raise NewsbotError(f"{source.label} is a file; files are loaded with "
                                   "`newsbot ingest`, not polled")
            todo = [source]
        elif due_only:
            todo = self.state.due_sources(now or utcnow())
        else:
            todo = [s for s in self.state.list_sources() if s.watch and s.status != "disabled"]
        report = PollReport()
        for source in todo:
            if progress:
                progress.check()
            with self.admin.write_lock:
                # As it is now: a write between two sources (a removal, a re-add) may have
                # changed or removed it since the list was read.
                current = self.state.get_source(source.id)
                if current is not None:
                    report.sources.append(self.poll_source(current, progress))
        report.seconds = time.perf_counter() - t0
        return report

    def poll_source(self, source: SourceRecord, progress: Progress | None = None) -> SourcePoll:
        """Fetch one source and ingest what is new; records success or failure."""
        t0 = time.perf_counter()
        now = utcnow()
        result = SourcePoll(id=source.id, label=source.label, outcome="unchanged",
                            first_fetch=source.polls == 0, backfill=source.backfill)
        fetcher = Fetcher(timeout_s=self.settings.fetch_timeout_s,
                          max_bytes=self.settings.max_feed_bytes,
                          allow_private=self.settings.allow_private_urls)
        try:
            # A poll reads its feed and the new items' pages within a few fetch timeouts.
            fetched = fetch_source(fetcher, source, self._known(source),
                                   budget_s=POLL_BUDGET_TIMEOUTS * self.settings.fetch_timeout_s)
        except Exception as exc:
            # What a feed or a page holds set off a fault in reading it: that source fails
            # and backs off. Raised, it ended the poll before the sources after it, and
            # the source, due again at once and first in line, ended every poll after.
            log.exception("reading source %s (%s) failed", source.id, source.label)
            fetched = Fetched(error=f"could not be read ({type(exc).__name__})")
        interval = timedelta(minutes=source.every_min or self.settings.poll_minutes)
        if fetched.error:
            return self._failed(source, result, fetched.error, now, interval, t0)
        result.skipped = len(fetched.skipped)
        result.deferred = fetched.deferred
        result.unchanged = fetched.known
        if fetched.not_modified:
            result.outcome = "not modified"
        elif fetched.articles:
            report = IngestReport()
            try:
                # Queued for briefs in the transaction that records them: planning them
                # later may be cut short by a crash, but the queue is picked up again.
                self._record(source, fetched, report, progress,
                             BriefIntake(source.id, first_fetch=source.polls == 0,
                                         backfill=source.backfill))
            except Exception:
                self._record_failed(source, now, interval)
                raise
            result.added, result.updated = report.added, report.updated
            result.unchanged += report.unchanged
            result.added_ids, result.updated_ids = report.added_ids, report.updated_ids
            if report.added or report.updated:
                result.outcome = "changed"
                self.admin.note_ingest(report)
                # Nobody waits on a poll: questions use the index as it was until then.
                self.admin.retriever.refresh_soon()
        self.state.update_source(
            source.id, last_fetch=now, last_ok=now,
            # Items left over are read soon, unconditionally (a 304 would hide them).
            next_poll=now + (min(interval, timedelta(minutes=1)) if fetched.deferred
                             else interval),
            # A first fetch lasts until it has read all its items: those it left over are
            # the feed's back catalogue too, not news to brief.
            polls=0 if result.first_fetch and fetched.deferred else source.polls + 1,
            failures=0, status="ok", last_error=None,
            etag=None if fetched.deferred else fetched.etag or source.etag,
            last_modified=None if fetched.deferred
            else fetched.last_modified or source.last_modified)
        result.seconds = time.perf_counter() - t0
        return result

    def _record(self, source: SourceRecord, fetched: Fetched, report: IngestReport,
                progress: Progress | None, briefs: BriefIntake | None) -> None:
        """Record the articles of one read of ``source`` as this source knows its items,
        with each item's hash and link remembered for the next read."""
        guids = self.state.known_guids(source.id)  # once per read, not once per item
        articles = [_same_id(guids, a)
                    for a in self._own_pages(source, fetched.articles, fetched.item_links)]
        articles = self.admin.sync_articles(
            articles, source.id, report, progress, guids={a.id: a.ext_id for a in articles},
            briefs=briefs)
        pairs = list(zip(articles, fetched.articles, strict=True))
        self.state.set_item_hashes(
            source.id, {a.id: fetched.item_hashes.get(orig.id) for a, orig in pairs},
            {a.id: fetched.item_links.get(orig.id) for a, orig in pairs})

    def ingest_feed(self, spec: str, feed: Feed, fetcher: Fetcher, report: IngestReport,
                    progress: Progress) -> str | None:
        """Ingest a feed URL once (``newsbot ingest``): its items recorded as a poll records
        them (each at the page its link leads to, its link remembered), but every item at
        once and no brief queued. Returns why nothing was recorded, or None. Call under
        the admin's ``write_lock``."""
        held = self.state.find_source(spec)
        fetched = read_items(fetcher, feed, self._known(held) if held else lambda e: False,
                             budget_s=None, on_read=progress.done_articles)
        report.skipped += fetched.skipped
        report.unchanged += fetched.known
        if not fetched.articles and not fetched.known:
            return (fetched.skipped[0].reason if len(fetched.skipped) == 1
                    else f"no usable articles ({len(fetched.skipped)} skipped)"
                    if fetched.skipped else "feed has no entries")
        source = self.state.add_source(spec, "feed")
        with self.admin.fetched_once(source, new=held is None):
            if fetched.articles:
                # Articles were counted as read; the write moves the chunk count.
                self._record(source, fetched, report, replace(progress, articles=None), None)
        return None

    def _record_failed(self, source: SourceRecord, now: datetime, interval: timedelta) -> None:
        """A poll whose articles the store could not take (a Chroma server that does not
        answer, a full disk) recorded nothing, and its validators are kept, so its items are
        still new at the next poll: that one comes after the source's interval, not at the
        watcher's next tick (which would read the feed, its new pages and embed them again
        every 30 s while the store is away). Not the source's failure: no back-off."""
        try:
            self.state.update_source(source.id, last_fetch=now, next_poll=now + interval)
        except Exception:  # the state may be what refused the write; the poll's error says so
            log.warning("could not reschedule source %s after a failed poll", source.id,
                        exc_info=True)

    def _failed(self, source: SourceRecord, result: SourcePoll, error: str, now: datetime,
                interval: timedelta, t0: float) -> SourcePoll:
        failures = source.failures + 1
        result.error = error
        if failures >= self.settings.feed_max_failures:
            result.outcome = "disabled"
            result.newly_disabled = source.status != "disabled"
            reason = f"disabled after {failures} failed polls in a row; last: {error}"
            self.state.update_source(source.id, last_fetch=now, failures=failures,
                                     status="disabled", last_error=reason, next_poll=None)
            result.error = reason
            log.warning("source %s (%s) %s", source.id, source.label, reason)
        else:
            result.outcome = "failed"
            # Doubling from the source's own interval, capped: a flaky feed is retried
            # soon, a dead one is not hammered.
            delay = min(interval * (2 ** (failures - 1)), max(MAX_BACKOFF, interval))
            self.state.update_source(source.id, last_fetch=now, failures=failures,
                                     status="failing", last_error=error,
                                     next_poll=now + delay)
        result.seconds = time.perf_counter() - t0
        return result

    def _known(self, source: SourceRecord) -> Known:
        """Whether a feed entry was delivered before, unchanged: by GUID, then link, then
        the feed's hash of its text. Such entries are dropped before any page fetch."""
        items = self.state.source_items(source.id)  # article id -> (guid, item hash, link)
        by_guid = {guid: (aid, h) for aid, (guid, h, _) in items.items() if guid}
        hashes = {h for _, h, _ in items.values() if h}
        # An item read from the page its link redirects to has that page's id.
        by_link = {link: aid for aid, (_, _, link) in items.items() if link}

        def is_known(entry: FeedEntry) -> bool:
            aid = (by_link.get(entry.link) or make_article_id(entry.link, entry.title, entry.text)
                   if entry.link is not None else None)
            if entry.guid is not None and entry.guid in by_guid:
                known_id, known_hash = by_guid[entry.guid]
                # Same GUID: known unless its text was edited or its link moved (an item
                # kept apart from another source's article has an id of its own).
                return known_hash == entry.content_hash and (
                    aid in (None, known_id)
                    or known_id == own_article_id(entry.link, entry.title, source.spec))
            if aid is not None and aid in items:
                return items[aid][1] == entry.content_hash
            return entry.content_hash is not None and entry.content_hash in hashes

        return is_known

    def _own_pages(self, source: SourceRecord, articles: list[Article],
                   links: dict[str, str | None]) -> list[Article]:
        """``articles`` as this source knows its items.

        An item read from a page that is not its alone (see :meth:`_contested`) keeps its
        own link's id: a consent wall or a home page that items of one feed or of several
        lead to is none of theirs. An item whose link the source already holds is that
        article, wherever the link leads now (an outlet retitling a story moves its
        address): ids come from the page's address, so without this a feed item with no
        GUID would become a second article when its redirect changed.
        """
        items = self.state.source_items(source.id)  # article id -> (guid, item hash, link)
        by_link = {link: aid for aid, (_, _, link) in items.items() if link}
        ids = {a.id for a in articles}
        out: list[Article] = []
        for article in articles:
            link = links.get(article.id)
            if link is None:
                out.append(article)
                continue
            if article.url != link and self._contested(source, article, link, items):
                article = _at_link(article, link)
            held = by_link.get(link) or next(
                # Items recorded before links were remembered: at their link, with none.
                (aid for aid in (make_article_id(link, "", ""),
                                 own_article_id(link, article.title, source.spec))
                 if aid in items and items[aid][2] is None), None)
            # Never onto another item of this poll (two items leading to one page).
            if held is not None and held != article.id and held not in ids:
                article = article.model_copy(update={"id": held})
            out.append(article)
        return out

    def _contested(self, source: SourceRecord, article: Article, link: str,
                   items: dict[str, tuple[str | None, str | None, str | None]]) -> bool:
        """Whether the page ``article`` was read from, through the item's ``link``, is
        another item's: this source holds it, or holds its version of it, for another
        item, or another source holds it for an item that led there through another
        link. A page ingested by URL, or listed at its own address, is not contested."""
        own = own_article_id(article.url, article.title, source.spec)
        if any(aid in items and items[aid][2] != link for aid in (article.id, own)):
            return True
        return any(other not in (None, link, article.url)
                   for sid, other in self.state.item_links(article.id).items()
                   if sid != source.id)


def _same_id(guids: dict[str, str], article: Article) -> Article:
    """An item whose GUID the source delivered before (``guids``: GUID -> article id) keeps
    that article's id, even when its link changed (a feed moving its site keeps its GUIDs)."""
    known = guids.get(article.ext_id) if article.ext_id is not None else None
    if known is None or known == article.id:
        return article
    return article.model_copy(update={"id": known})
