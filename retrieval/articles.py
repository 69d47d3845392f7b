"""The Article model: normalisation, stable ids and content hashes.

Every source (feed, web page, file) produces :class:`Article` objects; everything downstream
(registry, chunker, store) relies on the guarantees made here: a non-empty title and text,
a canonical URL when there is one, a timezone-aware ``published_at`` when known, and an id
that stays the same when the same story is fetched again.

Dates more than a day in the future are not trusted: a story cannot have been published
tomorrow, and such a date would sort it above everything for days. A day of slack allows
for servers that label local time as UTC. An untrusted date is dropped (the article stays,
undated) rather than clamped, so no date is ever shown that the source did not give.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, computed_field

# Query parameters that only track where a reader came from; they never change the story.
_TRACKING_PARAMS = re.compile(r"^(utm_.*|fbclid|gclid|mc_cid|mc_eid|ref|ref_src|cmpid|ocid)$", re.I)

# How far ahead of the clock a publication date may be and still be believed.
FUTURE_SLACK = timedelta(days=1)

# The longest text taken as one article: five times the longest of the 2,383 Wikinews
# articles (103,193 characters), a book's length. A page or a record past it is a dump, not
# a story, and would hold the single writer for minutes embedding thousands of chunks.
MAX_ARTICLE_CHARS = 500_000

# Lenient field names seen in exported news data, in order of preference.
_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "title": ("title", "headline", "name"),
    "text": ("body", "text", "content", "article", "description", "summary"),
    "url": ("url", "link", "canonical_url", "href"),
    "published_at": ("published_at", "published", "date", "pubDate", "pub_date", "datetime",
                     "created_at", "updated_at", "timestamp"),
    "outlet": ("outlet", "source", "publisher", "site", "site_name", "feed"),
    "author": ("author", "byline", "authors", "creator"),
    "ext_id": ("id", "guid", "uid"),
}


class ArticleError(ValueError):
    """An input record cannot become an article; the message says why, briefly."""


class Article(BaseModel):
    """One news article as the rest of the system sees it."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    text: str
    url: str | None = None
    outlet: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    ext_id: str | None = Field(default=None, description="the source's own id (GUID, dataset id)")
    source: str | None = Field(default=None, description="the registered source it came from")

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def content_hash(self) -> str:
        """Hash of what readers see; a changed hash means the article must be re-chunked."""
        h = hashlib.sha256()
        for part in (self.title, self.text, self.url or "", self.outlet or "",
                     self.published_at.isoformat() if self.published_at else ""):
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()[:32]

    @property
    def date_str(self) -> str:
        """ISO date (YYYY-MM-DD) or an empty string."""
        return self.published_at.date().isoformat() if self.published_at else ""


def clean_text(text: str) -> str:
    """Normalise Unicode and whitespace while keeping paragraph breaks."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    # Zero-width characters and BOMs carry nothing for a reader but break matching.
    text = re.sub(r"[\u200b-\u200d\u2060\ufeff]", "", text)
    paragraphs = [re.sub(r"[ \t\f\v\u00a0]+", " ", p).strip() for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(" ".join(line.strip() for line in p.split("\n")) for p in paragraphs if p)


def canonical_url(url: str | None, *, sort_query: bool = True) -> str | None:
    """Lower-case scheme and host, drop fragments, default ports and tracking parameters;
    the query's parameters sorted unless ``sort_query`` is false (an address to fetch, whose
    server may read them in order)."""
    if not url or not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # an unclosed IPv6 bracket, a port out of range: the link is unusable
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    host = (parts.hostname or "").lower()
    # hostname drops the brackets around an IPv6 literal; they are needed to rebuild the URL.
    netloc = f"[{host}]" if ":" in host else host
    scheme = parts.scheme.lower()
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        netloc = f"{netloc}:{port}"
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
              if not _TRACKING_PARAMS.match(k)]
    query = urlencode(sorted(params) if sort_query else params)
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/")
    return urlunsplit((scheme, netloc, path, query, ""))


def other_scheme(url: str | None) -> str | None:
    """``url`` (canonical) under the other of http and https, where sites serve the same
    story; None when it is neither."""
    if not url:
        return None
    parts = urlsplit(url)
    scheme = {"http": "https", "https": "http"}.get(parts.scheme)
    return urlunsplit(parts._replace(scheme=scheme)) if scheme else None


def text_hash(title: str, text: str) -> str:
    """Hash of a story's words alone (not its URL or date), to spot one body at two addresses.

    ``title`` and ``text`` are expected cleaned (:func:`clean_text`), as Article fields are.
    """
    h = hashlib.sha256()
    for part in (title.casefold(), text.casefold()):
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def trusted_date(value: datetime | None, now: datetime | None = None) -> datetime | None:
    """``value``, unless it lies more than :data:`FUTURE_SLACK` ahead of ``now``."""
    if value is None:
        return None
    if value > (now or datetime.now(UTC)) + FUTURE_SLACK:
        return None
    return value


def make_article_id(url: str | None, title: str, text: str) -> str:
    """Stable id: from the canonical URL, else from the content."""
    key = canonical_url(url) or f"{title}\n{text}"
    return "a" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def own_article_id(url: str | None, title: str, source: str) -> str:
    """Id of one source's version of an article whose usual id another source holds.

    Ids come from the URL, so a feed can list an item under another outlet's link; its
    version is kept apart under this id (the link and the source together) rather than
    written over the article the other source delivered.
    """
    key = f"{canonical_url(url) or title}\n{source}"
    return "a" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def parse_datetime(value: Any) -> datetime | None:
    """Parse the date formats found in feeds and exports; naive values are taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int | float):
        # Epoch seconds (or milliseconds, which exports often use).
        ts = float(value) / (1000 if value > 1e11 else 1)
        try:
            dt = datetime.fromtimestamp(ts, tz=UTC)
        except (OverflowError, OSError, ValueError):  # out of the platform's range, or NaN
            return None
    elif isinstance(value, str):
        s = value.strip()
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                dt = parsedate_to_datetime(s)
            except (TypeError, ValueError):
                import dateparser  # slow import; only for unusual formats

                dt = dateparser.parse(s, settings={"RETURN_AS_TIMEZONE_AWARE": False})
                if dt is None:
                    return None
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:  # "9999-12-31T23:59:59-01:00" is in no year a datetime can hold
        return None


def _pick(record: Mapping[str, Any], field: str) -> Any:
    for name in _FIELD_ALIASES[field]:
        value = record.get(name)
        if value not in (None, "", [], {}):
            return value
    return None


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        value = ", ".join(str(v.get("name", v)) if isinstance(v, Mapping) else str(v)
                          for v in value)
    elif isinstance(value, Mapping):
        value = value.get("name") or value.get("title") or value.get("value")
    return str(value).strip() or None if value is not None else None


def build_article(
    *,
    title: Any,
    text: Any,
    url: Any = None,
    published_at: Any = None,
    outlet: Any = None,
    author: Any = None,
    ext_id: Any = None,
    source: str | None = None,
) -> Article:
    """Validate and normalise raw fields into an Article, or raise ArticleError."""
    body = clean_text(_as_text(text) or "")
    if not body:
        raise ArticleError("empty body")
    if len(body) > MAX_ARTICLE_CHARS:
        raise ArticleError(f"too long ({len(body):,} characters; an article has at most "
                           f"{MAX_ARTICLE_CHARS:,})")
    head = clean_text(_as_text(title) or "").replace("\n", " ")
    if not head:
        # A headline-less item still informs; its first sentence stands in for a title.
        head = re.split(r"(?<=[.!?])\s", body, maxsplit=1)[0][:120]
    link = canonical_url(_as_text(url))
    return Article(
        id=make_article_id(link, head, body),
        title=head[:300],
        text=body,
        url=link,
        outlet=_as_text(outlet),
        author=_as_text(author),
        published_at=trusted_date(parse_datetime(published_at)),
        ext_id=_as_text(ext_id),
        source=source,
    )


def article_from_record(record: Mapping[str, Any], *, source: str | None = None,
                        default_outlet: str | None = None) -> Article:
    """Build an Article from a loosely named mapping (JSON record, front matter)."""
    if not isinstance(record, Mapping):
        raise ArticleError("not an object")
    return build_article(
        title=_pick(record, "title"),
        text=_pick(record, "text"),
        url=_pick(record, "url"),
        published_at=_pick(record, "published_at"),
        outlet=_pick(record, "outlet") or default_outlet,
        author=_pick(record, "author"),
        ext_id=_pick(record, "ext_id"),
        source=source,
    )
