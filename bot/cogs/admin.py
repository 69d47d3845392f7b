"""Admins in Discord: ``/feeds add|remove|list`` and ``/reindex``, and alerts to moderators.

Member-facing ``/sources`` (in meta.py) stays a read-only list of outlets. Discord cannot
have one top-level name be both a command and a group, so the admin commands that follow
feeds and pages live under ``/feeds``. Every command here is hidden from members by default
permissions, checked at run time, and checked again by the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import checks, render
from bot.client import NO_MENTIONS, one_line
from bot.cogs import call_core
from bot.core.admin import ReindexReport
from bot.core.models import NewsbotError, counted, redact_url, source_label
from bot.threads import call_soon

if TYPE_CHECKING:
    from bot.client import NewsBot

log = logging.getLogger(__name__)

EDIT_EVERY_S = 5.0  # reindex progress: one message edited at most this often


class Admin(commands.Cog):
    """Sources the bot follows, and the store behind them."""

    feeds = app_commands.Group(name="feeds", description="Feeds and pages the bot follows",
                               **checks.group_kwargs("admin"))

    def __init__(self, bot: NewsBot) -> None:
        self.bot = bot
        self.services = bot.services
        self._pending: asyncio.Future[None] | None = None  # the start-up notice, if any

    async def cog_load(self) -> None:
        if self.bot.service is not None and self.bot.settings.mod_channel_id:
            self.bot.service.alert = self.alert
        if self.bot.service is None:
            return  # `newsbot sync`: commands only, no services behind them
        admin = self.services.admin
        if admin.model_change_pending:
            line = (f"The store holds vectors of {admin.indexer.embedder.model_id} but "
                    f"{admin.target_embedder.model_id} is configured: answers use the old "
                    "model until an admin runs `/reindex full:True`.")
            self._pending = asyncio.ensure_future(self._after_ready(line))

    async def _after_ready(self, line: str) -> None:
        await self.bot.wait_until_ready()
        if self.bot.service is not None:
            await self.bot.service.tell_moderators(line)

    async def cog_unload(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        if self.bot.service is not None and self.bot.service.alert == self.alert:
            self.bot.service.alert = None

    async def alert(self, line: str) -> None:
        """One line to the moderators' channel (NEWSBOT_MOD_CHANNEL_ID)."""
        channel_id = self.bot.settings.mod_channel_id
        if not channel_id:
            return
        channel = self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
        # A line may carry a feed's own words (its title as the source's name, what its
        # server answered): shown as text, never as a link it disguises.
        await channel.send(render.truncate(render.clean_text(line), 1900),  # type: ignore[union-attr]
                           allowed_mentions=NO_MENTIONS)

    async def _call(self, interaction: discord.Interaction[Any], op: str,
                    args: dict[str, Any], emit: Any = None) -> dict[str, Any]:
        return await call_core(self.bot, interaction, op, args, emit)

    # -- /feeds ------------------------------------------------------------------------------
    @feeds.command(name="add", description="Follow a feed or news page; it is checked first.")
    @app_commands.describe(url="The feed or page URL", name="A short name for it",
                           every="Minutes between polls (default from the settings)")
    @checks.is_admin()
    async def feeds_add(self, interaction: discord.Interaction[Any],
                        url: app_commands.Range[str, 8, 2000],
                        name: app_commands.Range[str, 1, 80] | None = None,
                        every: app_commands.Range[int, 1, 10080] | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self._call(interaction, "sources.add",
                                  {"url": url, "name": name, "every": every})
        poll = result["poll"]
        # The source is followed by now: the reply must fit Discord's 2,000 characters
        # whatever the address, or the admin would read a failure. A long address is not
        # linked (cut short it would lead elsewhere).
        label = render.truncate(source_label(result["name"], result["spec"]), 100)
        link = render.safe_url(redact_url(result["spec"]))
        await interaction.followup.send(
            f"Following **{render.plain(label)}** "
            f"(id {result['id']}, {result['kind']}), every {result['every_min']} min.\n"
            + _fetched(poll) + (f"\n<{link}>" if link else ""),
            ephemeral=True, allowed_mentions=NO_MENTIONS)

    @feeds.command(name="remove", description="Stop following a source; articles only it "
                                              "delivered leave the store.")
    @app_commands.describe(source="The source (its id, name or URL)")
    @checks.is_admin()
    async def feeds_remove(self, interaction: discord.Interaction[Any],
                           source: app_commands.Range[str, 1, 2000]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self._call(interaction, "sources.remove", {"spec": source})
        label = render.plain(render.truncate(source_label(result["name"], result["spec"]), 100))
        await interaction.followup.send(
            f"Removed source {result['id']} ({label}): "
            f"{counted(result['articles_removed'], 'article')} left the store."
            + _ended(result.get("subscriptions_ended") or []),
            ephemeral=True, allowed_mentions=NO_MENTIONS)

    @feeds_remove.autocomplete("source")
    async def _source_choices(self, interaction: discord.Interaction[Any],
                              current: str) -> list[app_commands.Choice[str]]:
        if not checks.allowed("admin", interaction):
            return []
        rows = await asyncio.to_thread(self.services.state.list_sources)
        wanted = current.casefold()
        found = [r for r in rows if wanted in f"{r.id} {r.label}".casefold()]
        return [app_commands.Choice(name=render.truncate(f"{r.id} · {r.label}", 100),
                                    value=str(r.id)) for r in found[:25]]

    @feeds.command(name="list", description="Every source with its health and next poll.")
    @checks.is_admin()
    async def feeds_list(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self._call(interaction, "sources.list", {})
        await interaction.followup.send(embed=render.feeds_embed(result["sources"]),
                                        ephemeral=True, allowed_mentions=NO_MENTIONS)

    # -- /reindex ----------------------------------------------------------------------------
    @app_commands.command(name="reindex",
                          description="Sync the store to the registry, or rebuild it.")
    @app_commands.describe(full="Rebuild into a new collection (the old one serves meanwhile)",
                           dry_run="Only say what would change")
    @checks.is_admin()
    async def reindex(self, interaction: discord.Interaction[Any], full: bool = False,
                      dry_run: bool = False) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        state: dict[str, Any] = {"phase": "starting", "total": None, "articles": 0,
                                 "chunks": 0}
        loop = asyncio.get_running_loop()

        def emit(event: dict[str, Any]) -> None:  # from the job's thread
            call_soon(loop, _fold, state, event)

        job = asyncio.ensure_future(
            self._call(interaction, "reindex", {"full": full, "dry_run": dry_run}, emit))
        # The deferred reply is the one message: edited with counts, at most every 5 s.
        while not job.done():
            await asyncio.wait({job}, timeout=EDIT_EVERY_S)
            if not job.done():
                with contextlib.suppress(discord.HTTPException):
                    await interaction.edit_original_response(content=_progress_line(state),
                                                             allowed_mentions=NO_MENTIONS)
        try:
            line = f"Done: {ReindexReport(**job.result()).summary()}."
        except NewsbotError as exc:  # the service has told the moderators of a failure
            line = f"Reindex not done: {one_line(str(exc))}"
        except Exception as exc:
            log.error("reindex failed", exc_info=exc)
            line = "Reindex not done: it failed; the live store serves as before (see the log)."
        await interaction.edit_original_response(content=line, allowed_mentions=NO_MENTIONS)


def _fetched(poll: dict[str, Any]) -> str:
    """What the fetch of ``/feeds add`` did: a new source's first fetch posts nothing (or
    its newest items, added with a backfill); a source followed already was polled, and its
    new items are briefed as any poll's."""
    added = counted(poll["added"], "new article")
    if poll.get("first_fetch"):
        backfill = min(int(poll.get("backfill") or 0), int(poll["added"]))
        return (f"First fetch: {added} stored " + (
            f"(briefs are posted for the {backfill} newest)." if backfill else
            "(no briefs are posted for them)."))
    if poll.get("outcome") == "not modified":
        return "Already followed; fetched now: not modified since the last poll."
    return (f"Already followed; fetched now: {added}"
            + (", briefed to the channels that follow it." if poll["added"] else "."))


ENDED_LISTED = 20  # of the subscriptions a removed source ended, named in the reply


def _ended(subs: list[dict[str, Any]]) -> str:
    """The subscriptions a removed source ended, by number and channel (within Discord's
    2,000 characters however many)."""
    if not subs:
        return ""
    named = ", ".join(f"#{s['id']} in <#{s['channel_id']}>" for s in subs[:ENDED_LISTED])
    more = len(subs) - ENDED_LISTED
    its = "Its subscription" if len(subs) == 1 else f"Its {len(subs)} subscriptions"
    return (f" {its} ended: {named}" + (f" and {more} more" if more > 0 else "") + ".")


def _fold(state: dict[str, Any], event: dict[str, Any]) -> None:
    if "phase" in event:
        state.update(phase=event["phase"], total=event["total"], articles=0)
    elif "articles" in event:
        state["articles"] += event["articles"]
    elif "chunks" in event:
        state["chunks"] += event["chunks"]
    elif "waiting" in event:
        state["phase"] = f"waiting: {event['waiting']}"


def _progress_line(state: dict[str, Any]) -> str:
    total = state["total"]
    done = state["articles"]
    pct = f" ({100 * done // total}%)" if total else ""
    return (f"Reindex · {state['phase']}: {done}{'/' + str(total) if total else ''} "
            f"articles{pct}, {state['chunks']} chunks · {time.strftime('%H:%M:%S')}")


async def setup(bot: NewsBot) -> None:
    await bot.add_cog(Admin(bot))
