"""An in-memory Poster that behaves like a Discord channel where it matters for delivery:
message ids, nonce deduplication, replies, edits, and scripted 403/404/429 or crashes."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from bot.core.delivery import OutMessage, PostError, RecentMessage


class Crash(BaseException):
    """Stands for the process dying at a chosen moment (not an Exception: nothing catches it)."""


@dataclass
class Posted:
    id: int
    channel_id: int
    nonce: str
    message: OutMessage
    edits: int = 0


@dataclass
class MemoryPoster:
    messages: dict[int, list[Posted]] = field(default_factory=dict)
    # channel -> error on send: a PostError, or what a network fault raises (OSError...)
    refuse: dict[int, Exception] = field(default_factory=dict)
    rate_limits: int = 0  # the next N sends answer 429
    crash_after_send: int | None = None  # the Nth send is delivered, then the process "dies"
    crash_before_send: int | None = None  # the Nth send dies before it reaches the channel
    hang_after_send: int | None = None  # the Nth send is delivered, then its answer never comes
    delay: float = 0.0  # seconds a send takes, so that sends overlap
    sends: int = 0
    calls: list[str] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1000))

    async def send(self, channel_id: int, message: OutMessage, *, nonce: str) -> int:
        self.calls.append(f"send {channel_id}")
        self.sends += 1
        if self.crash_before_send == self.sends:
            raise Crash("died before the send")
        if channel_id in self.refuse:
            raise self.refuse[channel_id]
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.rate_limits:
            self.rate_limits -= 1
            raise PostError("rate_limited", "429", retry_after=0.01)
        for p in self.messages.get(channel_id, []):
            if p.nonce == nonce:  # enforce_nonce: the earlier message, nothing new
                return p.id
        posted = Posted(next(self._ids), channel_id, nonce, message)
        self.messages.setdefault(channel_id, []).append(posted)
        if self.crash_after_send == self.sends:
            raise Crash("died after the send, before the confirmation")
        if self.hang_after_send == self.sends:
            await asyncio.Event().wait()  # accepted, but the answer is lost on the way back
        return posted.id

    async def edit(self, channel_id: int, message_id: int, message: OutMessage) -> None:
        self.calls.append(f"edit {channel_id}")
        for p in self.messages.get(channel_id, []):
            if p.id == message_id:
                p.message, p.edits = message, p.edits + 1
                return
        raise PostError("not_found", "unknown message")

    async def recent(self, channel_id: int, *, limit: int) -> list[RecentMessage]:
        self.calls.append(f"recent {channel_id}")
        # Like Discord's history: no nonce on messages read back.
        return [RecentMessage(id=p.id, from_me=True, title=p.message.title, url=p.message.url)
                for p in reversed(self.messages.get(channel_id, [])[-limit:])]

    def in_channel(self, channel_id: int) -> list[OutMessage]:
        return [p.message for p in self.messages.get(channel_id, [])]
