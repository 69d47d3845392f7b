"""Briefs out to channels: subscriptions, one brief per story, the posting queue with its
exactly-once log, and daily digests.

Transport-agnostic: a :class:`Poster` (the Discord adapter, or a small in-memory one in
tests) sends, edits and lists recent messages. The posted log in SQLite is the queue:

1. ``plan`` decides what each channel gets for new articles and records it (``pending``),
   once per (channel, item): a story's first article is a brief; a later article on a story
   already briefed there is an update, a reply to the brief, which is also edited to list
   the new source; a changed article is posted again only when its headline changed.
2. ``deliver`` sends pending rows. The attempt is recorded before the send, and the message
   id after it. Every send carries a nonce derived from (channel, item), which Discord uses to
   return the earlier message instead of posting twice; a row found mid-attempt on the next
   start is first looked for among the channel's recent messages, and only sent again (with
   the same nonce) when it is not there.

More than ``burst`` briefs for one channel at once (a wave of articles on its topic, a channel
resumed after a long pause) go out as one list of their stories instead. The list is a post
of its own, owned by no subscription; its briefs stay pending, each with its own
subscription, and are marked sent in the transaction that confirms the list. So
unsubscribing one of them drops only its own briefs, the list is held only while all of
its briefs are (their subscriptions paused), and a list left with no brief is given up.

A 403 from a channel disables its subscriptions and tells the moderators once (in their
channel, or by direct message to whoever made the subscription); a 404 (the channel is
gone) removes them. Sends are paced below Discord's limits, and a 429 slows the
pace and retries the same row: nothing is dropped. Another 4xx (a message Discord finds
malformed) is given up at once and logged: the same message would be refused again. Any
other failure (a 5xx, a network fault, a send with no answer within ``send_timeout``) leaves
the row pending, tried again by a later pass after a wait that doubles with each attempt. A
pass ends only when all its sends have, and passes never overlap: a row is never sent by two
passes at once, whatever Discord's nonce window.

The hard case is a send Discord accepted whose answer never arrived (a timeout, a connection
cut after the request went out). The row was marked attempted before the send, so the next
try first reads the channel's last ``RECENT_LOOKBACK`` messages and confirms the row when the
message is there (same nonce, or the bot's own with the same title and link); only when it
is not is it sent again, with the same nonce, which Discord answers with the earlier message
while it remembers the nonce (a few minutes). A duplicate therefore needs all of: Discord
accepted the send, the message was pushed out of the last ``RECENT_LOOKBACK`` by newer ones
before the retry, and the retry came after Discord forgot the nonce.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from bot.core.briefs import Brief, write_brief
from bot.core.models import SOURCES_LISTED, SUBSCRIPTIONS_LISTED, NewsbotError
from bot.core.state import State, utcnow
from retrieval.articles import Article
from retrieval.stories import (
    TOPIC_THRESHOLD,
    StoryMember,
    StoryRule,
    match_story,
    story_text,
)
from retrieval.timeparse import zone_named

if TYPE_CHECKING:
    import sqlite3

    from bot.core.llm import ChatModel
    from retrieval.embeddings import Embedder

log = logging.getLogger(__name__)

Kind = Literal["brief", "update", "digest", "notice"]
MAX_KEYWORDS = 10
MAX_TOPIC_CHARS = 200
DIGEST_STORIES = 10
RECENT_LOOKBACK = 50  # messages read back to find a post a crash left unconfirmed
RETRY_BASE_S = 10.0  # the first wait after a failed send; doubled with each attempt
RETRY_MAX_S = 3600.0
SEND_TIMEOUT_S = 60.0  # a send (or a history read) with no answer by then is a failed try
TITLE_CHARS = 256
# The most briefs a channel is sent at once: a topic matching a wave of articles, a channel
# resumed after a long pause, or a queue that grew while Discord was away come as one list.
BURST = 5
# The most briefs a paused subscription holds: the newest. A channel the bot was removed from
# may stay paused for good, and its queue must not grow without end.
HELD_MAX = 200
# After the model did not answer a brief, the briefs planned in this long are extractive
# rather than each waiting out the answer budget for it again.
MODEL_REST = timedelta(minutes=5)
# An article first read after a subscription was made is news to it though dated up to this
# long before it: feeds list items some minutes after their date, and the first poll after
# a subscription reads what was published since the poll before. Dated earlier still, it is
# an old story a feed lists again.
NEW_TO_SUBSCRIPTION = timedelta(days=1)
# Why a channel's subscriptions are paused after a 403. Their briefs are held (planned and
# kept pending, not sent) until a moderator subscribes the channel again.
PAUSED_REASON = "the bot may not post in that channel (403)"


# -- what is sent ----------------------------------------------------------------------------
@dataclass(slots=True)
class OutMessage:
    """One message to send, independent of how it is rendered.

    The adapter must show ``title`` and ``url`` as they are (the embed's title and link):
    after a crash, an unconfirmed post is recognised among the channel's messages by them.
    """

    kind: Kind
    title: str
    url: str | None = None
    brief: dict[str, Any] | None = None  # Brief.to_json() for briefs and updates
    also: list[dict[str, Any]] = field(default_factory=list)  # other reports of the story
    lines: list[dict[str, Any]] = field(default_factory=list)  # a digest's stories
    text: str | None = None  # a notice
    article_id: str | None = None  # what "Ask about this" asks about
    reply_to: int | None = None  # the brief an update answers

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutMessage:
        # A payload also keeps notes of the posted log's own (the article's title, the
        # burst a brief went out in): not part of the message.
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class RecentMessage:
    """A message of the channel, as read back to reconcile an unconfirmed post."""

    id: int
    from_me: bool
    title: str | None
    url: str | None
    nonce: str | None = None


class PostError(Exception):
    """A send or edit failed: ``forbidden`` (403), ``not_found`` (404), ``rate_limited``
    (429, with ``retry_after``), ``rejected`` (another 4xx: the same message would be
    refused again) or ``transient`` (anything worth trying again later)."""

    def __init__(self, kind: Literal["forbidden", "not_found", "rate_limited", "rejected",
                                     "transient"],
                 message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message or kind)
        self.kind = kind
        self.retry_after = retry_after


class Poster(Protocol):
    """What delivery needs from a chat platform."""

    async def send(self, channel_id: int, message: OutMessage, *, nonce: str) -> int:
        """Send; the new message's id. Raises PostError."""
        ...

    async def edit(self, channel_id: int, message_id: int, message: OutMessage) -> None:
        """Replace a message sent earlier. Raises PostError."""
        ...

    async def recent(self, channel_id: int, *, limit: int) -> list[RecentMessage]:
        """The channel's latest messages, newest first. Raises PostError."""
        ...

    async def direct(self, user_id: int) -> int:
        """The id of the bot's direct-message channel with a user. Raises PostError."""
        ...


_DISCORD_CREATOR = re.compile(r"discord user (\d+)")  # how the Discord adapter names a member


def _list_of(row: sqlite3.Row) -> str | None:
    """The key of the burst's list a pending brief is a line of, if any."""
    return json.loads(row["payload"]).get("burst")


def _creator_id(created_by: str | None) -> int | None:
    """The Discord user who made a subscription (None when it came from the command line)."""
    m = _DISCORD_CREATOR.fullmatch(created_by or "")
    return int(m.group(1)) if m else None


def _clip_title(head: str, tail: str) -> str:
    """``head + tail`` within an embed title's length, ``head`` shortened if need be."""
    room = TITLE_CHARS - len(tail)
    return (head if len(head) <= room else head[: room - 1] + "…") + tail


def make_nonce(channel_id: int, item_key: str) -> str:
    """Deterministic per (channel, item), 25 characters (Discord's limit for a nonce)."""
    return hashlib.sha256(f"{channel_id}\x00{item_key}".encode()).hexdigest()[:25]


# -- subscriptions ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    channel_id: int
    guild_id: int | None
    source_id: int | None
    topic: str | None
    keywords: tuple[str, ...]
    daily_cap: int | None
    mode: Literal["immediate", "digest"]
    digest_hour: int
    tz: str
    created_at: datetime
    enabled: bool
    disabled_reason: str | None
    last_digest: str | None
    created_by: str | None = None
    resumed: int | None = None  # set by ``Desk.subscribe`` on a resume: the briefs released
    resumed_listed: int | None = None  # how many of them go out in a list of their stories

    @property
    def paused(self) -> bool:
        """Disabled by a 403 from its channel: its briefs are held, not dropped."""
        return not self.enabled and self.disabled_reason == PAUSED_REASON

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Subscription:
        return cls(
            id=int(row["id"]), channel_id=int(row["channel_id"]), guild_id=row["guild_id"],
            source_id=row["source_id"], topic=row["topic"],
            keywords=tuple(json.loads(row["keywords"] or "[]")), daily_cap=row["daily_cap"],
            mode=row["mode"], digest_hour=int(row["digest_hour"]), tz=row["tz"],
            created_at=datetime.fromisoformat(row["created_at"]), enabled=bool(row["enabled"]),
            disabled_reason=row["disabled_reason"], last_digest=row["last_digest"],
            created_by=row["created_by"],
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "channel_id": self.channel_id, "guild_id": self.guild_id,
                "source_id": self.source_id, "topic": self.topic,
                "keywords": list(self.keywords), "daily_cap": self.daily_cap,
                "mode": self.mode, "digest_hour": self.digest_hour, "tz": self.tz,
                "created_at": self.created_at.isoformat(), "enabled": self.enabled,
                "disabled_reason": self.disabled_reason, "resumed": self.resumed,
                "resumed_listed": self.resumed_listed}

    def describe(self, source: str | None = None) -> str:
        """One line; ``source``: the followed source's name (or address), shown beside its
        number, which alone names nothing to a moderator who cannot list the sources."""
        what = (f'topic "{self.topic}"' if self.source_id is None
                else f'source #{self.source_id} "{source}"' if source
                else f"source #{self.source_id}")
        extra = []
        if self.keywords:
            extra.append("keywords: " + ", ".join(self.keywords))
        if self.daily_cap:
            extra.append(f"at most {self.daily_cap} a day")
        if self.mode == "digest":
            extra.append(f"daily digest at {self.digest_hour:02d}:00 {self.tz}")
        if self.paused:  # as the moderators' notice and the README call it
            extra.append(f"paused, its briefs held: {self.disabled_reason}")
        elif not self.enabled:
            extra.append(f"disabled: {self.disabled_reason or 'no reason given'}")
        return f"#{self.id} <#{self.channel_id}> follows {what}" + (
            f" ({'; '.join(extra)})" if extra else "")


def _older_than(sub: Subscription, published: datetime | None,
                first_seen: datetime | None, now: datetime) -> bool:
    """Whether an article is older news than the subscription: read before it was made, or
    dated more than NEW_TO_SUBSCRIPTION before it."""
    seen = published or first_seen or now
    if seen >= sub.created_at:
        return False
    read_after = first_seen is not None and first_seen >= sub.created_at
    return not (read_after and published is not None
                and sub.created_at - published <= NEW_TO_SUBSCRIPTION)


def _keyword_match(keywords: Sequence[str], article: Article) -> bool:
    if not keywords:
        return True
    hay = f"{article.title}\n{article.text}".lower()
    return any(re.search(rf"(?<!\w){re.escape(k.lower())}(?!\w)", hay) for k in keywords)


def _check_zone(tz: str) -> None:
    if zone_named(tz) is None:
        raise NewsbotError(f"unknown time zone {tz!r}; use a name like Europe/Paris")


def _local_day_start(now: datetime, zone: ZoneInfo) -> datetime:
    local = now.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


# -- planning --------------------------------------------------------------------------------
@dataclass(slots=True)
class PlanReport:
    """What ``plan`` recorded for delivery."""

    briefs: int = 0
    updates: int = 0
    folded: int = 0  # other outlets added to a brief not sent yet
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str, n: int = 1) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + n

    def to_json(self) -> dict[str, Any]:
        return {"briefs": self.briefs, "updates": self.updates, "folded": self.folded,
                "skipped": dict(self.skipped)}


@dataclass(slots=True)
class DeliveryReport:
    sent: int = 0
    reconciled: int = 0  # found already posted after a crash; not sent again
    edited: int = 0
    failed: int = 0
    waiting: int = 0  # left pending for a later pass (transient errors, briefs not sent yet)
    rate_limited: int = 0
    disabled: list[int] = field(default_factory=list)  # subscriptions disabled (403)
    removed: list[int] = field(default_factory=list)  # subscriptions removed (404)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _source_ref(article: Article) -> dict[str, Any]:
    return {"article_id": article.id, "title": article.title, "outlet": article.outlet,
            "url": article.url,
            "published_at": article.published_at.isoformat() if article.published_at else None}


class Pacer:
    """At most ``rate`` sends a second, evenly spaced; a 429 halves the rate for a while."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = self.base = rate
        self._next = 0.0
        self._clock = clock

    async def wait(self) -> None:
        # The slot is taken before sleeping, so concurrent senders queue behind each other.
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.rate
        # Recover slowly after being slowed down.
        self.rate = min(self.base, self.rate * 1.05)
        if slot > now:
            await asyncio.sleep(slot - now)

    async def back_off(self, retry_after: float | None) -> None:
        self.rate = max(self.base / 16, self.rate / 2)
        await asyncio.sleep(retry_after if retry_after is not None else 1.0 / self.rate)


class Desk:
    """Subscriptions, stories and the posted log; planning is blocking, delivery is async."""

    def __init__(self, state: State, embedder: Embedder, *, model: ChatModel | None = None,
                 rule: StoryRule | None = None, topic_threshold: float = TOPIC_THRESHOLD,
                 mod_channel_id: int | None = None, send_rate: float = 10.0,
                 concurrency: int = 8, retry_base: float = RETRY_BASE_S,
                 send_timeout: float = SEND_TIMEOUT_S, burst: int = BURST,
                 held_max: int = HELD_MAX,
                 clock: Callable[[], datetime] = utcnow, default_tz: str = "UTC") -> None:
        self.state = state
        self.default_tz = default_tz  # a server's time zone until it sets its own
        self.embedder = embedder
        self.model = model
        self.rule = rule or StoryRule()
        self.topic_threshold = topic_threshold
        self.mod_channel_id = mod_channel_id
        self.send_rate = send_rate
        self.concurrency = concurrency
        self.retry_base = retry_base
        self.send_timeout = send_timeout
        self.clock = clock
        self._topic_vectors: dict[str, np.ndarray] = {}
        self._lock = asyncio.Lock()  # one delivery pass at a time
        self._planning = threading.Lock()  # one pass over the queued articles at a time
        self.burst = burst
        self.held_max = held_max
        # When each plan recording now began: what they record waits, to be counted for a
        # burst once all of a batch is in (briefs written by a slow model come in one by one).
        self._plans: list[datetime] = []
        self._plans_lock = threading.Lock()
        self._model_rests_until: datetime | None = None  # see _brief

    # -- subscriptions ---------------------------------------------------------------------
    def subscribe(self, *, channel_id: int, guild_id: int | None = None,
                  source: str | None = None, topic: str | None = None,
                  keywords: Iterable[str] = (), daily_cap: int | None = None,
                  mode: str = "immediate", digest_hour: int = 8, tz: str | None = None,
                  created_by: str | None = None, now: datetime | None = None) -> Subscription:
        """Follow a source (id, name or URL) or a topic in a channel. The digest hour is in
        ``tz``, by default the guild's time zone (NEWSBOT_TIMEZONE unless set). NewsbotError
        on bad input, with nothing written.

        Subscribing a channel again to what a 403 paused resumes it (its options as they
        were) with every subscription of the channel the 403 paused: their held briefs go
        out; ``resumed`` on the result says how many."""
        if tz is None:
            tz = ((self.state.guild_tz(guild_id) if guild_id is not None else None)
                  or self.default_tz)
        if source is None and topic is None:
            raise NewsbotError("give a source to follow or a topic")
        if source is not None and topic is not None:
            raise NewsbotError("give a source to follow or a topic, not both")
        source_id = None
        if source is not None:
            found = self.state.find_source(str(source).strip())
            if found is None:
                raise NewsbotError(f"no source {source!r} is registered; {SOURCES_LISTED}")
            if not found.watch:
                # Only polls bring new articles to brief: the subscription would stay silent.
                raise NewsbotError(
                    f"source {found.label!r} is not followed (it was read once), so it brings "
                    "no new articles to brief; an admin follows it with `/feeds add` or "
                    "`newsbot sources add`")
            source_id = found.id
        if topic is not None:
            topic = " ".join(topic.split())
            if not topic or len(topic) > MAX_TOPIC_CHARS:
                raise NewsbotError(f"a topic is 1 to {MAX_TOPIC_CHARS} characters")
        words = [" ".join(k.split()) for k in keywords if k and k.strip()]
        if len(words) > MAX_KEYWORDS or any(len(k) > 60 for k in words):
            raise NewsbotError(f"at most {MAX_KEYWORDS} keywords of up to 60 characters")
        if daily_cap is not None and daily_cap < 1:
            raise NewsbotError("the daily cap is a number of briefs, 1 or more")
        if mode not in ("immediate", "digest"):
            raise NewsbotError("mode is immediate or digest")
        if not 0 <= digest_hour <= 23:
            raise NewsbotError("the digest hour is 0 to 23")
        _check_zone(tz)
        sub_id = self.state.add_subscription(
            channel_id=channel_id, guild_id=guild_id, source_id=source_id, topic=topic,
            keywords=words, daily_cap=daily_cap, mode=mode, digest_hour=digest_hour, tz=tz,
            created_by=created_by, created_at=now or utcnow())
        if sub_id is None:
            resumed = self._resume(channel_id, source_id, topic)
            if resumed is None:
                same = next((s.id for s in self.subscriptions(channel_id=channel_id)
                             if s.source_id == source_id and s.topic == topic), None)
                raise NewsbotError("that channel already follows that"
                                   + (f" (subscription #{same})" if same is not None else "")
                                   + f"; {SUBSCRIPTIONS_LISTED}")
            return resumed
        row = self.state.get_subscription(sub_id)
        assert row is not None
        return Subscription.from_row(row)

    def _resume(self, channel_id: int, source_id: int | None,
                topic: str | None) -> Subscription | None:
        """The channel's subscription to that, resumed with the channel's other paused ones;
        None when it is not paused."""
        subs = self.subscriptions(channel_id=channel_id)
        target = next((s for s in subs if s.source_id == source_id and s.topic == topic), None)
        if target is None or not target.paused:
            return None
        paused = [s.id for s in subs if s.paused]
        held = self.state.held_posts(paused)
        # Those a list already carries go in it; the others never tried are listed when
        # more than a burst (one tried before goes on its own: it may be in the channel).
        fresh = sum(1 for r in held if self._foldable(r))
        listed = sum(1 for r in held if _list_of(r)) + (fresh if fresh > self.burst else 0)
        for sub_id in paused:
            self.state.set_subscription_enabled(sub_id, True)
        log.info("channel %s resumed: subscriptions %s, %d held briefs", channel_id, paused,
                 len(held))
        row = self.state.get_subscription(target.id)
        assert row is not None
        return replace(Subscription.from_row(row), resumed=len(held), resumed_listed=listed)

    def set_timezone(self, guild_id: int, tz: str) -> int:
        """The guild's time zone for digest hours (its subscriptions follow); how many
        subscriptions it moved."""
        _check_zone(tz)
        return self.state.set_guild_tz(guild_id, tz)

    def claim(self, guild_id: int, channel_ids: Iterable[int]) -> int:
        """Subscriptions made with no server (``newsbot subscriptions add --channel``) that
        post to one of ``guild_id``'s channels become that server's: its moderators list,
        remove and move them like their own. How many."""
        claimed = self.state.claim_subscriptions(guild_id, channel_ids)
        if claimed:
            log.info("%d subscriptions made with no server now belong to server %s", claimed,
                     guild_id)
        return claimed

    def unsubscribe(self, sub_id: int, *, guild_id: int | None = None) -> Subscription:
        """Stop a subscription; its briefs not sent yet (held by a pause, or queued) are
        dropped with it."""
        row = self.state.get_subscription(sub_id)
        if row is None or (guild_id is not None and row["guild_id"] != guild_id):
            raise NewsbotError(f"no subscription #{sub_id}")
        self.state.delete_subscriptions([sub_id])
        self.state.drop_pending_posts(sub_id, "unsubscribed")
        return Subscription.from_row(row)

    def subscriptions(self, *, guild_id: int | None = None, channel_id: int | None = None,
                      guild_channels: Iterable[int] | None = None) -> list[Subscription]:
        """With ``guild_id``, that server's: those made there, and those made with no
        server that post to one of its channels ``guild_channels``."""
        rows = self.state.subscriptions(
            guild_id=guild_id, channel_ids=[channel_id] if channel_id is not None else None,
            guild_channels=guild_channels)
        return [Subscription.from_row(r) for r in rows]

    # -- stories ---------------------------------------------------------------------------
    def assign_story(self, article: Article) -> tuple[str, np.ndarray]:
        """The story the article belongs to (joining the closest recent one, or starting its
        own), and its headline+lead vector. Stable: an article keeps its story."""
        vec = self.embedder.embed_documents([story_text(article.title, article.text)])[0]
        known = self.state.story_of(article.id)
        if known is not None:
            self.state.add_story_member(article.id, known, vec.astype(np.float32).tobytes(),
                                        article.published_at, article.title)
            return known, vec
        window = timedelta(days=self.rule.window_days)
        when = article.published_at or self.state.article_first_seen(article.id) or utcnow()
        rows = self.state.story_members(when - window, when + window)
        members = [StoryMember(r["article_id"], r["story_id"],
                               np.frombuffer(r["vector"], dtype=np.float32),
                               datetime.fromisoformat(r["published_at"])
                               if r["published_at"] else None)
                   for r in rows if r["article_id"] != article.id
                   # Vectors of another embedding model are not comparable.
                   and len(r["vector"]) == vec.size * 4]
        found = match_story(vec, when, members, self.rule)
        story_id = found[0] if found else article.id
        self.state.add_story_member(article.id, story_id, vec.astype(np.float32).tobytes(),
                                    article.published_at or when, article.title)
        return story_id, vec

    def _topic_vector(self, topic: str) -> np.ndarray:
        if topic not in self._topic_vectors:
            self._topic_vectors[topic] = self.embedder.embed_query(topic)
        return self._topic_vectors[topic]

    def matches(self, sub: Subscription, article: Article, vector: np.ndarray,
                source_ids: set[int]) -> str | None:
        """Why the article is not for the subscription, or None when it is."""
        if sub.source_id is not None and sub.source_id not in source_ids:
            return "other source"
        if sub.topic is not None and float(np.dot(self._topic_vector(sub.topic), vector)) \
                < self.topic_threshold:
            return "off topic"
        if not _keyword_match(sub.keywords, article):
            return "keywords"
        return None

    # -- planning --------------------------------------------------------------------------
    def plan(self, article_ids: Sequence[str], *, changed: Iterable[str] = (),
             first_fetch: bool = False, backfill: int = 0,
             now: datetime | None = None) -> PlanReport:
        """Record what each subscribed channel gets for these new or ``changed`` articles.

        The first fetch of a source posts nothing (its articles only join their stories),
        unless the source was added with a backfill: then its newest ``backfill`` articles.
        A changed article is never a new brief: it was seen before (and perhaps held back
        then); it is only an update of its brief, when its headline changed.
        """
        began = utcnow()
        with self._plans_lock:
            self._plans.append(began)
        try:
            return self._plan(article_ids, changed=changed, first_fetch=first_fetch,
                              backfill=backfill, now=now)
        finally:
            with self._plans_lock:
                self._plans.remove(began)

    def _plan(self, article_ids: Sequence[str], *, changed: Iterable[str],
              first_fetch: bool, backfill: int, now: datetime | None) -> PlanReport:
        changed = set(changed)
        article_ids = [*article_ids, *(i for i in changed if i not in article_ids)]
        now = now or utcnow()
        report = PlanReport()
        articles = [a for a in (self.state.get_article(i) for i in article_ids) if a]
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        articles.sort(key=lambda a: a.published_at or epoch)
        backfilled: set[str] = set()
        if first_fetch:
            newest = articles[max(0, len(articles) - backfill):] if backfill else []
            backfilled = {a.id for a in newest}
        # A paused channel's briefs are recorded too, held until it is resumed.
        subs = [s for s in self.subscriptions()
                if (s.enabled or s.paused) and s.mode == "immediate"]
        briefs: dict[str, Brief] = {}
        for article in articles:
            story_id, vec = self.assign_story(article)
            if first_fetch and article.id not in backfilled:
                report.skip("first fetch")
                continue
            source_ids = self.state.source_ids_of(article.id)
            first_seen = self.state.article_first_seen(article.id)
            for sub in subs:
                why = self.matches(sub, article, vec, source_ids)
                if why is None and article.id not in backfilled and \
                        _older_than(sub, article.published_at, first_seen, now):
                    why = "older than the subscription"
                if why is not None:
                    report.skip(why)
                    continue
                self._enqueue(sub, article, story_id, briefs, report, now,
                              changed=article.id in changed)
        for sub in subs:
            if sub.paused and (dropped := self.state.trim_held(sub.id, self.held_max)):
                report.skip("held too long while paused", dropped)
        return report

    def plan_queued(self, now: datetime | None = None) -> PlanReport:
        """Plan the articles polls queued (see ``State.queued_briefs``), a source's batch at a
        time, then take them off the queue. Run after every poll and at start: a crash
        before an article leaves the queue only means it is planned again, which records
        nothing twice (every post is keyed by channel and story)."""
        report = PlanReport()
        with self._planning:
            batches: dict[tuple[int, bool, int], list[sqlite3.Row]] = {}
            for row in self.state.queued_briefs():
                key = (int(row["source_id"]), bool(row["first_fetch"]), int(row["backfill"]))
                batches.setdefault(key, []).append(row)
            for (source_id, first_fetch, backfill), rows in batches.items():
                try:
                    part = self.plan([r["article_id"] for r in rows if not r["changed"]],
                                     changed=[r["article_id"] for r in rows if r["changed"]],
                                     first_fetch=first_fetch, backfill=backfill, now=now)
                except Exception:
                    # Kept queued for the next pass; one source's failing batch does not
                    # hold up the others' briefs.
                    log.exception("planning briefs of source %s failed", source_id)
                    continue
                self.state.unqueue_briefs((r["article_id"], int(r["version"])) for r in rows)
                report.briefs += part.briefs
                report.updates += part.updates
                report.folded += part.folded
                for why, n in part.skipped.items():
                    report.skipped[why] = report.skipped.get(why, 0) + n
        return report

    def _brief(self, article: Article, cache: dict[str, Brief]) -> Brief:
        if article.id not in cache:
            now = self.clock()
            resting = self._model_rests_until is not None and now < self._model_rests_until
            brief = write_brief(article, None if resting else self.model)
            if resting:
                brief.notes.append("the model did not answer a brief moments ago, so this "
                                   "one is extractive")
            elif brief.model_error is not None:
                # Each brief waits out the whole answer budget for a model that hangs, and a
                # wave's briefs are held until all are written: the rest are extractive.
                self._model_rests_until = now + MODEL_REST
                log.warning("the model did not write a brief (%s): briefs are extractive "
                            "for the next %d minutes", brief.model_error,
                            MODEL_REST // timedelta(minutes=1))
            cache[article.id] = brief
        return cache[article.id]

    def _enqueue(self, sub: Subscription, article: Article, story_id: str,
                 cache: dict[str, Brief], report: PlanReport, now: datetime, *,
                 changed: bool = False) -> None:
        channel = sub.channel_id
        key = f"story:{story_id}"
        first = self.state.get_post(channel, key)
        if first is None and changed:
            report.skip("changed, never posted here")
            return
        if first is None:
            if sub.daily_cap is not None and self.state.count_posts(
                    subscription_id=sub.id, kind="brief",
                    since=_local_day_start(now, sub.zone)) >= sub.daily_cap:
                report.skip("daily cap")
                return
            if self._record_brief(channel, story_id, article, cache, sub.id):
                report.briefs += 1
            return
        self._record_update(channel, story_id, first, article, cache, sub.id, report)

    def _record_brief(self, channel: int, story_id: str, article: Article,
                      cache: dict[str, Brief], sub_id: int | None) -> bool:
        brief = self._brief(article, cache)
        msg = OutMessage(kind="brief", title=brief.headline[:TITLE_CHARS], url=brief.url,
                         brief=brief.to_json(), article_id=article.id)
        payload = {**msg.to_json(), "article_title": article.title}
        key = f"story:{story_id}"
        return self.state.add_post(channel_id=channel, item_key=key, kind="brief",
                                   story_id=story_id, article_id=article.id,
                                   subscription_id=sub_id, nonce=make_nonce(channel, key),
                                   payload=payload)

    def _record_update(self, channel: int, story_id: str, first: sqlite3.Row,
                       article: Article, cache: dict[str, Brief], sub_id: int | None,
                       report: PlanReport) -> None:
        if first["article_id"] == article.id:
            # The briefed article itself changed: only a new headline is news.
            if json.loads(first["payload"]).get("article_title") == article.title:
                report.skip("unchanged headline")
                return
            digest = hashlib.sha256(article.title.encode()).hexdigest()[:8]
            key = f"update:{story_id}:{article.id}:{digest}"
        else:
            key = f"update:{story_id}:{article.id}"
            if self._fold(channel, story_id, article):
                report.folded += 1
                return
        brief = self._brief(article, cache)
        msg = OutMessage(kind="update", title=brief.headline[:TITLE_CHARS], url=brief.url,
                         brief=brief.to_json(), article_id=article.id)
        if self.state.add_post(channel_id=channel, item_key=key, kind="update",
                               story_id=story_id, article_id=article.id,
                               subscription_id=sub_id, nonce=make_nonce(channel, key),
                               payload={**msg.to_json(), "article_title": article.title}):
            report.updates += 1
        else:
            report.skip("already posted")

    def _fold(self, channel: int, story_id: str, article: Article) -> bool:
        """Add another report of the story to its brief while that is not sent yet.

        Checked and written in one transaction, so a brief being sent at that moment, or
        already a line of a burst's list, is never changed under the sender (its update is
        recorded instead).
        """
        key = f"story:{story_id}"
        with self.state.transaction() as db:
            row = db.execute("SELECT payload, status, attempts FROM posts WHERE channel_id = ? "
                             "AND item_key = ?", (channel, key)).fetchone()
            if row is None or row["status"] != "pending" or row["attempts"]:
                return False
            payload = json.loads(row["payload"])
            if payload.get("burst"):
                return False
            if any(s["article_id"] == article.id for s in payload["also"]):
                return True
            payload["also"].append(_source_ref(article))
            db.execute("UPDATE posts SET payload = ? WHERE channel_id = ? AND item_key = ?",
                       (json.dumps(payload), channel, key))
            return True

    def post_article(self, article: Article, channel_id: int, *,
                     brief: Brief | None = None) -> tuple[str, bool]:
        """A moderator's post of one article to a channel: recorded for delivery unless its
        story was already posted there. Returns (item key, newly recorded)."""
        story_id, _ = self.assign_story(article)
        key = f"story:{story_id}"
        if self.state.get_post(channel_id, key) is not None:
            return key, False
        cache = {article.id: brief} if brief is not None else {}
        return key, self._record_brief(channel_id, story_id, article, cache, None)

    # -- digests ---------------------------------------------------------------------------
    def plan_digests(self, now: datetime | None = None) -> int:
        """Record today's digest for each digest subscription whose hour has come."""
        now = now or utcnow()
        recorded = 0
        for sub in self.subscriptions():
            if not sub.enabled or sub.mode != "digest":
                continue
            local = now.astimezone(sub.zone)
            today = local.date().isoformat()
            if local.hour < sub.digest_hour or sub.last_digest == today:
                continue
            since = (max(now - timedelta(days=1), sub.created_at)
                     if sub.last_digest is None else
                     datetime.combine(date.fromisoformat(sub.last_digest),
                                      datetime.min.time(), sub.zone).replace(
                                          hour=sub.digest_hour).astimezone(UTC))
            lines = self._digest_lines(sub, since, now)
            if lines:
                key = f"digest:{sub.id}:{today}"
                # Named by what it follows: one channel may have digests of several, each
                # told apart by its readers, and by its title after a failed send.
                title = _clip_title(f"Top stories: {self._subject(sub)}",
                                    f", {local.day} {local:%b %Y}")
                msg = OutMessage(kind="digest", title=title, lines=lines)
                if self.state.add_post(channel_id=sub.channel_id, item_key=key, kind="digest",
                                       story_id=None, article_id=None, subscription_id=sub.id,
                                       nonce=make_nonce(sub.channel_id, key),
                                       payload=msg.to_json()):
                    recorded += 1
            self.state.set_last_digest(sub.id, today)
        return recorded

    def _subject(self, sub: Subscription) -> str:
        if sub.topic is not None:
            return sub.topic
        source = self.state.get_source(sub.source_id) if sub.source_id is not None else None
        return source.label if source is not None else f"source #{sub.source_id}"

    def _digest_lines(self, sub: Subscription, since: datetime,
                      until: datetime) -> list[dict[str, Any]]:
        """The day's stories for the subscription, biggest first: one line each."""
        stories: dict[str, list[Article]] = {}
        for row in self.state.story_members(since - timedelta(days=1), until):
            article = self.state.get_article(row["article_id"])
            if article is None:
                continue
            seen = article.published_at or self.state.article_first_seen(article.id)
            if seen is None or not since <= seen <= until:
                continue
            vec = np.frombuffer(row["vector"], dtype=np.float32)
            if self.matches(sub, article, vec, self.state.source_ids_of(article.id)):
                continue
            stories.setdefault(row["story_id"], []).append(article)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        ranked = sorted(stories.values(), key=lambda arts: (
            -len(arts), -max((a.published_at or epoch).timestamp() for a in arts)))
        lines = []
        for arts in ranked[:DIGEST_STORIES]:
            lead = min(arts, key=lambda a: a.published_at or epoch)
            lines.append({"title": lead.title, "url": lead.url, "outlet": lead.outlet,
                          "article_id": lead.id, "count": len(arts)})
        return lines

    # -- delivery --------------------------------------------------------------------------
    async def deliver(self, poster: Poster) -> DeliveryReport:
        """Send what is pending, in order; see the module's docstring for the guarantees."""
        async with self._lock:
            return await self._deliver(poster)

    async def _deliver(self, poster: Poster) -> DeliveryReport:
        """Channels are served concurrently (a channel whose rate limit is spent does not hold
        up the others), each channel's rows in order (a brief before its updates), all sends
        under one pace."""
        report = DeliveryReport()
        pacer = Pacer(self.send_rate)
        dead: set[int] = set()  # channels that answered 403 or 404 in this pass
        by_channel: dict[int, list[sqlite3.Row]] = {}
        with self._plans_lock:
            planning = min(self._plans, default=None)
        for row in self.state.pending_posts(due=self.clock()):
            if _list_of(row):
                continue  # a line of a list: it goes out, and is confirmed, with the list
            if planning is not None and self._foldable(row) and \
                    datetime.fromisoformat(row["created_at"]) >= planning:
                continue  # a plan is recording its batch: counted for a burst once it is all in
            if row["item_key"].startswith("burst:") and not self._list_due(row):
                continue
            by_channel.setdefault(int(row["channel_id"]), []).append(row)
        for channel, rows in by_channel.items():
            foldable = [r for r in rows if self._foldable(r)]
            if len(foldable) > self.burst and (digest := self._fold_burst(channel, foldable)):
                listed = {r["item_key"] for r in self.state.list_lines(channel,
                                                                       digest["item_key"])}
                by_channel[channel] = [r for r in rows if r["item_key"] not in listed] + [digest]
        todo = list(by_channel)

        async def worker() -> None:
            while todo:
                channel = todo.pop(0)
                for row in by_channel[channel]:
                    await self._deliver_row(poster, pacer, row, report, dead)

        # Every worker runs to its end before the pass (and its lock) does: a worker left
        # running would send rows the next pass reads as pending and sends again.
        results = await asyncio.gather(
            *(worker() for _ in range(min(self.concurrency, len(todo)))),
            return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return report

    @staticmethod
    def _foldable(row: sqlite3.Row) -> bool:
        """A subscription's brief or update never tried: it may go out in a burst's list. (A
        moderator's own post goes as it is; one tried before may be in the channel.)"""
        return (row["subscription_id"] is not None and row["kind"] in ("brief", "update")
                and not row["attempts"] and not _list_of(row))

    def _list_due(self, row: sqlite3.Row) -> bool:
        """Whether a burst's list goes out now: not while all its briefs are held (their
        subscriptions paused); given up once none is left (all unsubscribed)."""
        channel, key = int(row["channel_id"]), row["item_key"]
        lines = self.state.list_lines(channel, key)
        if not lines:
            log.info("list %s in channel %s: its briefs were all dropped; given up", key,
                     channel)
            self.state.update_post(channel, key, status="failed", error="its briefs dropped")
            return False
        return any(line["sub_enabled"] != 0 for line in lines)

    def _fold_burst(self, channel: int, rows: list[sqlite3.Row]) -> sqlite3.Row | None:
        """More briefs than ``burst`` for one channel at once become one list of their
        stories, the most reported first. In one transaction, the briefs are read again (a
        report the planner added since is in the list, never overwritten), the list is
        recorded (sent as any post is, exactly once, owned by no subscription) and each brief
        is marked as a line of it: still pending under its own subscription, never sent on its
        own, and marked sent when the list is confirmed. Returns the list's row (None when
        the briefs went meanwhile)."""
        keys = [r["item_key"] for r in rows]
        with self.state.transaction() as db:
            marks = ",".join("?" * len(keys))
            fresh = db.execute(
                f"SELECT * FROM posts WHERE channel_id = ? AND item_key IN ({marks}) AND "
                "status = 'pending' AND attempts = 0 AND json_extract(payload, '$.burst') "
                "IS NULL ORDER BY created_at, rowid", (channel, *keys)).fetchall()
            if not fresh:
                return None
            stories: dict[str, list[dict[str, Any]]] = {}
            for row in fresh:
                stories.setdefault(row["story_id"] or row["item_key"], []).append(
                    json.loads(row["payload"]))
            lines = []
            for payloads in stories.values():
                lead = payloads[0]
                count = sum(1 + len(p.get("also") or []) for p in payloads)
                lines.append({"title": lead["title"], "url": lead.get("url"),
                              "outlet": (lead.get("brief") or {}).get("outlet"),
                              "article_id": lead.get("article_id"), "count": count})
            # Stable: equally reported stories keep the order they came in.
            lines.sort(key=lambda line: -line["count"])
            since = min(datetime.fromisoformat(r["created_at"]) for r in fresh)
            n = len(stories)
            more = n - DIGEST_STORIES
            msg = OutMessage(kind="digest",
                             title=f"{n} new stories since {since:%d %b %H:%M} UTC",
                             lines=lines[:DIGEST_STORIES],
                             text=f"…and {more} more." if more > 0 else None)
            digest = hashlib.sha256("\n".join(sorted(r["item_key"] for r in fresh)).encode())
            key = "burst:" + digest.hexdigest()[:16]
            db.execute(
                """INSERT OR IGNORE INTO posts (channel_id, item_key, kind, story_id,
                       article_id, subscription_id, nonce, payload, created_at)
                   VALUES (?, ?, 'digest', NULL, NULL, NULL, ?, ?, ?)""",
                (channel, key, make_nonce(channel, key), json.dumps(msg.to_json()),
                 since.isoformat()))
            db.executemany("UPDATE posts SET payload = json_set(payload, '$.burst', ?) "
                           "WHERE channel_id = ? AND item_key = ?",
                           [(key, channel, r["item_key"]) for r in fresh])
        log.info("channel %s: %d briefs at once, sent as one list (%s)", channel, len(fresh),
                 key)
        return self.state.get_post(channel, key)

    def _settle(self, channel: int, key: str, **fields: Any) -> None:
        """Update a post; a list's outcome (sent, failed) is its briefs' too, in the same
        transaction: a brief is confirmed exactly when the message holding it is."""
        if key.startswith("burst:") and "status" in fields:
            self.state.settle_list(channel, key, **fields)
        else:
            self.state.update_post(channel, key, **fields)

    async def _deliver_row(self, poster: Poster, pacer: Pacer, row: sqlite3.Row,
                           report: DeliveryReport, dead: set[int]) -> None:
        channel, key = int(row["channel_id"]), row["item_key"]
        if channel in dead:
            self._give_up(channel, key, row, "channel refused", report)
            return
        msg = OutMessage.from_json({k: v for k, v in json.loads(row["payload"]).items()
                                    if k != "article_title"})
        brief_row = None
        if row["kind"] == "update":
            brief_row = self.state.get_post(channel, f"story:{row['story_id']}")
            if brief_row is not None and brief_row["status"] == "pending":
                report.waiting += 1  # the brief goes first
                return
            msg.reply_to = brief_row["message_id"] if brief_row is not None else None
        try:
            if row["attempts"] and await self._reconcile(poster, channel, key, msg, report):
                return
            message_id = await self._send(poster, pacer, channel, key, row, msg, report)
        except PostError as exc:
            await self._refused(poster, exc, channel, key, row, report, dead)
            return
        except Exception as exc:  # a network fault, or the adapter's own: worth another try
            log.warning("sending %s to channel %s failed; tried again later: %r", key,
                        channel, exc)
            await self._refused(poster, PostError("transient", repr(exc)), channel, key, row,
                                report, dead)
            return
        self._settle(channel, key, status="sent", message_id=message_id, sent_at=utcnow(),
                     error=None)
        report.sent += 1
        # A brief sent as a line of a burst's list has no message of its own to edit.
        if brief_row is not None and brief_row["status"] == "sent" and \
                brief_row["message_id"] is not None and \
                brief_row["article_id"] != row["article_id"]:
            await self._add_source_to_brief(poster, channel, brief_row, msg, report)

    async def _send(self, poster: Poster, pacer: Pacer, channel: int, key: str,
                    row: sqlite3.Row, msg: OutMessage, report: DeliveryReport) -> int:
        # The attempt is on record before anything leaves: after a crash from here on, the
        # next start looks for the message before sending it again.
        self.state.update_post(channel, key, attempts=int(row["attempts"]) + 1)
        while True:
            await pacer.wait()
            try:
                # Bounded: a send that hangs would hold the pass, and every channel, with it.
                return await asyncio.wait_for(poster.send(channel, msg, nonce=row["nonce"]),
                                              self.send_timeout)
            except PostError as exc:
                if exc.kind != "rate_limited":
                    raise
                report.rate_limited += 1
                await pacer.back_off(exc.retry_after)

    async def _reconcile(self, poster: Poster, channel: int, key: str, msg: OutMessage,
                         report: DeliveryReport) -> bool:
        """Find a post a crash left unconfirmed; True when it was there (now confirmed)."""
        nonce = make_nonce(channel, key)
        recent = await asyncio.wait_for(poster.recent(channel, limit=RECENT_LOOKBACK),
                                        self.send_timeout)
        for m in recent:
            if m.nonce == nonce or (m.from_me and m.title == msg.title and m.url == msg.url):
                self._settle(channel, key, status="sent", message_id=m.id, sent_at=utcnow(),
                             error=None)
                report.reconciled += 1
                log.info("post %s in channel %s was already there (message %s)", key,
                         channel, m.id)
                return True
        return False

    async def _add_source_to_brief(self, poster: Poster, channel: int, brief_row: sqlite3.Row,
                                   update: OutMessage, report: DeliveryReport) -> None:
        """Edit the story's brief to list the new report among its sources (best effort:
        the update itself was posted)."""
        payload = json.loads(brief_row["payload"])
        if update.article_id and not any(s["article_id"] == update.article_id
                                         for s in payload["also"]):
            b = update.brief or {}
            payload["also"].append({"article_id": update.article_id, "title": update.title,
                                    "outlet": b.get("outlet"), "url": update.url,
                                    "published_at": b.get("published_at")})
        self.state.update_post(channel, brief_row["item_key"], payload=payload)
        msg = OutMessage.from_json({k: v for k, v in payload.items() if k != "article_title"})
        try:
            await asyncio.wait_for(poster.edit(channel, int(brief_row["message_id"]), msg),
                                   self.send_timeout)
            report.edited += 1
        except Exception as exc:
            log.warning("could not add a source to brief %s in %s: %s",
                        brief_row["message_id"], channel, exc)

    async def _refused(self, poster: Poster, exc: PostError, channel: int, key: str,
                       row: sqlite3.Row, report: DeliveryReport, dead: set[int]) -> None:
        if exc.kind == "transient":
            attempts = max(1, int(row["attempts"]) + 1)  # this attempt is on record
            wait = min(RETRY_MAX_S, self.retry_base * 2 ** (attempts - 1))
            self.state.update_post(channel, key, error=str(exc)[:500],
                                   retry_at=self.clock() + timedelta(seconds=wait))
            report.waiting += 1
            return
        if exc.kind == "rejected":
            # Not the channel's fault, and no retry would change Discord's mind.
            log.error("Discord refused %s in channel %s; given up: %s", key, channel, exc)
            self._settle(channel, key, status="failed", error=str(exc)[:500])
            report.failed += 1
            return
        dead.add(channel)
        subs = [s for s in self.subscriptions(channel_id=channel)]
        if exc.kind == "not_found":
            self._settle(channel, key, status="failed", error=str(exc)[:500])
            report.failed += 1
            self.state.delete_subscriptions(s.id for s in subs)
            report.removed += [s.id for s in subs]
            log.warning("channel %s is gone: removed subscriptions %s", channel,
                        [s.id for s in subs])
            return
        reason = PAUSED_REASON
        paused = []
        for s in subs:
            if s.enabled:
                self.state.set_subscription_enabled(s.id, False, reason)
                report.disabled.append(s.id)
                paused.append(s)
        self._give_up(channel, key, row, str(exc), report)
        if paused and channel != self.mod_channel_id:
            await self._tell_mods(poster, channel, paused, reason)

    def _give_up(self, channel: int, key: str, row: sqlite3.Row, error: str,
                 report: DeliveryReport) -> None:
        """A row its channel refused: held while its subscription is paused (sent when it
        is resumed), failed otherwise (a moderator's own post, a removed subscription). A
        list is held while any of its briefs is."""
        if key.startswith("burst:"):
            owners = {r["subscription_id"] for r in self.state.list_lines(channel, key)}
        else:
            owners = {row["subscription_id"]}
        subs = [self.state.get_subscription(int(i)) for i in owners if i is not None]
        if any(sub is not None and Subscription.from_row(sub).paused for sub in subs):
            self.state.update_post(channel, key, error=error[:500])
            report.waiting += 1
            return
        self._settle(channel, key, status="failed", error=error[:500])
        report.failed += 1

    async def _tell_mods(self, poster: Poster, channel: int, subs: list[Subscription],
                         reason: str) -> None:
        """Tell the moderators once (the notice is itself in the posted log): in the
        moderators' channel, or with none configured, in a direct message to each moderator
        who made one of the subscriptions on Discord (the log alone reaches no moderator)."""
        targets = [self.mod_channel_id] if self.mod_channel_id is not None else \
            await self._creators_inboxes(poster, subs)
        if not targets:
            log.warning("subscriptions %s disabled: %s (no NEWSBOT_MOD_CHANNEL_ID to tell, "
                        "and no direct message reaches who made them)", [s.id for s in subs],
                        reason)
            return
        ids = ", ".join("#" + str(s.id) for s in subs)
        one = len(subs) == 1
        text = (f"Briefs to <#{channel}> are paused: {reason}. "
                + (f"Subscription {ids} is paused and its briefs held" if one else
                   f"Subscriptions {ids} are paused and their briefs held")
                + "; give the bot View Channel, Send Messages and Embed Links there, then "
                "run /brief subscribe for that channel again (or `newsbot subscriptions "
                f"add`) to resume {'it' if one else 'them'}.")
        for target in targets:
            await self._notice(poster, target, channel, subs, text)

    async def _creators_inboxes(self, poster: Poster, subs: list[Subscription]) -> list[int]:
        """The direct-message channels of the Discord users who made ``subs``."""
        direct = getattr(poster, "direct", None)
        users = dict.fromkeys(u for s in subs if (u := _creator_id(s.created_by)) is not None)
        inboxes = []
        for user in users if direct is not None else ():
            try:
                inboxes.append(await asyncio.wait_for(direct(user), self.send_timeout))
            except Exception as exc:
                log.warning("could not open a direct message to user %s: %r", user, exc)
        return inboxes

    async def _notice(self, poster: Poster, target: int, channel: int,
                      subs: list[Subscription], text: str) -> None:
        # Once per pause: a channel resumed and refused again is told of again.
        ids = ", ".join("#" + str(s.id) for s in subs)
        prefix = f"notice:disabled:{channel}:{','.join(str(s.id) for s in subs)}"
        key, n = prefix, 1
        while self.state.get_post(target, key) is not None:
            n += 1
            key = f"{prefix}:{n}"
        # A title of its own: after a failed send, the notice is looked for among the
        # channel's messages by its title, and must not be taken for an earlier one.
        title = f"Briefs paused: subscription{'s' if len(subs) > 1 else ''} {ids}" + (
            f" (pause {n})" if n > 1 else "")
        msg = OutMessage(kind="notice", title=title[:TITLE_CHARS], text=text)
        if not self.state.add_post(channel_id=target, item_key=key, kind="notice",
                                   story_id=None, article_id=None, subscription_id=None,
                                   nonce=make_nonce(target, key), payload=msg.to_json()):
            return
        self.state.update_post(target, key, attempts=1)
        try:
            mid = await asyncio.wait_for(
                poster.send(target, msg, nonce=make_nonce(target, key)), self.send_timeout)
        except Exception as exc:
            # Refused: given up; anything else: left pending for a later pass to send.
            gone = isinstance(exc, PostError) and exc.kind in ("forbidden", "not_found",
                                                                 "rejected")
            self.state.update_post(
                target, key, error=repr(exc)[:500],
                **({"status": "failed"} if gone else
                   {"retry_at": self.clock() + timedelta(seconds=self.retry_base)}))
            return
        self.state.update_post(target, key, status="sent", message_id=mid, sent_at=utcnow())

    # -- status ----------------------------------------------------------------------------
    def queue(self) -> dict[str, int]:
        rows = self.state.pending_posts()
        return {"pending": len(rows), "unconfirmed": sum(1 for r in rows if r["attempts"])}
