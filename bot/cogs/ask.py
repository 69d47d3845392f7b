"""Asking: ``/ask``, a mention of the bot, a reply to an answer, a message in the bot's thread.

Parse, check, call ``services.ask`` in a worker thread, render. Follow-ups carry the earlier
turns of the reply chain or the thread; the service condenses them into a standalone
question and cuts them to ``history_turns``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.client import GENERIC_FAILURE, NO_MENTIONS, one_line, send_ephemeral
from bot.core.models import Answer, NewsbotError, QuestionError, Turn

if TYPE_CHECKING:
    from bot.client import NewsBot

log = logging.getLogger(__name__)

BUSY = "I'm answering a lot of questions right now; please try again in a minute."
THREAD_ARCHIVE_MINUTES = 1440
STREAM_EDIT_INTERVAL_S = 1.0  # Discord rate-limits edits; once a second reads as live


def cooldown_line(seconds: float) -> str:
    return f"You're asking quickly: please wait {max(1, math.ceil(seconds))} s and ask again."


# -- where an answer goes ------------------------------------------------------------------------


class Target(Protocol):
    """Where an answer is shown: an interaction's response, or a channel or thread."""

    async def progress(self, embed: discord.Embed) -> None: ...

    async def deliver(
        self, embeds: Sequence[discord.Embed], view: discord.ui.View
    ) -> tuple[discord.Message, discord.Message]:
        """Send the answer; returns its first and last messages (the last has the buttons)."""
        ...

    async def fail(self, line: str) -> None: ...


class InteractionTarget:
    """The deferred response of ``/ask`` and its follow-ups."""

    def __init__(self, interaction: discord.Interaction[Any]) -> None:
        self.interaction = interaction

    async def progress(self, embed: discord.Embed) -> None:
        await self.interaction.edit_original_response(embed=embed, allowed_mentions=NO_MENTIONS)

    async def deliver(
        self, embeds: Sequence[discord.Embed], view: discord.ui.View
    ) -> tuple[discord.Message, discord.Message]:
        single = len(embeds) == 1
        first: discord.Message = await self.interaction.edit_original_response(
            embed=embeds[0], view=view if single else None, allowed_mentions=NO_MENTIONS
        )
        last = first
        for i, embed in enumerate(embeds[1:], 2):
            extra: dict[str, Any] = {"view": view} if i == len(embeds) else {}
            last = await self.interaction.followup.send(
                embed=embed, allowed_mentions=NO_MENTIONS, wait=True, **extra
            )
        return first, last

    async def fail(self, line: str) -> None:
        # The deferred "thinking" message is public; replace it with a line only the user sees.
        with contextlib.suppress(discord.HTTPException):
            await self.interaction.delete_original_response()
        await send_ephemeral(self.interaction, line)


class ChannelTarget:
    """A channel or thread; the first message replies to the question when there is one."""

    def __init__(self, channel: discord.abc.Messageable, reply_to: discord.Message | None) -> None:
        self.channel = channel
        self.reply_to = reply_to
        self.placeholder: discord.Message | None = None

    async def _send(self, **kwargs: Any) -> discord.Message:
        if self.reply_to is not None:
            kwargs.update(reference=self.reply_to, mention_author=False)
        return await self.channel.send(allowed_mentions=NO_MENTIONS, **kwargs)

    async def progress(self, embed: discord.Embed) -> None:
        if self.placeholder is None:
            self.placeholder = await self._send(embed=embed)
        else:
            await self.placeholder.edit(embed=embed, allowed_mentions=NO_MENTIONS)

    async def deliver(
        self, embeds: Sequence[discord.Embed], view: discord.ui.View
    ) -> tuple[discord.Message, discord.Message]:
        single = len(embeds) == 1
        if self.placeholder is not None:
            first = await self.placeholder.edit(
                embed=embeds[0], view=view if single else None, allowed_mentions=NO_MENTIONS
            )
        else:
            first = await self._send(embed=embeds[0], **({"view": view} if single else {}))
        last = first
        for i, embed in enumerate(embeds[1:], 2):
            extra: dict[str, Any] = {"view": view} if i == len(embeds) else {}
            last = await self.channel.send(embed=embed, allowed_mentions=NO_MENTIONS, **extra)
        return first, last

    async def fail(self, line: str) -> None:
        if self.placeholder is not None:
            await self.placeholder.edit(content=line, embed=None, allowed_mentions=NO_MENTIONS)
        else:
            await self._send(content=line)


class Streamer:
    """Shows a streamed answer while it is written: the first delta at once, then at most
    one edit per interval, with a cursor so it reads as in progress."""

    def __init__(
        self,
        target: Target,
        question: str,
        loop: asyncio.AbstractEventLoop,
        interval: float = STREAM_EDIT_INTERVAL_S,
    ) -> None:
        self.target = target
        self.question = question
        self.loop = loop
        self.interval = interval
        self.parts: list[str] = []
        self.edits = 0
        self._dirty = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def feed(self, delta: str) -> None:
        """Called from the worker thread with each delta."""
        self.loop.call_soon_threadsafe(self._on_delta, delta)

    def _on_delta(self, delta: str) -> None:
        if self._stop.is_set():
            return
        self.parts.append(delta)
        self._dirty.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            if self._stop.is_set():
                return
            self._dirty.clear()
            try:
                await self.target.progress(
                    render.progress_embed("".join(self.parts), question=self.question)
                )
                self.edits += 1
            except discord.HTTPException as exc:
                # The final answer is still sent; only the live view is lost.
                log.warning("could not show the answer in progress: %s", exc)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def stop(self) -> None:
        """Stop editing; waits for an edit in flight so the final answer is not overwritten."""
        self._stop.set()
        self._dirty.set()
        if self._task is not None:
            await self._task


# -- the cog -------------------------------------------------------------------------------------


class Ask(commands.Cog):
    """Questions and follow-ups."""

    def __init__(self, bot: NewsBot, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.bot = bot
        self.services = bot.services
        self.settings = bot.services.settings
        self.clock = clock
        self.slots = asyncio.Semaphore(self.settings.max_concurrent_answers)
        self._last_question: dict[int, float] = {}

    # -- limits ----------------------------------------------------------------------------
    def cooldown_left(self, user_id: int) -> float:
        last = self._last_question.get(user_id)
        if last is None:
            return 0.0
        return max(0.0, self.settings.user_cooldown_s - (self.clock() - last))

    def _started(self, user_id: int) -> None:
        self._last_question[user_id] = self.clock()
        # Forget users whose cooldown is long over, so the map stays small.
        if len(self._last_question) > 10_000:
            horizon = self.clock() - self.settings.user_cooldown_s
            self._last_question = {u: t for u, t in self._last_question.items() if t > horizon}

    # -- /ask ------------------------------------------------------------------------------
    @app_commands.command(name="ask", description="Ask about the news; the answer cites articles.")
    @app_commands.describe(
        question="Your question, e.g. what did Netflix use AI for in The Eternaut?",
        since='Only articles since a date (2024-03-01) or "week" / "month"',
        source="Only articles from this outlet",
    )
    async def ask(
        self,
        interaction: discord.Interaction[Any],
        question: str,
        since: str | None = None,
        source: str | None = None,
    ) -> None:
        try:
            q = self.services.ask.validate(question)
            since_dt = self.services.ask.parse_since(since) if since and since.strip() else None
        except QuestionError as exc:
            await send_ephemeral(interaction, one_line(str(exc)))
            return
        user_id = interaction.user.id
        if (left := self.cooldown_left(user_id)) > 0:
            await send_ephemeral(interaction, cooldown_line(left))
            return
        if self.slots.locked():
            await send_ephemeral(interaction, BUSY)
            return
        async with self.slots:
            self._started(user_id)
            await interaction.response.defer(thinking=True)
            target = InteractionTarget(interaction)
            delivered = await self._answer(
                target,
                q,
                channel=interaction.channel,
                user_id=user_id,
                since=since_dt,
                outlet=(source or "").strip() or None,
            )
        channel = interaction.channel
        if (
            delivered
            and self.settings.answer_in_threads
            and isinstance(channel, discord.TextChannel)
        ):
            # Follow-ups go in a thread on the answer: the bot started it, so members can
            # keep asking there.
            await self._open_thread(delivered[0], channel, q)

    @ask.autocomplete("source")
    async def _outlets(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        summaries = await asyncio.to_thread(self.services.admin.sources)
        outlets = sorted({s.outlet for s in summaries}, key=str.lower)
        needle = current.lower().strip()
        return [
            app_commands.Choice(name=o[:100], value=o[:100]) for o in outlets if needle in o.lower()
        ][:25]

    # -- mentions, replies, thread messages ------------------------------------------------
    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.guild is None or self.bot.user is None:
            return
        if not await self._addressed(message):
            return
        if await self.bot.owner_command(message) is not None:
            return  # the owner's text command, run by the bot
        text = strip_mentions(message, self.bot.user.id)
        if not text and not message.content:
            return  # no message content intent: nothing to read
        try:
            q = self.services.ask.validate(text)
        except QuestionError as exc:
            await self._say(message, one_line(str(exc)))
            return
        if (left := self.cooldown_left(message.author.id)) > 0:
            await self._say(message, cooldown_line(left))
            return
        if self.slots.locked():
            await self._say(message, BUSY)
            return
        async with self.slots:
            self._started(message.author.id)
            await self._answer_message(message, q)

    async def _addressed(self, message: discord.Message) -> bool:
        """A mention of the bot (or its role), a message in a thread it started, or a reply to
        one of its answers."""
        me = self.bot.user
        assert me is not None
        if any(u.id == me.id for u in message.mentions):
            return True
        self_role = message.guild.self_role if message.guild else None
        if self_role is not None and self_role in message.role_mentions:
            return True
        if _bot_thread(message.channel, me.id):
            return True
        if message.reference is not None and message.reference.message_id is not None:
            previous = await self._referenced(message)
            return previous is not None and previous.author.id == me.id and bool(previous.embeds)
        return False

    async def _answer_message(self, message: discord.Message, question: str) -> None:
        history = await self.history(message)
        channel: discord.abc.Messageable = message.channel
        reply_to: discord.Message | None = message
        if self.settings.answer_in_threads and isinstance(message.channel, discord.TextChannel):
            thread = await self._open_thread(message, message.channel, question)
            if thread is not None:
                channel, reply_to = thread, None  # the thread hangs off the question already
        with contextlib.suppress(discord.HTTPException):
            await channel.typing()
        # In a brief's thread (it shares the brief's id), that article comes first.
        prefer = None
        if isinstance(message.channel, discord.Thread):
            prefer = await asyncio.to_thread(self.services.state.article_of_message,
                                             message.channel.id)
        await self._answer(
            ChannelTarget(channel, reply_to),
            question,
            channel=channel,
            user_id=message.author.id,
            history=history,
            prefer_article_id=prefer,
        )

    # -- answering -------------------------------------------------------------------------
    async def _answer(
        self,
        target: Target,
        question: str,
        *,
        channel: Any,
        user_id: int,
        history: Sequence[Turn] = (),
        since: datetime | None = None,
        outlet: str | None = None,
        prefer_article_id: str | None = None,
    ) -> tuple[discord.Message, discord.Message] | None:
        """Ask the core, show the answer, record it for feedback. Failures become one line for
        the user; the traceback goes to the log. Returns the first and last messages."""
        streamer = Streamer(target, question, asyncio.get_running_loop())
        try:
            try:
                answer: Answer = await asyncio.to_thread(
                    self.services.ask.ask,
                    question,
                    history=history,
                    since=since,
                    outlet=outlet,
                    prefer_article_id=prefer_article_id,
                    on_token=streamer.feed,
                )
            finally:
                await streamer.stop()
            embeds = render.answer_embeds(answer, history_turns=self.settings.history_turns)
            first, last = await target.deliver(embeds, self.bot.feedback_view)
        except discord.Forbidden:
            self.bot.log_forbidden(channel, self.bot.missing_permission(channel))
            return None
        except NewsbotError as exc:
            await self._fail(target, channel, one_line(str(exc)))
            return None
        except Exception:
            log.exception("answering %r failed", question)
            await self._fail(target, channel, GENERIC_FAILURE)
            return None
        try:
            await asyncio.to_thread(
                self.services.feedback.record_answer,
                message_id=last.id,
                channel_id=last.channel.id,
                user_id=user_id,
                answer=answer,
            )
        except Exception:
            # The member has the answer; only its votes will not count.
            log.exception("recording the answer for feedback failed")
        return first, last

    async def _fail(self, target: Target, channel: Any, line: str) -> None:
        try:
            await target.fail(line)
        except discord.Forbidden:
            self.bot.log_forbidden(channel, self.bot.missing_permission(channel))
        except discord.HTTPException as exc:
            log.warning("could not tell the user %r: %s", line, exc)

    async def _say(self, message: discord.Message, line: str) -> None:
        """One short reply line (a message cannot be answered ephemerally)."""
        try:
            await message.reply(line, mention_author=False, allowed_mentions=NO_MENTIONS)
        except discord.Forbidden:
            self.bot.log_forbidden(message.channel, self.bot.missing_permission(message.channel))
        except discord.HTTPException as exc:
            log.warning("could not reply %r: %s", line, exc)

    async def _open_thread(
        self, message: discord.Message, channel: discord.TextChannel, question: str
    ) -> discord.Thread | None:
        """A public thread on ``message``, or None (the answer then stays in the channel)."""
        me = channel.guild.me
        if me is not None and not channel.permissions_for(me).create_public_threads:
            self.bot.log_forbidden(channel, "create_public_threads")
            return None
        try:
            return await message.create_thread(
                name=render.truncate(question, 100), auto_archive_duration=THREAD_ARCHIVE_MINUTES
            )
        except discord.Forbidden:
            self.bot.log_forbidden(channel, "create_public_threads")
        except discord.HTTPException as exc:
            log.warning("could not open a thread in #%s: %s", channel, exc)
        return None

    # -- history ---------------------------------------------------------------------------
    async def history(self, message: discord.Message) -> list[Turn]:
        """Earlier turns, oldest first: the bot's thread, else the reply chain. One turn more
        than the cap is collected, so the service can tell the user it cut the history."""
        me = self.bot.user
        assert me is not None
        wanted = self.settings.history_turns + 1
        if self.settings.history_turns == 0:
            return []
        previous: list[discord.Message] = []
        if _bot_thread(message.channel, me.id):
            previous = await self._thread_messages(message, wanted)
        elif message.reference is not None:
            current = message
            while len(previous) < wanted:
                earlier = await self._referenced(current)
                if earlier is None:
                    break
                previous.append(earlier)
                current = earlier
            previous.reverse()
        turns = [t for m in previous if (t := self._turn(m, me.id)) is not None]
        if previous and previous[0].author.id == me.id and previous[0].embeds:
            # An /ask answer starts the conversation; its question is the embed's title.
            title = previous[0].embeds[0].title
            if title:
                turns.insert(0, Turn("user", title))
        return turns[-wanted:]

    async def _thread_messages(
        self, message: discord.Message, wanted: int
    ) -> list[discord.Message]:
        thread = message.channel
        assert isinstance(thread, discord.Thread)
        try:
            found = [m async for m in thread.history(limit=wanted, before=message)]
        except discord.Forbidden:
            self.bot.log_forbidden(thread, "read_message_history")
            return []
        found.reverse()
        if len(found) < wanted and thread.parent is not None:
            # A thread opened on a message: that message (in the parent) is the first turn.
            starter = thread.starter_message
            if starter is None:
                with contextlib.suppress(discord.NotFound, discord.Forbidden):
                    starter = await thread.parent.fetch_message(thread.id)  # type: ignore[union-attr]
            if starter is not None:
                found.insert(0, starter)
        return found

    async def _referenced(self, message: discord.Message) -> discord.Message | None:
        """The message ``message`` replies to: resolved, cached or fetched."""
        ref = message.reference
        if ref is None or ref.message_id is None:
            return None
        if isinstance(ref.resolved, discord.Message):
            return ref.resolved
        if ref.cached_message is not None:
            return ref.cached_message
        if isinstance(ref.resolved, discord.DeletedReferencedMessage):
            return None
        try:
            return await message.channel.fetch_message(ref.message_id)
        except discord.NotFound:
            return None
        except discord.Forbidden:
            self.bot.log_forbidden(message.channel, "read_message_history")
            return None

    @staticmethod
    def _turn(message: discord.Message, bot_id: int) -> Turn | None:
        if message.author.id == bot_id:
            if not message.embeds:
                return None  # a busy or error line, not an answer
            text = render.embed_text(message.embeds[0]).strip()
            return Turn("assistant", text) if text else None
        text = strip_mentions(message, bot_id)
        return Turn("user", text) if text else None


def _bot_thread(channel: Any, bot_id: int) -> bool:
    return isinstance(channel, discord.Thread) and channel.owner_id == bot_id


def strip_mentions(message: discord.Message, bot_id: int) -> str:
    """The message text without the mention of the bot (or its role)."""
    text = re.sub(rf"<@!?{bot_id}>", " ", message.content or "")
    self_role = message.guild.self_role if message.guild else None
    if self_role is not None:
        text = text.replace(self_role.mention, " ")
    return " ".join(text.split())


async def setup(bot: NewsBot) -> None:
    await bot.add_cog(Ask(bot))
