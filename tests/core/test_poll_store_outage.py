"""A feed poll while the Chroma server does not answer: nothing is lost, and the feed is not
read again at every tick of the watcher until the server is back."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.core.state import utcnow
from tests.fakes import make_services
from tests.support.chroma_server import ChromaServer
from tests.support.feeds import numbered_items, rss
from tests.support.http import StaticServer

pytestmark = pytest.mark.integration


def test_a_poll_the_store_cannot_take_waits_its_interval_and_loses_nothing(
        tmp_path: Path, http: StaticServer, allow_private_urls: None) -> None:
    def serve(n: int) -> str:
        # With a validator: one recorded for the read that stored nothing would hide the
        # new item behind a 304 from then on.
        return http.add("/feed.xml", rss(numbered_items(0, n, long_text=True)),
                        content_type="application/rss+xml", etag=f'"v{n}"')

    def feed_reads() -> int:
        return http.paths().count("/feed.xml")

    with ChromaServer(tmp_path / "chroma") as chroma:
        svc = make_services(tmp_path / "data", sample=False, chroma_url=chroma.url)
        try:
            url = serve(2)
            svc.sources.add(url, name="harbour", every_min=10)
            serve(3)  # a new item, then the server stops
            chroma.stop()
            svc.state.update_source(svc.state.list_sources()[0].id, next_poll=utcnow())
            with pytest.raises(Exception):  # noqa: B017 (the service words it in one line)
                svc.sources.poll()
            now = utcnow()
            reads = feed_reads()
            # The watcher ticks every 30 s: the feed (and its new items' pages) is not read,
            # nor its items embedded again, at each of them while the server is away.
            for minutes in (0.5, 1, 5, 9.9):
                assert svc.sources.poll(now=now + timedelta(minutes=minutes)).sources == []
            assert feed_reads() == reads
            [row] = svc.admin.source_list()
            assert row["status"] == "ok" and row["failures"] == 0  # not the feed's fault

            chroma.start()
            [poll] = svc.sources.poll(now=now + timedelta(minutes=10.5)).sources
            # Nothing was recorded while the server was away: the item is new now.
            assert (poll.outcome, poll.added, poll.unchanged) == ("changed", 1, 2)
            assert set(poll.added_ids) <= {r["article_id"] for r in svc.state.queued_briefs()}
            dry = svc.admin.reindex(dry_run=True)
            assert (dry.articles, dry.added, dry.updated, dry.deleted) == (3, 0, 0, 0)
        finally:
            svc.close()
