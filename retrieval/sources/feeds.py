"""RSS and Atom feeds (via feedparser): one poll of a feed, hostile input, and probing a URL.

A feed watcher polls in two steps, so that it pays for page fetches only for items it has
not seen::

    fetcher = Fetcher(timeout_s=settings.fetch_timeout_s, max_bytes=settings.max_feed_bytes)
    got = poll_feed(fetcher, url, etag=stored_etag, last_modified=stored_last_modified)
    if isinstance(got, Failure):        # got.reason, got.permanent (404/410): back off
        ...
    elif isinstance(got, NotModified):  # 304: store got.etag / got.last_modified
        ...
    else:                               # a Feed: store got.etag / got.last_modified
        new = [e for e in got.entries if not known(e)]
        for item in complete_entries(fetcher, new):  # Article | Skipped, in order
            ...

``known(e)`` is the caller's registry check: by ``e.guid``, then ``e.link``, then
``e.content_hash`` (any of them may be None). A known GUID or link whose ``content_hash``
differs is an edited item. ``content_hash`` covers the title and text the feed itself gave
(not the page a teaser links to, not the date), so it stays the same from poll to poll.

Within one feed, entries are already deduplicated, the first occurrence kept: a repeated GUID
on the same story, the same link under a new GUID, the same body under a new link. A GUID
that several different stories share identifies none of them, so those entries carry
``guid=None`` and are told apart by link and content.

Hostile input, measured with this feedparser and the expat in this Python:
- feedparser never fetches external entities or DTDs, but it keeps "safe" internal entity
  declarations, and its lenient parser expands them without limit: a 200 KB feed declaring
  one 50 KB entity used 50,000 times took minutes and gigabytes. Expat's own guard against
  billion-laughs stops at an amplification factor of 100, which on a 10 MB feed is still a
  gigabyte. So a document that declares any entity before its root element is refused
  outright (:class:`FeedError`) before either parser sees it; real feeds never need to.
- Malformed XML that still yields entries (a bare "&", a wrong encoding label, a truncated
  tail) is read leniently and the feed carries a ``warning``.
- Size and time are bounded by the :class:`~retrieval.sources.web.Fetcher`.
- Dates more than a day ahead are dropped (see :mod:`retrieval.articles`); the next date the
  entry gives (updated, created) is used instead when it is believable.

``probe(fetcher, url)`` tells whether a URL is a feed, an article page, or neither, with one
line saying why, for a command that adds a source.
"""

from __future__ import annotations

import io
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from xml.parsers import expat

import feedparser
from feedparser import FeedParserDict
from feedparser.encodings import convert_to_utf8

from retrieval.articles import (
    Article,
    ArticleError,
    build_article,
    canonical_url,
    clean_text,
    parse_datetime,
    text_hash,
    trusted_date,
)
from retrieval.sources import Skipped
from retrieval.sources.web import (
    NO_ARTICLE,
    Failure,
    Fetcher,
    NotModified,
    Page,
    feed_links,
    html_to_text,
    page_article,
    page_text,
)

# Entries with less text than this are usually teasers; their page is fetched for the story.
SHORT_TEXT = 500

_FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml",
               "application/xml", "text/xml", "application/feed+json")
_HTML_CONTENT = ("text/html", "application/xhtml+xml")
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_FEED_NAMES = {"rss": "an RSS feed", "atom": "an Atom feed"}


class FeedError(ValueError):
    """A document refused before parsing; the message says why."""


@dataclass(frozen=True)
class FeedEntry:
    """One item of a feed as the feed gave it, before any page is fetched."""

    guid: str | None
    """The entry's id (RSS guid, Atom id); None when absent or shared by different stories."""
    link: str | None
    """The canonical link (see :func:`retrieval.articles.canonical_url`), None when unusable."""
    content_hash: str | None
    """Hash of the feed's own title and text; None when the feed gave no text."""
    title: str
    text: str
    """Plain text from the feed: full content when given, else the summary (maybe "")."""
    published_at: datetime | None
    author: str | None
    outlet: str | None
    source: str
    name: str
    """How to name the entry in a report: its link, else "<feed>[index]"."""

    @property
    def needs_page(self) -> bool:
        """The feed gave a teaser at most, and there is a page to read the story from."""
        return len(self.text) < SHORT_TEXT and self.link is not None

    def article(self, text: str | None = None, url: str | None = None) -> Article | Skipped:
        """The entry as an Article, with ``text`` (from its page) in place of the feed's, and
        ``url`` (where that page was read) in place of its link."""
        try:
            return build_article(title=self.title, text=text or self.text,
                                 url=url or self.link,
                                 published_at=self.published_at, outlet=self.outlet,
                                 author=self.author, ext_id=self.guid, source=self.source)
        except ArticleError as err:
            return Skipped(self.name, str(err))


@dataclass(frozen=True)
class Feed:
    """One successful poll of a feed."""

    url: str
    """The final URL, after redirects."""
    title: str | None
    etag: str | None
    """Validators to send with the next poll (None when the server gave none)."""
    last_modified: str | None
    entries: list[FeedEntry] = field(default_factory=list)
    """Unique within the feed, in feed order."""
    skipped: list[Skipped] = field(default_factory=list)
    """Entries dropped as duplicates within the feed."""
    warning: str | None = None
    """Set when the XML was malformed but readable: "malformed XML, read leniently (...)"."""


@dataclass(frozen=True)
class Probe:
    """What a URL turned out to be."""

    kind: Literal["feed", "page", "none"]
    url: str
    """The final URL after redirects (the URL asked for when nothing answered)."""
    reason: str
    """One line: 'an RSS feed "Harbour News" with 12 entries', 'HTTP 404', ..."""
    title: str | None = None
    entries: int = 0
    permanent: bool = False
    """For kind "none": asking again cannot help (HTTP 404 or 410)."""
    feed_url: str | None = None
    """A feed the page announces in its head, when it is an HTML page."""

    @property
    def ok(self) -> bool:
        return self.kind != "none"


# --- parsing --------------------------------------------------------------------------------


def _declares_entities(utf8: bytes) -> bool:
    """Whether the document declares XML entities ahead of its root element.

    Expat finds the root (and stops there); the text search covers declarations expat does
    not report but feedparser's own regular expressions would still pick up (inside a
    comment, or after a malformed prolog, in which case the whole document is searched).
    """
    parser = expat.ParserCreate()
    root: list[int] = []

    class Stop(Exception):
        pass

    def at_root(name: str, attrs: dict[str, str]) -> None:
        root.append(parser.CurrentByteIndex)
        raise Stop

    def at_entity(*args: object) -> None:
        raise FeedError("declares XML entities")

    parser.StartElementHandler = at_root
    parser.EntityDeclHandler = at_entity
    try:
        parser.Parse(utf8, True)
    except FeedError:
        return True
    except (Stop, expat.ExpatError):
        pass
    end = root[0] if root else len(utf8)
    return _ENTITY_DECL.search(utf8, 0, end) is not None


def parse(data: bytes, *, content_type: str = "", url: str | None = None) -> FeedParserDict:
    """Parse feed bytes; raises FeedError for a document that declares XML entities.

    The bytes are passed as a stream, so feedparser never takes them for a path or URL.
    """
    headers = {"content-type": content_type} if content_type else {}
    utf8 = convert_to_utf8(dict(headers), data, {})  # what both of feedparser's parsers read
    if _declares_entities(utf8):
        raise FeedError("refused: the document declares XML entities")
    if url:
        headers["content-location"] = url  # resolves relative links in entries
    # Both options rewrite HTML for display; newsbot flattens it to text (scripts and styles
    # dropped), so they would only cost time: a third of a 10,000-item parse.
    return feedparser.parse(io.BytesIO(data), response_headers=headers, sanitize_html=False,
                            resolve_relative_uris=False)


def sniff(page: Page) -> FeedParserDict | None:
    """The parsed feed when a response is one (by content type, or feedparser recognises it).

    Raises FeedError when the response is refused.
    """
    if page.content_type in _HTML_CONTENT:
        # Pages are far more common than mislabelled feeds; only a feed root counts here.
        head = page.body[:1024].lstrip().lower()
        if not head.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf")):
            return None
    content_type = page.content_type
    if page.charset:
        content_type += f"; charset={page.charset}"
    parsed = parse(page.body, content_type=content_type, url=page.url)
    if page.content_type in _FEED_TYPES or parsed.get("version") or parsed.entries:
        return parsed
    return None


def _short(exc: Any) -> str:
    lines = str(exc or "").strip().splitlines()
    return lines[0][:120] if lines else "unreadable"


def _unreadable(parsed: FeedParserDict) -> str | None:
    """Why a parsed document with no entries is not a feed at all; None when it is one."""
    if parsed.entries:
        return None  # malformed XML that still yields entries is read leniently
    if parsed.get("bozo"):
        return f"not a valid feed: {_short(parsed.get('bozo_exception'))}"
    if not parsed.get("version"):
        return "not a valid feed: no RSS or Atom content"
    return None


# --- entries --------------------------------------------------------------------------------


def _as_text(value: str, content_type: str | None) -> str:
    if (content_type or "text/html") in _HTML_CONTENT and ("<" in value or "&" in value):
        return html_to_text(value)
    return value


def _detail_text(node: FeedParserDict, key: str) -> str:
    """A text construct (title, summary) as plain text; feedparser notes whether it is HTML."""
    value = node.get(key) or ""
    detail = node.get(f"{key}_detail") or {}
    return _as_text(value, detail.get("type")).strip() if value else ""


def _entry_text(entry: FeedParserDict) -> str:
    """Full content (content:encoded, Atom content) when present, else the summary."""
    contents = [c for c in entry.get("content") or [] if (c.get("value") or "").strip()]
    if contents:
        best = next((c for c in contents if c.get("type") in _HTML_CONTENT), contents[0])
        text = _as_text(best["value"], best.get("type")).strip()
        if text:
            return text
    return _detail_text(entry, "summary")


def _entry_date(entry: FeedParserDict, now: datetime) -> datetime | None:
    """Publication date, else the last update; a date far in the future is passed over."""
    for key in ("published", "updated", "created"):
        # Read as a plain dict: feedparser's own lookup hands back "published" for "updated".
        parsed = dict.get(entry, f"{key}_parsed")
        found: datetime | None
        if parsed:
            # feedparser gives UTC struct_times; a leap second (tm_sec 60) is no datetime,
            # nor year 10000 (9999-12-31T23:59:59-01:00 in UTC).
            try:
                found = datetime(*parsed[:5], min(parsed[5], 59), tzinfo=UTC)
            except ValueError:
                found = None
        else:
            found = parse_datetime(dict.get(entry, key))  # a format feedparser could not read
        if trusted_date(found, now) is not None:
            return found
    return None


def _entry_author(entry: FeedParserDict) -> str | None:
    if entry.get("author"):
        return str(entry["author"])
    names = [a.get("name") for a in entry.get("authors") or [] if a.get("name")]
    return ", ".join(names) or None


def _entry(raw: FeedParserDict, *, index: int, name: str, source: str, outlet: str | None,
           now: datetime) -> FeedEntry:
    link = canonical_url(raw.get("link"))
    title = clean_text(_detail_text(raw, "title")).replace("\n", " ")
    text = clean_text(_entry_text(raw))
    guid = str(raw.get("id") or "").strip() or None
    return FeedEntry(
        guid=guid,
        link=link,
        content_hash=text_hash(title, text) if text else None,
        title=title,
        text=text,
        published_at=_entry_date(raw, now),
        author=_entry_author(raw),
        outlet=outlet,
        source=source,
        name=link or raw.get("link") or f"{name}[{index}]",
    )


def _same_story(a: FeedEntry, b: FeedEntry) -> bool:
    return ((a.link is not None and a.link == b.link)
            or (a.content_hash is not None and a.content_hash == b.content_hash))


def _unique(entries: list[FeedEntry]) -> tuple[list[FeedEntry], list[Skipped]]:
    """Keep each story's first entry; distrust GUIDs that several different stories share."""
    by_guid: dict[str, list[FeedEntry]] = {}
    for e in entries:
        if e.guid is not None:
            by_guid.setdefault(e.guid, []).append(e)
    shared = {g for g, es in by_guid.items() if any(not _same_story(es[0], e) for e in es[1:])}
    kept: list[FeedEntry] = []
    skipped: list[Skipped] = []
    guids: set[str] = set()
    links: set[str] = set()
    hashes: set[str] = set()
    for e in entries:
        if e.guid in shared:
            e = replace(e, guid=None)
        if e.guid is not None and e.guid in guids:
            skipped.append(Skipped(e.name, "duplicate guid"))
        elif e.link is not None and e.link in links:
            skipped.append(Skipped(e.name, "duplicate link"))
        elif e.content_hash is not None and e.content_hash in hashes:
            skipped.append(Skipped(e.name, "duplicate content"))
        else:
            kept.append(e)
        for key, seen in ((e.guid, guids), (e.link, links), (e.content_hash, hashes)):
            if key is not None:
                seen.add(key)
    return kept, skipped


def feed_entries(parsed: FeedParserDict, *, name: str,
                 source: str) -> tuple[list[FeedEntry], list[Skipped]]:
    """The entries of a parsed feed, deduplicated, and a Skipped for each duplicate dropped."""
    outlet = _detail_text(parsed.feed, "title") or None
    now = datetime.now(UTC)
    entries = [_entry(raw, index=i, name=name, source=source, outlet=outlet, now=now)
               for i, raw in enumerate(parsed.entries)]
    return _unique(entries)


def _page_texts(fetcher: Fetcher, todo: Sequence[FeedEntry],
                budget_s: float | None) -> dict[str, tuple[str, str, str | None]]:
    """(page text, why there is none, the page's final URL) per link, fetched a batch at a
    time.

    Only the text of each batch is kept, so memory holds a few pages, never all of them.
    """
    titles = {e.link: e.title for e in todo if e.link is not None}
    links = list(titles)
    deadline = None if budget_s is None else time.monotonic() + budget_s
    found: dict[str, tuple[str, str, str | None]] = {}
    step = fetcher.concurrency * 4
    for start in range(0, len(links), step):
        batch = links[start:start + step]
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        for link, got in zip(batch, fetcher.get_many(batch, budget_s=left), strict=True):
            if isinstance(got, Page):
                text = page_text(got, titles[link])
                found[link] = (text, "" if text else NO_ARTICLE, canonical_url(got.url))
            elif isinstance(got, Failure):
                found[link] = ("", f"page {got.reason}", None)
    return found


def complete_entries(fetcher: Fetcher | None, entries: Sequence[FeedEntry], *,
                     budget_s: float | None = None,
                     at_page: bool = True) -> list[Article | Skipped]:
    """An Article (or a Skipped saying why not) per entry, in order.

    Entries with only a teaser are completed from their pages, ``fetcher.concurrency`` at a
    time, each fetch within the fetcher's deadline, all within ``budget_s`` when given. A
    page that fails leaves the feed's own text; with no fetcher, no page is fetched.

    An article read from its page has the page's address (after redirects) for its URL, so
    a link through a redirect is the same article as the page itself, ingested or listed
    elsewhere; a page that several of the entries lead to (a consent wall, a home page) is
    none of theirs, and they keep their links. With ``at_page`` False every entry keeps its
    link: a caller that remembers no item's link cannot tell a page that an entry of an
    earlier read reached from this entry's own.
    """
    todo = [e for e in entries if e.needs_page]
    pages = _page_texts(fetcher, todo, budget_s) if fetcher is not None and todo else {}
    reached = Counter(at for _, _, at in pages.values() if at is not None)
    out: list[Article | Skipped] = []
    for e in entries:
        full, why, at = pages.get(e.link, ("", "", None)) if e.link is not None else ("", "", None)
        from_page = len(full) > len(e.text)
        own = at if at_page and from_page and at is not None and reached[at] == 1 else None
        item = e.article(full if from_page else e.text, own)
        if isinstance(item, Skipped) and why and item.reason == "empty body":
            item = Skipped(item.name, f"empty body ({why})")
        out.append(item)
    return out


def feed_items(parsed: FeedParserDict, *, name: str, source: str,
               fetcher: Fetcher | None) -> Iterator[Article | Skipped]:
    """One Article (or Skipped) per entry; a Skipped for the whole feed when it has none.

    With a ``fetcher``, entries whose text is short are completed from their linked page.
    Each article is at its entry's link: a read that keeps no links (a feed file) cannot
    tell a page its items share from one an earlier item reached, so only a caller that
    remembers item links reads them at their pages (:func:`complete_entries`).
    """
    if not parsed.entries:
        yield Skipped(name, _unreadable(parsed) or "feed has no entries")
        return
    # A bozo feed that still has entries (a stray character, a wrong encoding label) is kept.
    entries, skipped = feed_entries(parsed, name=name, source=source)
    if why := _broken(entries, parsed):
        yield Skipped(name, why)
        return
    yield from skipped
    yield from complete_entries(fetcher, entries, at_page=False)


def load_feed_file(path: Path, *, name: str, source: str,
                   fetcher: Fetcher | None) -> Iterator[Article | Skipped]:
    """Entries of a feed file."""
    try:
        parsed = parse(path.read_bytes())
    except FeedError as err:
        yield Skipped(name, str(err))
        return
    yield from feed_items(parsed, name=name, source=source, fetcher=fetcher)


# --- one poll, one probe --------------------------------------------------------------------


def _feed(page: Page, parsed: FeedParserDict, source: str) -> Feed:
    entries, skipped = feed_entries(parsed, name=page.url, source=source)
    warning = None
    if parsed.get("bozo"):
        warning = f"malformed XML, read leniently ({_short(parsed.get('bozo_exception'))})"
    return Feed(url=page.url, title=_detail_text(parsed.feed, "title") or None,
                etag=page.etag, last_modified=page.last_modified, entries=entries,
                skipped=skipped, warning=warning)


def _broken(entries: list[FeedEntry], parsed: FeedParserDict) -> str | None:
    """Why malformed XML that gave no item with a text or a link (none can become an
    article) is a broken response (cut off, garbled), not a feed with nothing new: read as
    that, a source whose feed broke stayed "ok" while it delivered nothing. None when the
    feed is usable."""
    if parsed.get("bozo") and not any(e.text or e.link for e in entries):
        return f"not a valid feed: {_short(parsed.get('bozo_exception'))}"
    return None


def _what_it_is(page: Page) -> str:
    if not page.body.strip():
        return "an empty response"
    if page.is_html:
        return "an HTML page"
    return page.content_type or "an unlabelled response"


def poll_feed(fetcher: Fetcher, url: str, *, etag: str | None = None,
              last_modified: str | None = None,
              source: str | None = None) -> Feed | NotModified | Failure:
    """Fetch and parse one feed; no linked page is fetched (see :func:`complete_entries`).

    ``etag``/``last_modified`` are the validators stored from the last poll. ``source``
    (default: ``url``) is recorded on every entry. A response that is no feed is a Failure
    ("not a feed: an HTML page", "not a valid feed: ...", "refused: ..."), never permanent.
    """
    got = fetcher.get(url, etag=etag, last_modified=last_modified)
    if not isinstance(got, Page):
        return got
    try:
        parsed = sniff(got) if got.body.strip() else None
    except FeedError as err:
        return Failure(str(err))
    if parsed is None:
        return Failure(f"not a feed: {_what_it_is(got)}")
    return read_feed(got, parsed, source or url)


def read_feed(page: Page, parsed: FeedParserDict, source: str) -> Feed | Failure:
    """The feed ``page`` holds (as :func:`sniff` parsed it), or why it is no usable feed."""
    if why := _unreadable(parsed):
        return Failure(why)
    feed = _feed(page, parsed, source)
    return Failure(why) if (why := _broken(feed.entries, parsed)) else feed


def probe(fetcher: Fetcher, url: str) -> Probe:
    """Fetch ``url`` once and say whether it is a feed, an article page, or neither."""
    got = fetcher.get(url)
    if isinstance(got, Failure):
        return Probe("none", url, got.reason, permanent=got.permanent)
    if isinstance(got, NotModified):  # only an odd server answers 304 to a plain GET
        return Probe("none", got.url, "HTTP 304 to a request without validators")
    try:
        parsed = sniff(got) if got.body.strip() else None
    except FeedError as err:
        return Probe("none", got.url, str(err))
    if parsed is not None:
        why = _unreadable(parsed)
        if why:
            return Probe("none", got.url, why)
        feed = _feed(got, parsed, url)
        if why := _broken(feed.entries, parsed):
            return Probe("none", got.url, why)
        kind = _FEED_NAMES.get(re.sub(r"\d+$", "", parsed.get("version") or ""), "a feed")
        count = len(feed.entries)
        title = f' "{feed.title}"' if feed.title else ""
        return Probe("feed", got.url, f"{kind}{title} with {count} "
                     f"entr{'y' if count == 1 else 'ies'}", title=feed.title, entries=count)
    if not got.is_html:
        return Probe("none", got.url, "not a feed or an article page "
                     f"({_what_it_is(got)})")
    announced = feed_links(got)
    feed_url = announced[0] if announced else None
    item = page_article(got, name=got.url, source=url)
    if isinstance(item, Article):
        return Probe("page", got.url, f'an article page "{item.title}"', title=item.title,
                     feed_url=feed_url)
    reason = item.reason
    if feed_url:
        reason += f"; it announces a feed: {feed_url}"
    return Probe("none", got.url, reason, feed_url=feed_url)
