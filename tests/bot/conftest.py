"""Fixtures for the Discord side: the bot on dpytest's fake guild, with the real core."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import discord.ext.test as dpytest
import pytest_asyncio
from discord.ext.test import backend as dback

from bot.client import NewsBot
from bot.core.services import Services
from tests.bot.discord_double import Harness, RecordingHttp


@pytest_asyncio.fixture
async def harness(services: Services) -> AsyncIterator[Harness]:
    """The bot on a fake guild with one text channel and two members."""
    # dpytest adds members one by one (GUILD_MEMBER_ADD), which discord.py caches only with
    # the members intent; real Discord sends the bot's own member in GUILD_CREATE instead.
    intents = NewsBot(services).intents
    intents.members = True
    bot = NewsBot(services, intents=intents)
    await bot._async_setup_hook()
    dpytest.configure(bot, text_channels=["news"], voice_channels=0, members=["ana", "ben"])
    http = bot.http
    http.__class__ = RecordingHttp
    http.sent = []  # type: ignore[attr-defined]
    http.forbidden = set()  # type: ignore[attr-defined]
    # After configure: it replaces the connection state that holds the view store.
    await bot.setup_hook()
    cfg = dpytest.get_config()
    guild = cfg.guilds[0]
    # A text-channel role as a server would grant the bot (threads included).
    perms = discord.Permissions.text() | discord.Permissions(view_channel=True)
    dback.update_role(guild.default_role, permissions=perms.value)
    h = Harness(
        bot=bot,
        services=services,
        guild=guild,
        channel=cfg.channels[0],
        members=list(cfg.members),
        http=http,  # type: ignore[arg-type]
    )
    try:
        yield h
    finally:
        await dpytest.empty_queue()
        for cog in list(bot.cogs):
            await bot.remove_cog(cog)


# -- the bot on the local Discord (tests/support/discord_server.py), in this process ------------
import asyncio  # noqa: E402
import contextlib  # noqa: E402
from collections.abc import Awaitable, Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import yarl  # noqa: E402

from tests.support.discord_server import (  # noqa: E402
    MESSAGE_FLAG_LOADING,
    Channel,
    Guild,
    Interaction,
    LocalDiscord,
    Message,
    User,
)


class LocalNewsBot(NewsBot):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass  # discord.py waits 5 s before identifying again; nothing here needs it


@dataclass
class OnDiscord:
    """The real bot (real discord.py HTTP and gateway) on the local Discord."""

    server: LocalDiscord
    guild: Guild
    news: Channel
    bot: NewsBot
    services: Services
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def member(self, name: str) -> User:
        return self.server.add_member(self.guild, name)

    def mention(self, text: str) -> str:
        return f"<@{self.server.bot.id}> {text}"

    async def wait(self, predicate: Callable[[], Any], what: str = "it",
                   timeout: float = 15.0) -> Any:
        return await self.server.wait_async(predicate, what=what, timeout=timeout)

    async def answer_to(self, question: Message) -> Message:
        return await self.wait(lambda: next((m for m in self.server.replies_to(question)
                                             if is_answer(m)), None), "the answer")

    async def slash_answer(self, inter: Interaction) -> Message:
        return await self.wait(lambda: next((m for m in self.server.responses(inter)
                                             if is_answer(m)), None), "the /ask answer")

    async def settle(self) -> None:
        """Let the bot handle what has been sent (a round trip through the gateway)."""
        marker = self.server.say(self.member("marker"), self.news, "settling")
        await self.wait(lambda: marker.id in {m.id for m in self.bot.cached_messages},
                        "the bot to catch up")


def is_answer(m: Message) -> bool:
    """A finished answer: an embed, not loading, with the feedback buttons."""
    return bool(m.embeds) and bool(m.components) and not m.flags & MESSAGE_FLAG_LOADING


@pytest.fixture
def local_discord() -> Iterator[LocalDiscord]:
    with LocalDiscord() as server:
        yield server


@pytest_asyncio.fixture
async def start_on_discord(
    services: Services, local_discord: LocalDiscord, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Awaitable[OnDiscord]]]:
    """Starts the bot on a guild with #news; ``message_content`` switches the intent on (in
    the portal and in the bot); other keywords are settings."""
    monkeypatch.setattr(discord.http.Route, "BASE", local_discord.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                        yarl.URL(local_discord.gateway_url))
    started: list[OnDiscord] = []

    async def start(*, message_content: bool = False, services: Services = services,
                    **settings: Any) -> OnDiscord:
        server = local_discord
        server.message_content_enabled = message_content
        guild = server.add_guild("Newsroom", channel=None)
        news = server.add_channel(guild, "news")
        services.settings.dev_guild_id = guild.id
        for key, value in settings.items():
            setattr(services.settings, key, value)
        bot = LocalNewsBot(services, message_content=message_content, guild_ready_timeout=0.05)
        await bot.login(server.token)
        world = OnDiscord(server, guild, news, bot, services)
        world.tasks.append(asyncio.create_task(bot.connect()))
        started.append(world)
        await world.wait(lambda: bot.is_ready() or world.tasks[0].done(), "the bot to connect")
        if world.tasks[0].done():
            world.tasks[0].result()
        return world

    yield start
    for world in started:
        await world.bot.close()
        for task in world.tasks:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
