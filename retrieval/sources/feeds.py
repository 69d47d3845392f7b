"""RSS and Atom feeds, from a file or a fetched response, via feedparser."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
from feedparser import FeedParserDict

from retrieval.articles import Article, ArticleError, build_article, parse_datetime
from retrieval.sources import Skipped
from retrieval.sources.web import Fetcher, Page, html_to_text, page_text

# Entries with less text than this are usually teasers; their page is fetched for the story.
SHORT_TEXT = 500

_FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml",
               "application/xml", "text/xml", "application/feed+json")
_HTML_CONTENT = ("text/html", "application/xhtml+xml")


def parse(data: bytes, *, content_type: str = "", url: str | None = None) -> FeedParserDict:
    """Parse feed bytes; a stream is passed so feedparser never takes them for a path or URL."""
    headers = {"content-type": content_type} if content_type else {}
    if url:
        headers["content-location"] = url  # resolves relative links in entries
    return feedparser.parse(io.BytesIO(data), response_headers=headers)


def sniff(page: Page) -> FeedParserDict | None:
    """The parsed feed when a response is one (by content type, or feedparser recognises it)."""
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


def load_feed_file(path: Path, *, name: str, source: str,
                   fetcher: Fetcher | None) -> Iterator[Article | Skipped]:
    """Entries of a feed file."""
    yield from feed_items(parse(path.read_bytes()), name=name, source=source, fetcher=fetcher)


def feed_items(parsed: FeedParserDict, *, name: str, source: str,
               fetcher: Fetcher | None) -> Iterator[Article | Skipped]:
    """One Article (or Skipped) per entry; a Skipped for the whole feed when it has none.

    With a ``fetcher``, entries whose text is short are completed from their linked page.
    """
    if not parsed.entries:
        if parsed.get("bozo"):
            yield Skipped(name, f"not a valid feed: {_short(parsed.get('bozo_exception'))}")
        elif not parsed.get("version"):
            yield Skipped(name, "not a valid feed: no RSS or Atom content")
        else:
            yield Skipped(name, "feed has no entries")
        return
    # A bozo feed that still has entries (a stray character, a wrong encoding label) is kept.
    outlet = _detail_text(parsed.feed, "title") or None
    for i, entry in enumerate(parsed.entries):
        link = entry.get("link") or ""
        entry_name = link or f"{name}[{i}]"
        title = _detail_text(entry, "title")
        text = _entry_text(entry)
        if fetcher is not None and len(text) < SHORT_TEXT and link.startswith(("http://",
                                                                               "https://")):
            text = _fuller_text(fetcher, link, text, title)
        try:
            yield build_article(
                title=title,
                text=text,
                url=link,
                published_at=_entry_date(entry),
                outlet=outlet,
                author=_entry_author(entry),
                ext_id=entry.get("id"),
                source=source,
            )
        except ArticleError as err:
            yield Skipped(entry_name, str(err))


def _short(exc: Any) -> str:
    lines = str(exc or "").strip().splitlines()
    return lines[0][:120] if lines else "unreadable"


def _as_text(value: str, content_type: str | None) -> str:
    if (content_type or "text/html") in _HTML_CONTENT:
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


def _fuller_text(fetcher: Fetcher, link: str, text: str, title: str) -> str:
    page = fetcher.get(link)
    if isinstance(page, str):
        return text  # the summary still informs; a dead link must not lose the entry
    full = page_text(page, title)
    return full if len(full) > len(text) else text


def _entry_date(entry: FeedParserDict) -> datetime | None:
    """Publication date, else the last update; feedparser gives both as UTC struct_times."""
    for key in ("published", "updated", "created"):
        parsed = entry.get(f"{key}_parsed")
        if parsed:
            # A leap second (tm_sec 60) is valid in a struct_time but not in a datetime.
            return datetime(*parsed[:5], min(parsed[5], 59), tzinfo=UTC)
        # feedparser could not read the format; the broader parser may.
        found = parse_datetime(entry.get(key))
        if found:
            return found
    return None


def _entry_author(entry: FeedParserDict) -> str | None:
    if entry.get("author"):
        return str(entry["author"])
    names = [a.get("name") for a in entry.get("authors") or [] if a.get("name")]
    return ", ".join(names) or None
