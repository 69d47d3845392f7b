"""The bot's cogs, and how they reach the core."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import discord

from bot import checks
from bot.core.admin import Progress
from bot.core.operations import Context, run_operation

if TYPE_CHECKING:
    from bot.client import NewsBot


async def call_core(bot: NewsBot, interaction: discord.Interaction[Any], op: str,
                    args: dict[str, Any], emit: Any = None) -> dict[str, Any]:
    """Run a core operation for the member behind ``interaction``: through the running
    service (one write at a time; it checks the member's rights again), or in a worker
    thread when the bot runs without one (tests)."""
    actor = checks.actor(interaction)
    if bot.service is not None:
        return await bot.service.call(op, args, emit, actor=actor)
    progress = Progress.emitting(emit) if emit else Progress()
    return await asyncio.to_thread(run_operation, op,
                                   Context(bot.services, progress, actor=actor), args)
