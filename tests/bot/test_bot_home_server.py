"""Sources and the store are shared by every server the bot is in: only the home server's
admins manage them, and members are not shown them. The bot runs in-process on the local
Discord; the other server is one anybody could add a public bot to, and its owner is that
server's admin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot import checks
from bot.views import DOWN_ID
from tests.bot.conftest import OnDiscord
from tests.bot.test_bot_bad_input import _state_rows
from tests.support.discord_server import Channel, Interaction, User

Start = Callable[..., Awaitable[OnDiscord]]


async def _line(w: OnDiscord, inter: Interaction) -> str:
    msgs = await w.wait(lambda: w.server.responses(inter), "the reply")
    assert all(m.ephemeral for m in msgs)
    return msgs[-1].content or ""


async def test_the_admin_of_another_server_manages_no_source(start_on_discord: Start) -> None:
    w = await start_on_discord()
    await w.bot.tree.sync()  # global: every server the bot is in has the commands
    mallory = w.server._new_user("mallory")
    elsewhere = w.server.add_guild("Elsewhere", owner=mallory)
    [lobby] = elsewhere.channels.values()
    await w.wait(lambda: w.bot.get_guild(elsewhere.id), "the bot to join Elsewhere")
    before = _state_rows(w)
    articles = w.services.store.count()
    commands = [("feeds add", {"url": "https://example.org/feed.xml"}),
                ("feeds remove", {"source": "1"}), ("feeds list", {}), ("reindex", {})]

    def attempt() -> list[str]:
        return [w.server.slash(mallory, lobby, name, **options) for name, options in commands]

    # With no home server configured, the bot's only server was home; now it has two.
    w.services.settings.dev_guild_id = None
    for inter in attempt():
        assert await _line(w, inter) == checks.SEVERAL_SERVERS
    # Configured, the home server is the one named.
    w.services.settings.admin_guild_ids = [w.guild.id]
    for inter in attempt():
        assert await _line(w, inter) == checks.OTHER_SERVER
    assert _state_rows(w) == before and w.services.store.count() == articles
    # The home server's owner still manages them.
    home = w.server.slash(w.server.owner, w.news, "feeds list")
    assert "Followed sources" in str((await w.wait(
        lambda: [m for m in w.server.responses(home) if m.embeds], "the list"))[0].embeds)


async def test_a_member_is_offered_no_source_to_subscribe_to(start_on_discord: Start) -> None:
    w = await start_on_discord()
    w.services.state.add_source("https://feeds.example.org/paid.rss?key=s3cret", "feed",
                                watch=True)
    # Discord's client offers members no hidden command; a request sent anyway is answered.
    member = w.server.autocomplete(w.member("nia"), w.news, "brief subscribe", "source", "")
    owner = w.server.autocomplete(w.server.owner, w.news, "brief subscribe", "source", "")
    await w.wait(lambda: owner.choices is not None and member.choices is not None,
                 "both answers")
    assert member.choices == []
    # The moderator is offered it, its key hidden.
    assert [c["name"] for c in owner.choices or []] == [
        "https://feeds.example.org/paid.rss?key=REDACTED"]


async def _said(w: OnDiscord, inter: Interaction) -> str:
    """The line a deferred command ends with (its "thinking" response has none)."""
    msgs = await w.wait(lambda: [m for m in w.server.responses(inter) if m.content],
                        "the line")
    return msgs[-1].content or ""


async def test_moderators_see_only_their_own_servers_feedback_and_subscriptions(
    start_on_discord: Start,
) -> None:
    w = await start_on_discord(answer_in_threads=False)
    await w.bot.tree.sync()
    mallory = w.server._new_user("mallory")
    elsewhere = w.server.add_guild("Elsewhere", owner=mallory)
    [lobby] = elsewhere.channels.values()
    await w.wait(lambda: w.bot.get_guild(elsewhere.id), "the bot to join Elsewhere")

    home_q = w.server.say(w.member("ana"), w.news,
                          w.mention("what did Netflix use generative AI for in The Eternaut?"))
    answer = await w.answer_to(home_q)
    away_q = w.server.say(mallory, lobby, w.mention("who won the 2031 chess olympiad?"))
    await w.answer_to(away_q)
    await w.wait(lambda: w.services.feedback.stats().answers == 2, "both answers recorded")
    vote = w.server.click(w.member("ben"), answer, DOWN_ID)
    await w.wait(lambda: w.server.responses(vote), "the vote")
    for owner, channel, topic in ((w.server.owner, w.news, "film studios"),
                                  (mallory, lobby, "chess tournaments")):
        inter = w.server.slash(owner, channel, "brief subscribe", channel=str(channel.id),
                               topic=topic)
        assert "Subscription #" in await _said(w, inter)

    async def shown(owner: User, channel: Channel) -> tuple[str, str]:
        stats = w.server.slash(owner, channel, "feedback stats")
        [msg] = await w.wait(lambda: [m for m in w.server.responses(stats) if m.embeds],
                             "the stats")
        fields = {f["name"]: f["value"] for f in msg.embeds[0]["fields"]}
        listing = await _said(w, w.server.slash(owner, channel, "brief list"))
        return " | ".join(fields.values()), listing

    home_stats, home_list = await shown(w.server.owner, w.news)
    away_stats, away_list = await shown(mallory, lobby)
    assert home_stats.startswith("👍 0 · 👎 1 · 1 answer") and "chess" not in home_stats
    assert "Netflix" in home_stats  # its most downvoted answer
    assert away_stats.startswith("👍 0 · 👎 0 · 1 answer") and "Netflix" not in away_stats
    assert "chess olympiad" in away_stats  # its unanswered question
    assert "film studios" in home_list and "chess" not in home_list
    assert "chess tournaments" in away_list and "film" not in away_list
