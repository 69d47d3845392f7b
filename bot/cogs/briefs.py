"""Briefs in Discord: ``/brief post|subscribe|unsubscribe|list``, the delivery loop that sends
what the posted log holds, the "Ask about this" button under every brief, and the menu of
stories under a list of them (a burst of briefs, a daily digest) to ask about one.

Parse -> check -> call -> render, as everywhere: the commands are for moderators (hidden by
default permissions, checked at run time, and checked again by the service's operations);
sending goes through :class:`DiscordPoster`, the Discord side of the core's ``Poster``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot import checks, render
from bot.client import NO_MENTIONS, tell_failure
from bot.cogs import call_core
from bot.core.delivery import OutMessage, PostError, RecentMessage
from bot.core.models import NewsbotError, Source, counted

if TYPE_CHECKING:
    from bot.client import NewsBot

log = logging.getLogger(__name__)

DELIVER_EVERY_S = 2.0
ASK_ID = "newsbot:brief-ask:{article}"
LIST_ASK_ID = "newsbot:list-ask"
MENU_OPTIONS = 25  # Discord's most for one select menu; a list holds fewer stories
THREAD_HELLO = ("Ask about this story here: answers come from this article first, then from "
                "related coverage.")


# -- rendering an OutMessage -------------------------------------------------------------------
@dataclass(slots=True)
class _BriefView:
    headline: str
    synopsis: str
    points: list[str]
    url: str | None
    published_at: datetime | None
    outlet: str | None


def _when(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _sources(also: list[dict[str, Any]]) -> list[Source]:
    return [Source(n=i, article_id=s.get("article_id") or "", title=s.get("title") or "",
                   outlet=s.get("outlet"), url=s.get("url"),
                   published_at=_when(s.get("published_at")))
            for i, s in enumerate(also, 2)]


def message_embed(msg: OutMessage) -> discord.Embed:
    """The embed of an OutMessage; its title and link are exactly the message's (a post left
    unconfirmed by a crash is recognised by them)."""
    if msg.kind in ("brief", "update") and msg.brief is not None:
        b = msg.brief
        view = _BriefView(b.get("headline") or msg.title, b.get("synopsis") or "",
                          list(b.get("points") or []) if msg.kind == "brief" else [],
                          b.get("url"), _when(b.get("published_at")), b.get("outlet"))
        embed = render.brief_embed(view, also=_sources(msg.also))
        if msg.kind == "update":
            embed.set_author(name="Update on this story")
    elif msg.kind == "digest":
        lines = []
        for n, line in enumerate(msg.lines, 1):
            src = Source(n=n, article_id=line.get("article_id") or "", title=line["title"],
                         outlet=line.get("outlet"), url=line.get("url"), published_at=None)
            more = line.get("count", 1) - 1
            lines.append(render.source_line(src).rsplit(" · ", 1)[0]
                         + (f" · {render.plain(src.outlet)}" if src.outlet else "")
                         + (f" (+{more} more report{'s' if more > 1 else ''})" if more else ""))
        if msg.text:  # how many more a burst's list leaves out
            lines.append(msg.text)
        embed = discord.Embed(description=render.truncate("\n".join(lines) or "No stories.",
                                                          render.DESCRIPTION_LIMIT),
                              colour=render.BRIEF_COLOUR)
    else:
        embed = discord.Embed(description=render.truncate(msg.text or "", 4000),
                              colour=render.ABSTAIN_COLOUR)
    embed.title = msg.title
    embed.url = msg.url if msg.url and re.match(r"https?://", msg.url) else None
    return embed


class AskButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                template=r"newsbot:brief-ask:(?P<article>[A-Za-z0-9_-]{1,40})"):
    """"Ask about this" under a brief: opens (or finds) the brief's thread."""

    def __init__(self, article_id: str) -> None:
        super().__init__(discord.ui.Button(label="Ask about this", emoji="💬",
                                           style=discord.ButtonStyle.primary,
                                           custom_id=ASK_ID.format(article=article_id)))
        self.article_id = article_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Button[Any], match: re.Match[str]) -> AskButton:
        return cls(match["article"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        message = interaction.message
        channel = interaction.channel
        if message is None or not isinstance(channel, discord.TextChannel):
            await interaction.response.send_message(
                "Questions about a brief are asked in a thread of a server channel.",
                ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        await _point_to(interaction, await brief_thread(message, channel))


async def _point_to(interaction: discord.Interaction[Any],
                    thread: discord.Thread | None) -> None:
    """The member's private reply to an ask control: the thread to ask in, or why none."""
    text = (f"Ask your question in {thread.mention}." if thread is not None else
            "I cannot open a thread here (the bot needs Create Public Threads).")
    await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def brief_thread(message: discord.Message,
                       channel: discord.TextChannel) -> discord.Thread | None:
    """The thread on a brief (a thread opened on a message shares its id), made on request."""
    existing = channel.guild.get_thread(message.id)
    if existing is not None:
        return existing
    title = (message.embeds[0].title if message.embeds else None) or "this story"
    try:
        thread = await message.create_thread(name=render.truncate(title, 100),
                                             auto_archive_duration=1440)
    except discord.HTTPException as exc:
        # Already made by another click: fetch it.
        with contextlib.suppress(discord.HTTPException):
            found = await channel.guild.fetch_channel(message.id)
            if isinstance(found, discord.Thread):
                return found
        log.warning("could not open a thread on brief %s: %s", message.id, exc)
        return None
    with contextlib.suppress(discord.HTTPException):
        await thread.send(THREAD_HELLO, allowed_mentions=NO_MENTIONS)
    return thread


def ask_view(article_id: str | None) -> discord.ui.View | None:
    if not article_id:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(AskButton(article_id))
    return view


class ListAskMenu(discord.ui.DynamicItem[discord.ui.Select[Any]], template=LIST_ASK_ID):
    """"Ask about one of these stories" under a list: a story picked gets a thread of its
    own (one per story and channel, found again when picked again), whose questions are
    answered from its article first, as in a brief's thread. A message can hold one thread,
    so these are opened in the channel rather than on the list."""

    def __init__(self, options: list[discord.SelectOption]) -> None:
        super().__init__(discord.ui.Select(custom_id=LIST_ASK_ID, options=options,
                                           placeholder="Ask about one of these stories",
                                           min_values=1, max_values=1))

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Select[Any], match: re.Match[str]) -> ListAskMenu:
        return cls(list(item.options))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        # Only a story the list offers: a forged request names no other article.
        picked = next((o for o in self.item.options if o.value in self.item.values), None)
        channel = interaction.channel
        cog = interaction.client.get_cog("Briefs")  # type: ignore[attr-defined]
        if picked is None or not isinstance(channel, discord.TextChannel) or \
                not isinstance(cog, Briefs):
            await interaction.response.send_message(
                "Questions about a story are asked in a thread of a server channel.",
                ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        await _point_to(interaction, await cog.story_thread(channel, picked.value, picked.label))


def list_view(lines: list[dict[str, Any]]) -> discord.ui.View | None:
    """The menu of a list's stories (those with an article), or None."""
    options: list[discord.SelectOption] = []
    for line in lines:
        article_id = str(line.get("article_id") or "")
        if not article_id or len(article_id) > 100 or \
                any(o.value == article_id for o in options):
            continue
        title = " ".join(str(line.get("title") or "").split()) or "this story"
        outlet = " ".join(str(line.get("outlet") or "").split())
        options.append(discord.SelectOption(label=render.truncate(title, 100), value=article_id,
                                            description=render.truncate(outlet, 100) or None))
        if len(options) == MENU_OPTIONS:
            break
    if not options:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(ListAskMenu(options))
    return view


# -- the Poster ---------------------------------------------------------------------------------
class DiscordPoster:
    """The core's Poster over discord.py: sends with the nonce (discord.py adds
    ``enforce_nonce``), maps 403/404/429 to PostError."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    async def _channel(self, channel_id: int) -> discord.abc.Messageable:
        channel = self.bot.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(channel_id)
            except discord.HTTPException as exc:
                raise _post_error(exc) from exc
        if not isinstance(channel, discord.abc.Messageable):
            raise PostError("not_found", f"channel {channel_id} cannot hold messages")
        return channel

    async def send(self, channel_id: int, message: OutMessage, *, nonce: str) -> int:
        channel = await self._channel(channel_id)
        kwargs: dict[str, Any] = {"embed": message_embed(message), "nonce": nonce,
                                  "allowed_mentions": NO_MENTIONS}
        view = (ask_view(message.article_id) if message.kind in ("brief", "update")
                else list_view(message.lines) if message.kind == "digest" else None)
        if view is not None:
            kwargs["view"] = view
        if message.reply_to:
            kwargs["reference"] = discord.MessageReference(
                message_id=message.reply_to, channel_id=channel_id, fail_if_not_exists=False)
            kwargs["mention_author"] = False
        try:
            sent = await channel.send(**kwargs)
        except discord.HTTPException as exc:
            raise _post_error(exc) from exc
        return sent.id

    async def edit(self, channel_id: int, message_id: int, message: OutMessage) -> None:
        channel = await self._channel(channel_id)
        try:
            await channel.get_partial_message(message_id).edit(  # type: ignore[attr-defined]
                embed=message_embed(message))
        except discord.HTTPException as exc:
            raise _post_error(exc) from exc

    async def direct(self, user_id: int) -> int:
        try:
            return (await self.bot.create_dm(discord.Object(id=user_id))).id
        except discord.HTTPException as exc:
            raise _post_error(exc) from exc

    async def recent(self, channel_id: int, *, limit: int) -> list[RecentMessage]:
        channel = await self._channel(channel_id)
        me = self.bot.user.id if self.bot.user else 0
        out: list[RecentMessage] = []
        try:
            async for m in channel.history(limit=limit):
                embed = m.embeds[0] if m.embeds else None
                out.append(RecentMessage(id=m.id, from_me=m.author.id == me,
                                         title=embed.title if embed else None,
                                         url=embed.url if embed else None,
                                         nonce=str(m.nonce) if m.nonce is not None else None))
        except discord.HTTPException as exc:
            raise _post_error(exc) from exc
        return out


def _post_error(exc: discord.HTTPException) -> PostError:
    if isinstance(exc, discord.Forbidden):
        return PostError("forbidden", str(exc))
    if isinstance(exc, discord.NotFound):
        return PostError("not_found", str(exc))
    if exc.status == 429:
        # discord.py keeps a 429's JSON body to itself; its Retry-After header says as much.
        try:
            retry: float | None = float(exc.response.headers.get("Retry-After", ""))
        except (AttributeError, TypeError, ValueError):
            retry = None
        return PostError("rate_limited", str(exc), retry_after=retry)
    if 400 <= exc.status < 500:
        return PostError("rejected", str(exc))
    return PostError("transient", str(exc))


# What the bot needs in a channel to post a brief there, as Discord's settings name it.
POST_PERMISSIONS = {"view_channel": "View Channel", "send_messages": "Send Messages",
                    "embed_links": "Embed Links"}


def check_can_post(channel: discord.TextChannel) -> None:
    """NewsbotError naming what the bot lacks in ``channel`` to post briefs there, by the
    cache's reckoning (a 403 on the send still pauses the channel when it is wrong)."""
    have = channel.permissions_for(channel.guild.me)
    missing = [label for name, label in POST_PERMISSIONS.items() if not getattr(have, name)]
    if missing:
        raise NewsbotError(f"I cannot post in {channel.mention}: the bot lacks "
                           f"{' and '.join(missing)} there. Grant it, then try again.")


def guild_channels(interaction: discord.Interaction[Any]) -> list[int]:
    """The ids of the channels and threads of the server a command comes from: a
    subscription made on the command line (it names a channel, no server) that posts to one
    of them is that server's to list, move and remove."""
    guild = interaction.guild
    if guild is None:
        return []
    return [c.id for c in guild.channels] + [t.id for t in guild.threads]


# -- the preview ---------------------------------------------------------------------------------
HEADLINE_CHARS = 256  # an embed title's limit
SYNOPSIS_CHARS = 1000
# How long a preview's buttons answer; under the 15 minutes its interaction can still edit it.
PREVIEW_TIMEOUT_S = 600.0


class EditBrief(discord.ui.Modal, title="Edit the brief"):
    """The preview's headline and synopsis, edited before posting."""

    headline: discord.ui.TextInput[Any] = discord.ui.TextInput(label="Headline",
                                                               max_length=HEADLINE_CHARS)
    synopsis: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Synopsis", style=discord.TextStyle.paragraph, max_length=SYNOPSIS_CHARS)

    def __init__(self, preview: Preview) -> None:
        super().__init__()
        self.preview = preview
        self.headline.default = preview.brief["headline"][:HEADLINE_CHARS]
        self.synopsis.default = preview.brief["synopsis"][:SYNOPSIS_CHARS]

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        headline = " ".join(self.headline.value.split())
        synopsis = " ".join(self.synopsis.value.split())
        # Discord's client enforces the lengths and requires both, but spaces pass it and
        # a forged submit passes anything: checked here, and the preview left as it was.
        problem = _edit_problem("headline", headline, HEADLINE_CHARS) or \
            _edit_problem("synopsis", synopsis, SYNOPSIS_CHARS)
        if problem:
            await interaction.response.send_message(
                f"{problem}; the preview was not changed.", ephemeral=True,
                allowed_mentions=NO_MENTIONS)
            return
        self.preview.brief["headline"] = headline
        self.preview.brief["synopsis"] = synopsis
        await interaction.response.edit_message(embed=self.preview.embed(), view=self.preview)

    async def on_error(self, interaction: discord.Interaction[Any],
                       error: Exception) -> None:
        await tell_failure(interaction, error, "editing a brief")


def _edit_problem(name: str, value: str, limit: int) -> str | None:
    if not value:
        return f"The {name} cannot be empty"
    if len(value) > limit:
        return f"The {name} is at most {limit:,} characters (this one has {len(value):,})"
    return None


class Preview(discord.ui.View):
    """The ephemeral preview of ``/brief post``: Post, Edit, Cancel (the invoker only)."""

    def __init__(self, cog: Briefs, user_id: int, channel: discord.abc.GuildChannel,
                 article: str, brief: dict[str, Any]) -> None:
        super().__init__(timeout=PREVIEW_TIMEOUT_S)
        self.cog, self.user_id, self.channel = cog, user_id, channel
        self.article, self.brief = article, brief
        self.message: discord.WebhookMessage | None = None  # the preview, once shown

    async def on_timeout(self) -> None:
        # Its buttons answer no more: say so, rather than leave buttons whose press Discord
        # reports as "This interaction failed".
        if self.message is None:
            return
        minutes = max(1, round(PREVIEW_TIMEOUT_S / 60))
        with contextlib.suppress(discord.HTTPException):
            await self.message.edit(
                content=f"This preview for {self.channel.mention} expired after "
                        f"{counted(minutes, 'minute')}; nothing was posted. Run `/brief post` "
                        "again to post it.", view=None, allowed_mentions=NO_MENTIONS)

    def embed(self) -> discord.Embed:
        msg = OutMessage(kind="brief", title=self.brief["headline"][:256],
                         url=self.brief.get("url"), brief=self.brief)
        return message_embed(msg)

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return interaction.user.id == self.user_id

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception,
                       item: discord.ui.Item[Any]) -> None:
        # The service refusing the Post (the moderator's role changed since the preview,
        # the article left the store) is said, not left as a button that did nothing.
        await tell_failure(interaction, error, "the brief preview")

    @discord.ui.button(label="Post", style=discord.ButtonStyle.success)
    async def post(self, interaction: discord.Interaction[Any], _: discord.ui.Button[Any]) -> None:
        await interaction.response.defer(ephemeral=True)
        result = await self.cog.call(interaction, "brief.post", {
            "article": self.article, "channel_id": self.channel.id,
            "headline": self.brief["headline"], "synopsis": self.brief["synopsis"]})
        await self.cog.deliver_now()
        status = await asyncio.to_thread(self.cog.bot.services.state.get_post,
                                         self.channel.id, result["item_key"])
        self.stop()
        if not result["recorded"]:
            line = f"That story was already posted in {self.channel.mention}."
        elif status is not None and status["status"] == "sent":
            line = f"Posted in {self.channel.mention}."
        elif status is not None and status["status"] == "failed":
            line = (f"Could not post in {self.channel.mention}: Discord refused it "
                    f"({render.truncate(status['error'] or 'no reason given', 200)}).")
        else:
            line = f"Queued for {self.channel.mention}; it goes out shortly."
        await interaction.followup.send(line, ephemeral=True, allowed_mentions=NO_MENTIONS)
        if interaction.message is not None:
            with contextlib.suppress(discord.HTTPException):
                await interaction.followup.edit_message(interaction.message.id, view=None)

    @discord.ui.button(label="Edit", style=discord.ButtonStyle.secondary)
    async def edit(self, interaction: discord.Interaction[Any], _: discord.ui.Button[Any]) -> None:
        await interaction.response.send_modal(EditBrief(self))

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.danger)
    async def cancel(self, interaction: discord.Interaction[Any],
                     _: discord.ui.Button[Any]) -> None:
        self.stop()
        await interaction.response.edit_message(content="Cancelled; nothing was posted.",
                                                embed=None, view=None)


# -- the cog -------------------------------------------------------------------------------------
class Briefs(commands.Cog):
    """Moderators post briefs and manage subscriptions; the loop sends what is queued."""

    brief = app_commands.Group(name="brief", description="News briefs for this server",
                               **checks.group_kwargs("mod"))

    def __init__(self, bot: NewsBot) -> None:
        self.bot = bot
        self.services = bot.services
        self.poster = DiscordPoster(bot)
        self.loop_task = tasks.loop(seconds=DELIVER_EVERY_S, name="newsbot-briefs")(self._tick)
        self._story_threads = asyncio.Lock()  # two picks of one story open one thread

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(AskButton, ListAskMenu)
        if self.bot.service is not None:
            self.bot.service.poll_listeners.append(self._after_poll)
        self.loop_task.start()

    async def cog_unload(self) -> None:
        self.loop_task.cancel()
        if self.bot.service is not None and self._after_poll in self.bot.service.poll_listeners:
            self.bot.service.poll_listeners.remove(self._after_poll)

    async def _tick(self) -> None:
        if not self.bot.is_ready():
            return  # not connected yet (or any more): the queue waits in the posted log
        try:
            await asyncio.to_thread(self.services.desk.plan_digests)
            await self.deliver_now()
        except Exception:
            log.exception("delivering briefs failed; the queue is kept for the next pass")

    async def story_thread(self, channel: discord.TextChannel, article_id: str,
                           title: str) -> discord.Thread | None:
        """The thread to ask about a story of a list in ``channel``: the one opened before
        (archived or not), else a new one; None when it cannot be opened."""
        state = self.services.state
        async with self._story_threads:
            known = await asyncio.to_thread(state.story_thread, channel.id, article_id)
            if known is not None:
                thread = channel.guild.get_thread(known)
                if thread is None:
                    with contextlib.suppress(discord.HTTPException):  # gone: a new one
                        found = await channel.guild.fetch_channel(known)
                        thread = found if isinstance(found, discord.Thread) else None
                if thread is not None:
                    return thread
            try:
                thread = await channel.create_thread(
                    name=render.truncate(title, 100), type=discord.ChannelType.public_thread,
                    auto_archive_duration=1440)
            except discord.HTTPException as exc:
                log.warning("could not open a thread on a story in #%s: %s", channel, exc)
                return None
            await asyncio.to_thread(state.record_story_thread, thread_id=thread.id,
                                    channel_id=channel.id, article_id=article_id)
        with contextlib.suppress(discord.HTTPException):
            await thread.send(THREAD_HELLO, allowed_mentions=NO_MENTIONS)
        return thread

    async def _after_poll(self, report: Any) -> None:
        if self.bot.is_ready():
            await self.deliver_now()

    async def deliver_now(self) -> None:
        report = await self.services.desk.deliver(self.poster)
        if report.sent or report.failed or report.reconciled:
            log.info("briefs: %s", report.to_json())

    async def call(self, interaction: discord.Interaction[Any], op: str,
                   args: dict[str, Any]) -> dict[str, Any]:
        return await call_core(self.bot, interaction, op, args)

    # -- /brief post -----------------------------------------------------------------------
    @brief.command(name="post", description="Preview a brief of an article, then post it.")
    @app_commands.describe(article="A recent article (type to search) or its URL",
                           channel="Where to post it (default: here)")
    @checks.is_mod()
    async def post(self, interaction: discord.Interaction[Any],
                   article: app_commands.Range[str, 1, 2000],
                   channel: discord.TextChannel | None = None) -> None:
        target = channel or interaction.channel
        if not isinstance(target, discord.TextChannel):
            raise NewsbotError("briefs are posted in a server's text channel")
        checks.require_in("mod", interaction, target)
        check_can_post(target)
        await interaction.response.defer(ephemeral=True, thinking=True)
        brief = await self.call(interaction, "brief.preview", {"article": article})
        preview = Preview(self, interaction.user.id, target, brief["article_id"], brief)
        preview.message = await interaction.followup.send(
            f"Preview for {target.mention}:", embed=preview.embed(), view=preview,
            ephemeral=True, allowed_mentions=NO_MENTIONS, wait=True)

    @post.autocomplete("article")
    async def article_choices(self, interaction: discord.Interaction[Any],
                              current: str) -> list[app_commands.Choice[str]]:
        rows = await asyncio.to_thread(self.recent_articles, current)
        return [app_commands.Choice(name=render.truncate(title, 100), value=aid)
                for aid, title in rows]

    def recent_articles(self, current: str, limit: int = 25) -> list[tuple[str, str]]:
        words = current.lower().split()
        out: list[tuple[str, str]] = []
        for article_id, title in self.services.state.recent_titles(300):
            if all(w in title.lower() for w in words):
                out.append((article_id, title))
                if len(out) == limit:
                    break
        return out

    # -- subscriptions ---------------------------------------------------------------------
    @brief.command(name="subscribe",
                   description="Send briefs of a source or a topic to a channel.")
    @app_commands.describe(
        channel="The channel that receives the briefs", source="A source the bot follows",
        topic="Or a topic, in a few words", keywords="Only articles with one of these words "
        "(comma-separated)", daily_cap="At most this many briefs a day",
        mode="Each story as it comes, or one digest a day",
        digest_hour="The digest's hour (0-23)",
        timezone="The digest hour's time zone (default: the server's, see /brief timezone)")
    @app_commands.choices(mode=[app_commands.Choice(name="immediate", value="immediate"),
                                app_commands.Choice(name="daily digest", value="digest")])
    @checks.is_mod()
    async def subscribe(self, interaction: discord.Interaction[Any],
                        channel: discord.TextChannel,
                        source: app_commands.Range[str, 1, 2000] | None = None,
                        topic: app_commands.Range[str, 1, 200] | None = None,
                        keywords: app_commands.Range[str, 1, 600] | None = None,
                        daily_cap: app_commands.Range[int, 1, 500] | None = None,
                        mode: str = "immediate",
                        digest_hour: app_commands.Range[int, 0, 23] = 8,
                        timezone: app_commands.Range[str, 1, 64] | None = None) -> None:
        checks.require_in("mod", interaction, channel)
        check_can_post(channel)
        await interaction.response.defer(ephemeral=True, thinking=True)
        sub = await self.call(interaction, "subscriptions.add", {
            "channel_id": channel.id, "guild_id": interaction.guild_id,
            "guild_channels": guild_channels(interaction), "source": source,
            "topic": topic, "keywords": keywords or [], "daily_cap": daily_cap, "mode": mode,
            "digest_hour": digest_hour, "tz": timezone})
        if sub.get("resumed") is not None:
            held, listed = sub["resumed"], sub.get("resumed_listed") or 0
            plural = "" if held == 1 else "s"
            if listed and listed == held:
                going = f"the {held} brief{plural} held meanwhile go out as one list"
            elif listed:
                going = (f"{held} held briefs go out now, {listed} of them as one list "
                         "and the others one by one")
            else:
                going = f"{held} held brief{plural} go{'es' if held == 1 else ''} out now"
            await interaction.followup.send(
                f"Subscription #{sub['id']} resumed: {channel.mention} gets its briefs again "
                f"({going}; its options are as they were).",
                ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        what = f"source #{sub['source_id']}" if sub["source_id"] is not None else \
            f"“{sub['topic']}”"
        await interaction.followup.send(
            f"Subscription #{sub['id']}: {channel.mention} gets briefs of {what} "
            f"({'a daily digest' if sub['mode'] == 'digest' else 'as they come'}).",
            ephemeral=True, allowed_mentions=NO_MENTIONS)

    @subscribe.autocomplete("source")
    async def source_choices(self, interaction: discord.Interaction[Any],
                             current: str) -> list[app_commands.Choice[str]]:
        # Commands' checks do not run for their autocomplete: a source's name may be its
        # address, a paid feed's key and all.
        if not checks.allowed("mod", interaction):
            return []
        sources = await asyncio.to_thread(self.services.state.list_sources)
        words = current.lower().split()
        return [app_commands.Choice(name=render.truncate(s.label, 100), value=str(s.id))
                for s in sources if s.watch and all(w in s.label.lower() for w in words)][:25]

    @brief.command(name="timezone",
                   description="The server's time zone: digest hours, and \"today\" in "
                               "questions (default NEWSBOT_TIMEZONE).")
    @app_commands.describe(zone="A time zone name, like Europe/Paris or America/Chicago")
    @checks.is_mod()
    async def timezone(self, interaction: discord.Interaction[Any],
                       zone: app_commands.Range[str, 1, 64]) -> None:
        checks.require_in("mod", interaction, None)  # every channel's digests move
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.call(interaction, "brief.timezone",
                                 {"guild_id": interaction.guild_id, "tz": zone,
                                  "guild_channels": guild_channels(interaction)})
        n = result["subscriptions"]
        await interaction.followup.send(
            f"Digest hours are now in {result['tz']} ({counted(n, 'subscription')} "
            f"follow{'s' if n == 1 else ''}).", ephemeral=True, allowed_mentions=NO_MENTIONS)

    @brief.command(name="unsubscribe", description="Stop a subscription.")
    @app_commands.describe(subscription="The subscription's number (see /brief list)")
    @checks.is_mod()
    async def unsubscribe(self, interaction: discord.Interaction[Any],
                          subscription: app_commands.Range[int, 1]) -> None:
        row = await asyncio.to_thread(self.services.state.get_subscription, subscription)
        here = guild_channels(interaction)
        if row is not None and (row["guild_id"] == interaction.guild_id or (
                row["guild_id"] is None and row["channel_id"] in here)):
            # A moderator of the channel it posts to; of the server when it is gone.
            where = self.bot.get_channel(int(row["channel_id"]))
            checks.require_in("mod", interaction,
                              where if isinstance(where, discord.abc.GuildChannel) else None)
        await interaction.response.defer(ephemeral=True, thinking=True)
        sub = await self.call(interaction, "subscriptions.remove",
                              {"id": subscription, "guild_id": interaction.guild_id,
                               "guild_channels": here})
        await interaction.followup.send(f"Subscription #{sub['id']} removed.", ephemeral=True,
                                        allowed_mentions=NO_MENTIONS)

    @brief.command(name="list", description="This server's subscriptions.")
    @checks.is_mod()
    async def list_(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await self.call(interaction, "subscriptions.list",
                                 {"guild_id": interaction.guild_id,
                                  "guild_channels": guild_channels(interaction)})
        lines = [s["describe"] for s in result["subscriptions"]] or ["No subscriptions yet."]
        await interaction.followup.send(render.truncate("\n".join(lines), 1900), ephemeral=True,
                                        allowed_mentions=NO_MENTIONS)


async def setup(bot: NewsBot) -> None:
    await bot.add_cog(Briefs(bot))


__all__ = ["Briefs", "DiscordPoster", "list_view", "message_embed"]
