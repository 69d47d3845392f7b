"""Asking: ``/ask``, a mention of the bot, a reply to an answer, a message in the bot's thread.

Every way a question arrives goes through one path: read it (mentions shown as Discord shows
them) -> guard (validate, cooldown, one question in flight per member, capacity) -> call
``services.ask`` in a worker thread -> render. Follow-ups carry the earlier turns of the reply
chain or the thread; the service condenses them and cuts them to ``history_turns``.

What Discord lets a bot read: without the message content intent, a message's text arrives
only when it mentions the bot or replies to one of the bot's regular messages with the ping
on. A follow-up in the bot's thread without a mention, or a reply with the ping off, arrives
empty: the member is told once how to ask (a mention, or ``/ask``, which reads the thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.client import GENERIC_FAILURE, NO_MENTIONS, one_line, send_ephemeral
from bot.core.models import Answer, NewsbotError, QuestionError, Turn
from bot.core.operations import check_outlet
from bot.threads import call_soon

if TYPE_CHECKING:
    from bot.client import NewsBot

log = logging.getLogger(__name__)

BUSY = "I'm answering a lot of questions right now; please try again in a minute."
STILL_ANSWERING = "I'm still answering your previous question; ask again once it's answered."
CONTENT_HIDDEN = (
    "I can't read that message: Discord only shows me messages that mention me. Mention me "
    "({mention} your question), reply to my answer with the ping on, or use /ask, which "
    "reads this conversation too."
)
NOTICE_S = 15.0  # how long a cooldown or still-answering line stays before it is deleted
NOTICES_CLEARED_S = 5.0  # at shutdown, how long the lines still shown may take to delete
REMEMBERED = 10_000  # members (or member and channel pairs) a guard remembers at most
THREAD_ARCHIVE_MINUTES = 1440
# Discord's code for a message that has a thread already.
THREAD_EXISTS = 160004
STREAM_EDIT_INTERVAL_S = 1.0  # Discord rate-limits edits; once a second reads as live
STOP_GRACE_S = 5.0  # at a stop, how long the answers being written may take to finish
# Messages read between an /ask answer's first part and a later one, to find the parts between.
PARTS_WINDOW = 50
# How much earlier than its note an interrupted answer's message may be dated (clocks differ).
NOTE_SLACK = timedelta(seconds=10)


def cooldown_line(seconds: float) -> str:
    return f"You're asking quickly: please wait {max(1, math.ceil(seconds))} s and ask again."


# -- where an answer goes ------------------------------------------------------------------------


class Target(Protocol):
    """Where an answer is shown: an interaction's response, or a channel or thread."""

    async def where(self) -> int | None:
        """The id of the channel or thread the answer will be shown in (a thread is opened
        now if it is to be)."""
        ...

    async def progress(self, embed: discord.Embed) -> discord.Message | None:
        """Show the answer in progress; the message showing it, when known."""
        ...

    async def deliver(
        self, embeds: Sequence[discord.Embed], view: discord.ui.View
    ) -> tuple[discord.Message, discord.Message]:
        """Send the answer; returns its first and last messages (the last has the buttons)."""
        ...

    async def fail(self, line: str) -> None: ...

    @property
    def channel(self) -> Any:
        """Where the answer is shown (for naming a missing permission)."""
        ...


class InteractionTarget:
    """The deferred response of ``/ask`` and its follow-ups."""

    def __init__(self, interaction: discord.Interaction[Any]) -> None:
        self.interaction = interaction

    @property
    def channel(self) -> Any:
        return self.interaction.channel

    async def where(self) -> int | None:
        return self.interaction.channel_id

    async def progress(self, embed: discord.Embed) -> discord.Message | None:
        return await self.interaction.edit_original_response(embed=embed,
                                                             allowed_mentions=NO_MENTIONS)

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

    def __init__(self, channel: Any, reply_to: discord.Message | None) -> None:
        self._channel = channel
        self.reply_to = reply_to
        self.placeholder: discord.Message | None = None
        # The nonce of the placeholder's send, kept once tried: a send whose response was lost
        # may still have created it, and Discord returns it for the same nonce.
        self._nonce: int | None = None

    @property
    def channel(self) -> Any:
        return self._channel

    async def _send(self, **kwargs: Any) -> discord.Message:
        if self.reply_to is not None:
            kwargs.update(reference=self.reply_to, mention_author=False)
        return await self._channel.send(allowed_mentions=NO_MENTIONS, **kwargs)

    async def _show(self, **kwargs: Any) -> discord.Message:
        """The first message, showing ``kwargs``: the placeholder edited, else sent."""
        if self.placeholder is None and self._nonce is not None:
            # The placeholder's send failed without saying whether Discord created it: the
            # same nonce gets it back if it did (it is then edited), and sends anew if not.
            self.placeholder = await self._send(nonce=self._nonce, **kwargs)
        if self.placeholder is not None:
            return await self.placeholder.edit(allowed_mentions=NO_MENTIONS, **kwargs)
        return await self._send(**kwargs)

    async def where(self) -> int | None:
        return int(self._channel.id)

    async def progress(self, embed: discord.Embed) -> discord.Message | None:
        if self.placeholder is None and self._nonce is None:
            self._nonce = secrets.randbits(64)
            self.placeholder = await self._send(embed=embed, nonce=self._nonce)
            return self.placeholder
        return await self._show(embed=embed)

    async def deliver(
        self, embeds: Sequence[discord.Embed], view: discord.ui.View
    ) -> tuple[discord.Message, discord.Message]:
        single = len(embeds) == 1
        first = await self._show(embed=embeds[0], **({"view": view} if single else {}))
        last = first
        for i, embed in enumerate(embeds[1:], 2):
            extra: dict[str, Any] = {"view": view} if i == len(embeds) else {}
            # Each later part replies to the part before it, so a reply to any part leads
            # back through the answer to its question.
            last = await self._channel.send(
                embed=embed, allowed_mentions=NO_MENTIONS, mention_author=False,
                reference=last.to_reference(fail_if_not_exists=False), **extra)
        return first, last

    async def fail(self, line: str) -> None:
        if self.placeholder is not None or self._nonce is not None:
            await self._show(content=line, embed=None)
        else:
            await self._send(content=line)


@dataclass(frozen=True, slots=True)
class Delivered:
    """An answer as sent: its first and last messages (the last has the buttons)."""

    first: discord.Message
    last: discord.Message
    answer: Answer
    user_id: int
    guild_id: int | None


class ThreadTarget:
    """A thread on the question, opened when the answer's first words are ready, so a failure
    never leaves a thread holding only an error line. When the thread cannot be opened the
    answer goes in the channel, as a reply to the question."""

    def __init__(self, cog: Ask, message: discord.Message, name: str) -> None:
        self.cog = cog
        self.message = message
        self.name = name
        self.inner: ChannelTarget | None = None

    @property
    def channel(self) -> Any:
        return self.inner.channel if self.inner is not None else self.message.channel

    async def _open(self) -> ChannelTarget:
        if self.inner is None:
            thread = await self.cog.open_thread(self.message, self.message.channel, self.name)
            self.inner = (ChannelTarget(thread, None) if thread is not None
                          else ChannelTarget(self.message.channel, self.message))
        return self.inner

    async def where(self) -> int | None:
        return await (await self._open()).where()

    async def progress(self, embed: discord.Embed) -> discord.Message | None:
        return await (await self._open()).progress(embed)

    async def deliver(
        self, embeds: Sequence[discord.Embed], view: discord.ui.View
    ) -> tuple[discord.Message, discord.Message]:
        return await (await self._open()).deliver(embeds, view)

    async def fail(self, line: str) -> None:
        if self.inner is None:  # nothing shown yet: the line replies in the channel
            self.inner = ChannelTarget(self.message.channel, self.message)
        await self.inner.fail(line)


class Capacity:
    """Answers worked on at once (``working``) and how many more may wait for a turn; only
    past both is a question turned away."""

    def __init__(self, working: int, waiting: int) -> None:
        self._turns = asyncio.Semaphore(working)
        self.limit = working + waiting
        self.admitted = 0

    def full(self) -> bool:
        return self.admitted >= self.limit

    @contextlib.asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        """Hold a place, counted at once (so ``full`` holds for questions arriving together);
        inside it, ``turn`` waits for a working slot."""
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        async with self._turns:
            yield


class Journal:
    """The durable note of an answer shown while it is written (``answers_writing`` in the
    state): made before its first words are sent, given its message once Discord returns it,
    removed once the finished answer (or a line saying why there is none) replaced them. A
    process killed in between leaves the note, and the next start finds the message left
    "Writing…" (see ``Ask.finish_interrupted``). A note that cannot be written costs the
    member nothing: the answer goes on, logged."""

    def __init__(self, state: Any, question: str) -> None:
        self.state = state
        self.question = question
        self.row: int | None = None
        self._message_id: int | None = None

    async def showing(self, channel_id: int | None) -> None:
        if self.row is not None or channel_id is None:
            return
        try:
            self.row = await asyncio.to_thread(self.state.begin_answer, channel_id=channel_id,
                                               question=self.question)
        except Exception:
            log.exception("noting the answer in progress failed")

    async def shown(self, message: discord.Message | None) -> None:
        if self.row is None or message is None or self._message_id == message.id:
            return
        self._message_id = message.id
        try:
            await asyncio.to_thread(self.state.answer_shown, self.row,
                                    channel_id=message.channel.id, message_id=message.id)
        except Exception:
            log.exception("noting the answer in progress failed")

    async def done(self) -> None:
        if self.row is None:
            return
        row, self.row = self.row, None
        try:
            await asyncio.to_thread(self.state.end_answer, row)
        except Exception:
            log.exception("clearing the note of an answer in progress failed")


class Streamer:
    """Shows a streamed answer while it is written: the first delta at once, then at most
    one edit per interval, with a cursor so it reads as in progress."""

    def __init__(
        self,
        target: Target,
        question: str,
        loop: asyncio.AbstractEventLoop,
        interval: float = STREAM_EDIT_INTERVAL_S,
        journal: Journal | None = None,
    ) -> None:
        self.target = target
        self.question = question
        self.loop = loop
        self.interval = interval
        self.journal = journal
        self.parts: list[str] = []
        self.edits = 0
        self._dirty = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def feed(self, delta: str) -> None:
        """Called from the worker thread with each delta."""
        call_soon(self.loop, self._on_delta, delta)  # dropped once the bot has stopped

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
                if self.journal is not None:
                    # On record before "Writing…" is shown: a kill leaves no message that
                    # the next start cannot find.
                    await self.journal.showing(await self.target.where())
                shown = await self.target.progress(
                    render.progress_embed("".join(self.parts), question=self.question)
                )
                self.edits += 1
                if self.journal is not None:
                    await self.journal.shown(shown)
            except Exception as exc:
                # An HTTP error, or a connection lost on the way (discord.py raises those
                # as they are): the final answer is still sent; only the live view is lost.
                log.warning("could not show the answer in progress: %s",
                            str(exc) or type(exc).__name__)
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
        self.capacity = Capacity(self.settings.max_concurrent_answers,
                                 self.settings.max_waiting_answers)
        # Answers get threads of their own: asyncio's shared pool (cores + 4 threads) would
        # cap the answers in flight below the setting and starve every other worker-thread
        # call (feedback, sources, status) while they wait on a slow model.
        self.pool = ThreadPoolExecutor(max_workers=self.settings.max_concurrent_answers,
                                       thread_name_prefix="newsbot-answer")
        self._last_question: dict[int, float] = {}
        self._cooldown_told: dict[int, float] = {}  # member -> the question start already told
        self._in_flight: set[int] = set()
        self._answering: set[asyncio.Task[Any]] = set()  # tasks showing an answer
        self._hinted: OrderedDict[tuple[int, int], None] = OrderedDict()
        # Cooldown lines waiting to be deleted: done by the bot at shutdown, not left behind.
        self._notices: dict[asyncio.Task[None], discord.Message] = {}
        # Notes of answers in progress being cleared (see ``_settle``).
        self._settling: set[asyncio.Task[None]] = set()
        self._finishing: asyncio.Task[None] | None = None  # see ``finish_interrupted``
        # Discord's own client refuses a longer question, so members never type one in vain.
        # This cog's copy of the command gets its own parameter: the class's stays as it was.
        param = copy.copy(self.ask._params["question"])
        param.min_value, param.max_value = 1, min(self.settings.max_question_chars, 6000)
        self.ask._params = {**self.ask._params, "question": param}

    async def cog_load(self) -> None:
        self._finishing = asyncio.create_task(self.finish_interrupted(datetime.now(UTC)))

    async def cog_unload(self) -> None:
        if self._finishing is not None:
            self._finishing.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)
        await self._clear_notices()
        if self._settling:  # a quick local write each; one left is harmless (see _settle)
            await asyncio.wait(self._settling, timeout=2)

    async def finish_interrupted(self, loaded: datetime) -> None:
        """Once connected: the answers an earlier run (one before ``loaded``) was writing
        when it died (a kill, a power cut) still show "Writing…" and half an answer. Each
        says, in its own message, that it was interrupted and asks the member to ask again;
        nothing is posted."""
        try:
            await self.bot.wait_until_ready()
        except RuntimeError:  # a client that never logged in (a failed start): nothing shown
            return
        rows = await asyncio.to_thread(self.services.state.answers_writing)
        left = [r for r in rows if datetime.fromisoformat(str(r["started_at"])) < loaded]
        for row in left:
            try:
                settled = await self._finish_one(row)
            except Exception:
                log.exception("finishing an interrupted answer failed")
                settled = False
            if settled:
                await asyncio.to_thread(self.services.state.end_answer, int(row["id"]))

    async def _finish_one(self, row: Any) -> bool:
        """Mark one interrupted answer; False to try again at the next start (Discord did
        not answer)."""
        me = self.bot.user
        assert me is not None
        channel = self.bot.get_partial_messageable(int(row["channel_id"]))
        question = str(row["question"])
        try:
            if row["message_id"] is not None:
                found = [await channel.fetch_message(int(row["message_id"]))]
            else:
                # Killed before Discord told which message it made: the bot's own message
                # still writing this question's answer, sent after the note.
                began = datetime.fromisoformat(str(row["started_at"])) - NOTE_SLACK
                title = render.truncate(" ".join(question.split()), render.TITLE_LIMIT)
                found = [m async for m in channel.history(
                    limit=PARTS_WINDOW, after=discord.Object(discord.utils.time_snowflake(began)))
                    if m.author.id == me.id and m.embeds and m.embeds[0].title == title]
            for message in found:
                if _writing(message):
                    await message.edit(embed=render.interrupted_embed(question), view=None,
                                       allowed_mentions=NO_MENTIONS)
                    log.info("an answer interrupted by the last stop was marked so in #%s",
                             getattr(message.channel, "name", message.channel.id))
        except discord.NotFound:
            pass  # deleted since, or its channel is gone: nothing is left showing
        except discord.Forbidden:
            log.warning("could not mark an interrupted answer in channel %s: no access",
                        row["channel_id"])
        except discord.DiscordServerError as exc:
            log.warning("could not mark an interrupted answer in channel %s: %s; trying "
                        "again at the next start", row["channel_id"], exc)
            return False
        except discord.HTTPException as exc:  # refused (an archived thread): for good
            log.warning("could not mark an interrupted answer in channel %s: %s",
                        row["channel_id"], exc)
        return True

    async def wind_down(self, grace: float = STOP_GRACE_S) -> None:
        """Before the bot stops: the answers being written are finished now, from what the
        model wrote so far (checked, and marked as possibly incomplete), instead of being
        left "Writing…" for good when the connection to Discord closes under them."""
        tasks = {t for t in self._answering if not t.done()}
        if not tasks:
            return
        model = self.services.ask.model
        if model is not None:
            await asyncio.to_thread(model.close)  # a model still writing stops at once
        await asyncio.wait(tasks, timeout=grace)

    async def _clear_notices(self) -> None:
        """Delete the lines still waiting to go (discord.py's ``delete_after`` is a task that
        dies with the bot and leaves them in the channel for good)."""
        pending = list(self._notices.items())
        self._notices.clear()
        for task, _ in pending:
            task.cancel()
        if pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(
                    *(_delete(line) for _, line in pending)), NOTICES_CLEARED_S)

    # -- limits ----------------------------------------------------------------------------
    def cooldown_left(self, user_id: int) -> float:
        last = self._last_question.get(user_id)
        if last is None:
            return 0.0
        return max(0.0, self.settings.user_cooldown_s - (self.clock() - last))

    def _started(self, user_id: int) -> None:
        self._last_question[user_id] = self.clock()
        # Forget users whose cooldown is long over, so the maps stay small.
        if len(self._last_question) > REMEMBERED:
            horizon = self.clock() - self.settings.user_cooldown_s
            self._last_question = {u: t for u, t in self._last_question.items() if t > horizon}
            self._cooldown_told = {u: t for u, t in self._cooldown_told.items()
                                   if u in self._last_question}

    @contextlib.asynccontextmanager
    async def _taken(self, user_id: int, *, follow_up: bool) -> AsyncIterator[None]:
        """A question accepted: its place held, one in flight per member, the cooldown started
        for a new conversation. The working slot is waited for inside (``capacity.turn``)."""
        self._in_flight.add(user_id)
        if not follow_up:
            self._started(user_id)
        try:
            async with self.capacity.place():
                yield
        finally:
            self._in_flight.discard(user_id)

    def _refusal(self, user_id: int, *, follow_up: bool) -> str | None:
        """Why this question cannot be taken now, or None. Follow-ups in the bot's thread skip
        the cooldown; they still wait for the member's previous answer."""
        if user_id in self._in_flight:
            return STILL_ANSWERING
        if not follow_up and (left := self.cooldown_left(user_id)) > 0:
            return cooldown_line(left)
        if self.capacity.full():
            return BUSY
        return None

    # -- reading questions -----------------------------------------------------------------
    def display(self, text: str, guild: discord.Guild | None,
                mentioned: Sequence[discord.abc.User] = ()) -> str:
        """``text`` with mention markup shown as Discord shows it (names, not ids)."""
        users = {u.id: u for u in mentioned}

        def user(uid: int) -> str | None:
            found = (guild.get_member(uid) if guild else None) or users.get(uid) \
                or self.bot.get_user(uid)
            return found.display_name if found is not None else None

        def role(rid: int) -> str | None:
            found = guild.get_role(rid) if guild else None
            return found.name if found is not None else None

        def channel(cid: int) -> str | None:
            found = guild.get_channel_or_thread(cid) if guild else None
            return found.name if found is not None else None

        shown = render.plain_mentions(text, user=user, role=role, channel=channel)
        # @everyone and @here ask nothing: they leave the question (and its title, thread name
        # and search) entirely.
        return " ".join(_MASS.sub(" ", shown).split())

    def question_text(self, message: discord.Message) -> str:
        """The question a message asks: without the mention of the bot (or its role), other
        mentions as Discord shows them."""
        me = self.bot.user
        assert me is not None
        text = re.sub(rf"<@!?{me.id}>", " ", message.content or "")
        self_role = message.guild.self_role if message.guild else None
        if self_role is not None:
            text = text.replace(self_role.mention, " ")
        return " ".join(self.display(text, message.guild, message.mentions).split())

    # -- /ask ------------------------------------------------------------------------------
    @app_commands.command(name="ask", description="Ask about the news; the answer cites articles.")
    @app_commands.describe(
        question="Your question, e.g. what did Netflix use AI for in The Eternaut?",
        since="Only articles since a date (2024-03-01), or today, yesterday, week, month, year",
        source="Only articles from this outlet",
    )
    async def ask(
        self,
        interaction: discord.Interaction[Any],
        question: str,
        since: str | None = None,
        source: str | None = None,
    ) -> None:
        since = (since or "").strip() or None
        try:
            q = self.services.ask.validate(self.display(question, interaction.guild))
            if since:
                # Checked here, so a typo is refused at once; read in the server's time zone
                # by the core, which looks that up off the event loop.
                self.services.ask.parse_since(since)
            if outlet := (source or "").strip():
                # A typo is refused naming the outlets, as on the command line, rather than
                # answered in public that nothing matched (and counted as unanswered).
                await asyncio.to_thread(check_outlet, self.services.state, outlet)
        except NewsbotError as exc:
            await send_ephemeral(interaction, one_line(str(exc)))
            return
        user_id = interaction.user.id
        channel = interaction.channel
        me = self.bot.user
        in_thread = me is not None and _bot_thread(channel, me.id)
        if (refusal := self._refusal(user_id, follow_up=in_thread)) is not None:
            await send_ephemeral(interaction, refusal)
            return
        async with self._taken(user_id, follow_up=in_thread):
            # Deferred before anything slow (a turn, the thread's history): Discord allows 3 s.
            await interaction.response.defer(thinking=True)
            async with self.capacity.turn():
                history = await self._thread_turns(channel, before=None) if in_thread else []
                delivered = await self._answer(
                    InteractionTarget(interaction),
                    q,
                    user_id=user_id,
                    history=history,
                    since=since,
                    outlet=(source or "").strip() or None,
                    prefer_article_id=await self._thread_article(channel),
                    guild_id=interaction.guild_id,
                )
        await self.record(delivered)
        if (
            delivered
            and self.settings.answer_in_threads
            and isinstance(channel, discord.TextChannel)
        ):
            # Follow-ups go in a thread on the answer: the bot started it, so members can
            # keep asking there.
            await self.open_thread(delivered.first, channel, q)

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
        text = self.question_text(message)
        if not message.content:
            if not self.bot.intents.message_content:
                await self._hint_once(message)  # Discord withheld the text
            return
        try:
            q = self.services.ask.validate(text)
        except QuestionError as exc:
            await self._say(message, one_line(str(exc)))
            return
        # Only the bot's thread is a conversation the cooldown spares: a reply to an answer
        # is a new question in the channel (and may open a thread of its own), so it waits
        # like a mention, or replying would be a way around the cooldown.
        follow_up = _bot_thread(message.channel, self.bot.user.id)
        if (refusal := self._refusal(message.author.id, follow_up=follow_up)) is not None:
            if refusal != BUSY:
                await self._tell_once(message, refusal)
            else:
                await self._say(message, refusal)
            return
        async with self._taken(message.author.id, follow_up=follow_up):
            delivered = await self._answer_message(message, q)
        await self.record(delivered)

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

    async def _hint_once(self, message: discord.Message) -> None:
        """Tell the member, once per channel, how to ask when Discord hid their text."""
        key = (message.author.id, message.channel.id)
        if key in self._hinted:
            return
        self._hinted[key] = None
        if len(self._hinted) > REMEMBERED:
            self._hinted.popitem(last=False)
        me = self.bot.user
        assert me is not None
        await self._say(message, CONTENT_HIDDEN.format(mention=f"@{me.display_name}"))

    async def _tell_once(self, message: discord.Message, line: str) -> None:
        """A cooldown or still-answering line, once per question started, gone after a while
        (a message cannot be answered so that only its author sees it)."""
        user_id = message.author.id
        started = self._last_question.get(user_id, 0.0)
        if self._cooldown_told.get(user_id) == started:
            return
        self._cooldown_told[user_id] = started
        sent = await self._say(message, line)
        if sent is not None:
            task = asyncio.create_task(_delete(sent, after=NOTICE_S))
            self._notices[task] = sent
            task.add_done_callback(lambda t: self._notices.pop(t, None))

    async def _answer_message(self, message: discord.Message, question: str) -> Delivered | None:
        history = await self.history(message)
        target: Target = ChannelTarget(message.channel, message)
        if self.settings.answer_in_threads and isinstance(message.channel, discord.TextChannel):
            target = ThreadTarget(self, message, question)
        with contextlib.suppress(discord.HTTPException):
            await message.channel.typing()  # shown while the question waits for its turn
        async with self.capacity.turn():
            return await self._answer(
                target, question, user_id=message.author.id, history=history,
                prefer_article_id=await self._thread_article(message.channel),
                guild_id=message.guild.id if message.guild else None)

    async def _thread_article(self, channel: Any) -> str | None:
        """In a brief's thread (it shares the brief's id), or one opened for a story of a
        list, that story's article comes first."""
        if not isinstance(channel, discord.Thread):
            return None
        return await asyncio.to_thread(self.services.state.article_of_thread, channel.id)

    # -- answering -------------------------------------------------------------------------
    async def _answer(
        self,
        target: Target,
        question: str,
        *,
        user_id: int,
        history: Sequence[Turn] = (),
        since: datetime | str | None = None,
        outlet: str | None = None,
        prefer_article_id: str | None = None,
        guild_id: int | None = None,
    ) -> Delivered | None:
        """Ask the core and show the answer. Failures become one line for the user; the
        traceback goes to the log. Returns what was delivered (``record`` it afterwards)."""
        journal = Journal(self.services.state, question)
        streamer = Streamer(target, question, asyncio.get_running_loop(), journal=journal)
        task = asyncio.current_task()
        if task is not None:
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)
        try:
            try:
                answer: Answer = await asyncio.get_running_loop().run_in_executor(
                    self.pool,
                    functools.partial(
                        self.services.ask.ask,
                        question,
                        history=history,
                        since=since,
                        outlet=outlet,
                        prefer_article_id=prefer_article_id,
                        on_token=streamer.feed,
                        guild_id=guild_id,
                    ),
                )
            finally:
                await streamer.stop()
            embeds = render.answer_embeds(answer, history_turns=self.settings.history_turns)
            first, last = await target.deliver(embeds, self.bot.feedback_view)
        except discord.Forbidden:
            self.bot.log_forbidden(target.channel, self.bot.missing_permission(target.channel))
            self._settle(journal)  # nothing the bot could change there
            return None
        except NewsbotError as exc:
            if await self._fail(target, one_line(str(exc))):
                self._settle(journal)
            return None
        except Exception:
            log.exception("answering %r failed", question)
            if await self._fail(target, GENERIC_FAILURE):
                self._settle(journal)
            return None
        self._settle(journal)
        return Delivered(first, last, answer, user_id, guild_id)

    def _settle(self, journal: Journal) -> None:
        """Clear an answer's note once its message is final, without holding up the member:
        their next question is welcome as soon as they see the answer. A stop before the
        note is cleared leaves it; the next start finds the message finished and only
        drops the note."""
        task = asyncio.create_task(journal.done())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def record(self, delivered: Delivered | None) -> None:
        """Keep the answer for feedback votes (done once the member is free to ask again)."""
        if delivered is None:
            return
        try:
            await asyncio.to_thread(
                self.services.feedback.record_answer,
                message_id=delivered.last.id,
                channel_id=delivered.last.channel.id,
                user_id=delivered.user_id,
                answer=delivered.answer,
                guild_id=delivered.guild_id,
            )
        except Exception:
            # The member has the answer; only its votes will not count.
            log.exception("recording the answer for feedback failed")

    async def _fail(self, target: Target, line: str) -> bool:
        """Tell the user ``line``; False when it could not be shown."""
        try:
            await target.fail(line)
        except discord.Forbidden:
            self.bot.log_forbidden(target.channel, self.bot.missing_permission(target.channel))
        except discord.HTTPException as exc:
            log.warning("could not tell the user %r: %s", line, exc)
        else:
            return True
        return False

    async def _say(self, message: discord.Message, line: str) -> discord.Message | None:
        """One short reply line (a message cannot be answered ephemerally); None when it
        could not be sent."""
        try:
            return await message.reply(line, mention_author=False, allowed_mentions=NO_MENTIONS)
        except discord.Forbidden:
            self.bot.log_forbidden(message.channel, self.bot.missing_permission(message.channel))
        except discord.HTTPException as exc:
            log.warning("could not reply %r: %s", line, exc)
        return None

    async def open_thread(
        self, message: discord.Message, channel: discord.TextChannel, name: str
    ) -> discord.Thread | None:
        """A public thread on ``message``, or None (the answer then stays in the channel).
        Both permissions a thread needs are checked first: one the bot could open but not
        write in would stay empty."""
        me = channel.guild.me
        if me is not None:
            perms = channel.permissions_for(me)
            for needed in ("create_public_threads", "send_messages_in_threads"):
                if not getattr(perms, needed):
                    self.bot.log_forbidden(channel, needed)
                    return None
        try:
            return await message.create_thread(
                name=render.truncate(name, 100), auto_archive_duration=THREAD_ARCHIVE_MINUTES
            )
        except discord.Forbidden:
            self.bot.log_forbidden(channel, "create_public_threads")
        except discord.HTTPException as exc:
            if exc.code == THREAD_EXISTS and (thread := await self._own_thread(message)):
                return thread  # opened by an earlier try whose response was lost
            log.warning("could not open a thread in #%s: %s", channel, exc)
        return None

    async def _own_thread(self, message: discord.Message) -> discord.Thread | None:
        """The thread the bot opened on ``message`` (it has the message's id), or None."""
        guild = message.guild
        me = self.bot.user
        if guild is None or me is None:
            return None
        thread = guild.get_thread(message.id)
        if thread is None:
            with contextlib.suppress(discord.HTTPException):
                found = await guild.fetch_channel(message.id)
                thread = found if isinstance(found, discord.Thread) else None
        return thread if thread is not None and thread.owner_id == me.id else None

    # -- history ---------------------------------------------------------------------------
    async def history(self, message: discord.Message) -> list[Turn]:
        """Earlier turns, oldest first: the bot's thread, else the reply chain. One turn more
        than the cap is collected, so the service can tell the user it cut the history."""
        me = self.bot.user
        assert me is not None
        if self.settings.history_turns == 0:
            return []
        if _bot_thread(message.channel, me.id):
            return await self._thread_turns(message.channel, before=message)
        wanted = self.settings.history_turns + 1
        previous: list[discord.Message] = []
        told = 0  # messages that are turns of their own: an answer's later parts are not
        current = message
        while told < wanted:
            earlier = await self._earlier(current)
            if not earlier:
                break
            previous[:0] = earlier
            told += sum(not self._later_part(m) for m in earlier)
            current = earlier[0]
        return self._turns(previous)[-wanted:]

    async def _earlier(self, message: discord.Message) -> list[discord.Message]:
        """The messages just before ``message`` in its conversation, oldest first: the one it
        replies to; for a later part of an /ask answer (a follow-up message, which cannot
        reply), the answer's parts before it."""
        me = self.bot.user
        meta = message.interaction_metadata
        first_id = meta.original_response_message_id if meta is not None else None
        if me is None or message.author.id != me.id or meta is None or first_id is None:
            earlier = await self._referenced(message)
            return [earlier] if earlier is not None else []
        channel = message.channel
        try:
            first = meta.original_response_message or await channel.fetch_message(first_id)
            between = [m async for m in channel.history(
                limit=PARTS_WINDOW, after=discord.Object(first_id), before=message,
                oldest_first=True)]
        except discord.NotFound:
            return []
        except discord.Forbidden:
            self.bot.log_forbidden(channel, "read_message_history")
            return []
        return [first, *(m for m in between if m.author.id == me.id
                         and m.interaction_metadata is not None
                         and m.interaction_metadata.id == meta.id)]

    def _later_part(self, message: discord.Message) -> bool:
        """A part of a split answer after its first: the bot's embed without the question
        as its title."""
        me = self.bot.user
        return (me is not None and message.author.id == me.id and bool(message.embeds)
                and not message.embeds[0].title)

    async def _thread_turns(self, thread: Any, *, before: discord.Message | None) -> list[Turn]:
        """The turns of the bot's thread before ``before`` (all of them when None)."""
        if self.settings.history_turns == 0:
            return []
        wanted = self.settings.history_turns + 1
        # Read twice the turns wanted: an answer split over messages is one turn.
        found = await self._thread_messages(thread, 2 * wanted, before=before)
        return self._turns(found)[-wanted:]

    async def _thread_messages(
        self, thread: discord.Thread, wanted: int, *, before: discord.Message | None
    ) -> list[discord.Message]:
        try:
            found = [m async for m in thread.history(limit=wanted, before=before)]
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

    def _turns(self, messages: Sequence[discord.Message]) -> list[Turn]:
        """Messages as conversation turns. An answer's title is its question: it stands in for
        an /ask (which leaves no message of the member's) and for a question whose text
        Discord withheld."""
        me = self.bot.user
        assert me is not None
        turns: list[Turn] = []
        for m in messages:
            if m.author.id != me.id:
                text = self.question_text(m)
                if text:
                    turns.append(Turn("user", text))
                continue
            if not m.embeds:
                continue  # a busy or error line, not an answer
            if self._later_part(m) and turns and turns[-1].role == "assistant":
                # The rest of a split answer: one turn with the parts before it.
                more = render.embed_text(m.embeds[0]).strip()
                turns[-1] = Turn("assistant", f"{turns[-1].text}\n\n{more}".strip())
                continue
            title = m.embeds[0].title
            if title and (m.interaction_metadata is not None or not turns
                          or turns[-1].role != "user"):
                turns.append(Turn("user", title))
            if m.embeds[0].footer.text == render.INTERRUPTED_FOOTER:
                continue  # the question went unanswered: the notice is no answer
            text = render.embed_text(m.embeds[0]).strip()
            if text:
                turns.append(Turn("assistant", text))
        return turns


_MASS = re.compile(r"@\u200b(?:everyone|here)\b")


async def _delete(message: discord.Message, *, after: float = 0.0) -> None:
    """Delete one of the bot's lines, after a while; one gone already is no matter."""
    await asyncio.sleep(after)
    try:
        await message.delete()
    except discord.HTTPException as exc:
        if not isinstance(exc, discord.NotFound):
            log.warning("could not delete the line %r: %s", message.content, exc)


def _writing(message: discord.Message) -> bool:
    """The bot's message still shows an answer in progress."""
    return bool(message.embeds) and message.embeds[0].footer.text == render.PROGRESS_FOOTER


def _bot_thread(channel: Any, bot_id: int) -> bool:
    return isinstance(channel, discord.Thread) and channel.owner_id == bot_id


async def setup(bot: NewsBot) -> None:
    await bot.add_cog(Ask(bot))
