"""A page ingested by URL and the same story listed by a followed feed are one article."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.services import Services
from retrieval.articles import build_article, own_article_id
from tests.fakes import make_services
from tests.support.feeds import Item, article_page, rss, story_paragraphs
from tests.support.http import StaticServer

TITLE = "Ferry timetable changes for the summer"
PARAGRAPHS = story_paragraphs(7)


@pytest.fixture
def svc(tmp_path: Path, allow_private_urls: None) -> Iterator[Services]:
    services = make_services(tmp_path / "data", sample=False, fetch_timeout_s=3)
    yield services
    services.close()


def _listing(http: StaticServer, how: str) -> Item:
    """The feed's item for the story at /news/ferry, listed as ``how`` says."""
    page = http.url("/news/ferry")
    teaser, one_block = "Short teaser.", " ".join(PARAGRAPHS)
    link, text = {
        # A teaser whose link goes through the feed's redirect: its page is read.
        "redirect": (http.redirect("/r/ferry", "/news/ferry"), teaser),
        "tracking": (page + "/?utm_source=rss&utm_medium=feed#comments", teaser),
        # The whole story in the feed (its page is not read), under the other scheme...
        "other scheme": (page.replace("http://", "https://"), one_block),
        # ... or as one block where the page has paragraphs: the same words.
        "one block": (page, one_block),
    }[how]
    return Item(title=TITLE, link=link, guid="hw-ferry", description=text,
                pub_date="Mon, 03 Jun 2024 08:00:00 GMT")


@pytest.mark.parametrize("how", ["redirect", "tracking", "other scheme", "one block"])
@pytest.mark.parametrize("feed_first", [True, False], ids=["feed first", "ingest first"])


def test_a_page_and_a_feed_item_for_it_are_one_article(svc: Services, http: StaticServer,
                                                       how: str, feed_first: bool) -> None:
    page = http.add("/news/ferry", article_page(TITLE, PARAGRAPHS))
    feed = http.add("/feed.xml", rss([_listing(http, how)]),
                    content_type="application/rss+xml")
    if feed_first:
        svc.sources.add(feed)
        assert svc.admin.ingest([page]).failed == []
    else:
        assert svc.admin.ingest([page]).failed == []
        svc.sources.add(feed)

    [article] = svc.state.iter_articles()
    assert {c.article_id for c in svc.store.iter_chunks()} == {article.id}
    # The first source's version stands (the feed's https link, when it came first).
    twin = how == "other scheme" and feed_first
    assert article.url == (page.replace("http://", "https://") if twin else page)
    sources = {s.kind: s.id for s in svc.state.list_sources()}
    assert svc.state.source_ids_of(article.id) == {sources["feed"], sources["page"]}
    # Nothing new on the next poll, and the item's page is not read again.
    reads = http.paths().count("/news/ferry")
    [poll] = svc.sources.poll(due_only=False).sources
    assert (poll.added, poll.updated) == (0, 0)
    assert http.paths().count("/news/ferry") == reads
    # Nor on a later fetch of the page; only the one article was ever queued for a brief.
    again = svc.admin.ingest([page])
    assert (again.added, again.updated, again.unchanged) == (0, 0, 1)
    assert {r["article_id"] for r in svc.state.queued_briefs()} <= {article.id}
    assert svc.state.counts()[0] == 1


def test_an_edited_page_updates_its_article(svc: Services, http: StaticServer) -> None:
    page = http.add("/news/ferry", article_page(TITLE, PARAGRAPHS))
    svc.admin.ingest([page])
    svc.sources.add(http.add("/feed.xml", rss([_listing(http, "redirect")]),
                             content_type="application/rss+xml"))
    http.add("/news/ferry", article_page(TITLE, [*PARAGRAPHS, "A correction: it sails at nine."]))
    report = svc.admin.ingest([page])
    assert (report.added, report.updated) == (0, 1)
    [article] = svc.state.iter_articles()
    assert article.text.endswith("it sails at nine.") and len(svc.state.source_ids_of(
        article.id)) == 2


def test_a_page_that_several_items_lead_to_is_none_of_theirs(svc: Services,
                                                            http: StaticServer) -> None:
    http.add("/consent", article_page("Before you continue", story_paragraphs(9)))

    def item(n: int) -> Item:
        return Item(title=f"Harbour story {n}", link=http.redirect(f"/r/{n}", "/consent"),
                    guid=f"hw-{n}", description="Short teaser.",
                    pub_date=f"Mon, 03 Jun 2024 0{n}:00:00 GMT")

    def serve(*numbers: int) -> str:
        return http.add("/feed.xml", rss([item(n) for n in numbers]),
                        content_type="application/rss+xml")

    # Two items of one poll lead there: each keeps its link.
    assert svc.sources.add(serve(0, 1))["poll"]["added"] == 2
    assert sorted(a.url or "" for a in svc.state.iter_articles()) == [
        http.url("/r/0"), http.url("/r/1")]
    # One more at each of the next polls: an article of its own each time (the first is
    # taken to live there), and none is written over another.
    for n in (2, 3):
        before = {a.id: a for a in svc.state.iter_articles()}
        serve(*range(n + 1))
        [poll] = svc.sources.poll(due_only=False).sources
        assert (poll.added, poll.updated) == (1, 0)
        after = {a.id: a for a in svc.state.iter_articles()}
        assert {k: after[k] for k in before} == before
    assert http.url("/r/3") in {a.url for a in after.values()}
    # Polled again, no item is new and no page is read.
    reads = http.paths().count("/consent")
    [poll] = svc.sources.poll(due_only=False).sources
    assert (poll.added, poll.updated, http.paths().count("/consent")) == (0, 0, reads)


EDITED = [*PARAGRAPHS[:3], "A correction: the first sailing leaves the pier at nine."]
EARLY = datetime(2024, 1, 1, tzinfo=UTC)
NEWS = 101


def _follow_one_block(svc: Services, http: StaticServer) -> str:
    """A followed feed giving the story at /news/ferry as one block; the page's address."""
    http.add("/feed.xml", rss([_listing(http, "one block")]), content_type="application/rss+xml")
    svc.sources.add(http.url("/feed.xml"))
    return http.url("/news/ferry")


def _indexed(svc: Services) -> tuple[set[tuple[str, bool]], set[tuple[str, bool]]]:
    """(article id, whether the chunk holds the correction) of every chunk in the store, and
    of every chunk in the keyword index."""
    words = "sailing leaves the pier"
    lex = svc.retriever.lexical()
    return ({(c.article_id, words in c.text) for c in svc.store.iter_chunks()},
            {(m["article_id"], words in m["text"]) for m in lex.meta})


@pytest.mark.parametrize("scheme", ["same", "other"])


def test_the_page_at_its_own_address_updates_the_article_a_feed_delivered(
        svc: Services, http: StaticServer, scheme: str) -> None:
    page = http.url("/news/ferry")
    listed = page if scheme == "same" else page.replace("http://", "https://")
    item = _listing(http, "one block").__dict__ | {"link": listed}
    http.add("/feed.xml", rss([Item(**item)]), content_type="application/rss+xml")
    svc.sources.add(http.url("/feed.xml"))
    [before] = svc.state.iter_articles()
    # The outlet edits its story after the feed listed it; its page is ingested by URL.
    http.add("/news/ferry", article_page(TITLE, EDITED))
    report = svc.admin.ingest([page])
    assert (report.added, report.updated, report.unchanged) == (0, 1, 0)
    [article] = svc.state.iter_articles()
    assert article.id == before.id and article.text == "\n\n".join(EDITED)
    sources = {s.kind: s.id for s in svc.state.list_sources()}
    assert svc.state.source_ids_of(article.id) == {sources["feed"], sources["page"]}
    # Re-embedded and re-indexed: the store and the keyword index hold the page's words only.
    for chunks in _indexed(svc):
        assert (article.id, True) in chunks and {a for a, _ in chunks} == {article.id}
    # The feed, polled again, does not put its version back; the page fetched again is known.
    [poll] = svc.sources.poll(due_only=False).sources
    assert (poll.added, poll.updated) == (0, 0)
    again = svc.admin.ingest([page])
    assert (again.added, again.updated, again.unchanged) == (0, 0, 1)
    assert svc.state.get_article(article.id) == article


def test_a_followed_page_edited_later_updates_the_feeds_article_without_a_second_brief(
        svc: Services, http: StaticServer) -> None:
    page = http.add("/news/ferry", article_page(TITLE, PARAGRAPHS))
    feed = http.add("/feed.xml", rss([]), content_type="application/rss+xml")
    svc.sources.add(feed)
    svc.desk.subscribe(channel_id=NEWS, source=feed, now=EARLY)
    http.add("/feed.xml", rss([_listing(http, "one block")]), content_type="application/rss+xml")
    svc.sources.poll(due_only=False)
    assert svc.desk.plan_queued().briefs == 1
    [article] = svc.state.iter_articles()
    # Followed while its page says what the feed said: the same article, held by both.
    assert svc.sources.add(page)["poll"]["unchanged"] == 1
    svc.desk.subscribe(channel_id=NEWS, source=page, now=EARLY)
    http.add("/news/ferry", article_page(TITLE, EDITED))
    [poll] = svc.sources.poll(only=page).sources
    assert (poll.added, poll.updated, poll.updated_ids) == (0, 1, [article.id])
    [after] = svc.state.iter_articles()
    assert after.id == article.id and after.text == "\n\n".join(EDITED)
    # An edit, not a new story: its headline did not change, so nothing more is posted.
    plan = svc.desk.plan_queued()
    assert (plan.briefs, plan.updates, plan.folded) == (0, 0, 0)
    assert [(r["kind"], r["article_id"]) for r in svc.state.pending_posts()] == [
        ("brief", article.id)]


def test_only_the_page_at_its_own_address_updates_another_sources_article(
        svc: Services, http: StaticServer) -> None:
    page = _follow_one_block(svc, http)
    http.add("/news/ferry", article_page(TITLE, EDITED))
    svc.admin.ingest([page])
    [article] = svc.state.iter_articles()
    assert article.text == "\n\n".join(EDITED)
    other = [*PARAGRAPHS[:2], "The ferry will never sail again, the council said."]
    # Another feed listing the story's address with other words...
    forged = Item(title=TITLE, link=page, guid="cd-ferry", description=" ".join(other * 2),
                  pub_date="Tue, 04 Jun 2024 08:00:00 GMT")
    coast = http.add("/coast.xml", rss([forged], title="Coast Daily"),
                     content_type="application/rss+xml")
    assert svc.sources.add(coast)["poll"]["added"] == 1
    # ... and pages elsewhere naming that address as their own, ingested or followed.
    claims = article_page(TITLE, other).replace(
        "</head>", f"<link rel='canonical' href='{page}'></head>")
    assert svc.admin.ingest([http.add("/copy", claims)]).added == 1
    assert svc.sources.add(http.add("/mirror", claims))["poll"]["added"] == 1
    # Each is kept apart under an id of its own; the article stays as its page gave it.
    assert svc.state.get_article(article.id) == article
    apart = [a for a in svc.state.iter_articles() if a.id != article.id]
    assert len(apart) == 3 and all(a.url == page and "never sail" in a.text for a in apart)
    assert {c.article_id for c in svc.store.iter_chunks()} == {article.id} | {
        a.id for a in apart}


def test_a_copy_of_the_page_kept_apart_before_goes_when_the_page_updates_the_article(
        svc: Services, http: StaticServer) -> None:
    page = _follow_one_block(svc, http)
    [article] = svc.state.iter_articles()
    # What an older version recorded for the edited page: a copy under an id of its own.
    source = svc.state.add_source(page, "page")
    copy = build_article(title=TITLE, text="\n\n".join(EDITED), url=page, source=page)
    copy = copy.model_copy(update={"id": own_article_id(page, TITLE, page)})
    counts = svc.admin.indexer.index([copy])
    svc.state.record_articles([(copy, counts[copy.id])], source.id, [(copy.id, None)])
    http.add("/news/ferry", article_page(TITLE, [*EDITED, "It returns at six."]))
    assert svc.admin.ingest([page]).updated == 1
    [after] = svc.state.iter_articles()
    assert after.id == article.id and after.text.endswith("It returns at six.")
    assert svc.state.article_ids_for_source(source.id) == [article.id]
    assert {c.article_id for c in svc.store.iter_chunks()} == {article.id}


def _via(http: StaticServer, feed: str, n: int, target: str) -> Item:
    """Item ``n`` of ``feed``, a teaser whose link redirects to ``target``."""
    return Item(title=f"{feed} story {n}", link=http.redirect(f"/{feed}/r{n}", target),
                guid=f"{feed}-{n}", description="Short teaser.",
                pub_date=f"Mon, 03 Jun 2024 0{n}:00:00 GMT")


def test_items_of_two_feeds_that_lead_to_one_page_keep_articles_of_their_own(
        svc: Services, http: StaticServer) -> None:
    http.add("/home", article_page("Harbour Weekly home", story_paragraphs(9)))

    def serve(feed: str, *numbers: int) -> str:
        return http.add(f"/{feed}.xml", rss([_via(http, feed, n, "/home") for n in numbers],
                                            title=feed), content_type="application/rss+xml")

    svc.sources.add(serve("world", 0))  # the first item to lead there is taken to live there
    local = serve("local", 1)
    assert svc.sources.add(local)["poll"]["added"] == 1
    serve("local", 1, 2)
    [poll] = svc.sources.poll(only=local, due_only=False).sources
    assert (poll.added, poll.updated) == (1, 0)
    articles = {a.title: a for a in svc.state.iter_articles()}
    assert {t: a.url for t, a in articles.items()} == {
        "world story 0": http.url("/home"), "local story 1": http.url("/local/r1"),
        "local story 2": http.url("/local/r2")}
    # Polled again and again, no item takes another's place and no page is read.
    reads = http.paths().count("/home")
    for _ in range(2):
        [poll] = svc.sources.poll(only=local, due_only=False).sources
        assert (poll.added, poll.updated) == (0, 0)
    assert {a.title: a for a in svc.state.iter_articles()} == articles
    assert http.paths().count("/home") == reads


def _retitled(http: StaticServer, feed: str) -> None:
    """The outlet retitles the story: its item's link now leads to a new address."""
    http.add("/news/ferry-cancelled", article_page("Ferry cancelled", EDITED))
    http.redirect("/r/ferry", "/news/ferry-cancelled")
    http.add(feed, rss([Item(title="Ferry cancelled", link=http.url("/r/ferry"), guid=None,
                             description="Short teaser, updated.",
                             pub_date="Mon, 03 Jun 2024 08:00:00 GMT")]),
             content_type="application/rss+xml")


def test_an_item_without_a_guid_keeps_its_article_when_its_link_leads_elsewhere(
        svc: Services, http: StaticServer) -> None:
    http.add("/news/ferry-delayed", article_page("Ferry delayed", PARAGRAPHS))
    link = http.redirect("/r/ferry", "/news/ferry-delayed")
    feed = http.add("/feed.xml", rss([]), content_type="application/rss+xml")
    svc.sources.add(feed)
    svc.desk.subscribe(channel_id=NEWS, source=feed, now=EARLY)
    http.add("/feed.xml", rss([Item(title="Ferry delayed", link=link, guid=None,
                                    description="Short teaser.",
                                    pub_date="Mon, 03 Jun 2024 08:00:00 GMT")]),
             content_type="application/rss+xml")
    svc.sources.poll(due_only=False)
    assert svc.desk.plan_queued().briefs == 1
    [before] = svc.state.iter_articles()
    _retitled(http, "/feed.xml")
    [poll] = svc.sources.poll(due_only=False).sources
    assert (poll.added, poll.updated) == (0, 1)
    [after] = svc.state.iter_articles()
    assert (after.id, after.title, after.url) == (
        before.id, "Ferry cancelled", http.url("/news/ferry-cancelled"))
    # The same story under a new headline: a headline update, never a second brief.
    plan = svc.desk.plan_queued()
    assert (plan.briefs, plan.updates) == (0, 1)
    assert [r["kind"] for r in svc.state.pending_posts()].count("brief") == 1


def test_an_item_recorded_before_links_were_kept_keeps_its_article(
        svc: Services, http: StaticServer) -> None:
    http.add("/news/ferry-delayed", article_page("Ferry delayed", PARAGRAPHS))
    link = http.redirect("/r/ferry", "/news/ferry-delayed")
    feed = http.add("/feed.xml", rss([Item(title="Ferry delayed", link=link, guid=None,
                                           description="Short teaser.",
                                           pub_date="Mon, 03 Jun 2024 08:00:00 GMT")]),
                    content_type="application/rss+xml")
    # As an earlier version recorded it: at its link, with no link remembered.
    source = svc.state.add_source(feed, "feed", watch=True)
    old = build_article(title="Ferry delayed", text="\n\n".join(PARAGRAPHS), url=link,
                        source=feed)
    counts = svc.admin.indexer.index([old])
    svc.state.record_articles([(old, counts[old.id])], source.id, [(old.id, None)])
    _retitled(http, "/feed.xml")
    [poll] = svc.sources.poll(due_only=False).sources
    assert (poll.added, poll.updated) == (0, 1)
    [after] = svc.state.iter_articles()
    assert (after.id, after.title) == (old.id, "Ferry cancelled")
    assert {c.article_id for c in svc.store.iter_chunks()} == {old.id}
    # Its link is remembered now: polled again, it is known.
    [poll] = svc.sources.poll(due_only=False).sources
    assert (poll.added, poll.updated, poll.unchanged) == (0, 0, 1)


def test_after_its_page_updated_it_the_latest_edit_of_feed_or_page_gives_the_text(
        svc: Services, http: StaticServer) -> None:
    page = http.url("/news/ferry")

    def coast(words: str) -> str:
        item = Item(title=TITLE, link=page, guid="cd-ferry", description=words * 40,
                    pub_date="Mon, 03 Jun 2024 08:00:00 GMT")
        return http.add("/coast.xml", rss([item], title="Coast Daily"),
                        content_type="application/rss+xml")

    svc.sources.add(coast("The ferry will never sail again, the council said. "))
    http.add("/news/ferry", article_page(TITLE, PARAGRAPHS))
    assert svc.admin.ingest([page]).updated == 1
    [article] = svc.state.iter_articles()
    assert article.text == "\n\n".join(PARAGRAPHS)
    # The feed that delivered it edits its item: still one article, now as the feed tells it.
    [poll] = svc.sources.poll(only=coast("The ferry was sold for scrap, the council said. "),
                              due_only=False).sources
    assert (poll.added, poll.updated) == (0, 1)
    [again] = svc.state.iter_articles()
    assert again.id == article.id and "sold for scrap" in again.text
    # ... and the page, read again, gives it back its own words.
    assert svc.admin.ingest([page]).updated == 1
    assert [a.text for a in svc.state.iter_articles()] == ["\n\n".join(PARAGRAPHS)]


def test_a_page_much_shorter_than_the_article_at_its_address_does_not_replace_it(
        svc: Services, http: StaticServer) -> None:
    page = _follow_one_block(svc, http)
    [article] = svc.state.iter_articles()
    # A consent wall or a paywall at the story's address: a fraction of the story.
    http.add("/news/ferry", article_page(TITLE, PARAGRAPHS[:1]))
    report = svc.admin.ingest([page])
    assert (report.added, report.updated, report.unchanged) == (0, 0, 1)
    assert list(svc.state.iter_articles()) == [article]
    # Once the page tells the whole story again, it does replace it.
    http.add("/news/ferry", article_page(TITLE, EDITED))
    assert svc.admin.ingest([page]).updated == 1
    assert svc.state.get_article(article.id).text == "\n\n".join(EDITED)
    # A paywall later at the address it updated from changes nothing either.
    http.add("/news/ferry", article_page(TITLE, PARAGRAPHS[:1]))
    assert svc.admin.ingest([page]).unchanged == 1
    assert svc.state.get_article(article.id).text == "\n\n".join(EDITED)


def test_a_feed_ingested_again_whose_items_lead_to_one_page(svc: Services,
                                                            http: StaticServer) -> None:
    http.add("/home", article_page("Harbour Weekly home", story_paragraphs(9)))

    def serve(*numbers: int) -> str:
        return http.add("/world.xml", rss([_via(http, "world", n, "/home") for n in numbers]),
                        content_type="application/rss+xml")

    assert svc.admin.ingest([serve(0)]).added == 1
    [first] = svc.state.iter_articles()
    report = svc.admin.ingest([serve(0, 1)])
    assert (report.added, report.updated, report.unchanged) == (1, 0, 1)
    assert svc.state.get_article(first.id) == first
    assert len({a.url for a in svc.state.iter_articles()}) == 2


def test_a_followed_feed_ingested_too_is_one_article_per_item(svc: Services,
                                                             http: StaticServer) -> None:
    http.add("/news/ferry", article_page(TITLE, PARAGRAPHS))
    feed = http.add("/feed.xml", rss([_listing(http, "redirect")]),
                    content_type="application/rss+xml")
    svc.sources.add(feed)
    [article] = svc.state.iter_articles()
    report = svc.admin.ingest([feed])
    assert (report.added, report.updated, report.unchanged) == (0, 0, 1)
    assert list(svc.state.iter_articles()) == [article]


def test_a_feed_ingested_once_stores_each_item_where_a_followed_feed_does(
        tmp_path: Path, allow_private_urls: None, http: StaticServer) -> None:
    page = http.add("/news/ferry", article_page(TITLE, PARAGRAPHS))
    feed = http.add("/feed.xml", rss([_listing(http, "redirect")]),
                    content_type="application/rss+xml")
    stored: dict[str, tuple[str | None, str, str]] = {}
    for how in ("follow", "ingest"):
        services = make_services(tmp_path / how, sample=False, fetch_timeout_s=3)
        try:
            if how == "ingest":
                assert services.admin.ingest([feed]).added == 1
            else:
                assert services.sources.add(feed)["poll"]["added"] == 1
            [article] = services.state.iter_articles()
            stored[how] = (article.url, article.id, article.title)
        finally:
            services.close()
    assert stored["ingest"] == stored["follow"] and stored["ingest"][0] == page
    # Ingested again after the outlet retitled the story (its link now leads elsewhere): the
    # link was remembered, so it is the same article, updated, as for a followed feed.
    services = make_services(tmp_path / "ingest", sample=False, fetch_timeout_s=3)
    try:
        _retitled(http, "/feed.xml")
        report = services.admin.ingest([feed])
        assert (report.added, report.updated) == (0, 1)
        [after] = services.state.iter_articles()
        assert (after.id, after.url) == (article.id, http.url("/news/ferry-cancelled"))
    finally:
        services.close()
