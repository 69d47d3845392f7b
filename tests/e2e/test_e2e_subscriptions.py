"""Subscriptions made on the command line, seen from Discord: the server whose channel they
post to manages them like its own."""

from __future__ import annotations

from typing import Any

from bot.client import NewsBot
from bot.core.operations import Context, run_operation
from bot.core.services import Services
from tests.e2e.test_e2e_briefs import _general, _guild, _mod, bot, server, svc  # noqa: F401
from tests.support.discord_server import LocalDiscord


async def test_a_subscription_made_on_the_command_line_is_managed_from_its_server(
        server: LocalDiscord, svc: Services, bot: NewsBot) -> None:  # noqa: F811
    """`newsbot subscriptions add --channel ID` knows no server. Its channel's moderators
    read "No subscriptions yet." in `/brief list` while its briefs arrived, `/brief
    unsubscribe` said there was no such subscription, and `/brief timezone` left its digest
    hour where it was. A subscription to a channel of no server the bot sees stays apart."""
    guild, general = _guild(server), _general(server)
    news = server.add_channel(guild, "news")
    await server.wait_async(lambda: bot.get_channel(news.id), what="the channel")
    mod = _mod(server)
    # As `newsbot subscriptions add` makes them (the command line's actor, no server).
    made = run_operation("subscriptions.add", Context(svc),
                         {"channel_id": news.id, "topic": "harbour ferries",
                          "mode": "digest", "digest_hour": 7})
    elsewhere = run_operation("subscriptions.add", Context(svc),
                              {"channel_id": 4242424242, "topic": "harbour ferries"})

    async def reply(name: str, **options: Any) -> str:
        inter = server.slash(mod, general, name, **options)
        (line,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                                   if m.content], what=f"/{name}'s reply")
        assert line.ephemeral
        return str(line.content)

    listed = await reply("brief list")
    assert listed.startswith(f"#{made['id']} <#{news.id}> follows topic \"harbour ferries\"")
    assert f"#{elsewhere['id']} " not in listed and "4242424242" not in listed
    assert await reply("brief timezone", zone="Asia/Tokyo") == (
        "Digest hours are now in Asia/Tokyo (1 subscription follows).")
    assert "07:00 Asia/Tokyo" in await reply("brief list")
    assert await reply("brief unsubscribe", subscription=made["id"]) == (
        f"Subscription #{made['id']} removed.")
    assert [s.id for s in svc.desk.subscriptions()] == [elsewhere["id"]]
    # The other server's (or no server's) subscription is not this server's to remove.
    line = await reply("brief unsubscribe", subscription=elsewhere["id"])
    assert line == f"no subscription #{elsewhere['id']}"
    assert [s.id for s in svc.desk.subscriptions()] == [elsewhere["id"]]


async def test_subscribing_a_channel_to_what_it_follows_names_that_subscription(
        server: LocalDiscord, svc: Services, bot: NewsBot) -> None:  # noqa: F811
    """The refusal pointed to `subscriptions list`, which is no command in Discord, and did
    not say which subscription already does it."""
    general = _general(server)
    mod = _mod(server)
    first = svc.desk.subscribe(channel_id=general.id, guild_id=_guild(server).id,
                               topic="harbour ferries")
    inter = server.slash(mod, general, "brief subscribe", channel=general.id,
                         topic="harbour  ferries")
    (line,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                               if m.content], what="the reply")
    assert line.ephemeral and line.content == (
        f"that channel already follows that (subscription #{first.id}); "
        "`/brief list` or `newsbot subscriptions list` lists them")
