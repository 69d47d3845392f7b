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
