"""Loading articles from a source: a file, a folder of files, a feed URL or a web page.

``load_source`` yields :class:`~retrieval.articles.Article` objects as it reads, and a
:class:`Skipped` for every item it could not use, so one bad record never stops a load and
callers can print a summary. Remote failures are reported, never raised.

For following feeds (conditional GET, polls that fetch pages only for new items) and for
checking a URL before recording it, see :mod:`retrieval.sources.feeds` (``poll_feed``,
``complete_entries``, ``probe``) and :mod:`retrieval.sources.web` (``Fetcher``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from retrieval.articles import Article

if TYPE_CHECKING:
    from feedparser import FeedParserDict

    from retrieval.sources.web import Fetcher, Page

# The submodules import Skipped from here, so they are imported inside the functions below.

SourceKind = Literal["dir", "json", "jsonl", "markdown", "feed", "url"]

_SUFFIX_KINDS: dict[str, SourceKind] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".md": "markdown",
    ".markdown": "markdown",
    ".xml": "feed",
    ".rss": "feed",
    ".atom": "feed",
}


class SourceError(ValueError):
    """A source spec that cannot be loaded at all (missing path, unsupported type)."""


@dataclass(frozen=True)
class Skipped:
    """Something a source contained that did not become an article, and why."""

    name: str
    """Where: "feed.xml", "export.jsonl:12", "https://example.org/x"."""
    reason: str
    """Short, for a summary line: "invalid JSON", "HTTP 404", "duplicate url"."""


def source_kind(spec: str) -> SourceKind:
    """What kind of source ``spec`` is; raises SourceError when it cannot be loaded."""
    try:
        parts = urlsplit(spec.strip())
        parts.port  # noqa: B018  (raises on a port out of range)
    except ValueError:  # an unclosed IPv6 bracket
        raise SourceError(f"not a valid URL: {spec}") from None
    if parts.scheme.lower() in ("http", "https"):
        if not parts.netloc:
            raise SourceError(f"not a valid URL: {spec}")
        return "url"
    if "://" in spec:
        hint = ("give the file's path instead" if parts.scheme.lower() == "file"
                else "only http:// and https:// addresses are read")
        raise SourceError(f"unsupported URL scheme: {parts.scheme or spec} ({hint})")
    path = Path(spec).expanduser()
    if path.is_dir():
        return "dir"
    if not path.exists():
        raise SourceError("no such file or folder")
    kind = _SUFFIX_KINDS.get(path.suffix.lower())
    if kind is None:
        raise SourceError(f"unsupported file type: {path.suffix or path.name}")
    return kind


def load_source(spec: str, *, fetcher: Fetcher | None = None, timeout_s: float | None = None,
                max_bytes: int | None = None, fetch_full_text: bool = True,
                allow_private: bool = False) -> Iterator[Article | Skipped]:
    """Yield the articles of ``spec`` (path or http(s) URL) and a Skipped for each unusable item.

    Remote requests go through ``fetcher`` when given, else through a Fetcher with
    ``timeout_s`` (the deadline of each fetch) and ``max_bytes`` (the cap on each response),
    defaulting to 15 s and 10 MB, refusing hosts at non-public addresses unless
    ``allow_private``. ``fetch_full_text`` lets feed entries with only a short
    summary be completed from their linked page.
    """
    kind = source_kind(spec)  # raises now, not on the first next()
    if fetcher is None:
        from retrieval.sources.web import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_S, Fetcher

        fetcher = Fetcher(timeout_s=timeout_s or DEFAULT_TIMEOUT_S,
                          max_bytes=max_bytes or DEFAULT_MAX_BYTES, allow_private=allow_private)
    return _unique(_load(spec, kind, fetcher, fetch_full_text))


def _unique(items: Iterator[Article | Skipped]) -> Iterator[Article | Skipped]:
    seen: set[str] = set()
    for item in items:
        if isinstance(item, Article):
            if item.id in seen:
                # Ids come from the canonical URL, or from the content when there is no URL.
                yield (Skipped(item.url, "duplicate url") if item.url
                       else Skipped(item.title, "duplicate article"))
                continue
            seen.add(item.id)
        yield item


def _load(spec: str, kind: SourceKind, fetcher: Fetcher,
          fetch_full_text: bool) -> Iterator[Article | Skipped]:
    full_text = fetcher if fetch_full_text else None
    if kind == "url":
        yield from _load_url(spec, fetcher, full_text)
    elif kind == "dir":
        root = Path(spec).expanduser()
        for path in _walk(root):
            yield from _load_file(path, _SUFFIX_KINDS[path.suffix.lower()],
                                  path.relative_to(root).as_posix(), spec, full_text)
    else:
        path = Path(spec).expanduser()
        yield from _load_file(path, kind, path.name, spec, full_text)


def _walk(root: Path) -> Iterator[Path]:
    """Supported, non-hidden files under root, in a stable order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            path = Path(dirpath, filename)
            if not filename.startswith(".") and path.suffix.lower() in _SUFFIX_KINDS:
                yield path


def _load_file(path: Path, kind: SourceKind, name: str, source: str,
               fetcher: Fetcher | None) -> Iterator[Article | Skipped]:
    from retrieval.sources import feeds, files

    try:
        if _binary(path):
            yield Skipped(name, "binary data, not a text file")
            return
        if kind == "json":
            yield from files.load_json(path, name=name, source=source)
        elif kind == "jsonl":
            yield from files.load_jsonl(path, name=name, source=source)
        elif kind == "markdown":
            yield from files.load_markdown(path, name=name, source=source)
        else:
            yield from feeds.load_feed_file(path, name=name, source=source, fetcher=fetcher)
    except OSError as exc:
        yield Skipped(name, f"could not read: {exc.strerror or exc}")


def _binary(path: Path) -> bool:
    """Whether ``path`` holds binary data: text files (UTF-8, and the Latin-1 or cp1252 that
    feeds may declare and other files are refused as) have no NUL byte; 8 KB of anything
    else has one."""
    with path.open("rb") as fh:
        return b"\x00" in fh.read(8192)


def fetch_url(spec: str, fetcher: Fetcher) -> tuple[Page, FeedParserDict | None] | Skipped:
    """The page at ``spec`` and, when it is a feed, the feed parsed; or why neither."""
    from retrieval.sources import feeds, web

    page = fetcher.get(spec)
    if isinstance(page, web.Failure):
        return Skipped(spec, page.reason)
    if isinstance(page, web.NotModified) or not page.body.strip():
        return Skipped(spec, "empty body")
    try:
        return page, feeds.sniff(page)
    except feeds.FeedError as err:
        return Skipped(spec, str(err))


def _load_url(spec: str, fetcher: Fetcher, full_text: Fetcher | None,
              ) -> Iterator[Article | Skipped]:
    from retrieval.sources import feeds, web

    got = fetch_url(spec, fetcher)
    if isinstance(got, Skipped):
        yield got
        return
    page, feed = got
    if feed is not None:
        yield from feeds.feed_items(feed, name=spec, source=spec, fetcher=full_text)
    else:
        yield web.page_article(page, name=spec, source=spec)
