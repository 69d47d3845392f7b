"""Loading articles from files, folders, feeds and web pages (remote ones from a local server)."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from retrieval.articles import Article
from retrieval.sources import Skipped, SourceError, load_source, source_kind
from retrieval.sources.web import USER_AGENT, Fetcher
from tests.support.http import StaticServer

DATA = Path(__file__).resolve().parent.parent / "data" / "sources"

RSS = "application/rss+xml; charset=utf-8"
ATOM = "application/atom+xml"

STORY_PARAGRAPHS = [
    "The county council has approved a plan to turn the disused goods yard beside Fenwick "
    "station into a covered market with space for sixty traders.",
    "Work on the roof and drainage is due to start in the autumn. The council expects the "
    "market to open the following spring, with stalls let first to traders who already sell "
    "at the Saturday street market.",
    "Councillors said the yard had stood empty for more than twenty years and that the "
    "project would be paid for by a regional regeneration grant and by stall rents, not by "
    "local taxes.",
    "Some nearby residents asked for limits on delivery times; the plan allows lorries only "
    "between seven in the morning and six in the evening.",
]


def story_page(*, canonical: str | None = None, with_date: bool = True) -> str:
    """An article page; its text is long enough that no extractor mistakes it for boilerplate."""
    head = ["<title>Goods yard to become a covered market | Fenwick Evening Star</title>",
            '<meta property="og:site_name" content="Fenwick Evening Star">',
            '<meta name="author" content="Hana Lindqvist">']
    if with_date:
        head.append('<meta property="article:published_time" content="2024-06-12T07:30:00Z">')
    if canonical:
        head.append(f'<link rel="canonical" href="{canonical}">')
    body = "".join(f"<p>{p}</p>" for p in STORY_PARAGRAPHS)
    return (f"<!doctype html><html><head><meta charset='utf-8'>{''.join(head)}</head><body>"
            "<nav><a href='/'>Home</a> <a href='/news'>News</a></nav>"
            f"<article><h1>Goods yard to become a covered market</h1>{body}</article>"
            "<footer>Fenwick Evening Star</footer></body></html>")


def teaser_feed(base: str) -> str:
    """An RSS feed whose entries carry only a one-line summary."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Fenwick Evening Star</title>
<item><title>Goods yard to become a covered market</title><link>{base}/story</link>
<description>Councillors approve the market plan.</description></item>
<item><title>Cricket club elects a new captain</title><link>{base}/gone</link>
<description>The club chose its longest-serving bowler.</description></item>
</channel></rss>"""


def split(items: Iterable[Article | Skipped]) -> tuple[list[Article], list[Skipped]]:
    articles: list[Article] = []
    skipped: list[Skipped] = []
    for item in items:
        (articles if isinstance(item, Article) else skipped).append(item)  # type: ignore[arg-type]
    return articles, skipped


def load(spec: str | Path, **kwargs: object) -> tuple[list[Article], list[Skipped]]:
    """Load ``spec``; URLs here are on the local server, so private addresses are allowed."""
    kwargs.setdefault("allow_private", True)
    return split(load_source(str(spec), **kwargs))  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[StaticServer]:
    with StaticServer() as srv:
        yield srv


# --- files ----------------------------------------------------------------------------------


def test_json_list() -> None:
    spec = str(DATA / "export.json")
    articles, skipped = load(spec)
    assert [a.title for a in articles] == ["Library extends weekend opening hours",
                                           "Rain delays bridge resurfacing"]
    first = articles[0]
    assert first.url == "https://valleygazette.example/news/library-hours"  # utm_ dropped
    assert first.published_at == datetime(2024, 2, 3, 8, 15, tzinfo=UTC)
    assert first.outlet == "Valley Gazette"
    assert first.author == "Tomas Reyes"
    assert first.source == spec
    assert skipped == [Skipped("export.json[2]", "empty body")]


def test_no_date_still_loads() -> None:
    articles, _ = load(DATA / "export.json")
    assert articles[1].published_at is None
    assert articles[1].date_str == ""


def test_json_object_with_articles_list() -> None:
    articles, skipped = load(DATA / "wrapped.json")
    assert not skipped
    assert [a.url for a in articles] == ["https://northfieldpost.example/choir",
                                         "https://northfieldpost.example/bus-12"]
    # The export names its outlet once, at the top.
    assert {a.outlet for a in articles} == {"Northfield Post"}
    assert articles[0].published_at == datetime(2024, 3, 30, tzinfo=UTC)


def test_json_single_record(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"title": "Ferry fares frozen",
                                "text": "Ferry fares will not rise this year, the operator said."}))
    articles, skipped = load(path)
    assert [a.title for a in articles] == ["Ferry fares frozen"] and not skipped


def test_invalid_json_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"title": "unfinished"')
    assert load(path) == ([], [Skipped("bad.json", "invalid JSON")])


def test_files_not_in_utf8_are_refused_where_the_first_odd_byte_is(tmp_path: Path) -> None:
    """A cp1252 export is not read with its accents replaced: each file (each line of a
    JSONL file) says it is not UTF-8 and where."""
    record = {"title": "Caf\u00e9 on the quay reopens", "url": "https://quay.example/cafe",
              "body": "The \u201cquay caf\u00e9\u201d reopened after the storm repairs."}
    plain = {"title": "Quay car park resurfaced", "url": "https://quay.example/car-park",
             "body": "The car park on the quay has been resurfaced and reopened."}
    (tmp_path / "quay.jsonl").write_bytes(
        (json.dumps(plain) + "\n" + json.dumps(record, ensure_ascii=False) + "\n")
        .encode("cp1252"))
    (tmp_path / "quay.json").write_bytes(
        json.dumps([plain, record], ensure_ascii=False, indent=1).encode("cp1252"))
    (tmp_path / "quay.md").write_bytes(
        f"---\ntitle: {record['title']}\n---\n{record['body']}\n".encode("cp1252"))
    why = "not UTF-8 text: byte 0x{:02x} at line {}, column {}; save the file as UTF-8"
    articles, skipped = load(tmp_path)
    assert [a.title for a in articles] == ["Quay car park resurfaced"]  # its line is UTF-8
    assert skipped == [Skipped("quay.json", why.format(0xe9, 8, 16)),
                       Skipped("quay.jsonl:2", why.format(0xe9, 2, 15)),
                       Skipped("quay.md", why.format(0xe9, 2, 11))]


def test_lenient_field_names() -> None:
    articles, skipped = load(DATA / "lenient.json")
    assert not skipped
    (article,) = articles
    assert article.title == "Orchard cooperative opens cider press to the public"
    assert article.url == "https://hillbrooktimes.example/cider-press"
    assert article.published_at == datetime(2024, 10, 1, 5, 0, tzinfo=UTC)
    assert article.outlet == "Hillbrook Times"
    assert article.ext_id == "hbt-2024-1001"
    # The export's HTML body arrives as plain paragraphs.
    assert "<p>" not in article.text
    assert article.text.endswith("\n\nBring clean bottles, the organisers said.")


def test_jsonl_broken_line_skipped_rest_loads() -> None:
    articles, skipped = load(DATA / "export.jsonl")
    assert [a.url for a in articles] == ["https://riverside.example/benches",
                                         "https://riverside.example/pool",
                                         "https://riverside.example/towpath"]
    assert skipped == [Skipped("export.jsonl:4", "invalid JSON")]


def test_jsonl_large_file_streams(tmp_path: Path) -> None:
    path = tmp_path / "big.ndjson"
    with path.open("w") as fh:
        for i in range(2000):
            fh.write(json.dumps({"headline": f"Item {i}", "content": f"Short news item {i}.",
                                 "link": f"https://wire.example/{i}"}) + "\n")
    items = load_source(str(path))
    first = next(items)  # available before the rest of the file is read
    assert isinstance(first, Article) and first.title == "Item 0"
    assert sum(isinstance(i, Article) for i in items) == 1999


def test_markdown_front_matter() -> None:
    articles, skipped = load(DATA / "ferry.md")
    assert not skipped
    (article,) = articles
    assert article.title == "Harbour ferry back in service"
    assert article.url == "https://coastlinecourier.example/news/ferry-back"
    assert article.published_at == datetime(2024, 3, 14, 8, 30, tzinfo=UTC)
    assert article.outlet == "Coastline Courier"
    assert article.author == "Mira Okafor"
    assert article.text.startswith("The passenger ferry between the old harbour")
    assert "\n\nEngineers replaced" in article.text


def test_markdown_title_from_heading() -> None:
    (article,), _ = load(DATA / "heading.md")
    assert article.title == "Night market returns to Dock Street"
    assert article.text.startswith("Stalls selling street food")
    assert article.url is None and article.published_at is None


def test_markdown_bad_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "bad.md"
    path.write_text("---\ntitle: [unclosed\n---\nSome text.\n")
    assert load(path) == ([], [Skipped("bad.md", "invalid front matter")])


def test_folder_mixing_file_types(tmp_path: Path) -> None:
    shutil.copy(DATA / "export.json", tmp_path / "export.json")
    (tmp_path / "b").mkdir()
    shutil.copy(DATA / "export.jsonl", tmp_path / "b" / "export.jsonl")
    shutil.copy(DATA / "ferry.md", tmp_path / "b" / "ferry.md")
    (tmp_path / "c").mkdir()
    shutil.copy(DATA / "atom.xml", tmp_path / "c" / "atom.xml")
    # Ignored: hidden files and folders, unsupported types.
    shutil.copy(DATA / "wrapped.json", tmp_path / ".hidden.json")
    (tmp_path / ".cache").mkdir()
    shutil.copy(DATA / "wrapped.json", tmp_path / ".cache" / "wrapped.json")
    (tmp_path / "notes.txt").write_text("not an article source")

    articles, skipped = load(tmp_path, fetch_full_text=False)
    assert [a.outlet for a in articles] == (["Valley Gazette"] * 2 + ["Riverside Herald"] * 3
                                            + ["Coastline Courier"] + ["Moorside Chronicle"] * 2)
    assert {a.source for a in articles} == {str(tmp_path)}
    assert skipped == [Skipped("export.json[2]", "empty body"),
                       Skipped("b/export.jsonl:4", "invalid JSON")]


def test_duplicate_url_within_one_load(tmp_path: Path) -> None:
    path = tmp_path / "dupes.jsonl"
    lines = [
        {"title": "Weir repairs finished", "text": "The weir below the mill is repaired.",
         "url": "https://riverside.example/weir"},
        {"title": "Weir repairs finished (updated)", "text": "Same story, shared link.",
         "url": "https://Riverside.example/weir/?utm_source=social"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines))
    articles, skipped = load(path)
    assert [a.title for a in articles] == ["Weir repairs finished"]
    assert skipped == [Skipped("https://riverside.example/weir", "duplicate url")]


def test_duplicates_across_files_in_a_folder(tmp_path: Path) -> None:
    shutil.copy(DATA / "export.jsonl", tmp_path / "a.jsonl")
    shutil.copy(DATA / "export.jsonl", tmp_path / "b.jsonl")
    articles, skipped = load(tmp_path)
    assert len(articles) == 3
    assert [s.reason for s in skipped].count("duplicate url") == 3


# --- feed files -----------------------------------------------------------------------------


def test_rss_file() -> None:
    articles, skipped = load(DATA / "rss.xml", fetch_full_text=False)
    first, second = articles
    assert first.outlet == "Fenwick Evening Star"
    assert first.title == "Allotment society doubles its plots"
    assert first.url == "https://fenwickstar.example/2024/06/allotments"
    assert first.ext_id == "fes-20240610-allotments"
    assert first.author == "Hana Lindqvist"
    assert first.published_at == datetime(2024, 6, 10, 6, 45, tzinfo=UTC)
    # content:encoded wins over the one-line description, as plain text without the script.
    assert first.text.startswith("The Fenwick allotment society has taken over a second field")
    assert "\n\nThe waiting list" in first.text
    assert "trackVisit" not in first.text and "<" not in first.text
    # An escaped HTML description, entities decoded.
    assert second.text == ("The footpath to Ridge Farm is open again after a landslip was "
                           "cleared & the fence rebuilt.")
    assert second.published_at == datetime(2024, 6, 8, 10, 0, tzinfo=UTC)
    assert skipped == [Skipped("https://fenwickstar.example/2024/06/gallery", "empty body")]


def test_atom_file() -> None:
    articles, skipped = load(DATA / "atom.xml", fetch_full_text=False)
    assert not skipped
    vote, post_office = articles
    assert vote.outlet == "Moorside Chronicle"
    assert vote.ext_id == "urn:uuid:8f1d-turbine-vote"
    assert vote.author == "Priya Castell"
    assert vote.published_at == datetime(2024, 7, 1, 17, 30, tzinfo=UTC)  # published, not updated
    assert vote.text.startswith("Residents of Moorside will vote in September")
    assert post_office.published_at == datetime(2024, 6, 28, 8, 0, tzinfo=UTC)
    assert post_office.text.startswith("The post office will keep its Saturday morning counter")


def test_feed_with_bad_xml() -> None:
    articles, skipped = load(DATA / "broken.xml")
    assert articles == []
    (skip,) = skipped
    assert skip.name == "broken.xml" and skip.reason.startswith("not a valid feed: ")


def test_bozo_feed_with_entries_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "pier.rss"
    # A bare "&" makes the XML invalid, but the entry is readable.
    path.write_text('<?xml version="1.0"?><rss version="2.0"><channel><title>Pier News</title>'
                    "<item><title>Pier lights switched on</title>"
                    "<link>https://pier.example/lights</link><description>The new lights on "
                    "the pier were switched on & residents came to watch.</description></item>"
                    "</channel></rss>")
    articles, skipped = load(path, fetch_full_text=False)
    assert [a.title for a in articles] == ["Pier lights switched on"] and not skipped


# --- over HTTP ------------------------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "content_type", "outlet"), [
    ("rss.xml", RSS, "Fenwick Evening Star"),
    ("atom.xml", ATOM, "Moorside Chronicle"),
    ("rss.xml", "text/xml", "Fenwick Evening Star"),
    ("atom.xml", "application/octet-stream", "Moorside Chronicle"),  # found by sniffing
    ("rss.xml", "text/html; charset=utf-8", "Fenwick Evening Star"),  # mislabelled feed
])
def test_feed_over_http(server: StaticServer, fixture: str, content_type: str,
                        outlet: str) -> None:
    url = server.add("/feed", (DATA / fixture).read_bytes(), content_type=content_type)
    articles, _ = load(url, fetch_full_text=False)
    assert len(articles) == 2
    assert {a.outlet for a in articles} == {outlet}
    assert {a.source for a in articles} == {url}
    assert server.requests[0].headers["user-agent"] == USER_AGENT


def test_bad_feed_over_http(server: StaticServer) -> None:
    url = server.add("/broken.rss", (DATA / "broken.xml").read_bytes(), content_type=RSS)
    articles, skipped = load(url)
    assert articles == []
    assert skipped[0].name == url and skipped[0].reason.startswith("not a valid feed: ")


def test_short_entry_completed_from_its_page(server: StaticServer) -> None:
    server.add("/story", story_page())
    url = server.add("/teaser.xml", teaser_feed(server.base_url), content_type=RSS)
    articles, skipped = load(url)
    assert not skipped
    market, cricket = articles
    assert market.text == "\n\n".join(STORY_PARAGRAPHS)
    assert market.title == "Goods yard to become a covered market"  # the feed's own title
    # The linked page is a 404: the summary is kept and the feed still loads.
    assert cricket.text == "The club chose its longest-serving bowler."
    paths = [r.path for r in server.requests]
    assert paths[0] == "/teaser.xml" and sorted(paths[1:]) == ["/gone", "/story"]


def test_full_text_fetch_can_be_turned_off(server: StaticServer) -> None:
    server.add("/story", story_page())
    url = server.add("/teaser.xml", teaser_feed(server.base_url), content_type=RSS)
    articles, _ = load(url, fetch_full_text=False)
    assert articles[0].text == "Councillors approve the market plan."
    assert [r.path for r in server.requests] == ["/teaser.xml"]


def test_html_page_article(server: StaticServer) -> None:
    url = server.add("/news/lighthouse-museum?utm_source=feed", (DATA / "page.html").read_bytes())
    articles, skipped = load(url)
    assert not skipped
    (article,) = articles
    assert article.title == "Lighthouse keeper's cottage becomes a museum"
    assert article.published_at == datetime(2024, 4, 20, 11, 0, tzinfo=UTC)
    assert article.outlet == "Coastline Courier"
    assert article.author == "Mira Okafor"
    assert article.url == server.url("/news/lighthouse-museum")  # the canonical link
    assert article.source == url
    assert article.text.startswith("The whitewashed cottage beside Gull Point lighthouse")
    assert article.text.count("\n\n") == 2
    assert "Sport" not in article.text


def test_page_url_is_final_url_after_redirect(server: StaticServer) -> None:
    server.add("/2024/market", story_page(with_date=False))
    url = server.redirect("/short/m1", "/2024/market")
    (article,), _ = load(url)
    assert article.url == server.url("/2024/market")
    assert article.published_at is None
    assert article.outlet == "Fenwick Evening Star"


def test_html_page_without_article(server: StaticServer) -> None:
    url = server.add("/sections", (DATA / "nopage.html").read_bytes())
    assert load(url) == ([], [Skipped(url, "an HTML page with no article text")])


def test_http_error(server: StaticServer) -> None:
    url = server.url("/missing")
    assert load(url) == ([], [Skipped(url, "HTTP 404")])
    url = server.add("/boom", "server trouble", status=500)
    assert load(url) == ([], [Skipped(url, "HTTP 500")])


def test_empty_body(server: StaticServer) -> None:
    url = server.add("/empty", b"")
    assert load(url) == ([], [Skipped(url, "empty body")])


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/feed"  # nothing listens there any more
    (skip,) = load(url)[1]
    assert skip == Skipped(url, "cannot connect to host")


def test_oversized_response(server: StaticServer) -> None:
    url = server.add("/huge", b"<p>" + b"a" * 4096 + b"</p>")
    assert load(url, max_bytes=4000) == ([], [Skipped(url, "too large (>4 KB)")])


def test_unsupported_content_type(server: StaticServer) -> None:
    url = server.add("/report.pdf", b"%PDF-1.7 not really", content_type="application/pdf")
    assert load(url) == ([], [Skipped(url, "unsupported content type: application/pdf")])


def test_caller_fetcher_is_used(server: StaticServer) -> None:
    url = server.add("/page", (DATA / "page.html").read_bytes())
    articles, _ = load(url, fetcher=Fetcher(user_agent="custom-agent", allow_private=True))
    assert len(articles) == 1
    assert server.requests[0].headers["user-agent"] == "custom-agent"


# --- specs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), [
    ("export.json", "json"), ("export.jsonl", "jsonl"), ("ferry.md", "markdown"),
    ("rss.xml", "feed"),
])
def test_source_kind_of_files(name: str, kind: str) -> None:
    assert source_kind(str(DATA / name)) == kind


def test_source_kind_of_folders_and_urls(tmp_path: Path) -> None:
    assert source_kind(str(tmp_path)) == "dir"
    assert source_kind("https://example.org/feed") == "url"
    assert source_kind("HTTP://example.org/page") == "url"
    for name, kind in [("a.ndjson", "jsonl"), ("b.markdown", "markdown"), ("c.RSS", "feed"),
                       ("d.atom", "feed")]:
        (tmp_path / name).write_text("")
        assert source_kind(str(tmp_path / name)) == kind


def test_unsupported_file_type_raises(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(SourceError, match="unsupported file type"):
        load_source(str(path))


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        load_source(str(tmp_path / "nowhere.json"))  # raised on the call, not on iteration


def test_unsupported_url_scheme_raises() -> None:
    with pytest.raises(SourceError, match="unsupported URL scheme"):
        source_kind("ftp://example.org/feed.xml")


def test_a_page_gets_its_date_from_its_metadata_never_from_a_clock_or_copyright(
        server: StaticServer) -> None:
    body = "".join(f"<p>{' '.join(['The harbour board met to plan the new pier.'] * 6)}</p>"
                   for _ in range(3))
    undated = ("<!doctype html><html><head><title>Pier plans approved</title></head><body>"
               "<header>Tuesday, 4 June 2024</header>"  # the day's date, as sites print it
               f"<article><h1>Pier plans approved</h1>{body}</article>"
               "<footer>© 2023 Harbour Weekly</footer></body></html>")
    dated = undated.replace("</head>", "<meta property='article:published_time' "
                                       "content='2024-05-28T07:30:00Z'></head>")
    (article,), _ = load(server.add("/undated", undated))
    assert article.published_at is None and article.date_str == ""
    (article,), _ = load(server.add("/dated", dated))
    assert article.published_at == datetime(2024, 5, 28, 7, 30, tzinfo=UTC)


def test_a_malformed_link_leaves_its_item_without_an_address(
        tmp_path: Path, http: StaticServer) -> None:
    """An unclosed IPv6 bracket or a port out of range in a record's, an item's or a page's
    link is an unusable link, as a missing one is: the rest of the file still loads."""
    body = "The harbour board reopened the north pier after storm repairs lasting a month."
    records = tmp_path / "links.jsonl"
    records.write_text("\n".join(json.dumps({"title": f"Pier {i}", "body": body, "url": url})
                                 for i, url in enumerate(["http://[::1/pier",
                                                          "https://news.example.org:99999/p",
                                                          "https://news.example.org/pier"])))
    articles, skipped = load(records)
    assert [a.url for a in articles] == [None, None, "https://news.example.org/pier"]
    assert not skipped
    feed = tmp_path / "links.xml"
    feed.write_text("<rss version='2.0'><channel><title>Pier Post</title><item><title>Pier"
                    f"</title><link>http://[::1/pier</link><description>{body}</description>"
                    "</item></channel></rss>")
    (article,), _ = load(feed, fetch_full_text=False)
    assert article.url is None
    url = http.add("/story", story_page(canonical="http://[::1/story").encode())
    (page,), _ = load(url)
    assert page.url == url


def test_a_text_too_long_for_an_article_is_skipped(tmp_path: Path) -> None:
    """A dump of half a million characters would hold the writer for minutes of embedding."""
    story = " ".join(STORY_PARAGRAPHS)
    path = tmp_path / "dump.jsonl"
    path.write_text("\n".join(json.dumps({"title": title, "body": body}) for title, body in [
        ("Goods yard to become a covered market", story),
        ("Everything ever written", story * 800)]))
    (article,), (skipped,) = load(path)
    assert article.title.startswith("Goods yard")
    assert skipped.name == "dump.jsonl:2" and skipped.reason.startswith("too long (")


@pytest.mark.parametrize("date", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
                                  "Fri, 31 Dec 9999 23:59:59 -0100"])
def test_a_date_past_the_years_a_datetime_holds_leaves_the_article_undated(
        tmp_path: Path, date: str) -> None:
    """'Never expires' dates near the ends of the calendar went past them in UTC, and the
    error stopped the whole load (or a feed's poll, before any of its items)."""
    story = " ".join(STORY_PARAGRAPHS)
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps({"title": title, "body": story, "published_at": d})
                              for title, d in [("Goods yard to become a market", date),
                                               ("Market traders sign leases", "2024-06-03")]))
    first, second = load(path)[0]
    assert first.published_at is None and second.date_str == "2024-06-03"
    feed = tmp_path / "feed.xml"
    feed.write_text(f'<?xml version="1.0"?><rss version="2.0"><channel><title>Fenwick</title>'
                    f"<item><title>Goods yard</title><link>https://fenwick.example/1</link>"
                    f"<description>{story}</description><pubDate>{date}</pubDate></item>"
                    "</channel></rss>")
    (item,), _ = load(feed)
    assert item.published_at is None
