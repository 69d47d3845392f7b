"""Following feeds: adding, polling, deduplicating, backing off, disabling; a local server."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from bot.core.admin import Progress
from bot.core.models import NewsbotError
from bot.core.services import Services, build_services
from bot.core.state import utcnow
from tests.fakes import FakeEmbedder, make_services, make_settings
from tests.support.feeds import (
    Item,
    article_page,
    numbered_items,
    rss,
    sentence,
    story_paragraphs,
)
from tests.support.http import StaticServer


@pytest.fixture
def svc(tmp_path: Path, allow_private_urls: None) -> Iterator[Services]:
    services = make_services(tmp_path / "data", sample=False, fetch_timeout_s=3,
                             feed_max_failures=3)
    yield services
    services.close()


def _serve(http: StaticServer, items: list[Item], **options: object) -> str:
    return http.add("/feed.xml", rss(items), content_type="application/rss+xml",
                    **options)  # type: ignore[arg-type]


def test_new_items_between_polls_are_added_once(svc: Services, http: StaticServer) -> None:
    url = _serve(http, numbered_items(0, 3, long_text=True))
    added = svc.sources.add(url, name="harbour", every_min=5)
    assert added["kind"] == "feed" and added["name"] == "harbour"
    first = added["poll"]
    assert (first["added"], first["first_fetch"]) == (3, True)

    _serve(http, numbered_items(0, 5, long_text=True))
    report = svc.sources.poll(due_only=False)
    [poll] = report.sources
    assert (poll.added, poll.unchanged, poll.first_fetch) == (2, 3, False)
    assert len(poll.added_ids) == 2 and poll.outcome == "changed"
    again = svc.sources.poll(due_only=False).sources[0]
    assert (again.added, again.unchanged, again.outcome) == (0, 5, "unchanged")
    [row] = svc.admin.source_list()
    assert row["articles"] == 5 and row["status"] == "ok" and row["every_min"] == 5
    # Not due again before its interval.
    assert svc.sources.poll().sources == []
    assert svc.sources.poll(now=utcnow() + timedelta(minutes=6)).sources


def test_teasers_are_completed_from_their_pages_only_when_new(svc: Services,
                                                              http: StaticServer) -> None:
    items = [Item(title=f"Teaser {n}", link=http.url(f"/story/{n}"), guid=f"t-{n}",
                  description="Short teaser.", pub_date="Mon, 03 Jun 2024 10:00:00 GMT")
             for n in range(2)]
    for n in range(3):
        http.add(f"/story/{n}", article_page(f"Teaser {n}", story_paragraphs(n)))
    url = _serve(http, items)
    svc.sources.add(url)
    pages = [p for p in http.paths() if p.startswith("/story/")]
    assert sorted(pages) == ["/story/0", "/story/1"]
    items.append(Item(title="Teaser 2", link=http.url("/story/2"), guid="t-2",
                      description="Short teaser.", pub_date="Mon, 03 Jun 2024 11:00:00 GMT"))
    _serve(http, items)
    svc.sources.poll(due_only=False)
    pages = [p for p in http.paths() if p.startswith("/story/")]
    assert sorted(pages) == ["/story/0", "/story/1", "/story/2"]  # only the new page


def test_an_etag_makes_the_next_poll_conditional(svc: Services, http: StaticServer) -> None:
    url = _serve(http, numbered_items(0, 2, long_text=True), etag='"v1"')
    svc.sources.add(url)
    poll = svc.sources.poll(due_only=False).sources[0]
    assert poll.outcome == "not modified"
    assert http.requests[-1].headers.get("if-none-match") == '"v1"'


def test_an_edited_item_is_updated_and_a_moved_link_keeps_its_article(
        svc: Services, http: StaticServer) -> None:
    items = numbered_items(0, 2, long_text=True)
    url = _serve(http, items)
    svc.sources.add(url)
    ids = set(svc.state.article_ids_for_source(svc.state.list_sources()[0].id))
    edited = Item(**{**items[0].__dict__, "description": items[0].description +
                     " A correction: the ferry now leaves at nine."})
    moved = Item(**{**items[1].__dict__, "link": "https://harbourweekly.example/moved/1"})
    _serve(http, [edited, moved])
    poll = svc.sources.poll(due_only=False).sources[0]
    assert (poll.added, poll.updated) == (0, 2)
    assert set(svc.state.article_ids_for_source(svc.state.list_sources()[0].id)) == ids
    texts = " ".join(a.text for a in svc.state.iter_articles())
    assert "leaves at nine" in texts


def test_duplicates_across_polls_add_nothing(svc: Services, http: StaticServer) -> None:
    items = numbered_items(0, 2, long_text=True)
    url = _serve(http, items)
    source_id = svc.sources.add(url)["id"]
    # The next poll lists the same stories anew (so the feed's own dedup sees no pair): one
    # under a new GUID at its old link, the other's body at a new URL.
    a, b = items
    relisted = Item(**{**a.__dict__, "guid": "hw-0-republished"})
    mirrored = Item(**{**b.__dict__, "guid": "mirror-1",
                       "link": "https://mirror.example/harbour/1"})
    _serve(http, [relisted, mirrored])
    poll = svc.sources.poll(due_only=False).sources[0]
    assert (poll.added, poll.updated) == (0, 0)
    assert len(svc.state.article_ids_for_source(source_id)) == 2


def test_one_guid_on_every_item_keeps_every_story(svc: Services, http: StaticServer) -> None:
    def same_guid(n: int) -> list[Item]:
        return [Item(**{**i.__dict__, "guid": "https://harbourweekly.example/"})
                for i in numbered_items(0, n, long_text=True)]

    source_id = svc.sources.add(_serve(http, same_guid(3)))["id"]
    assert len(svc.state.article_ids_for_source(source_id)) == 3
    _serve(http, same_guid(4))
    poll = svc.sources.poll(due_only=False).sources[0]
    assert (poll.added, poll.updated) == (1, 0)  # the new story, found by its link
    assert len(svc.state.article_ids_for_source(source_id)) == 4


def test_failures_back_off_then_disable_once(svc: Services, http: StaticServer) -> None:
    url = _serve(http, numbered_items(0, 1, long_text=True))
    source_id = svc.sources.add(url)["id"]
    http.add("/feed.xml", b"down for maintenance", status=503, content_type="text/plain")
    delays = []
    outcomes = []
    for _ in range(4):
        before = utcnow()
        result = svc.sources.poll(due_only=False).sources
        if not result:
            break
        outcomes.append((result[0].outcome, result[0].newly_disabled))
        source = svc.state.get_source(source_id)
        assert source is not None
        if source.next_poll:
            delays.append((source.next_poll - before).total_seconds() / 60)
    assert outcomes == [("failed", False), ("failed", False), ("disabled", True)]
    assert delays[1] > delays[0] * 1.9  # doubling from the 10-minute interval
    source = svc.state.get_source(source_id)
    assert source is not None and source.status == "disabled"
    assert "disabled after 3 failed polls" in (source.last_error or "")
    # The article it had stays; the source is not polled any more, and re-adding revives it.
    assert svc.state.counts()[0] == 1
    assert svc.sources.poll(due_only=False).sources == []
    _serve(http, numbered_items(0, 2, long_text=True))
    revived = svc.sources.add(url)
    assert revived["poll"]["outcome"] == "changed"
    source = svc.state.get_source(source_id)
    assert source is not None and (source.status, source.failures) == ("ok", 0)


def test_adding_refuses_what_is_not_a_feed_or_page(svc: Services, http: StaticServer) -> None:
    http.add("/empty.html", "<html><body><nav>menu</nav></body></html>")
    for url, why in [(http.url("/missing.xml"), "HTTP 404"),
                     (http.url("/empty.html"), "cannot follow"),
                     ("ftp://example.org/feed", "must start with http"),
                     ("not a url", "must start with http"),
                     ("http://", "names no host"), ("https://:80/feed", "names no host")]:
        with pytest.raises(NewsbotError, match=why):
            svc.sources.add(url)
    assert svc.state.list_sources() == []
    url = _serve(http, numbered_items(0, 1, long_text=True))
    with pytest.raises(NewsbotError, match="interval"):
        svc.sources.add(url, every_min=0)
    assert svc.state.list_sources() == []


def test_the_same_story_from_two_feeds_stays_until_both_go(svc: Services,
                                                          http: StaticServer) -> None:
    shared = numbered_items(0, 1, long_text=True)
    http.add("/a.xml", rss(shared + numbered_items(1, 2, long_text=True)),
             content_type="application/rss+xml")
    http.add("/b.xml", rss(shared, title="Coast Daily"), content_type="application/rss+xml")
    a = svc.sources.add(http.url("/a.xml"), name="a")
    b = svc.sources.add(http.url("/b.xml"), name="b")
    assert b["poll"]["added"] == 0  # the same URL: one article, now held by both
    assert svc.admin.remove_source("a")[1] == 1
    assert svc.state.counts()[0] == 1
    assert svc.admin.remove_source(str(b["id"]))[1] == 1
    assert svc.state.counts()[0] == 0 and svc.store.count() == 0
    assert a["id"] != b["id"]


def test_pages_that_do_not_fit_a_poll_are_left_for_the_next(svc: Services,
                                                             http: StaticServer) -> None:
    from bot.core.sources import fetch_source
    from retrieval.sources.web import Fetcher

    items = [Item(title=f"Slow teaser {n}", link=http.url(f"/slow/{n}"), guid=f"s-{n}",
                  description="Short teaser.", pub_date="Mon, 03 Jun 2024 10:00:00 GMT")
             for n in range(6)]
    for n in range(6):  # a site that sends its pages a byte at a time
        http.add(f"/slow/{n}", article_page(f"Slow teaser {n}", story_paragraphs(n)),
                 trickle_s=0.2)
    url = _serve(http, items, etag='"v1"')
    source = svc.state.add_source(url, "feed", watch=True)
    fetcher = Fetcher(timeout_s=5, concurrency=2, allow_private=True)
    fetched = fetch_source(fetcher, source, lambda _: False, budget_s=0.5)
    # The first four pages (two at a time) used up the budget: the other two wait; the feed's
    # validators are dropped so the next poll is not answered "not modified".
    assert fetched.deferred == 2 and len(fetched.articles) == 4
    assert fetched.etag is None and fetched.last_modified is None


def test_the_watcher_refuses_private_addresses_unless_allowed(svc: Services,
                                                              http: StaticServer) -> None:
    url = _serve(http, numbered_items(0, 1, long_text=True))
    svc.sources.add(url, name="lan")
    fetched = len(http.requests)
    svc.settings.allow_private_urls = False  # the setting turned off since the feed was added
    poll = svc.sources.poll(due_only=False).sources[0]
    assert poll.outcome == "failed" and poll.error is not None
    assert poll.error.startswith("refused: 127.0.0.1 is a loopback address")
    assert len(http.requests) == fetched


def test_a_feed_cannot_rewrite_an_article_another_feed_delivered(svc: Services,
                                                                 http: StaticServer) -> None:
    from retrieval.articles import make_article_id

    link = "https://harbourweekly.example/news/ferry"
    words = " ".join(sentence(n, 14) for n in range(6))
    original = Item(title="Ferry timetable changes for the summer", link=link, guid="hw-ferry",
                    description=words, pub_date="Mon, 03 Jun 2024 08:00:00 GMT")
    forged = Item(title="Ferry service ends for good", link=link, guid="cd-ferry",
                  description="The ferry will never sail again, the council said. " * 8,
                  pub_date="Tue, 04 Jun 2024 08:00:00 GMT")
    http.add("/a.xml", rss([original]), content_type="application/rss+xml")
    http.add("/b.xml", rss([forged], title="Coast Daily"), content_type="application/rss+xml")
    svc.sources.add(http.url("/a.xml"), name="harbour")
    aid = make_article_id(link, "", "")
    before = svc.state.get_article(aid)
    assert before is not None and before.outlet == "Harbour Weekly"

    b = svc.sources.add(http.url("/b.xml"), name="coast")
    assert b["poll"]["added"] == 1 and b["poll"]["updated"] == 0
    assert svc.state.get_article(aid) == before  # text, title, outlet and date untouched
    [theirs] = [a for a in svc.state.iter_articles() if a.id != aid]
    # Kept under an id of its own, cited as what it is: the other feed's text.
    assert (theirs.outlet, theirs.title, theirs.url) == ("Coast Daily", forged.title, link)
    # The store, what answers quote, holds each text under its own outlet.
    stored = {(c.article_id, c.metadata.get("outlet"), "never sail" in c.text)
              for c in svc.store.iter_chunks()}
    assert stored == {(aid, "Harbour Weekly", False), (theirs.id, "Coast Daily", True)}
    # Polling again changes nothing; the first feed still updates its own article.
    again = svc.sources.poll(due_only=False).sources
    assert [(p.added, p.updated) for p in again] == [(0, 0), (0, 0)]
    http.add("/a.xml", rss([Item(**{**original.__dict__, "description": words +
                                    " A correction: the first sailing is at nine."})]),
             content_type="application/rss+xml")
    svc.sources.poll(due_only=False)
    after = svc.state.get_article(aid)
    assert after is not None and after.text.endswith("the first sailing is at nine.")
    assert after.outlet == "Harbour Weekly"
    # Each feed's removal takes only its own version.
    assert svc.admin.remove_source("coast")[1] == 1
    assert svc.state.get_article(aid) == after


def test_a_first_fetch_cut_short_by_its_budget_stays_the_first_fetch(
        tmp_path: Path, http: StaticServer) -> None:
    items = [Item(title=f"Backlog teaser {n}", link=http.url(f"/backlog/{n}"), guid=f"b-{n}",
                  description="Short teaser.", pub_date="Mon, 03 Jun 2024 10:00:00 GMT")
             for n in range(60)]
    for n in range(60):
        http.add(f"/backlog/{n}", article_page(f"Backlog {n}", story_paragraphs(n)),
                 trickle_s=0.2)
    url = _serve(http, items)
    # Four fetch timeouts of 0.25 s: about four groups of pages, not the fifteen needed.
    svc = make_services(tmp_path / "data", sample=False, fetch_timeout_s=0.25,
                        allow_private_urls=True)
    try:
        source = svc.state.add_source(url, "feed", watch=True)
        first = svc.sources.poll_source(source)
        assert first.first_fetch and first.deferred > 0
        source = svc.state.get_source(source.id)
        assert source is not None and source.polls == 0  # its items left over are backlog
        assert svc.sources.poll_source(source).first_fetch
    finally:
        svc.close()


def test_an_item_kept_apart_is_known_on_the_next_poll(svc: Services, http: StaticServer) -> None:
    link = http.url("/news/ferry")
    http.add("/news/ferry", article_page("Ferry timetable changes", story_paragraphs(5)))
    words = " ".join(sentence(n, 14) for n in range(6))
    ours = Item(title="Ferry timetable changes", link=link, guid="hw-ferry", description=words,
                pub_date="Mon, 03 Jun 2024 08:00:00 GMT")
    teaser = Item(title="Ferry news", link=link, guid="cd-ferry", description="Read more.",
                  pub_date="Mon, 03 Jun 2024 09:00:00 GMT")
    http.add("/a.xml", rss([ours]), content_type="application/rss+xml")
    http.add("/b.xml", rss([teaser], title="Coast Daily"), content_type="application/rss+xml")
    svc.sources.add(http.url("/a.xml"), name="harbour")
    assert svc.sources.add(http.url("/b.xml"), name="coast")["poll"]["added"] == 1
    assert http.paths().count("/news/ferry") == 1  # the teaser was completed from the page
    svc.sources.poll(due_only=False)
    # Its article has an id of its own, yet the item is known: its page is not read again.
    assert http.paths().count("/news/ferry") == 1
    assert svc.state.counts()[0] == 2


def test_adding_a_followed_source_again_keeps_the_name_it_was_given(
        svc: Services, http: StaticServer) -> None:
    url = _serve(http, numbered_items(0, 1, long_text=True))
    first = svc.sources.add(url, name="harbour")
    # Added again, as a disabled source is revived, or for another interval.
    again = svc.sources.add(url, every_min=30)
    assert (again["id"], again["name"], again["every_min"]) == (first["id"], "harbour", 30)
    assert svc.sources.poll(only="harbour").sources
    other = http.add("/quay.xml", rss(numbered_items(5, 6, long_text=True), title="Quay Post"),
                     content_type="application/rss+xml")
    assert svc.sources.add(other)["name"] == "Quay Post"  # a new one takes the feed's title


def test_a_source_removed_while_a_poll_runs_is_not_polled(svc: Services,
                                                         http: StaticServer) -> None:
    first = http.add("/a.xml", rss(numbered_items(0, 2, long_text=True)),
                     content_type="application/rss+xml")
    other = "https://otherweekly.example"
    second = http.add("/b.xml", rss(numbered_items(10, 12, base=other, long_text=True)),
                      content_type="application/rss+xml")
    svc.sources.add(first)
    svc.sources.add(second)
    http.add("/a.xml", rss(numbered_items(0, 3, long_text=True)),
             content_type="application/rss+xml")
    http.add("/b.xml", rss(numbered_items(10, 13, base=other, long_text=True)),
             content_type="application/rss+xml")
    removed: list[object] = []

    def remove_second_once() -> bool:  # asked before each source: a removal lands there
        if not removed:
            removed.append(svc.admin.remove_source(second))
        return False

    ids = [s.id for s in svc.state.list_sources()]
    report = svc.sources.poll(due_only=False, progress=Progress(cancelled=remove_second_once))
    assert [(s.id, s.added) for s in report.sources] == [(ids[0], 1)]
    # Nothing of the removed source came back: the store holds what the registry holds.
    registered = {a.id for a in svc.state.iter_articles()}
    assert len(registered) == 3 and set(svc.store.chunk_numbers()) == registered


def test_a_fault_reading_one_source_fails_it_and_the_poll_goes_on(
        svc: Services, http: StaticServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.core import sources

    first = http.add("/a.xml", rss(numbered_items(0, 2, long_text=True)),
                     content_type="application/rss+xml")
    second = http.add("/b.xml", rss(numbered_items(10, 12, base="https://otherweekly.example",
                                                  long_text=True)),
                      content_type="application/rss+xml")
    svc.sources.add(first)
    svc.sources.add(second)
    real = sources.poll_feed

    def faulty(fetcher, url, **kwargs):  # type: ignore[no-untyped-def]
        if url == first:  # content that sets off a parsing bug, as a far-off date once did
            raise OverflowError("date value out of range")
        return real(fetcher, url, **kwargs)

    monkeypatch.setattr(sources, "poll_feed", faulty)
    http.add("/b.xml", rss(numbered_items(10, 13, base="https://otherweekly.example",
                                          long_text=True)), content_type="application/rss+xml")
    a, b = svc.sources.poll(due_only=False).sources
    assert (a.outcome, a.error) == ("failed", "could not be read (OverflowError)")
    assert (b.outcome, b.added) == ("changed", 1)
    assert [s.id for s in svc.state.due_sources(utcnow())] == []  # it backs off


def test_an_add_stopped_before_anything_landed_leaves_no_source(
        tmp_path: Path, allow_private_urls: None, http: StaticServer) -> None:
    """Ctrl-C during the first fetch of `sources add`: the feed is not left followed with
    no articles (as a one-off load of a new source is not); one followed before stays."""

    class CtrlC(FakeEmbedder):
        stop = False

        def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
            if self.stop:
                raise KeyboardInterrupt  # what Python raises when Ctrl-C arrives mid-batch
            return super().embed_documents(texts)

    embedder = CtrlC()
    svc = build_services(make_settings(tmp_path / "data", fetch_timeout_s=3), embedder=embedder)
    try:
        url = _serve(http, numbered_items(0, 3, long_text=True))
        embedder.stop = True
        with pytest.raises(KeyboardInterrupt):
            svc.sources.add(url, name="harbour")
        assert svc.admin.source_list() == []
        embedder.stop = False
        added = svc.sources.add(url, name="harbour")
        assert (added["name"], added["poll"]["added"]) == ("harbour", 3)
        _serve(http, numbered_items(0, 4, long_text=True))
        embedder.stop = True
        with pytest.raises(KeyboardInterrupt):
            svc.sources.add(url)
        [row] = svc.admin.source_list()
        assert (row["name"], row["articles"]) == ("harbour", 3)
    finally:
        svc.close()


def test_a_source_added_under_another_spelling_is_the_same_source(
        svc: Services, http: StaticServer) -> None:
    url = _serve(http, numbered_items(0, 2, long_text=True))
    first = svc.sources.add(url, name="harbour")
    scheme, rest = url.split("://", 1)
    for spelling in (f"{scheme.upper()}://{rest}", f"{url}?utm_source=newsletter#top",
                     url.replace("/feed.xml", "/news/../feed.xml")):
        again = svc.sources.add(spelling)
        assert (again["id"], again["spec"]) == (first["id"], url)
    assert [s.spec for s in svc.state.list_sources()] == [url]
    assert svc.admin.remove_source(f"{scheme.upper()}://{rest}")[0].id == first["id"]
    # The query is read as given: a server may need its parameters in their order.
    ordered = http.add("/q.xml?region=west&lang=ga", rss(numbered_items(3, 4, long_text=True)),
                       content_type="application/rss+xml")
    assert svc.sources.add(ordered + "&utm_medium=rss")["spec"] == ordered


def test_a_story_read_again_under_another_headline_is_the_same_article(
        svc: Services, http: StaticServer) -> None:
    """A page loaded on its own, then listed by two feeds whose teasers are completed from
    it under headlines of their own: its words are the page's, so it is that article, held
    by every source, not one copy per feed."""
    page = http.add("/news/ferry", article_page("Ferry timetable changes for the summer",
                                                story_paragraphs(7)))
    assert svc.admin.ingest([page]).added == 1
    [article] = svc.state.iter_articles()
    for n, headline in enumerate(("Ferry news", "Summer sailings announced")):
        teaser = Item(title=headline, link=page, guid=f"teaser-{n}", description="Read more.",
                      pub_date="Mon, 03 Jun 2024 09:00:00 GMT")
        feed = http.add(f"/feed{n}.xml", rss([teaser], title=f"Coast Daily {n}"),
                        content_type="application/rss+xml")
        first = svc.sources.add(feed)["poll"]
        assert (first["added"], first["updated"]) == (0, 0)
    assert list(svc.state.iter_articles()) == [article]  # its headline, outlet and date kept
    assert sorted(row["articles"] for row in svc.admin.source_list()) == [1, 1, 1]
    assert {c.article_id for c in svc.store.iter_chunks()} == {article.id}
