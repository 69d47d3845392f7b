"""Polling feeds and probing URLs against a real HTTP server on 127.0.0.1, hostile input too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from retrieval.articles import Article
from retrieval.sources import Skipped, load_source
from retrieval.sources.feeds import (
    SHORT_TEXT,
    Feed,
    FeedEntry,
    complete_entries,
    poll_feed,
    probe,
)
from retrieval.sources.web import Failure, Fetcher, NotModified
from tests.support.feeds import Item, article_page, numbered_items, rss, story_paragraphs
from tests.support.http import StaticServer

RSS = "application/rss+xml; charset=utf-8"
DATA = Path(__file__).resolve().parent.parent / "data" / "sources"
REFUSED = Failure("refused: the document declares XML entities")


@pytest.fixture
def server() -> Iterator[StaticServer]:
    with StaticServer() as srv:
        yield srv


@pytest.fixture
def fetcher() -> Fetcher:
    return Fetcher(allow_private=True, timeout_s=5)


def polled(fetcher: Fetcher, url: str, **kwargs: str) -> Feed:
    got = poll_feed(fetcher, url, **kwargs)
    assert isinstance(got, Feed), got
    return got


class Registry:
    """What a feed watcher remembers of the items it has taken, in the order it checks them."""

    def __init__(self) -> None:
        self.guids: set[str] = set()
        self.links: set[str] = set()
        self.hashes: set[str] = set()

    def known(self, e: FeedEntry) -> bool:
        return bool((e.guid and e.guid in self.guids) or (e.link and e.link in self.links)
                    or (e.content_hash and e.content_hash in self.hashes))

    def take(self, entries: list[FeedEntry]) -> list[FeedEntry]:
        new = [e for e in entries if not self.known(e)]
        for e in new:
            for key, seen in ((e.guid, self.guids), (e.link, self.links),
                              (e.content_hash, self.hashes)):
                if key:
                    seen.add(key)
        return new


# --- polls ----------------------------------------------------------------------------------


def test_items_added_between_polls(server: StaticServer, fetcher: Fetcher) -> None:
    base = server.base_url
    for n in range(5):
        server.add(f"/news/{n}", article_page(f"Item {n}", story_paragraphs(n)))
    url = server.add("/feed.xml", rss(numbered_items(0, 3, base=base)), content_type=RSS)
    registry = Registry()

    first = polled(fetcher, url)
    assert [e.guid for e in first.entries] == ["hw-0", "hw-1", "hw-2"]
    assert first.title == "Harbour Weekly" and first.warning is None
    assert len(registry.take(first.entries)) == 3
    assert server.paths() == ["/feed.xml"]  # a poll fetches no page

    # Two stories are published; the feed lists them first, as feeds do.
    server.add("/feed.xml", rss(numbered_items(3, 5, base=base)[::-1]
                                + numbered_items(0, 3, base=base)), content_type=RSS)
    second = polled(fetcher, url)
    new = registry.take(second.entries)
    assert [e.guid for e in new] == ["hw-4", "hw-3"]
    articles = complete_entries(fetcher, new)
    assert all(isinstance(a, Article) for a in articles)
    assert [a.url for a in articles] == [f"{base}/news/4", f"{base}/news/3"]  # type: ignore[union-attr]
    assert articles[0].text == "\n\n".join(story_paragraphs(4))  # type: ignore[union-attr]
    # Pages were fetched only for the new items.
    assert sorted(server.paths()[2:]) == ["/news/3", "/news/4"]


def test_entry_fields(server: StaticServer, fetcher: Fetcher) -> None:
    url = server.add("/feed.xml", rss(numbered_items(7, 8)), content_type=RSS)
    (entry,) = polled(fetcher, url).entries
    assert entry.guid == "hw-7"
    assert entry.link == "https://harbourweekly.example/news/7"
    assert entry.title.startswith("Item 7: ")
    assert entry.published_at == datetime(2024, 6, 3, 7, 7, tzinfo=UTC)
    assert entry.outlet == "Harbour Weekly" and entry.source == url
    assert entry.needs_page and len(entry.text) < SHORT_TEXT
    assert entry.content_hash and len(entry.content_hash) == 32
    # Without page fetches, the feed's own text makes the article.
    (article,) = complete_entries(None, [entry])
    assert isinstance(article, Article)
    assert article.text == entry.text and article.ext_id == "hw-7"


def test_content_hash_is_the_same_from_poll_to_poll(server: StaticServer,
                                                    fetcher: Fetcher) -> None:
    url = server.add("/feed.xml", rss(numbered_items(0, 2)), content_type=RSS)
    before = [e.content_hash for e in polled(fetcher, url).entries]
    items = numbered_items(0, 2)
    items[1] = Item(title=items[1].title, link=items[1].link, guid=items[1].guid,
                    description=items[1].description + " Corrected.",
                    pub_date=items[1].pub_date)
    server.add("/feed.xml", rss(items), content_type=RSS)
    after = [e.content_hash for e in polled(fetcher, url).entries]
    assert after[0] == before[0] and after[1] != before[1]  # an edited item shows as changed


def test_etag_and_304(server: StaticServer, fetcher: Fetcher) -> None:
    url = server.add("/feed.xml", rss(numbered_items(0, 2)), content_type=RSS, etag='"a1"')
    first = polled(fetcher, url)
    assert first.etag == '"a1"'
    assert poll_feed(fetcher, url, etag='"a1"') == NotModified(url, '"a1"', None)
    server.add("/feed.xml", rss(numbered_items(0, 3)), content_type=RSS, etag='"a2"')
    third = polled(fetcher, url, etag='"a1"')
    assert third.etag == '"a2"' and len(third.entries) == 3


def test_last_modified_and_304(server: StaticServer, fetcher: Fetcher) -> None:
    stamp = "Wed, 05 Jun 2024 10:00:00 GMT"
    url = server.add("/feed.xml", rss(numbered_items(0, 2)), content_type=RSS,
                     last_modified=stamp)
    first = polled(fetcher, url)
    assert first.last_modified == stamp and first.etag is None
    assert poll_feed(fetcher, url, last_modified=stamp) == NotModified(url, None, stamp)


def test_poll_failures(server: StaticServer, fetcher: Fetcher) -> None:
    missing = server.url("/gone.xml")
    assert poll_feed(fetcher, missing) == Failure("HTTP 404", permanent=True, status=404)
    page = server.add("/home", article_page("Home", story_paragraphs(1)))
    assert poll_feed(fetcher, page) == Failure("not a feed: an HTML page")
    empty = server.add("/empty.xml", b"", content_type=RSS)
    assert poll_feed(fetcher, empty) == Failure("not a feed: an empty response")
    slow = server.add("/slow.xml", rss(numbered_items(0, 1)), content_type=RSS, trickle_s=0.1)
    assert poll_feed(Fetcher(allow_private=True, timeout_s=0.5), slow) == Failure(
        "timed out after 0.5 s")


def test_oversize_feed_is_refused(server: StaticServer, fetcher: Fetcher) -> None:
    def fifty_megabytes() -> Iterator[bytes]:
        yield b'<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title>'
        item = rss(numbered_items(0, 1)).split(b"<item>")[1].split(b"</item>")[0]
        block = (b"<item>" + item + b"</item>") * 200
        for _ in range((50 << 20) // len(block)):
            yield block

    url = server.add("/big.xml", content_type=RSS, chunks=fifty_megabytes, chunked=True)
    assert poll_feed(Fetcher(allow_private=True, max_bytes=2_000_000), url) == Failure(
        "too large (>2 MB)")
    assert server.sent["/big.xml"] < 25 << 20


def test_ten_thousand_items(server: StaticServer, fetcher: Fetcher) -> None:
    url = server.add("/wire.xml", rss(numbered_items(0, 10_000)), content_type=RSS)
    feed = polled(fetcher, url)
    assert len(feed.entries) == 10_000 and not feed.skipped
    assert feed.entries[-1].guid == "hw-9999"


# --- malformed input ------------------------------------------------------------------------


def test_malformed_xml_with_entries_is_read_with_a_warning(server: StaticServer,
                                                           fetcher: Fetcher) -> None:
    doc = rss(numbered_items(0, 2)).replace(b"Report 0:", b"Report 0 & more:")
    url = server.add("/bare-amp.xml", doc, content_type=RSS)
    feed = polled(fetcher, url)
    assert [e.guid for e in feed.entries] == ["hw-0", "hw-1"]
    assert feed.warning and feed.warning.startswith("malformed XML, read leniently")
    assert "Report 0 & more:" in feed.entries[0].text


def test_truncated_feed_keeps_the_items_before_the_cut(server: StaticServer,
                                                       fetcher: Fetcher) -> None:
    doc = rss(numbered_items(0, 3))
    cut = doc.index(b"<item>", doc.index(b"hw-1"))  # just after the second item
    url = server.add("/cut.xml", doc[:cut + 20], content_type=RSS)
    feed = polled(fetcher, url)
    assert [e.guid for e in feed.entries][:2] == ["hw-0", "hw-1"]
    assert feed.warning is not None


def test_wrongly_encoded_feed(server: StaticServer, fetcher: Fetcher) -> None:
    doc = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
           "<title>Café Gazette</title><item><title>Crème brûlée stall opens</title>"
           "<link>https://cafe.example/creme</link><description>The café's new stall "
           "sells crème brûlée.</description></item></channel></rss>").encode("latin-1")
    url = server.add("/latin.xml", doc, content_type="application/rss+xml")
    feed = polled(fetcher, url)
    assert feed.title == "Café Gazette"
    assert feed.entries[0].title == "Crème brûlée stall opens"
    assert feed.warning is not None


@pytest.mark.parametrize("body", [
    b"\x00\xff\xfe not xml at all \x89PNG",
    b"<rss version='2.0'><channel><title>Half",
    b"<html><body>Nothing to see</body>",
])
def test_unreadable_feed_is_a_failure(server: StaticServer, fetcher: Fetcher,
                                      body: bytes) -> None:
    url = server.add("/bad.xml", body, content_type=RSS)
    got = poll_feed(fetcher, url)
    assert isinstance(got, Failure) and got.reason.startswith("not a valid feed: ")
    assert not got.permanent


# --- duplicates and dates -------------------------------------------------------------------


def test_duplicates_within_one_feed(server: StaticServer, fetcher: Fetcher) -> None:
    a, b, c, d = numbered_items(0, 4)
    items = [
        a,
        Item(title=a.title, link=a.link, guid="hw-0", description=a.description),  # same GUID
        Item(title=b.title, link=b.link, guid="hw-1"),
        Item(title=b.title, link=b.link + "?utm_source=rss", guid="hw-1-again",  # type: ignore[operator]
             description="A new GUID for the same link."),
        c,
        Item(title=c.title, link="https://mirror.example/copy", guid="mirror-1",  # same body
             description=c.description),
        d,
    ]
    url = server.add("/dupes.xml", rss(items), content_type=RSS)
    feed = polled(fetcher, url)
    assert [e.guid for e in feed.entries] == ["hw-0", "hw-1", "hw-2", "hw-3"]
    assert [s.reason for s in feed.skipped] == ["duplicate guid", "duplicate link",
                                                "duplicate content"]
    assert feed.skipped[1] == Skipped(f"{b.link}", "duplicate link")


def test_one_guid_on_different_stories_is_not_trusted(server: StaticServer,
                                                      fetcher: Fetcher) -> None:
    items = [Item(title=i.title, link=i.link, guid="https://harbourweekly.example/",
                  description=i.description) for i in numbered_items(0, 3)]
    url = server.add("/same-guid.xml", rss(items), content_type=RSS)
    feed = polled(fetcher, url)
    assert len(feed.entries) == 3 and not feed.skipped
    assert {e.guid for e in feed.entries} == {None}
    # A later poll still finds the new story, by its link.
    registry = Registry()
    registry.take(feed.entries)
    more = [Item(title=i.title, link=i.link, guid="https://harbourweekly.example/",
                 description=i.description) for i in numbered_items(0, 4)]
    server.add("/same-guid.xml", rss(more), content_type=RSS)
    assert [e.link for e in registry.take(polled(fetcher, url).entries)] == [more[3].link]


def test_items_without_dates(server: StaticServer, fetcher: Fetcher) -> None:
    items = [Item(title=i.title, link=i.link, guid=i.guid, description=i.description)
             for i in numbered_items(0, 2)]
    url = server.add("/undated.xml", rss(items), content_type=RSS)
    feed = polled(fetcher, url)
    assert [e.published_at for e in feed.entries] == [None, None]
    articles = complete_entries(None, feed.entries)
    assert [a.published_at for a in articles] == [None, None]  # type: ignore[union-attr]


def test_future_dates_are_not_trusted(server: StaticServer, fetcher: Fetcher) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    soon = now + timedelta(hours=20)  # within a day: a timezone slip, kept
    later = now + timedelta(days=3)
    a, b, c = numbered_items(0, 3)
    items = [
        Item(title=a.title, link=a.link, guid=a.guid, description=a.description,
             pub_date=format_datetime(soon, usegmt=True)),
        Item(title=b.title, link=b.link, guid=b.guid, description=b.description,
             pub_date=format_datetime(later, usegmt=True)),
        Item(title=c.title, link=c.link, guid=c.guid, description=c.description,
             pub_date=format_datetime(later, usegmt=True),
             updated=(now - timedelta(hours=2)).isoformat()),
    ]
    url = server.add("/future.xml", rss(items), content_type=RSS)
    feed = polled(fetcher, url)
    assert [e.published_at for e in feed.entries] == [soon, None, now - timedelta(hours=2)]


# --- hostile XML ----------------------------------------------------------------------------


def laughs(*, one_line: bool) -> bytes:
    decls = ['<!ENTITY l0 "ha">'] + [f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">'
                                     for i in range(1, 10)]
    sep = "" if one_line else "\n"
    return (f'<?xml version="1.0"?>{sep}<!DOCTYPE rss [{sep}{sep.join(decls)}{sep}]>{sep}'
            '<rss version="2.0"><channel><title>&l9;</title><item><title>Joke</title>'
            "<link>https://x.example/joke</link><description>&l9;</description></item>"
            "</channel></rss>").encode()


def quadratic() -> bytes:
    # One big "safe" entity used many times: no nesting, so no expat amplification guard
    # notices it early, and feedparser's lenient parser expands every use.
    return ('<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "' + "x" * 50_000 + '">\n]>\n'
            '<rss version="2.0"><channel><title>Q</title><item><title>q</title>'
            "<description>" + "&a;" * 50_000 + "</description></item></channel></rss>"
            ).encode()


@pytest.mark.parametrize("doc", [laughs(one_line=True), laughs(one_line=False), quadratic()],
                         ids=["laughs-one-line", "laughs-multi-line", "quadratic"])
def test_entity_expansion_is_refused(server: StaticServer, fetcher: Fetcher,
                                     doc: bytes) -> None:
    url = server.add("/bomb.xml", doc, content_type=RSS)
    assert poll_feed(fetcher, url) == REFUSED
    assert probe(fetcher, url).reason == REFUSED.reason


def test_entity_declaration_hidden_from_expat_is_refused(server: StaticServer,
                                                         fetcher: Fetcher) -> None:
    # feedparser's own pattern matching would pick this up from inside the comment.
    doc = ('<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!--\n<!ENTITY a "' + "x" * 1000
           + '">\n-->\n]>\n<rss version="2.0"><channel><title>&a;</title></channel></rss>')
    url = server.add("/hidden.xml", doc.encode(), content_type=RSS)
    assert poll_feed(fetcher, url) == REFUSED


def test_xxe_reads_no_file_and_makes_no_request(server: StaticServer, fetcher: Fetcher,
                                                tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("canary-7f3a9c")
    server.add("/evil.dtd", '<!ENTITY leak "canary-from-network">',
               content_type="application/xml-dtd")
    docs = {
        "file": f'<!ENTITY xxe SYSTEM "file://{secret}">',
        "http": f'<!ENTITY xxe SYSTEM "{server.url("/evil.dtd")}">',
        "parameter": f'<!ENTITY % xxe SYSTEM "{server.url("/evil.dtd")}"> %xxe;',
    }
    for name, decl in docs.items():
        doc = (f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n{decl}\n]>\n<rss version="2.0">'
               "<channel><title>X</title><item><title>t &xxe;</title>"
               "<link>https://x.example/t</link><description>d &xxe;</description></item>"
               "</channel></rss>")
        url = server.add(f"/xxe-{name}.xml", doc.encode(), content_type=RSS)
        assert poll_feed(fetcher, url) == REFUSED, name
        # The same document as a file, through the one-off loader.
        path = tmp_path / f"xxe-{name}.xml"
        path.write_text(doc)
        items = list(load_source(str(path), fetch_full_text=False))
        assert items == [Skipped(path.name, REFUSED.reason)]
        assert "canary" not in repr(items)
    assert "/evil.dtd" not in server.paths()


def test_external_dtd_is_not_fetched(server: StaticServer, fetcher: Fetcher) -> None:
    server.add("/rss.dtd", '<!ENTITY leak "canary-from-network">',
               content_type="application/xml-dtd")
    doc = (f'<?xml version="1.0"?>\n<!DOCTYPE rss SYSTEM "{server.url("/rss.dtd")}">\n'
           + rss(numbered_items(0, 1)).decode().split("\n", 1)[1])
    url = server.add("/dtd.xml", doc.encode(), content_type=RSS)
    feed = polled(fetcher, url)
    assert len(feed.entries) == 1
    assert "/rss.dtd" not in server.paths()


# --- full text ------------------------------------------------------------------------------


def test_complete_entries(server: StaticServer, fetcher: Fetcher) -> None:
    base = server.base_url
    server.add("/news/0", article_page("Item 0", story_paragraphs(0)))
    server.add("/news/1", "<html><body><nav><a href='/'>Home</a></nav></body></html>")
    items = numbered_items(0, 3, base=base)
    items.append(Item(title="Photo of the week", link=f"{base}/news/3", guid="hw-3"))
    items.append(Item(title="Long read", link=f"{base}/news/4", guid="hw-4",
                      description=" ".join(story_paragraphs(4))))
    url = server.add("/feed.xml", rss(items), content_type=RSS)
    feed = polled(fetcher, url)
    full, nav_only, dead, no_text, long_read = complete_entries(fetcher, feed.entries)
    assert isinstance(full, Article) and full.text == "\n\n".join(story_paragraphs(0))
    # A page with no article, or none at all: the feed's summary stays.
    assert isinstance(nav_only, Article) and nav_only.text == items[1].description
    assert isinstance(dead, Article) and dead.text == items[2].description
    assert no_text == Skipped(f"{base}/news/3", "empty body (page HTTP 404)")
    assert isinstance(long_read, Article)
    assert "/news/4" not in server.paths()  # the feed gave the whole story


def test_an_entry_read_from_its_page_has_the_pages_address(server: StaticServer,
                                                          fetcher: Fetcher) -> None:
    server.add("/news/ferry", article_page("Ferry", story_paragraphs(1)))
    server.add("/consent", article_page("Before you continue", story_paragraphs(2)))
    items = [Item(title="Ferry", link=server.redirect("/r/ferry", "/news/ferry"), guid="f"),
             *(Item(title=f"Story {n}", link=server.redirect(f"/r/{n}", "/consent"),
                    guid=f"s-{n}") for n in range(2))]
    url = server.add("/feed.xml", rss(items), content_type=RSS)
    ferry, *walled = complete_entries(fetcher, polled(fetcher, url).entries)
    # Read through the feed's redirect: the story's own address, as when the page is loaded.
    [page] = load_source(server.url("/news/ferry"), fetcher=fetcher)
    assert isinstance(ferry, Article) and isinstance(page, Article)
    assert (ferry.url, ferry.id) == (server.url("/news/ferry"), page.id)
    # A page that several entries lead to is none of theirs: each keeps its link.
    assert [a.url for a in walled if isinstance(a, Article)] == [
        server.url("/r/0"), server.url("/r/1")]


def test_complete_entries_within_a_budget(server: StaticServer) -> None:
    base = server.base_url
    server.add("/news/0", article_page("Item 0", story_paragraphs(0)))
    server.add("/news/1", article_page("Item 1", story_paragraphs(1)), trickle_s=0.05)
    url = server.add("/feed.xml", rss(numbered_items(0, 2, base=base)), content_type=RSS)
    fetcher = Fetcher(allow_private=True, timeout_s=10)
    quick, slow = complete_entries(fetcher, polled(fetcher, url).entries, budget_s=1.0)
    assert quick.text == "\n\n".join(story_paragraphs(0))  # type: ignore[union-attr]
    assert slow.text == numbered_items(1, 2)[0].description  # type: ignore[union-attr]


def test_html_page_without_article(server: StaticServer, fetcher: Fetcher) -> None:
    url = server.add("/sections", (DATA / "nopage.html").read_bytes())
    assert list(load_source(url, allow_private=True)) == [
        Skipped(url, "an HTML page with no article text")]
    assert probe(fetcher, url).reason == "an HTML page with no article text"


# --- probe ----------------------------------------------------------------------------------


def test_probe_a_feed(server: StaticServer, fetcher: Fetcher) -> None:
    url = server.add("/feed.xml", rss(numbered_items(0, 12)), content_type=RSS)
    got = probe(fetcher, url)
    assert got.ok and got.kind == "feed" and got.entries == 12
    assert got.title == "Harbour Weekly"
    assert got.reason == 'an RSS feed "Harbour Weekly" with 12 entries'
    atom = server.add("/atom.xml", (DATA / "atom.xml").read_bytes(),
                      content_type="application/atom+xml")
    assert probe(fetcher, atom).reason == 'an Atom feed "Moorside Chronicle" with 2 entries'


def test_probe_an_article_page(server: StaticServer, fetcher: Fetcher) -> None:
    url = server.add("/story", (DATA / "page.html").read_bytes())
    got = probe(fetcher, url)
    assert got.ok and got.kind == "page"
    assert got.reason == "an article page \"Lighthouse keeper's cottage becomes a museum\""


def test_probe_a_page_that_announces_its_feed(server: StaticServer, fetcher: Fetcher) -> None:
    html = ("<!doctype html><html><head><title>Harbour Weekly</title>"
            '<link rel="alternate" type="application/rss+xml" href="/feed.xml"></head>'
            "<body><nav><a href='/news'>News</a></nav></body></html>")
    url = server.add("/", html)
    got = probe(fetcher, url)
    assert not got.ok and got.feed_url == server.url("/feed.xml")
    assert got.reason == ("an HTML page with no article text; it announces a feed: "
                          f"{server.url('/feed.xml')}")


def test_probe_neither(server: StaticServer, fetcher: Fetcher) -> None:
    missing = probe(fetcher, server.url("/nowhere"))
    assert (missing.kind, missing.reason, missing.permanent) == ("none", "HTTP 404", True)
    pdf = server.add("/report.pdf", b"%PDF-1.7 not really", content_type="application/pdf")
    assert probe(fetcher, pdf).reason == "not a feed or an article page (application/pdf)"
    broken = server.add("/broken.xml", (DATA / "broken.xml").read_bytes(), content_type=RSS)
    assert probe(fetcher, broken).reason.startswith("not a valid feed: ")


def test_a_feed_cut_before_its_first_usable_item_is_a_failure(server: StaticServer,
                                                              fetcher: Fetcher) -> None:
    """Nothing usable out of broken XML is a broken response, not a feed with nothing new:
    so read, a followed feed that broke stayed "ok" while it delivered nothing."""
    doc = rss(numbered_items(0, 3))
    url = server.add("/cut-early.xml", doc[:doc.index(b"<item>") + 20], content_type=RSS)
    got = poll_feed(fetcher, url)
    assert isinstance(got, Failure) and got.reason.startswith("not a valid feed: "), got
    found = probe(fetcher, url)
    assert (found.kind, found.reason) == ("none", got.reason)


def test_a_feed_file_cut_before_its_first_usable_item_says_so(tmp_path: Path) -> None:
    doc = rss(numbered_items(0, 3))
    path = tmp_path / "cut.xml"
    path.write_bytes(doc[:doc.index(b"<item>") + 20])
    [skipped] = list(load_source(str(path)))
    assert isinstance(skipped, Skipped) and skipped.name == "cut.xml"
    assert skipped.reason.startswith("not a valid feed: ")
