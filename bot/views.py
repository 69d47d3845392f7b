"""The 👍/👎 buttons under every answer.

One persistent view (no timeout, fixed custom ids) is registered when the bot starts, so the
buttons on answers posted before a restart keep working: Discord sends the custom id and
the message, and the vote is recorded against that message id.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import discord

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

UP_ID = "newsbot:fb:up"
DOWN_ID = "newsbot:fb:down"
NO_MENTIONS = discord.AllowedMentions.none()


class FeedbackView(discord.ui.View):
    """👍/👎 on an answer; stateless, so one instance serves every answer message."""

    def __init__(self, services: Services) -> None:
        super().__init__(timeout=None)
        self.services = services

    @discord.ui.button(emoji="👍", style=discord.ButtonStyle.secondary, custom_id=UP_ID)
    async def up(self, interaction: discord.Interaction[Any], _: discord.ui.Button[Any]) -> None:
        await self._vote(interaction, 1)

    @discord.ui.button(emoji="👎", style=discord.ButtonStyle.secondary, custom_id=DOWN_ID)
    async def down(self, interaction: discord.Interaction[Any], _: discord.ui.Button[Any]) -> None:
        await self._vote(interaction, -1)

    async def _vote(self, interaction: discord.Interaction[Any], value: int) -> None:
        message = interaction.message
        known = message is not None and await asyncio.to_thread(
            self.services.feedback.vote,
            message_id=message.id,
            user_id=interaction.user.id,
            value=value,
        )
        if known:
            text = (
                "Thanks: noted 👍." if value > 0 else "Thanks: noted 👎; it helps improve answers."
            )
        else:
            text = "That answer is no longer on record, so the vote was not counted."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    async def on_error(
        self,
        interaction: discord.Interaction[Any],
        error: Exception,
        item: discord.ui.Item[Any],
    ) -> None:
        log.error("feedback button %s failed", getattr(item, "custom_id", item), exc_info=error)
        line = "Sorry, your vote could not be recorded; please try again later."
        if interaction.response.is_done():
            await interaction.followup.send(line, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(
                line, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
