"""What the bot knows and how it is doing: ``/sources``, ``/status``, ``/feedback stats``,
and the owner's ``@newsbot sync``."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks, render
from bot.client import NO_MENTIONS
from bot.cogs import call_core
from bot.core.state import AnswerScope

if TYPE_CHECKING:
    from bot.client import NewsBot

log = logging.getLogger(__name__)


class Meta(commands.Cog):
    """Member information commands and moderator reports."""

    feedback = app_commands.Group(
        name="feedback", description="Members' votes on answers", **checks.group_kwargs("mod")
    )

    def __init__(self, bot: NewsBot) -> None:
        self.bot = bot
        self.services = bot.services

    @app_commands.command(name="sources", description="The outlets and feeds the bot reads.")
    async def sources(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        summaries = await asyncio.to_thread(self.services.admin.sources)
        await interaction.followup.send(
            embed=render.sources_embed(summaries), ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @app_commands.command(name="status", description="Articles, chunks, model and last ingest.")
    async def status(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        status = await call_core(self.bot, interaction, "status", {})
        # Sources' addresses and errors are for moderators; members see only how many.
        embed = render.status_embed(status, detailed=checks.allowed("mod", interaction))
        await interaction.followup.send(embed=embed, ephemeral=True,
                                        allowed_mentions=NO_MENTIONS)

    @feedback.command(name="stats", description="Votes, unanswered questions, worst answers.")
    @checks.is_mod()
    async def feedback_stats(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        # Only this server's answers: a moderator here has no business with another's.
        guild = interaction.guild
        assert guild is not None  # a guild-only command
        scope = AnswerScope(guild.id, frozenset(
            [c.id for c in guild.channels] + [t.id for t in guild.threads]))
        stats = await asyncio.to_thread(self.services.feedback.stats, scope=scope)
        await interaction.followup.send(
            embed=render.feedback_stats_embed(stats), ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @commands.command(name="sync", hidden=True)
    @commands.is_owner()
    async def sync(
        self, ctx: commands.Context[NewsBot], scope: Literal["guild", "global"] = "guild"
    ) -> None:
        """``@newsbot sync [guild|global]``: publish app commands here, or everywhere."""
        if scope == "global":
            synced = await self.bot.tree.sync()
            where = "globally (up to an hour to appear everywhere)"
        else:
            if ctx.guild is None:
                await ctx.reply(
                    "Use this in a server, or `sync global`.", allowed_mentions=NO_MENTIONS
                )
                return
            self.bot.tree.copy_global_to(guild=ctx.guild)
            synced = await self.bot.tree.sync(guild=ctx.guild)
            where = "to this server"
        log.info("owner synced %d app commands %s", len(synced), where)
        await ctx.reply(
            f"Synced {len(synced)} app commands {where}.",
            mention_author=False,
            allowed_mentions=NO_MENTIONS,
        )


async def setup(bot: NewsBot) -> None:
    await bot.add_cog(Meta(bot))
