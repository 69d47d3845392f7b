"""Article files: JSON, JSON Lines and Markdown with YAML front matter."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import frontmatter
import yaml

from retrieval.articles import Article, ArticleError, article_from_record
from retrieval.sources import Skipped
from retrieval.sources.web import plain_text

# Top-level keys of a JSON export that hold the article list.
_LIST_KEYS = ("articles", "items")
# Top-level keys of such an export that name the outlet for all of its articles.
_OUTLET_KEYS = ("outlet", "publisher", "site_name")
# An ATX heading of level one: "# Title" (optionally closed by #s).
_H1 = re.compile(r"^#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.M)
# What "surrogateescape" makes of a byte that is not UTF-8: files are read with it so such a
# byte is found and named, never silently replaced by U+FFFD (a cp1252 export's accents).
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def _not_utf8(text: str, *, first_line: int = 1) -> str | None:
    """Why ``text`` (read with "surrogateescape") cannot be used, or None when it is UTF-8."""
    odd = _NOT_UTF8.search(text)
    if odd is None:
        return None
    line_start = text.rfind("\n", 0, odd.start()) + 1
    line = first_line + text.count("\n", 0, odd.start())
    return (f"not UTF-8 text: byte 0x{ord(odd.group()) - 0xdc00:02x} at line {line}, "
            f"column {odd.start() - line_start + 1}; save the file as UTF-8")


def _record(record: Any, *, name: str, source: str,
            default_outlet: str | None = None) -> Article | Skipped:
    if isinstance(record, Mapping):
        record = {k: plain_text(v) if isinstance(v, str) else v for k, v in record.items()}
    try:
        return article_from_record(record, source=source, default_outlet=default_outlet)
    except ArticleError as err:
        return Skipped(name, str(err))


def load_json(path: Path, *, name: str, source: str) -> Iterator[Article | Skipped]:
    """A list of records, an object with an "articles"/"items" list, or a single record."""
    text = path.read_text(encoding="utf-8-sig", errors="surrogateescape")
    if why := _not_utf8(text):
        yield Skipped(name, why)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        yield Skipped(name, "invalid JSON")
        return
    outlet: str | None = None
    if isinstance(data, Mapping):
        key = next((k for k in _LIST_KEYS if isinstance(data.get(k), list)), None)
        if key is not None:
            outlet = next((data[k] for k in _OUTLET_KEYS if isinstance(data.get(k), str)), None)
            data = data[key]
        else:
            yield _record(data, name=name, source=source)
            return
    if not isinstance(data, list):
        yield Skipped(name, "no articles found")
        return
    for i, record in enumerate(data):
        yield _record(record, name=f"{name}[{i}]", source=source, default_outlet=outlet)


def load_jsonl(path: Path, *, name: str, source: str) -> Iterator[Article | Skipped]:
    """One record per line, read line by line so large exports stream."""
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            if why := _not_utf8(line, first_line=lineno):
                yield Skipped(f"{name}:{lineno}", why)
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                yield Skipped(f"{name}:{lineno}", "invalid JSON")
                continue
            yield _record(record, name=f"{name}:{lineno}", source=source)


def load_markdown(path: Path, *, name: str, source: str) -> Iterator[Article | Skipped]:
    """Front matter gives title/url/published_at/outlet/author; the body is the text.

    Without a title in the front matter, the first "# heading" is the title (and leaves the
    body, so the text does not repeat it).
    """
    text = path.read_text(encoding="utf-8-sig", errors="surrogateescape")
    if why := _not_utf8(text):
        yield Skipped(name, why)
        return
    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError:
        yield Skipped(name, "invalid front matter")
        return
    record: dict[str, Any] = {str(k): v for k, v in post.metadata.items()}
    body = post.content
    if not any(record.get(k) for k in ("title", "headline", "name")):
        heading = _H1.search(body)
        if heading:
            record["title"] = heading.group(1)
            body = body[:heading.start()] + body[heading.end():]
    record["body"] = body
    yield _record(record, name=name, source=source)
