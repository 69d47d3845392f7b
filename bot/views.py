"""The 👍/👎 buttons under every answer.

The buttons are dynamic items (discord.py's stateless components), registered once when the
bot starts: the buttons on answers posted before a restart keep working, since Discord sends
the custom id and the message, and the vote is recorded against that message id. A view of
persistent items would do the same, but discord.py then remembers every message it was sent
with (about half a kilobyte per answer, for the life of the process); a view made only of
dynamic items is remembered nowhere.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any, Literal

import discord

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

UP_ID = "newsbot:fb:up"
DOWN_ID = "newsbot:fb:down"
NO_MENTIONS = discord.AllowedMentions.none()


class FeedbackButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                     template=r"newsbot:fb:(?P<vote>up|down)"):
    """👍 or 👎; stateless, so any answer message's button is served by it."""

    def __init__(self, vote: Literal["up", "down"], services: Services | None = None) -> None:
        up = vote == "up"
        super().__init__(discord.ui.Button(emoji="👍" if up else "👎",
                                           style=discord.ButtonStyle.secondary,
                                           custom_id=UP_ID if up else DOWN_ID))
        self.value = 1 if up else -1
        self.services = services

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Button[Any], match: re.Match[str]
                             ) -> FeedbackButton:
        return cls("up" if match["vote"] == "up" else "down")

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await self._vote(interaction)
        except Exception:
            log.exception("feedback button %s failed", self.custom_id)
            line = "Sorry, your vote could not be recorded; please try again later."
            if interaction.response.is_done():
                await interaction.followup.send(line, ephemeral=True,
                                                allowed_mentions=NO_MENTIONS)
            else:
                await interaction.response.send_message(line, ephemeral=True,
                                                        allowed_mentions=NO_MENTIONS)

    async def _vote(self, interaction: discord.Interaction[Any]) -> None:
        services: Services = self.services or interaction.client.services  # type: ignore[attr-defined]
        message = interaction.message
        known = message is not None and await asyncio.to_thread(
            services.feedback.vote,
            message_id=message.id,
            user_id=interaction.user.id,
            value=self.value,
        )
        if known:
            text = (
                "Thanks: noted 👍." if self.value > 0
                else "Thanks: noted 👎; it helps improve answers."
            )
        else:
            text = "That answer is no longer on record, so the vote was not counted."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


class FeedbackView(discord.ui.View):
    """👍/👎 on an answer; one instance is sent with every answer message."""

    def __init__(self, services: Services) -> None:
        super().__init__(timeout=None)
        self.services = services
        self.up = FeedbackButton("up", services)
        self.down = FeedbackButton("down", services)
        self.add_item(self.up)
        self.add_item(self.down)
