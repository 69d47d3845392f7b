"""Sources and the store are shared by every server the bot is in: only the home server's
admins manage them, and members are not shown them. The bot runs in-process on the local
Discord; the other server is one anybody could add a public bot to, and its owner is that
server's admin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot import checks
from tests.bot.conftest import OnDiscord
from tests.bot.test_bot_bad_input import _state_rows
from tests.support.discord_server import Interaction

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
    assert [c["name"] for c in owner.choices or []] == [
        "https://feeds.example.org/paid.rss?key=s3cret"]
