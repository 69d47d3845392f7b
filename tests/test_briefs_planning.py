"""Planning briefs is durable: a poll queues its new articles in the transaction that records
them, so a crash before they are planned loses no brief and posts none twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from bot.core.state import BriefIntake
from bot.service import NewsService
from retrieval.articles import Article
from tests.fakes import make_services
from tests.support.feeds import Item, rss, sentence
from tests.support.http import StaticServer
from tests.support.poster import Crash, MemoryPoster

NEWS = 101


def _item(n: int, when: datetime) -> Item:
    return Item(title=f"Item {n}: {sentence(n, 6)}", link=f"https://coast.example/news/{n}",
                guid=f"coast-{n}", description=" ".join(sentence(n * 10 + k) for k in range(6)),
                pub_date=format_datetime(when))


def _service(data: Path) -> NewsService:
    """A service on ``data`` that may read the feed on 127.0.0.1; the watcher stays idle."""
    return NewsService(make_services(data, sample=False, allow_private_urls=True), tick_s=3600,
                       control=False)


async def _until(check: Callable[[], object], what: str) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_crash_between_a_poll_and_its_planning_loses_no_brief(tmp_path: Path) -> None:
    data = tmp_path / "d"
    now = datetime.now(UTC)
    with StaticServer() as http:
        url = http.add("/rss", rss([_item(0, now - timedelta(days=1))]),
                       content_type="application/rss+xml")
        svc = _service(data)
        await svc.start()
        try:
            await svc.call("sources.add", {"url": url, "name": "coast"})
            state, desk = svc.services.state, svc.services.desk
            await _until(lambda: not state.queued_briefs(), "the first fetch planned")
            desk.subscribe(channel_id=NEWS, source="coast", now=now - timedelta(hours=1))

            def killed(*args: object, **kwargs: object) -> None:
                raise Crash("killed after the poll committed, before planning")

            desk.plan = killed  # type: ignore[method-assign]
            http.add("/rss", rss([_item(0, now - timedelta(days=1)), _item(1, now)]),
                     content_type="application/rss+xml")
            polled = await svc.call("poll", {"due_only": False})
            assert polled["sources"][0]["added"] == 1
            await asyncio.sleep(0.2)  # the planning step runs (and dies) beside the call
            (queued,) = state.queued_briefs()
            assert not queued["first_fetch"] and not state.pending_posts()
        finally:
            await svc.stop()

        poster = MemoryPoster()
        for restart in range(2):  # a restart plans what the crash left; a second adds nothing
            svc = _service(data)
            await svc.start()
            try:
                queue = svc.services.state.queued_briefs
                await _until(lambda q=queue: not q(), "the queue planned at start")
                await svc.call("poll", {"due_only": False})
                await svc.services.desk.deliver(poster)
            finally:
                await svc.stop()
            assert [m.title for m in poster.in_channel(NEWS)] == [_item(1, now).title], restart
    assert poster.calls == [f"send {NEWS}"]


def test_an_article_changed_while_it_is_planned_is_planned_again_as_a_change(
        tmp_path: Path) -> None:
    services = make_services(tmp_path / "d", sample=False)
    try:
        state = services.state
        source = state.add_source("https://coast.example/rss", "feed", watch=True)
        article = Article(id="a1", title="Pier reopens", text="The pier reopened on Friday.",
                          url="https://coast.example/pier")
        state.record_articles([(article, 1)], source.id, [("a1", None)],
                              briefs=BriefIntake(source.id, first_fetch=True))
        (read,) = state.queued_briefs()  # a planning pass reads it ...
        edited = Article(id="a1", title="Pier reopens", text="The pier reopened.",
                         url="https://coast.example/pier")
        state.record_articles([(edited, 1)], source.id, [("a1", None)],
                              briefs=BriefIntake(source.id, changed=frozenset({"a1"})))
        state.unqueue_briefs([("a1", int(read["version"]))])  # ... and is done with it
        (left,) = state.queued_briefs()
        assert (left["changed"], left["first_fetch"]) == (1, 0)
        state.unqueue_briefs([("a1", int(left["version"]))])
        assert not state.queued_briefs()
    finally:
        services.close()


def test_a_batch_that_fails_to_plan_stays_queued_and_holds_up_no_other(tmp_path: Path) -> None:
    services = make_services(tmp_path / "d", sample=False)
    try:
        state, desk = services.state, services.desk
        for n in (1, 2):
            source = state.add_source(f"https://coast{n}.example/rss", "feed", watch=True)
            article = Article(id=f"a{n}", title=f"Pier {n} reopens",
                              text=f"Pier {n} reopened on Friday.",
                              url=f"https://coast{n}.example/pier")
            state.record_articles([(article, 1)], source.id, [(article.id, None)],
                                  briefs=BriefIntake(source.id))
        plan = desk.plan

        def fails_on_a1(ids: list[str], **kw: object) -> object:
            if "a1" in ids:
                raise RuntimeError("the model went away")
            return plan(ids, **kw)  # type: ignore[arg-type]

        desk.plan = fails_on_a1  # type: ignore[method-assign,assignment]
        desk.plan_queued()
        assert [r["article_id"] for r in state.queued_briefs()] == ["a1"]
        desk.plan = plan  # type: ignore[method-assign]
        desk.plan_queued()
        assert not state.queued_briefs()
    finally:
        services.close()


async def test_an_article_a_second_followed_feed_lists_later_is_briefed_to_that_feeds_channels(
        tmp_path: Path) -> None:
    now = datetime.now(UTC)
    old, SPORT = _item(0, now - timedelta(days=1)), 102
    story = _item(1, now)
    relisted = Item(title=story.title, link=story.link, guid="inland-1",
                    description=story.description, pub_date=story.pub_date)
    with StaticServer() as http:
        coast = http.add("/coast", rss([old]), content_type="application/rss+xml")
        inland = http.add("/inland", rss([old]), content_type="application/rss+xml")
        svc = _service(tmp_path / "d")
        await svc.start()
        try:
            await svc.call("sources.add", {"url": coast, "name": "coast"})
            await svc.call("sources.add", {"url": inland, "name": "inland"})
            state, desk = svc.services.state, svc.services.desk
            await _until(lambda: not state.queued_briefs(), "the first fetches planned")
            for channel, source in ((NEWS, "coast"), (NEWS, "inland"), (SPORT, "inland")):
                desk.subscribe(channel_id=channel, source=source, now=now - timedelta(hours=1))
            http.add("/coast", rss([old, story]), content_type="application/rss+xml")
            await svc.call("poll", {"due_only": False})
            await _until(lambda: not state.queued_briefs(), "the coast's item planned")
            # The same article, listed by the second feed a poll later.
            http.add("/inland", rss([old, relisted]), content_type="application/rss+xml")
            await svc.call("poll", {"due_only": False})
            await _until(lambda: not state.queued_briefs(), "the inland item planned")
            poster = MemoryPoster()
            await desk.deliver(poster)
        finally:
            await svc.stop()
    # Its channel gets it; the channel following both feeds gets it once.
    assert [m.title for m in poster.in_channel(SPORT)] == [story.title]
    assert [m.title for m in poster.in_channel(NEWS)] == [story.title]
