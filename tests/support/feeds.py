"""Feeds and article pages built on demand, for tests and benchmarks served by StaticServer."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

_WORDS = ("harbour", "council", "ferry", "market", "bridge", "library", "school", "orchard",
          "quarry", "railway", "museum", "festival", "river", "station", "garden", "theatre",
          "lighthouse", "bakery", "pier", "chapel")


@dataclass(frozen=True)
class Item:
    """One RSS item; None leaves the element out."""

    title: str | None
    link: str | None = None
    guid: str | None = None
    description: str | None = None
    pub_date: str | None = None
    updated: str | None = None


def rss(items: list[Item], *, title: str = "Harbour Weekly") -> bytes:
    """An RSS 2.0 document holding ``items`` in order."""
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
             f'xmlns:atom="http://www.w3.org/2005/Atom"><channel><title>{escape(title)}</title>'
             "<link>https://harbourweekly.example/</link>"]
    for it in items:
        parts.append("<item>")
        if it.title is not None:
            parts.append(f"<title>{escape(it.title)}</title>")
        if it.link is not None:
            parts.append(f"<link>{escape(it.link)}</link>")
        if it.guid is not None:
            parts.append(f'<guid isPermaLink="false">{escape(it.guid)}</guid>')
        if it.description is not None:
            parts.append(f"<description>{escape(it.description)}</description>")
        if it.pub_date is not None:
            parts.append(f"<pubDate>{it.pub_date}</pubDate>")
        if it.updated is not None:
            parts.append(f"<atom:updated>{it.updated}</atom:updated>")
        parts.append("</item>\n")
    parts.append("</channel></rss>\n")
    return "".join(parts).encode("utf-8")


def sentence(n: int, words: int = 12) -> str:
    """A deterministic, distinct sentence for number ``n``."""
    picked = [_WORDS[(n * 7 + i * 3 + i * i) % len(_WORDS)] for i in range(words)]
    return f"Report {n}: the " + " ".join(picked) + "."


def numbered_items(start: int, stop: int, *, base: str = "https://harbourweekly.example",
                   long_text: bool = False) -> list[Item]:
    """Items ``start``..``stop-1``, each with its own guid, link, date and text."""
    items = []
    for n in range(start, stop):
        text = " ".join(sentence(n * 10 + k) for k in range(8 if long_text else 1))
        items.append(Item(title=f"Item {n}: {sentence(n, 5)}", link=f"{base}/news/{n}",
                          guid=f"hw-{n}", description=text,
                          pub_date=f"Mon, 03 Jun 2024 {n % 24:02d}:{n % 60:02d}:00 GMT"))
    return items


def article_page(title: str, paragraphs: list[str]) -> str:
    """An HTML page holding one article, with navigation around it."""
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            "</head><body><nav><a href='/'>Home</a> <a href='/news'>News</a></nav>"
            f"<article><h1>{escape(title)}</h1>{body}</article>"
            "<footer>Harbour Weekly</footer></body></html>")


def story_paragraphs(n: int) -> list[str]:
    """Four paragraphs of a story, long enough for any extractor to take for an article."""
    return [" ".join(sentence(n * 100 + p * 10 + k, 14) for k in range(3)) for p in range(4)]
