"""Admin commands against the local Discord: what an admin is told matches what was done."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.client import NewsBot
from bot.core.services import Services
from tests.e2e.test_e2e_briefs import _general, _guild, bot, server, svc  # noqa: F401
from tests.support.discord_server import LocalDiscord
from tests.support.feeds import numbered_items, rss
from tests.support.http import StaticServer


@pytest.mark.usefixtures("allow_private_urls")
async def test_a_long_feed_address_is_followed_and_removed_with_replies_that_fit(
        server: LocalDiscord, svc: Services, bot: NewsBot) -> None:  # noqa: F811
    """A feed address of 1,900 characters (a long query string) is followed and removed,
    and the admin is told so each time: a reply over 2,000 characters is refused by Discord,
    which read as a failure of what had been done (and a second try was refused)."""
    admin = server.add_member(_guild(server), "ada")
    server.add_role(_guild(server), "admins", ["manage_guild"], members=[admin])
    with StaticServer() as http:
        path = "/feed.xml?" + "&".join(f"topic{i}=harbour-and-ferries" for i in range(69))
        url = http.add(path, rss(numbered_items(0, 2, long_text=True)),
                       content_type="application/rss+xml")
        assert 1900 < len(url) <= 2000
        inter = server.slash(admin, _general(server), "feeds add", url=url)
        (line,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                                   if m.content], timeout=30, what="the reply")
    assert line.ephemeral and line.content.startswith("Following **")
    assert "2 new articles" in line.content and len(line.content) <= 2000
    (source,) = [s for s in svc.state.list_sources() if s.spec == url]
    inter = server.slash(admin, _general(server), "feeds remove", source=url)
    (line,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                               if m.content], timeout=30, what="the reply")
    assert line.content.startswith(f"Removed source {source.id} (")
    assert "2 articles left the store" in line.content


@pytest.mark.usefixtures("allow_private_urls")
async def test_removing_a_feed_tells_the_admin_which_subscriptions_ended(
        server: LocalDiscord, svc: Services, bot: NewsBot) -> None:  # noqa: F811
    """Removing a source ends the channel subscriptions that follow it; the admin was told
    only how many articles left, and the channels' briefs stopped with no one told."""
    guild = _guild(server)
    admin = server.add_member(guild, "ada")
    server.add_role(guild, "admins", ["manage_guild"], members=[admin])
    news, port = server.add_channel(guild, "news"), server.add_channel(guild, "port")
    with StaticServer() as http:
        url = http.add("/feed.xml", rss(numbered_items(0, 2, long_text=True)),
                       content_type="application/rss+xml")
        inter = server.slash(admin, _general(server), "feeds add", url=url, name="harbour")
        await server.wait_async(lambda: [m for m in server.responses(inter) if m.content],
                                timeout=30, what="the reply")
    subs = [svc.desk.subscribe(channel_id=c.id, guild_id=guild.id, source="harbour")
            for c in (news, port)]
    topic = svc.desk.subscribe(channel_id=news.id, guild_id=guild.id, topic="harbour")
    inter = server.slash(admin, _general(server), "feeds remove", source="harbour")
    (line,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                               if m.content], timeout=30, what="the reply")
    assert line.ephemeral and line.content == (
        "Removed source 2 (harbour): 2 articles left the store. Its 2 subscriptions ended: "
        f"#{subs[0].id} in <#{news.id}>, #{subs[1].id} in <#{port.id}>.")
    assert [s.id for s in svc.desk.subscriptions()] == [topic.id]


@pytest.mark.usefixtures("allow_private_urls")
async def test_adding_a_followed_feed_again_does_not_say_its_new_items_go_unposted(
        server: LocalDiscord, svc: Services, bot: NewsBot) -> None:  # noqa: F811
    """Adding a followed feed again (to re-enable it after failures, or for another
    interval) fetches it as any poll does: its new items are briefed to the channels that
    follow it. The reply said "First fetch: 2 new articles stored (no briefs are posted for
    them)" all the same."""
    guild = _guild(server)
    admin = server.add_member(guild, "ada")
    server.add_role(guild, "admins", ["manage_guild"], members=[admin])

    async def add(url: str, **options: Any) -> str:
        inter = server.slash(admin, _general(server), "feeds add", url=url, **options)
        (line,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                                   if m.content], timeout=30, what="the reply")
        return str(line.content)

    with StaticServer() as http:
        url = http.add("/feed.xml", rss(numbered_items(0, 2, long_text=True)),
                       content_type="application/rss+xml")
        first = await add(url, name="harbour")
        assert "First fetch: 2 new articles stored (no briefs are posted for them)." in first
        svc.desk.subscribe(channel_id=_general(server).id, guild_id=guild.id,
                           source="harbour", now=datetime(2020, 1, 1, tzinfo=UTC))
        http.add("/feed.xml", rss(numbered_items(0, 4, long_text=True)),
                 content_type="application/rss+xml")
        again = await add(url, every=5)
    assert again.startswith("Following **harbour** (id 2, feed), every 5 min.\n")
    assert "First fetch" not in again and "no briefs" not in again
    assert "Already followed; fetched now: 2 new articles, briefed to the channels that " \
           "follow it." in again
    planned = svc.desk.plan_queued()  # and so they are (one story, by the fake embedding)
    assert planned.briefs >= 1 and planned.briefs + planned.folded == 2
