"""A fake Discord for the bot: dpytest for messages, spec'd Interactions for app commands.

dpytest 0.7 fakes Discord's HTTP API but knows nothing of threads or replies, does not keep
the payloads it is sent, and returns channel history in the wrong order. ``RecordingHttp``
fills exactly those gaps, the way Discord behaves: threads opened on a message, message
references with the referenced message resolved one level deep, newest-first history, and a
record of every payload (so tests can check allowed mentions).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import discord
import discord.ext.test as dpytest
from discord.ext.test import backend as dback
from discord.ext.test import factories as facts

from bot.client import NewsBot
from bot.core.services import Services


def _raw_messages(channel_id: int) -> list[dict[str, Any]]:
    return dback._cur_config.messages.setdefault(channel_id, [])  # type: ignore[union-attr]


def _find_raw(message_id: int) -> dict[str, Any] | None:
    for messages in dback._cur_config.messages.values():  # type: ignore[union-attr]
        for raw in messages:
            if raw["id"] == message_id:
                return raw
    return None


def _channel(state: Any, channel_id: int) -> Any:
    for guild in state.guilds:
        found = guild.get_channel_or_thread(channel_id)
        if found is not None:
            return found
    return state.get_channel(channel_id)


def post(
    state: Any,
    channel: Any,
    author: discord.abc.User,
    content: str = "",
    *,
    reference_id: int | None = None,
    embeds: list[dict[str, Any]] | None = None,
    components: list[dict[str, Any]] | None = None,
) -> discord.Message:
    """A message as Discord would deliver it, with a resolved reference for replies."""
    guild = channel.guild
    data = facts.make_message_dict(
        channel,
        author,
        content=content,
        mentions=[m for m in dback.find_user_mentions(content, guild) if m is not None],
        mention_roles=dback.find_role_mentions(content, guild),
        guild_id=guild.id,
    )
    data["mention_everyone"] = "@everyone" in content or "@here" in content
    data["embeds"] = embeds or []
    data["components"] = components or []
    if reference_id is not None:
        data["message_reference"] = {
            "type": 0,
            "message_id": reference_id,
            "channel_id": channel.id,
            "guild_id": guild.id,
        }
        referenced = _find_raw(reference_id)
        if referenced is not None:
            # Discord resolves one level: the referenced message has no referenced_message.
            referenced = {k: v for k, v in referenced.items() if k != "referenced_message"}
        data["referenced_message"] = copy.deepcopy(referenced)
    state.parse_message_create(data)
    _raw_messages(channel.id).append(data)
    return state._get_message(data["id"])


@dataclass
class Sent:
    """One payload the bot sent (a new message or an edit)."""

    kind: str  # "send" or "edit"
    channel_id: int
    message_id: int
    payload: dict[str, Any]


class RecordingHttp(dback.FakeHttp):
    """dpytest's fake HTTP client with threads, references and a record of payloads."""

    sent: list[Sent]
    forbidden: set[tuple[int, str]]

    async def send_message(self, channel_id: int, *, params: Any) -> dict[str, Any]:
        channel = _channel(self.state, channel_id)
        payload = dict(params.payload or {})
        if (channel.id, "send") in self.forbidden:
            raise discord.Forbidden(dback.FakeRequest(403, "Forbidden"), "Missing Permissions")
        ref = payload.get("message_reference")
        message = post(
            self.state,
            channel,
            self.state.user,
            payload.get("content") or "",
            reference_id=int(ref["message_id"]) if ref else None,
            embeds=payload.get("embeds"),
            components=payload.get("components"),
        )
        self.sent.append(Sent("send", channel.id, message.id, payload))
        await dback.callbacks.dispatch_event("send_message", message)
        return _find_raw(message.id)  # type: ignore[return-value]

    async def edit_message(self, channel_id: int, message_id: int, **fields: Any) -> dict[str, Any]:
        payload = dict(fields["params"].payload or {})
        self.sent.append(Sent("edit", channel_id, message_id, payload))
        raw = _find_raw(message_id)
        assert raw is not None, "edit of an unknown message"
        raw.update(payload)
        self.state.parse_message_update(copy.deepcopy(raw))  # as Discord's MESSAGE_UPDATE
        return copy.deepcopy(raw)

    async def start_thread_with_message(
        self,
        channel_id: int,
        message_id: int,
        *,
        name: str,
        auto_archive_duration: int,
        rate_limit_per_user: int | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        channel = _channel(self.state, channel_id)
        if (channel.id, "thread") in self.forbidden:
            raise discord.Forbidden(dback.FakeRequest(403, "Forbidden"), "Missing Permissions")
        now = dt.datetime.now(dt.UTC).isoformat()
        data = {
            "id": message_id,  # a thread opened on a message shares its id
            "guild_id": channel.guild.id,
            "parent_id": channel_id,
            "owner_id": self.state.user.id,
            "name": name,
            "type": discord.ChannelType.public_thread.value,
            "last_message_id": None,
            "rate_limit_per_user": rate_limit_per_user or 0,
            "message_count": 0,
            "member_count": 1,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": auto_archive_duration,
                "archive_timestamp": now,
                "locked": False,
            },
            "newly_created": True,
        }
        self.state.parse_thread_create(copy.deepcopy(data))
        return data

    async def logs_from(
        self,
        channel_id: int,
        limit: int,
        before: int | None = None,
        after: int | None = None,
        around: int | None = None,
    ) -> list[dict[str, Any]]:
        # Discord returns the newest messages first.
        messages = sorted(_raw_messages(channel_id), key=lambda m: int(m["id"]), reverse=True)
        if before is not None:
            messages = [m for m in messages if int(m["id"]) < int(before)]
        if after is not None:
            messages = [m for m in messages if int(m["id"]) > int(after)]
        return copy.deepcopy(messages[:limit])


@dataclass
class Harness:
    """A configured bot and the fake Discord around it."""

    bot: NewsBot
    services: Services
    guild: discord.Guild
    channel: discord.TextChannel
    members: list[discord.Member]
    http: RecordingHttp
    transcript: list[str] = field(default_factory=list)

    @property
    def me(self) -> discord.ClientUser:
        assert self.bot.user is not None
        return self.bot.user

    async def say(
        self,
        content: str,
        *,
        channel: Any = None,
        member: int = 0,
        reply_to: discord.Message | None = None,
    ) -> discord.Message:
        """A member posts a message; waits until the bot has handled it."""
        author = self.members[member]
        where = channel or self.channel
        message = post(
            self.bot._connection,
            where,
            author,
            content,
            reference_id=reply_to.id if reply_to else None,
        )
        await dpytest.run_all_events()
        return message

    def sent_since(self, mark: int) -> list[Sent]:
        return self.http.sent[mark:]

    def message(self, message_id: int) -> discord.Message:
        found = self.bot._connection._get_message(message_id)
        assert found is not None
        return found

    def thread(self, thread_id: int) -> discord.Thread:
        thread = self.guild.get_thread(thread_id)
        assert thread is not None
        return thread


_ids = itertools.count(1)


# -- spec'd interactions --------------------------------------------------------------------------


@dataclass
class InteractionRecord:
    """What an app command did with its interaction."""

    interaction: Any
    original: discord.Message | None = None
    ephemeral: list[str] = field(default_factory=list)
    ephemeral_embeds: list[discord.Embed] = field(default_factory=list)
    followups: list[discord.Message] = field(default_factory=list)
    deleted: bool = False


def make_interaction(
    h: Harness,
    *,
    member: int = 0,
    channel: Any = None,
    permissions: discord.Permissions | None = None,
    guild: bool = True,
) -> InteractionRecord:
    """An Interaction mock with ``spec_set`` (a wrong attribute or argument fails) whose
    public responses become real messages in the fake Discord, posted by the bot."""
    where = channel or h.channel
    it = mock.create_autospec(discord.Interaction, instance=True, spec_set=True)
    rec = InteractionRecord(interaction=it)
    it.id = next(_ids)
    it.client = h.bot
    it.user = h.members[member]
    it.guild = h.guild if guild else None
    it.guild_id = h.guild.id if guild else None
    it.channel = where
    it.channel_id = where.id
    it.permissions = permissions or discord.Permissions.none()
    it.command = None
    it.message = None
    it.data = {}
    response = mock.create_autospec(discord.InteractionResponse, instance=True, spec_set=True)
    it.response = response
    it.followup = mock.create_autospec(discord.Webhook, instance=True, spec_set=True)
    state: dict[str, Any] = {"done": False, "ephemeral_defer": False}

    def done() -> bool:
        return state["done"]

    async def defer(*, ephemeral: bool = False, thinking: bool = False) -> None:
        assert not state["done"], "interaction answered twice"
        state.update(done=True, ephemeral_defer=ephemeral)

    async def send_message(
        content: str | None = None, *, ephemeral: bool = False, **kwargs: Any
    ) -> None:
        assert not state["done"], "interaction answered twice"
        state["done"] = True
        assert ephemeral, "public interaction messages are not expected here"
        _check_mentions(kwargs)
        rec.ephemeral.append(content or "")

    def _publish(kwargs: dict[str, Any]) -> dict[str, Any]:
        embeds = [kwargs["embed"]] if kwargs.get("embed") else kwargs.get("embeds") or []
        view = kwargs.get("view")
        return {
            "embeds": [e.to_dict() for e in embeds if e is not None],
            "components": view.to_components() if view else None,
            "content": kwargs.get("content") or "",
        }

    async def edit_original_response(**kwargs: Any) -> discord.Message:
        assert state["done"], "edit before the interaction was deferred"
        _check_mentions(kwargs)
        pub = _publish(kwargs)
        if rec.original is None:
            rec.original = post(
                h.bot._connection,
                where,
                h.bot._connection.user,
                pub["content"],
                embeds=pub["embeds"],
                components=pub["components"],
            )
            h.http.sent.append(Sent("send", where.id, rec.original.id, kwargs))
        else:
            raw = _find_raw(rec.original.id)
            assert raw is not None
            raw.update({k: v for k, v in pub.items() if v is not None})
            rec.original = discord.Message(state=h.bot._connection, channel=where, data=raw)
            h.http.sent.append(Sent("edit", where.id, rec.original.id, kwargs))
        if kwargs.get("view") is not None:
            h.bot._connection.store_view(kwargs["view"], rec.original.id)
        return rec.original

    async def delete_original_response() -> None:
        rec.deleted = True

    async def followup_send(
        content: str | None = None, *, ephemeral: bool = False, wait: bool = False, **kwargs: Any
    ) -> discord.Message | None:
        assert state["done"], "follow-up before the interaction was answered"
        _check_mentions(kwargs)
        if ephemeral or state["ephemeral_defer"]:
            rec.ephemeral.append(content or "")
            if kwargs.get("embed") is not None:
                rec.ephemeral_embeds.append(kwargs["embed"])
            return None
        pub = _publish({**kwargs, "content": content})
        msg = post(
            h.bot._connection,
            where,
            h.bot._connection.user,
            pub["content"],
            embeds=pub["embeds"],
            components=pub["components"],
        )
        h.http.sent.append(Sent("send", where.id, msg.id, kwargs))
        rec.followups.append(msg)
        return msg if wait else None

    response.is_done.side_effect = done
    response.defer.side_effect = defer
    response.send_message.side_effect = send_message
    it.edit_original_response.side_effect = edit_original_response
    it.delete_original_response.side_effect = delete_original_response
    it.followup.send.side_effect = followup_send
    return rec


def _check_mentions(kwargs: dict[str, Any]) -> None:
    allowed = kwargs.get("allowed_mentions")
    assert allowed is not None and allowed.to_dict() == {"parse": []}, kwargs


def no_mentions(payload: dict[str, Any]) -> bool:
    """Whether a sent payload allows no mention at all."""
    allowed = payload.get("allowed_mentions")
    if isinstance(allowed, discord.AllowedMentions):
        allowed = allowed.to_dict()
    return allowed == {"parse": []} or allowed == {"parse": [], "replied_user": False}


async def settle(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for background work (view callbacks) to reach a state."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.01)
