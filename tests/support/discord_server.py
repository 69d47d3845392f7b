"""A local Discord: the parts of Discord's v10 REST API and gateway that newsbot uses.

The real discord.py client (HTTP and websocket) runs against it unmodified, in the test
process or in a ``newsbot run`` subprocess, once ``discord.http.Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY`` point here (``env()`` gives the settings that do it).
It keeps guilds, channels, threads, roles, members and messages; applies Discord's rules
where the bot's behaviour depends on them; and records every request.

Rules it applies, as Discord documents them:

- Message content intent: without it (the IDENTIFY intents on the gateway, the portal
  switch for REST), ``content``, ``embeds``, ``attachments`` and ``components`` of a message
  arrive empty, except for messages the bot sent, DMs to the bot, messages that mention the
  bot, and replies to one of the bot's regular messages (not an interaction response) sent
  with "ping on reply" on.
- Permissions: @everyone, roles and channel overwrites, computed like Discord; threads take
  their parent's overwrites and need "Send Messages in Threads". Missing ones answer 403
  (50001 Missing Access, 50013 Missing Permissions).
- Mentions: a message pings only what its ``allowed_mentions`` (and the author's
  permissions) allow; ``Message.pinged`` and ``Message.mention_everyone`` say what did.
- Limits: content 2,000; embeds 10 a message, 6,000 characters across them, title 256,
  description 4,096, 25 fields, field name 256 and value 1,024, footer 2,048 (400 50035).
- Nonces: a send with ``enforce_nonce`` and a nonce the author used within
  ``nonce_window_s`` returns the earlier message and creates nothing.
- Interactions: the callback must arrive within 3 s of INTERACTION_CREATE (else 404 10062)
  and only once (else 400 40060); follow-ups work for 15 minutes. ``slash()`` refuses what
  Discord's own client would not send: an unregistered command, a missing option, a string
  over its ``max_length``, a guild-only command in a DM, a command hidden from the member by
  ``default_member_permissions``.
- Modals: a MODAL response (callback type 9) is checked against Discord's limits (title 45,
  custom ids 100, 1 to 5 components, text inputs' lengths up to 4,000) and refused in
  answer to a modal submit; ``submit_modal()`` sends the MODAL_SUBMIT interaction
  (type 5) Discord's client would, refusing what it would not send: a required field left
  empty, a value outside its ``min_length``/``max_length``.
- Gateway: HELLO, IDENTIFY (bad token closes 4004, a privileged intent not enabled closes
  4014), READY with ``resume_gateway_url``, GUILD_CREATE, heartbeats and their ACKs, RESUME
  replaying what was missed, RECONNECT (op 7) and INVALID_SESSION (op 9) on demand.

Scripting, from a test (every call is thread-safe; events go out in order)::

    with LocalDiscord() as discord_:
        guild = discord_.add_guild("Newsroom")          # @everyone, the bot, #general
        news = discord_.add_channel(guild, "news")
        ana = discord_.add_member(guild, "ana")
        discord_.set_overwrite(news, discord_.bot_role(guild), deny=["send_messages"])
        discord_.fail("POST", "/channels/{channel_id}/messages", 429, retry_after=0.2)
        discord_.rate_limit("POST", "/channels/{channel_id}/messages", limit=5, per=1.0)
        msg = discord_.say(ana, news, f"<@{discord_.bot.id}> what happened?")
        reply = discord_.wait(lambda: discord_.replies_to(msg), what="an answer")
        discord_.calls("POST", "/channels/{channel_id}/messages")   # the record

Routes are named by their template under ``/api/v10`` as discord.py's ``Route`` spells them
(``/channels/{channel_id}/messages``); ``fail`` and ``rate_limit`` take the template and,
optionally, parameter values (``channel_id=news.id``) to narrow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

T = TypeVar("T")

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1420070400000
INTERACTION_DEADLINE_S = 3.0  # Discord's rule for the first response to an interaction
FOLLOWUP_WINDOW_S = 15 * 60.0

# -- permissions (bit values from Discord's documentation) ---------------------------------------
PERMISSION_BITS: dict[str, int] = {
    "create_instant_invite": 1 << 0,
    "kick_members": 1 << 1,
    "ban_members": 1 << 2,
    "administrator": 1 << 3,
    "manage_channels": 1 << 4,
    "manage_guild": 1 << 5,
    "add_reactions": 1 << 6,
    "view_channel": 1 << 10,
    "send_messages": 1 << 11,
    "manage_messages": 1 << 13,
    "embed_links": 1 << 14,
    "attach_files": 1 << 15,
    "read_message_history": 1 << 16,
    "mention_everyone": 1 << 17,
    "use_external_emojis": 1 << 18,
    "manage_roles": 1 << 28,
    "use_application_commands": 1 << 31,
    "manage_threads": 1 << 34,
    "create_public_threads": 1 << 35,
    "create_private_threads": 1 << 36,
    "send_messages_in_threads": 1 << 38,
}
ALL_PERMISSIONS = (1 << 51) - 1

#: What a new server gives @everyone in Discord.
EVERYONE_DEFAULT = (
    "view_channel", "send_messages", "send_messages_in_threads", "create_public_threads",
    "create_private_threads", "embed_links", "attach_files", "add_reactions",
    "read_message_history", "mention_everyone", "use_external_emojis",
    "use_application_commands", "create_instant_invite",
)
#: What the bot's own (managed) role is given by its invite link.
BOT_DEFAULT = (
    "view_channel", "send_messages", "send_messages_in_threads", "create_public_threads",
    "embed_links", "read_message_history", "add_reactions", "use_external_emojis",
)

PermissionSpec = int | str | Iterable[str] | Any  # an int, names, or a discord.Permissions


def perms(spec: PermissionSpec) -> int:
    """A permission bit set from an int, a name, names, or anything with ``.value``."""
    if spec is None:
        return 0
    if isinstance(spec, int):
        return spec
    if hasattr(spec, "value") and isinstance(spec.value, int):
        return int(spec.value)
    names = [spec] if isinstance(spec, str) else list(spec)
    value = 0
    for name in names:
        try:
            value |= PERMISSION_BITS[name]
        except KeyError:
            raise ValueError(f"unknown permission {name!r}") from None
    return value


# -- intents and flags ---------------------------------------------------------------------------
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | INTENT_MESSAGE_CONTENT
APP_FLAG_GATEWAY_MESSAGE_CONTENT = 1 << 19

MESSAGE_FLAG_EPHEMERAL = 1 << 6
MESSAGE_FLAG_LOADING = 1 << 7

# Message types.
DEFAULT, REPLY, CHAT_INPUT_COMMAND = 0, 19, 20
# Channel types.
GUILD_TEXT, DM, PUBLIC_THREAD, PRIVATE_THREAD = 0, 1, 11, 12
# Gateway opcodes.
OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME = 0, 1, 2, 6
OP_RECONNECT, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 7, 9, 10, 11

# Embed limits.
EMBED_LIMITS = {"title": 256, "description": 4096, "fields": 25, "field.name": 256,
                "field.value": 1024, "footer.text": 2048, "author.name": 256, "total": 6000}

_USER_MENTION = re.compile(r"<@!?(\d{15,21})>")
_ROLE_MENTION = re.compile(r"<@&(\d{15,21})>")


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


# -- the world -----------------------------------------------------------------------------------


@dataclass
class User:
    id: int
    name: str
    bot: bool = False

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    mentionable: bool = False
    bot_id: int | None = None  # the bot's own managed role

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>" if self.id != self.guild_id else "@everyone"


@dataclass
class Overwrite:
    id: int
    type: int  # 0 role, 1 member
    allow: int = 0
    deny: int = 0


@dataclass
class Channel:
    id: int
    name: str
    type: int = GUILD_TEXT
    guild_id: int | None = None
    parent_id: int | None = None  # a thread's channel
    owner_id: int | None = None  # a thread's creator
    position: int = 0
    overwrites: dict[int, Overwrite] = field(default_factory=dict)
    recipient_id: int | None = None  # a DM's other user
    archived: bool = False
    locked: bool = False
    auto_archive_duration: int = 1440
    created: float = field(default_factory=time.time)
    message_count: int = 0
    deleted: bool = False

    @property
    def is_thread(self) -> bool:
        return self.type in (PUBLIC_THREAD, PRIVATE_THREAD)

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"


@dataclass
class Member:
    user_id: int
    guild_id: int
    roles: list[int] = field(default_factory=list)
    joined: float = field(default_factory=time.time)


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]


@dataclass
class Message:
    """A message as the local Discord keeps it (every field, whatever the viewer may see)."""

    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    type: int = DEFAULT
    flags: int = 0
    reference_id: int | None = None  # the message this one replies to
    reply_ping: bool = False  # "ping on reply" was on (users) / replied_user (bots)
    mentions: list[int] = field(default_factory=list)  # users pinged (the payload's mentions)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    nonce: str | None = None
    created: float = field(default_factory=time.time)
    edited: float | None = None
    deleted: bool = False
    thread_id: int | None = None  # a thread opened on this message
    interaction_id: int | None = None  # the interaction this message responds to
    webhook_id: int | None = None
    edits: int = 0

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MESSAGE_FLAG_EPHEMERAL)

    @property
    def pinged(self) -> set[int]:
        """Users and roles this message notified, and 0 for @everyone/@here."""
        out = set(self.mentions) | set(self.mention_roles)
        return out | {0} if self.mention_everyone else out

    def text(self) -> str:
        """Content and embed text together, for assertions."""
        parts = [self.content]
        for e in self.embeds:
            parts += [e.get("title") or "", e.get("description") or ""]
            parts += [f"{f.get('name')}\n{f.get('value')}" for f in e.get("fields") or []]
            parts.append((e.get("footer") or {}).get("text") or "")
        return "\n".join(p for p in parts if p)


@dataclass
class Interaction:
    id: int
    token: str
    type: int
    user_id: int
    channel_id: int
    guild_id: int | None
    data: dict[str, Any]
    message_id: int | None = None  # the message a component sits on
    created: float = field(default_factory=time.monotonic)
    sent_at: float | None = None  # when INTERACTION_CREATE went out on the socket
    responded_at: float | None = None
    response_type: int | None = None
    original_id: int | None = None  # the response message
    followups: list[int] = field(default_factory=list)
    choices: list[dict[str, Any]] | None = None  # an autocomplete's answer
    modal: dict[str, Any] | None = None  # the modal shown in answer (callback type 9)

    @property
    def response_latency(self) -> float | None:
        """Seconds from the event leaving the socket to the callback arriving."""
        if self.responded_at is None:
            return None
        return self.responded_at - (self.sent_at or self.created)


@dataclass
class Command:
    id: int
    guild_id: int | None
    payload: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.payload["name"])


@dataclass(frozen=True)
class Request:
    """One request the local Discord received."""

    method: str
    path: str
    route: str  # the template, e.g. /channels/{channel_id}/messages
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: Any
    status: int
    at: float  # time.monotonic()
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Failure:
    """A scripted failure: the next ``times`` matching requests get ``status``."""

    method: str
    route: str
    status: int
    times: int | None = 1  # None: every time until cleared
    retry_after: float = 1.0
    is_global: bool = False
    via: bool = True
    code: int | None = None
    message: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    hits: int = 0


@dataclass
class Stall:
    """A scripted slow answer: the request is carried out, then its response waits."""

    method: str
    route: str
    seconds: float
    times: int = 1
    params: Mapping[str, str] = field(default_factory=dict)
    hits: int = 0


@dataclass
class Sever:
    """A scripted lost response: the request is carried out, then the connection is closed
    with no response, as a reset or a proxy's timeout does."""

    method: str
    route: str
    times: int = 1
    params: Mapping[str, str] = field(default_factory=dict)
    hits: int = 0


@dataclass
class RouteLimit:
    """A per-route rate limit: ``limit`` requests per ``per`` seconds for each channel (or
    guild, or webhook), with Discord's headers, and 429 past it."""

    method: str
    route: str
    limit: int
    per: float
    windows: dict[str, tuple[float, int]] = field(default_factory=dict)
    granted: list[tuple[str, float]] = field(default_factory=list)  # (major, window start)
    rejected: int = 0


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str,
                 errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors


def _form_error(where: str, message: str, code: str = "BASE_TYPE_MAX_LENGTH") -> ApiError:
    errors: dict[str, Any] = {}
    node = errors
    parts = where.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = {"_errors": [{"code": code, "message": message}]}
    return ApiError(400, 50035, "Invalid Form Body", errors)


def _text_inputs(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The text inputs of a modal, in action rows or in labels."""
    out = []
    for comp in components:
        inner = comp.get("components") or ([comp["component"]] if "component" in comp else [])
        out += [c for c in inner if c.get("type") == 4]
    return out


def _check_modal(data: dict[str, Any]) -> None:
    """Discord's limits on a modal (400 50035 when broken)."""
    if not 1 <= len(str(data.get("custom_id") or "")) <= 100:
        raise _form_error("data.custom_id", "Must be between 1 and 100 in length.")
    if not 1 <= len(str(data.get("title") or "")) <= 45:
        raise _form_error("data.title", "Must be between 1 and 45 in length.")
    components = data.get("components") or []
    if not 1 <= len(components) <= 5:
        raise _form_error("data.components", "Must be between 1 and 5 in length.")
    for n, c in enumerate(_text_inputs(components)):
        where = f"data.components.{n}"
        if not 1 <= len(str(c.get("custom_id") or "")) <= 100:
            raise _form_error(f"{where}.custom_id", "Must be between 1 and 100 in length.")
        if c.get("style") not in (1, 2):
            raise _form_error(f"{where}.style", "Value must be one of (1, 2).")
        if len(str(c.get("label") or "")) > 45:
            raise _form_error(f"{where}.label", "Must be 45 or fewer in length.")
        low, high = c.get("min_length", 0), c.get("max_length", 4000)
        if not 0 <= low <= 4000 or not 1 <= high <= 4000 or low > high:
            raise _form_error(f"{where}.max_length", "Must be between 1 and 4000.")
        if len(str(c.get("value") or "")) > high:
            raise _form_error(f"{where}.value", f"Must be {high} or fewer in length.")
        if len(str(c.get("placeholder") or "")) > 100:
            raise _form_error(f"{where}.placeholder", "Must be 100 or fewer in length.")


MISSING_ACCESS = (403, 50001, "Missing Access")
MISSING_PERMISSIONS = (403, 50013, "Missing Permissions")


# -- gateway sessions ----------------------------------------------------------------------------


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    queue: asyncio.Queue[dict[str, Any] | None]
    url: str


@dataclass
class Session:
    """A gateway session: survives a dropped socket until resumed or invalidated."""

    id: str
    intents: int
    shard: tuple[int, int] | None
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    conn: _Connection | None = None
    resumable: bool = True
    resumes: int = 0

    def wants(self, guild_id: int | None) -> bool:
        if self.shard is None or guild_id is None:
            return self.shard is None or self.shard[0] == 0
        shard_id, count = self.shard
        return (guild_id >> 22) % count == shard_id


# -- the server ----------------------------------------------------------------------------------


class LocalDiscord:
    """A local Discord on 127.0.0.1, served from a background thread."""

    def __init__(
        self,
        *,
        message_content: bool = False,
        token: str = "local-discord-token",
        bot_name: str = "newsbot",
        heartbeat_interval_ms: int = 41250,
        nonce_window_s: float = 180.0,
        interaction_deadline_s: float = INTERACTION_DEADLINE_S,
    ) -> None:
        self.message_content_enabled = message_content  # the portal switch
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.nonce_window_s = nonce_window_s
        self.interaction_deadline_s = interaction_deadline_s
        self.ack_heartbeats = True
        self._ids = itertools.count()
        self._lock = threading.RLock()
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.dms: dict[int, Channel] = {}  # by the other user's id
        self.messages: dict[int, Message] = {}
        self.interactions: dict[int, Interaction] = {}
        self.commands: dict[int, Command] = {}
        self.sessions: dict[str, Session] = {}
        self.requests: list[Request] = []
        self.failures: list[Failure] = []
        self.limits: list[RouteLimit] = []
        self.stalls: list[Stall] = []
        self.severs: list[Sever] = []
        self.unhandled: list[Request] = []  # routes the local Discord does not know
        self.identifies = 0
        self.readies = 0
        self.gateway_urls: list[str] = []  # every URL a socket connected to
        self._nonces: dict[tuple[int, str], tuple[float, int]] = {}
        self.bot = self._new_user(bot_name, bot=True)
        self.application_id = self.bot.id
        self.owner = self._new_user("owner")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LocalDiscord:
        self._thread = threading.Thread(target=self._serve, name="local-discord", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the local Discord did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            fut.result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> LocalDiscord:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway-resume", self._gateway)
        self._handlers = {(m, t): h for m, t, h in self._routes()}
        for method, template in self._handlers:
            app.router.add_route(method, API_PREFIX + template, self._rest)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self) -> None:
        with self._lock:
            conns = [s.conn for s in self.sessions.values() if s.conn is not None]
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    # -- addresses ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` should be."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """What ``DiscordWebSocket.DEFAULT_GATEWAY`` should be."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway-resume"

    def env(self) -> dict[str, str]:
        """The settings that point ``newsbot run`` here."""
        return {
            "DISCORD_TOKEN": self.token,
            "NEWSBOT_DISCORD_API_BASE": self.api_base,
            "NEWSBOT_DISCORD_GATEWAY_URL": self.gateway_url,
        }

    # -- building the world ------------------------------------------------------------------
    def _snowflake(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (next(self._ids) % (1 << 22))

    def _new_user(self, name: str, *, bot: bool = False) -> User:
        user = User(self._snowflake(), name, bot)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str = "Newsroom", *, owner: User | None = None,
                  channel: str | None = "general") -> Guild:
        """A guild the bot is in: @everyone with Discord's defaults, the bot with its managed
        role, and one text channel (unless ``channel`` is None). Announced if connected."""
        with self._lock:
            owner = owner or self.owner
            guild = Guild(self._snowflake(), name, owner.id)
            guild.roles[guild.id] = Role(guild.id, guild.id, "@everyone", perms(EVERYONE_DEFAULT))
            bot_role = Role(self._snowflake(), guild.id, self.bot.name, perms(BOT_DEFAULT),
                            position=1, bot_id=self.bot.id)
            guild.roles[bot_role.id] = bot_role
            guild.members[owner.id] = Member(owner.id, guild.id)
            guild.members[self.bot.id] = Member(self.bot.id, guild.id, [bot_role.id])
            self.guilds[guild.id] = guild
            if channel:
                first = Channel(self._snowflake(), channel, guild_id=guild.id)
                guild.channels[first.id] = first
            self._dispatch_guild("GUILD_CREATE", guild.id,
                                 lambda s: self._guild_payload(guild, s), INTENT_GUILDS)
            return guild

    def add_channel(self, guild: Guild, name: str) -> Channel:
        with self._lock:
            ch = Channel(self._snowflake(), name, guild_id=guild.id,
                         position=len(guild.channels))
            guild.channels[ch.id] = ch
            self._dispatch_guild("CHANNEL_CREATE", guild.id, lambda s: self._channel_payload(ch),
                                 INTENT_GUILDS)
            return ch

    def add_member(self, guild: Guild, name: str, *, roles: Iterable[Role] = ()) -> User:
        with self._lock:
            user = self._new_user(name)
            guild.members[user.id] = Member(user.id, guild.id, [r.id for r in roles])
            self._dispatch_guild("GUILD_MEMBER_ADD", guild.id,
                                 lambda s: {**self._member_payload(guild.members[user.id]),
                                            "guild_id": str(guild.id)}, INTENT_GUILD_MEMBERS)
            return user

    def add_role(self, guild: Guild, name: str, permissions: PermissionSpec = 0, *,
                 mentionable: bool = False, members: Iterable[User] = ()) -> Role:
        with self._lock:
            role = Role(self._snowflake(), guild.id, name, perms(permissions),
                        position=len(guild.roles), mentionable=mentionable)
            guild.roles[role.id] = role
            for user in members:
                guild.members[user.id].roles.append(role.id)
            self._dispatch_guild("GUILD_ROLE_CREATE", guild.id,
                                 lambda s: {"guild_id": str(guild.id),
                                            "role": self._role_payload(role)}, INTENT_GUILDS)
            return role

    def bot_role(self, guild: Guild) -> Role:
        return next(r for r in guild.roles.values() if r.bot_id == self.bot.id)

    def set_role_permissions(self, role: Role, permissions: PermissionSpec) -> None:
        with self._lock:
            role.permissions = perms(permissions)
            self._dispatch_guild("GUILD_ROLE_UPDATE", role.guild_id,
                                 lambda s: {"guild_id": str(role.guild_id),
                                            "role": self._role_payload(role)}, INTENT_GUILDS)

    def set_overwrite(self, channel: Channel, target: Role | User, *,
                      allow: PermissionSpec = 0, deny: PermissionSpec = 0) -> None:
        """A channel permission overwrite for a role or a member (replacing any earlier one)."""
        with self._lock:
            kind = 0 if isinstance(target, Role) else 1
            channel.overwrites[target.id] = Overwrite(target.id, kind, perms(allow), perms(deny))
            self._dispatch_guild("CHANNEL_UPDATE", channel.guild_id,
                                 lambda s: self._channel_payload(channel), INTENT_GUILDS)

    def delete_channel(self, channel: Channel) -> None:
        with self._lock:
            self._delete_channel(channel)

    def _delete_channel(self, channel: Channel) -> None:
        channel.deleted = True
        guild = self.guilds[channel.guild_id] if channel.guild_id else None
        if guild is not None:
            guild.channels.pop(channel.id, None)
        event = "THREAD_DELETE" if channel.is_thread else "CHANNEL_DELETE"
        self._dispatch_guild(event, channel.guild_id, lambda s: self._channel_payload(channel),
                             INTENT_GUILDS)

    def channel(self, channel_id: int) -> Channel | None:
        with self._lock:
            return self._channel(channel_id)

    def _channel(self, channel_id: int) -> Channel | None:
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                return guild.channels[channel_id]
        return next((c for c in self.dms.values() if c.id == channel_id), None)

    def threads(self, parent: Channel | None = None) -> list[Channel]:
        with self._lock:
            return [c for g in self.guilds.values() for c in g.channels.values()
                    if c.is_thread and (parent is None or c.parent_id == parent.id)]

    # -- permissions -------------------------------------------------------------------------
    def permissions(self, user: User | int, channel: Channel) -> int:
        """The user's permissions in ``channel``, computed as Discord does."""
        with self._lock:
            return self._permissions(user if isinstance(user, int) else user.id, channel)

    def _permissions(self, user_id: int, channel: Channel) -> int:
        if channel.guild_id is None:
            return perms(("view_channel", "send_messages", "read_message_history",
                          "embed_links", "attach_files", "add_reactions"))
        guild = self.guilds[channel.guild_id]
        member = guild.members.get(user_id)
        if member is None:
            return 0
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        base = guild.everyone.permissions
        for rid in member.roles:
            if rid in guild.roles:
                base |= guild.roles[rid].permissions
        if base & PERMISSION_BITS["administrator"]:
            return ALL_PERMISSIONS
        # Threads take their parent's overwrites.
        source = self._channel(channel.parent_id) if channel.is_thread else channel
        overwrites = source.overwrites if source is not None else {}
        value = base
        everyone = overwrites.get(guild.id)
        if everyone is not None:
            value = (value & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for rid in member.roles:
            ow = overwrites.get(rid)
            if ow is not None and ow.type == 0:
                allow |= ow.allow
                deny |= ow.deny
        value = (value & ~deny) | allow
        mine = overwrites.get(user_id)
        if mine is not None and mine.type == 1:
            value = (value & ~mine.deny) | mine.allow
        if not value & PERMISSION_BITS["view_channel"]:
            return 0
        return value

    def _require(self, channel: Channel, *names: str) -> None:
        value = self._permissions(self.bot.id, channel)
        if not value & PERMISSION_BITS["view_channel"]:
            raise ApiError(*MISSING_ACCESS)
        for name in names:
            if not value & PERMISSION_BITS[name]:
                raise ApiError(*MISSING_PERMISSIONS)

    # -- content visibility ------------------------------------------------------------------
    def _content_visible(self, msg: Message, *, intent: bool) -> bool:
        """Whether the bot may read ``msg``'s content: Discord's message content rule."""
        if intent or msg.author_id == self.bot.id:
            return True
        channel = self._channel(msg.channel_id)
        if channel is not None and channel.type == DM:
            return True
        # A mention of the bot itself; Discord's rule names user mentions, so a mention of
        # the bot's role is not counted here.
        if any(int(m.group(1)) == self.bot.id for m in _USER_MENTION.finditer(msg.content)):
            return True
        if msg.reference_id is not None and msg.reply_ping:
            ref = self.messages.get(msg.reference_id)
            # Replies to a slash command's response do not count.
            return (ref is not None and ref.author_id == self.bot.id
                    and ref.interaction_id is None)
        return False

    # -- payloads ----------------------------------------------------------------------------
    def _user_payload(self, user: User) -> dict[str, Any]:
        return {"id": str(user.id), "username": user.name, "discriminator": "0",
                "global_name": None if user.bot else user.name.title(), "avatar": None,
                "bot": user.bot, "public_flags": 0, "flags": 0}

    def _member_payload(self, member: Member, *, with_user: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "roles": [str(r) for r in member.roles], "nick": None, "avatar": None,
            "joined_at": _iso(member.joined), "premium_since": None, "deaf": False,
            "mute": False, "flags": 0, "pending": False, "communication_disabled_until": None,
        }
        if with_user:
            out["user"] = self._user_payload(self.users[member.user_id])
        return out

    def _role_payload(self, role: Role) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(role.id), "name": role.name, "color": 0, "hoist": False, "icon": None,
            "unicode_emoji": None, "position": role.position, "permissions": str(role.permissions),
            "managed": role.bot_id is not None, "mentionable": role.mentionable, "flags": 0,
        }
        if role.bot_id is not None:
            out["tags"] = {"bot_id": str(role.bot_id)}
        return out

    def _channel_payload(self, ch: Channel) -> dict[str, Any]:
        if ch.type == DM:
            return {"id": str(ch.id), "type": DM, "last_message_id": None, "flags": 0,
                    "recipients": [self._user_payload(self.users[ch.recipient_id or 0])]}
        out: dict[str, Any] = {
            "id": str(ch.id), "type": ch.type, "guild_id": str(ch.guild_id), "name": ch.name,
            "position": ch.position, "parent_id": str(ch.parent_id) if ch.parent_id else None,
            "nsfw": False, "last_message_id": None, "rate_limit_per_user": 0, "flags": 0,
            "topic": None,
            "permission_overwrites": [
                {"id": str(o.id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
                for o in ch.overwrites.values()
            ],
        }
        if ch.is_thread:
            del out["permission_overwrites"], out["position"], out["topic"]
            out.update(
                owner_id=str(ch.owner_id), message_count=ch.message_count,
                total_message_sent=ch.message_count, member_count=1,
                thread_metadata={
                    "archived": ch.archived, "locked": ch.locked,
                    "auto_archive_duration": ch.auto_archive_duration,
                    "archive_timestamp": _iso(ch.created), "create_timestamp": _iso(ch.created),
                    "invitable": True,
                },
            )
        return out

    def _guild_payload(self, guild: Guild, session: Session) -> dict[str, Any]:
        members = list(guild.members.values())
        if not session.intents & INTENT_GUILD_MEMBERS:
            members = [m for m in members if m.user_id == self.bot.id]
        channels = [c for c in guild.channels.values() if not c.is_thread]
        threads = [c for c in guild.channels.values() if c.is_thread and not c.archived]
        return {
            "id": str(guild.id), "name": guild.name, "icon": None, "splash": None,
            "discovery_splash": None, "owner_id": str(guild.owner_id), "afk_channel_id": None,
            "afk_timeout": 300, "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "features": [], "mfa_level": 0,
            "application_id": None, "system_channel_id": None, "system_channel_flags": 0,
            "rules_channel_id": None, "vanity_url_code": None, "description": None,
            "banner": None, "premium_tier": 0, "preferred_locale": "en-US",
            "public_updates_channel_id": None, "nsfw_level": 0,
            "premium_progress_bar_enabled": False, "emojis": [], "stickers": [],
            "roles": [self._role_payload(r) for r in guild.roles.values()],
            "joined_at": _iso(guild.members[self.bot.id].joined), "large": False,
            "unavailable": False, "member_count": len(guild.members), "voice_states": [],
            "members": [self._member_payload(m) for m in members],
            "channels": [self._channel_payload(c) for c in channels],
            "threads": [self._channel_payload(c) for c in threads],
            "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _message_payload(self, msg: Message, *, intent: bool, gateway: bool = False,
                         depth: int = 0) -> dict[str, Any]:
        author = self.users[msg.author_id]
        visible = self._content_visible(msg, intent=intent)
        out: dict[str, Any] = {
            "id": str(msg.id), "channel_id": str(msg.channel_id), "type": msg.type,
            "author": self._user_payload(author),
            "content": msg.content if visible else "",
            "embeds": [{"type": "rich", **e} for e in msg.embeds] if visible else [],
            "components": msg.components if visible else [],
            "attachments": [], "timestamp": _iso(msg.created),
            "edited_timestamp": _iso(msg.edited), "tts": False, "pinned": False,
            "flags": msg.flags, "mention_everyone": msg.mention_everyone,
            "mention_roles": [str(r) for r in msg.mention_roles],
            "mentions": [self._mention_payload(uid, msg.guild_id) for uid in msg.mentions],
        }
        if msg.nonce is not None and gateway:
            out["nonce"] = msg.nonce
        if msg.guild_id is not None:
            out["guild_id"] = str(msg.guild_id)
            member = self.guilds[msg.guild_id].members.get(msg.author_id)
            if gateway and member is not None:
                out["member"] = self._member_payload(member, with_user=False)
        if msg.webhook_id is not None:
            out["webhook_id"] = str(msg.webhook_id)
            out["application_id"] = str(self.application_id)
        if msg.interaction_id is not None:
            inter = self.interactions[msg.interaction_id]
            out["interaction_metadata"] = {
                "id": str(inter.id), "type": inter.type,
                "user": self._user_payload(self.users[inter.user_id]),
                "authorizing_integration_owners": {"0": str(msg.guild_id or 0)},
            }
            if inter.original_id is not None and msg.id != inter.original_id:
                # Discord names the response a follow-up message goes with.
                out["interaction_metadata"]["original_response_message_id"] = str(
                    inter.original_id)
        if msg.reference_id is not None:
            ref = self.messages.get(msg.reference_id)
            out["message_reference"] = {
                "type": 0, "message_id": str(msg.reference_id),
                "channel_id": str(ref.channel_id if ref else msg.channel_id),
                **({"guild_id": str(msg.guild_id)} if msg.guild_id else {}),
            }
            if depth == 0:
                out["referenced_message"] = (
                    None if ref is None or ref.deleted
                    else self._message_payload(ref, intent=intent, depth=1)
                )
        if msg.thread_id is not None:
            thread = self._channel(msg.thread_id)
            if thread is not None and not thread.deleted:
                out["thread"] = self._channel_payload(thread)
        return out

    def _mention_payload(self, user_id: int, guild_id: int | None) -> dict[str, Any]:
        out = self._user_payload(self.users[user_id])
        if guild_id is not None and user_id in self.guilds[guild_id].members:
            out["member"] = self._member_payload(self.guilds[guild_id].members[user_id],
                                                 with_user=False)
        return out

    # -- dispatching events ------------------------------------------------------------------
    def _dispatch_guild(self, event: str, guild_id: int | None,
                        build: Callable[[Session], dict[str, Any]], intent: int) -> None:
        for session in list(self.sessions.values()):
            if intent and not session.intents & intent:
                continue
            if not session.wants(guild_id):
                continue
            self._send_event(session, event, build(session))

    def _send_event(self, session: Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        payload = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
        session.events.append(payload)
        self._enqueue(session, payload)

    def _enqueue(self, session: Session, payload: dict[str, Any] | None) -> None:
        conn = session.conn
        if conn is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(conn.queue.put_nowait, payload)

    def _dispatch_message(self, event: str, msg: Message) -> None:
        if msg.ephemeral:
            return  # Discord does not send ephemeral messages to the bot
        intent = INTENT_DIRECT_MESSAGES if msg.guild_id is None else INTENT_GUILD_MESSAGES
        for session in list(self.sessions.values()):
            if not session.intents & intent or not session.wants(msg.guild_id):
                continue
            data = self._message_payload(
                msg, intent=bool(session.intents & INTENT_MESSAGE_CONTENT), gateway=True)
            self._send_event(session, event, data)

    # -- acting as members -------------------------------------------------------------------
    def say(self, author: User, channel: Channel, content: str, *,
            reply_to: Message | None = None, ping: bool = True) -> Message:
        """``author`` posts ``content`` in ``channel`` (a reply to ``reply_to`` when given;
        ``ping`` is Discord's "ping on reply" switch). The bot gets MESSAGE_CREATE."""
        with self._lock:
            need = "send_messages_in_threads" if channel.is_thread else "send_messages"
            if not self._permissions(author.id, channel) & PERMISSION_BITS[need]:
                raise PermissionError(f"{author.name} cannot post in #{channel.name}")
            if channel.is_thread and channel.archived:
                channel.archived = False  # a member's message unarchives the thread
            msg = self._create_message(
                channel, author.id, content=content, reply_to=reply_to,
                allowed_mentions=None, reply_ping=ping,
            )
            return msg

    def dm(self, author: User, content: str) -> Message:
        """``author`` writes to the bot in a DM."""
        with self._lock:
            return self._create_message(self._dm_channel(author), author.id, content=content,
                                        allowed_mentions=None)

    def _dm_channel(self, user: User) -> Channel:
        ch = self.dms.get(user.id)
        if ch is None:
            ch = Channel(self._snowflake(), user.name, type=DM, recipient_id=user.id)
            self.dms[user.id] = ch
        return ch

    def _pings(self, content: str, guild_id: int | None, author_id: int,
               allowed: dict[str, Any] | None) -> tuple[list[int], list[int], bool]:
        """Who a message notifies, from its text, its allowed_mentions and the author's
        permissions (users, roles, @everyone/@here)."""
        parse = {"users", "roles", "everyone"} if allowed is None else set(
            allowed.get("parse") or [])
        listed_users = {int(u) for u in (allowed or {}).get("users") or []}
        listed_roles = {int(r) for r in (allowed or {}).get("roles") or []}
        users: list[int] = []
        for m in _USER_MENTION.finditer(content):
            uid = int(m.group(1))
            if uid in self.users and uid not in users and ("users" in parse or uid in listed_users):
                users.append(uid)
        roles: list[int] = []
        everyone = False
        if guild_id is not None:
            guild = self.guilds[guild_id]
            can_all = bool(self._guild_perms(author_id, guild)
                           & PERMISSION_BITS["mention_everyone"])
            for m in _ROLE_MENTION.finditer(content):
                rid = int(m.group(1))
                role = guild.roles.get(rid)
                if role is None or rid in roles:
                    continue
                if ("roles" in parse or rid in listed_roles) and (role.mentionable or can_all):
                    roles.append(rid)
            everyone = ("everyone" in parse and can_all
                        and bool(re.search(r"@(everyone|here)\b", content)))
        return users, roles, everyone

    def _guild_perms(self, user_id: int, guild: Guild) -> int:
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        member = guild.members.get(user_id)
        if member is None:
            return 0
        value = guild.everyone.permissions
        for rid in member.roles:
            value |= guild.roles[rid].permissions if rid in guild.roles else 0
        return ALL_PERMISSIONS if value & PERMISSION_BITS["administrator"] else value

    def _create_message(self, channel: Channel, author_id: int, *, content: str = "",
                        embeds: list[dict[str, Any]] | None = None,
                        components: list[dict[str, Any]] | None = None,
                        reply_to: Message | None = None, reply_ping: bool = True,
                        allowed_mentions: dict[str, Any] | None = None, flags: int = 0,
                        type: int | None = None, nonce: str | None = None,
                        interaction_id: int | None = None,
                        webhook_id: int | None = None) -> Message:
        users, roles, everyone = self._pings(content, channel.guild_id, author_id,
                                             allowed_mentions)
        if reply_to is not None and reply_ping and reply_to.author_id != author_id:
            if allowed_mentions is None or allowed_mentions.get("replied_user", False):
                if reply_to.author_id not in users:
                    users.append(reply_to.author_id)
            else:
                reply_ping = False
        elif reply_to is not None:
            reply_ping = False
        msg = Message(
            id=self._snowflake(), channel_id=channel.id, guild_id=channel.guild_id,
            author_id=author_id, content=content, embeds=list(embeds or []),
            components=list(components or []),
            type=type if type is not None else (REPLY if reply_to is not None else DEFAULT),
            flags=flags, reference_id=reply_to.id if reply_to else None, reply_ping=reply_ping,
            mentions=users, mention_roles=roles, mention_everyone=everyone, nonce=nonce,
            interaction_id=interaction_id, webhook_id=webhook_id,
        )
        self.messages[msg.id] = msg
        channel.message_count += 1
        self._dispatch_message("MESSAGE_CREATE", msg)
        return msg

    def slash(self, user: User, channel: Channel, name: str, /, *,
              bypass_client_checks: bool = False, **options: Any) -> Interaction:
        """``user`` runs ``/name`` with ``options`` in ``channel`` (a DM channel from
        ``dm_channel``, or a guild channel or thread). A subcommand is ``"group sub"``.

        Refuses, as Discord's client does, what could not be sent: an unknown command, a
        missing or unknown option, a string over ``max_length`` or under ``min_length``, a
        guild-only command in a DM, a command hidden by ``default_member_permissions``.
        ``bypass_client_checks`` sends it anyway (a server that granted the command to
        everyone in its Integrations settings, or a forged request)."""
        with self._lock:
            top, *subs = name.split()
            command = self._find_command(top, channel.guild_id)
            if command is None:
                raise ValueError(f"/{top} is not registered")
            node = command.payload
            for sub in subs:
                node = next(o for o in node.get("options") or [] if o["name"] == sub)
            opts = self._check_options(node, options, bypass_client_checks)
            if not bypass_client_checks:
                self._check_access(command, user, channel)
            resolved = self._resolve_channels(opts, user)
            if len(subs) == 1:
                opts = [{"name": subs[0], "type": 1, "options": opts}]
            elif len(subs) == 2:
                opts = [{"name": subs[0], "type": 2,
                         "options": [{"name": subs[1], "type": 1, "options": opts}]}]
            data: dict[str, Any] = {"id": str(command.id), "name": top, "type": 1,
                                    "options": opts}
            if command.guild_id is not None:
                data["guild_id"] = str(command.guild_id)
            if resolved:
                data["resolved"] = {"channels": resolved}
            return self._interact(2, user, channel, data)

    def _resolve_channels(self, opts: list[dict[str, Any]], user: User) -> dict[str, Any]:
        """Discord sends a channel option as an id, with the channel in ``resolved`` (its
        name, type and the invoking member's permissions there)."""
        out: dict[str, Any] = {}
        for opt in opts:
            if opt["type"] != 7:
                continue
            ch = self._channel(int(opt["value"]))
            if ch is None:
                raise ValueError(f"no channel {opt['value']}: Discord's client cannot pick it")
            opt["value"] = str(ch.id)
            out[str(ch.id)] = {"id": str(ch.id), "name": ch.name, "type": ch.type,
                               "parent_id": str(ch.parent_id) if ch.parent_id else None,
                               "permissions": str(self._permissions(user.id, ch))}
        return out

    def autocomplete(self, user: User, channel: Channel, name: str, option: str,
                     value: str, /, **options: Any) -> Interaction:
        """``user`` types ``value`` into ``option`` of ``/name`` (a subcommand is
        ``"group sub"``): an autocomplete request."""
        with self._lock:
            top, *subs = name.split()
            command = self._find_command(top, channel.guild_id)
            if command is None:
                raise ValueError(f"/{top} is not registered")
            opts = [{"name": k, "type": 3, "value": v} for k, v in options.items()]
            opts.append({"name": option, "type": 3, "value": value, "focused": True})
            if len(subs) == 1:
                opts = [{"name": subs[0], "type": 1, "options": opts}]
            data = {"id": str(command.id), "name": top, "type": 1, "options": opts}
            return self._interact(4, user, channel, data)

    def click(self, user: User, message: Message, custom_id: str) -> Interaction:
        """``user`` presses the button ``custom_id`` on ``message``."""
        with self._lock:
            channel = self._channel(message.channel_id)
            assert channel is not None
            ids = [c.get("custom_id") for row in message.components
                   for c in row.get("components") or []]
            if custom_id not in ids:
                raise ValueError(f"no button {custom_id!r} on that message")
            data = {"custom_id": custom_id, "component_type": 2}
            return self._interact(3, user, channel, data, message=message)

    def choose(self, user: User, message: Message, custom_id: str,
               values: Sequence[str]) -> Interaction:
        """``user`` picks ``values`` in the select menu ``custom_id`` on ``message``. Refuses,
        as Discord's client does, a value that is not one of the menu's options."""
        with self._lock:
            channel = self._channel(message.channel_id)
            assert channel is not None
            menu = next((c for row in message.components for c in row.get("components") or []
                         if c.get("type") == 3 and c.get("custom_id") == custom_id), None)
            if menu is None:
                raise ValueError(f"no select menu {custom_id!r} on that message")
            offered = {o["value"] for o in menu.get("options") or []}
            if not set(values) <= offered:
                raise ValueError(f"{sorted(set(values) - offered)} not among the options")
            data = {"custom_id": custom_id, "component_type": 3, "values": list(values)}
            return self._interact(3, user, channel, data, message=message)

    def submit_modal(self, user: User, opened: Interaction, values: Mapping[str, str], *,
                     bypass_client_checks: bool = False) -> Interaction:
        """``user`` submits the modal the bot showed in answer to ``opened``, with ``values``
        by text input custom id (the others keep the value they were shown with).

        Refuses, as Discord's client does, what could not be submitted: a required input
        left empty, a value shorter than ``min_length`` or longer than ``max_length``.
        ``bypass_client_checks`` sends it anyway (a forged request)."""
        with self._lock:
            if opened.modal is None:
                raise ValueError("the bot showed no modal for that interaction")
            inputs = {c["custom_id"]: c for c in _text_inputs(opened.modal["components"])}
            unknown = set(values) - set(inputs)
            if unknown:
                raise ValueError(f"the modal has no text input {sorted(unknown)}")
            given = {cid: str(values.get(cid, spec.get("value") or ""))
                     for cid, spec in inputs.items()}
            if not bypass_client_checks:
                for cid, value in given.items():
                    spec = inputs[cid]
                    if spec.get("required", True) and not value:
                        raise ValueError(f"{cid!r} is required: Discord's client refuses it")
                    if value and len(value) < spec.get("min_length", 0):
                        raise ValueError(f"{cid!r} is shorter than its min_length")
                    if len(value) > spec.get("max_length", 4000):
                        raise ValueError(f"{cid!r} is longer than its max_length "
                                         f"{spec.get('max_length', 4000)}: Discord's client "
                                         "refuses it")
            # The submitted components keep the modal's layout: action rows, or labels.
            rows: list[dict[str, Any]] = []
            for comp in opened.modal["components"]:
                if comp.get("type") == 1:
                    rows.append({"type": 1, "components": [
                        {"type": 4, "custom_id": c["custom_id"], "value": given[c["custom_id"]]}
                        for c in comp.get("components") or [] if c.get("type") == 4]})
                elif comp.get("type") == 18 and comp["component"].get("type") == 4:
                    cid = comp["component"]["custom_id"]
                    rows.append({"type": 18, "component": {"type": 4, "custom_id": cid,
                                                           "value": given[cid]}})
            channel = self._channel(opened.channel_id)
            assert channel is not None
            message = self.messages.get(opened.message_id) if opened.message_id else None
            data = {"custom_id": opened.modal["custom_id"], "components": rows}
            return self._interact(5, user, channel, data, message=message)

    def dm_channel(self, user: User) -> Channel:
        """The DM channel between ``user`` and the bot."""
        with self._lock:
            return self._dm_channel(user)

    def _find_command(self, name: str, guild_id: int | None) -> Command | None:
        found = [c for c in self.commands.values() if c.name == name
                 and c.guild_id in (None, guild_id)]
        # A guild command shadows a global one of the same name.
        found.sort(key=lambda c: c.guild_id is None)
        return found[0] if found else None

    def _check_options(self, node: dict[str, Any], given: dict[str, Any],
                       bypass: bool) -> list[dict[str, Any]]:
        declared = {o["name"]: o for o in node.get("options") or []}
        out = []
        for key, value in given.items():
            if value is None:
                continue
            spec = declared.get(key)
            if spec is None:
                raise ValueError(f"/{node['name']} has no option {key!r}")
            if spec["type"] == 3 and not bypass:
                if "max_length" in spec and len(value) > spec["max_length"]:
                    raise ValueError(f"{key!r} is longer than its max_length "
                                     f"{spec['max_length']}: Discord's client refuses it")
                if "min_length" in spec and len(value) < spec["min_length"]:
                    raise ValueError(f"{key!r} is shorter than its min_length")
            out.append({"name": key, "type": spec["type"], "value": value})
        missing = [k for k, o in declared.items() if o.get("required") and k not in given]
        if missing and not bypass:
            raise ValueError(f"required options missing: {missing}")
        return out

    def _check_access(self, command: Command, user: User, channel: Channel) -> None:
        payload = command.payload
        if channel.guild_id is None:
            contexts = payload.get("contexts")
            if payload.get("dm_permission") is False or (contexts is not None
                                                         and 1 not in contexts):
                raise PermissionError(f"/{command.name} is not available in DMs")
            return
        needed = payload.get("default_member_permissions")
        if needed not in (None, ""):
            have = self._permissions(user.id, channel)
            if int(needed) and (have & int(needed)) != int(needed):
                raise PermissionError(f"/{command.name} is hidden from {user.name}")

    def _interact(self, type_: int, user: User, channel: Channel, data: dict[str, Any], *,
                  message: Message | None = None) -> Interaction:
        inter = Interaction(self._snowflake(), f"itoken-{uuid.uuid4().hex}", type_, user.id,
                            channel.id, channel.guild_id, data,
                            message_id=message.id if message else None)
        self.interactions[inter.id] = inter
        payload: dict[str, Any] = {
            "id": str(inter.id), "application_id": str(self.application_id), "type": type_,
            "data": data, "token": inter.token, "version": 1, "locale": "en-US",
            "entitlements": [], "attachment_size_limit": 10 * 1024 * 1024,
            "channel_id": str(channel.id), "channel": {**self._channel_payload(channel)},
            "app_permissions": str(self._permissions(self.bot.id, channel)),
            "authorizing_integration_owners": {"0": str(channel.guild_id or 0)},
            "context": 0 if channel.guild_id is not None else 1,
        }
        if channel.guild_id is not None:
            guild = self.guilds[channel.guild_id]
            payload["guild_id"] = str(guild.id)
            payload["guild_locale"] = "en-US"
            payload["guild"] = {"id": str(guild.id), "locale": "en-US", "features": []}
            member = self._member_payload(guild.members[user.id])
            member["permissions"] = str(self._permissions(user.id, channel))
            payload["member"] = member
            payload["channel"]["permissions"] = member["permissions"]
        else:
            payload["user"] = self._user_payload(user)
        if message is not None:
            payload["message"] = self._message_payload(message, intent=True)
        sessions = [s for s in self.sessions.values() if s.wants(channel.guild_id)]
        # A connected session first: one whose process died keeps its session for a resume
        # that never comes.
        sessions.sort(key=lambda s: s.conn is None)
        for session in sessions[:1]:
            self._send_event(session, "INTERACTION_CREATE", payload)
        return inter

    # -- faults ------------------------------------------------------------------------------
    def fail(self, method: str, route: str, status: int, *, times: int | None = 1,
             retry_after: float = 1.0, is_global: bool = False, via: bool = True,
             code: int | None = None, message: str | None = None, **params: Any) -> Failure:
        """The next ``times`` requests to ``method route`` (narrowed by ``params``, e.g.
        ``channel_id=``) answer ``status``; ``times=None`` keeps failing until cleared. A 429
        carries ``retry_after`` and, unless ``via=False``, the Via header discord.py needs
        before it retries."""
        failure = Failure(method.upper(), route, status, times, retry_after, is_global, via,
                          code, message, {k: str(v) for k, v in params.items()})
        with self._lock:
            self.failures.append(failure)
        return failure

    def rate_limit(self, method: str, route: str, *, limit: int, per: float) -> RouteLimit:
        """Switch on a rate limit for ``method route``: ``limit`` per ``per`` seconds for each
        channel (guild, webhook), announced in X-RateLimit-* headers; 429 past it."""
        rl = RouteLimit(method.upper(), route, limit, per)
        with self._lock:
            self.limits.append(rl)
        return rl

    def stall(self, method: str, route: str, seconds: float, *, times: int = 1,
              **params: Any) -> Stall:
        """The next ``times`` requests to ``method route`` are carried out (a message is
        created), then their response waits ``seconds``: a client that dies meanwhile never
        learns that it succeeded. ``hits`` counts the requests held so far."""
        stall = Stall(method.upper(), route, seconds, times,
                      {k: str(v) for k, v in params.items()})
        with self._lock:
            self.stalls.append(stall)
        return stall

    def sever(self, method: str, route: str, *, times: int = 1, **params: Any) -> Sever:
        """The next ``times`` requests to ``method route`` are carried out (a message is
        created), then their connection is closed with no response: the client sees a
        dropped connection (not an HTTP error) and never learns that it succeeded."""
        sever = Sever(method.upper(), route, times, {k: str(v) for k, v in params.items()})
        with self._lock:
            self.severs.append(sever)
        return sever

    def clear_faults(self) -> None:
        with self._lock:
            self.failures.clear()
            self.limits.clear()
            self.stalls.clear()
            self.severs.clear()

    def reconnect(self) -> None:
        """Ask every connected session to reconnect (op 7); discord.py resumes."""
        with self._lock:
            for s in self.sessions.values():
                self._enqueue(s, {"op": OP_RECONNECT, "d": None})

    def drop(self, *, code: int = 4000, resumable: bool = True) -> None:
        """Close every socket with ``code``. With ``resumable=False`` the sessions are
        forgotten, so the RESUME that follows is refused and the bot identifies again (a
        new READY, so on_ready fires again)."""
        with self._lock:
            for s in self.sessions.values():
                s.resumable = resumable and s.resumable
                if s.conn is not None and self._loop is not None:
                    conn = s.conn
                    self._loop.call_soon_threadsafe(
                        lambda c=conn: asyncio.ensure_future(c.ws.close(code=code)))

    def invalidate(self, *, resumable: bool = False) -> None:
        """Send INVALID_SESSION (op 9) to every connected session."""
        with self._lock:
            for s in self.sessions.values():
                s.resumable = resumable
                self._enqueue(s, {"op": OP_INVALID_SESSION, "d": resumable})

    @property
    def connected(self) -> bool:
        with self._lock:
            return any(s.conn is not None for s in self.sessions.values())

    # -- reading the record ------------------------------------------------------------------
    def calls(self, method: str | None = None, route: str | None = None,
              **params: Any) -> list[Request]:
        """Recorded requests, narrowed by method, route template and parameter values."""
        want = {k: str(v) for k, v in params.items()}
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method.upper())
                    and (route is None or r.route == route)
                    and all(r.params.get(k) == v for k, v in want.items())]

    def channel_messages(self, channel: Channel, *, include_deleted: bool = False) -> list[Message]:
        """Messages in ``channel``, oldest first."""
        with self._lock:
            return sorted((m for m in self.messages.values() if m.channel_id == channel.id
                           and (include_deleted or not m.deleted)), key=lambda m: m.id)

    def bot_messages(self, channel: Channel | None = None) -> list[Message]:
        """What the bot posted (in ``channel`` or anywhere), oldest first."""
        with self._lock:
            return sorted((m for m in self.messages.values() if m.author_id == self.bot.id
                           and not m.deleted
                           and (channel is None or m.channel_id == channel.id)),
                          key=lambda m: m.id)

    def replies_to(self, message: Message) -> list[Message]:
        """The bot's answers to ``message``: replies to it, messages in the thread opened on
        it, and (for a slash command) the response and its follow-ups. Loading states and
        messages still being written are included; ``answers_to`` leaves them out."""
        with self._lock:
            out = [m for m in self.messages.values() if m.author_id == self.bot.id
                   and not m.deleted
                   and (m.reference_id == message.id
                        or (message.thread_id is not None and m.channel_id == message.thread_id))]
            return sorted(out, key=lambda m: m.id)

    def responses(self, inter: Interaction) -> list[Message]:
        """The response to an interaction and its follow-ups, oldest first."""
        with self._lock:
            ids = ([inter.original_id] if inter.original_id else []) + inter.followups
            return [self.messages[i] for i in ids if not self.messages[i].deleted]

    def wait(self, predicate: Callable[[], T], *, timeout: float = 15.0, what: str = "it",
             interval: float = 0.02) -> T:
        """Poll ``predicate`` until it returns something truthy; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n"
                                     + self.summary())
            time.sleep(interval)

    async def wait_async(self, predicate: Callable[[], T], *, timeout: float = 15.0,
                         what: str = "it", interval: float = 0.02) -> T:
        """``wait`` for a test whose event loop runs the bot."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n"
                                     + self.summary())
            await asyncio.sleep(interval)

    def summary(self, last: int = 25) -> str:
        """The last requests, for failure messages."""
        with self._lock:
            lines = [f"  {r.status} {r.method} {r.path}" for r in self.requests[-last:]]
        return "recent requests:\n" + ("\n".join(lines) or "  (none)")

    # -- HTTP plumbing -----------------------------------------------------------------------
    def _routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("GET", "/users/@me", self._get_me),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/applications/@me", self._get_application),
            ("GET", "/applications/{application_id}/commands", self._get_commands),
            ("PUT", "/applications/{application_id}/commands", self._put_commands),
            ("GET", "/applications/{application_id}/guilds/{guild_id}/commands",
             self._get_commands),
            ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands",
             self._put_commands),
            ("GET", "/guilds/{guild_id}", self._get_guild),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("DELETE", "/channels/{channel_id}", self._delete_channel_route),
            ("GET", "/channels/{channel_id}/messages", self._get_messages),
            ("POST", "/channels/{channel_id}/messages", self._post_message),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._patch_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message),
            ("POST", "/channels/{channel_id}/messages/{message_id}/threads",
             self._thread_from_message),
            ("POST", "/channels/{channel_id}/threads", self._thread_without_message),
            ("POST", "/channels/{channel_id}/typing", self._typing),
            ("POST", "/users/@me/channels", self._open_dm),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._callback),
            ("GET", "/webhooks/{application_id}/{token}/messages/{message_id}",
             self._get_webhook_message),
            ("PATCH", "/webhooks/{application_id}/{token}/messages/{message_id}",
             self._patch_webhook_message),
            ("DELETE", "/webhooks/{application_id}/{token}/messages/{message_id}",
             self._delete_webhook_message),
            ("POST", "/webhooks/{application_id}/{token}", self._followup),
        ]

    async def _rest(self, request: web.Request) -> web.Response:
        info = request.match_info
        template = info.route.resource.canonical if info.route.resource else request.path
        route = template[len(API_PREFIX):] if template.startswith(API_PREFIX) else template
        params = {k: v for k, v in info.items() if k != "tail"}
        body: Any = None
        if request.can_read_body:
            ctype = request.headers.get("Content-Type", "")
            if ctype.startswith("multipart/"):
                form = await request.post()
                raw = form.get("payload_json")
                body = json.loads(str(raw)) if raw is not None else {}
            else:
                text = await request.text()
                body = json.loads(text) if text else None
        handler = self._handlers.get((request.method, route))
        headers: dict[str, str] = {}
        with self._lock:
            try:
                if handler is None:
                    raise ApiError(404, 0, "404: Not Found")
                if not route.startswith(("/interactions/", "/webhooks/")):
                    auth = request.headers.get("Authorization", "")
                    if auth != f"Bot {self.token}":
                        raise ApiError(401, 0, "401: Unauthorized")
                self._scripted(request.method, route, params, headers)
                status, payload = handler(params=params, query=dict(request.query), body=body)
            except ApiError as exc:
                status = exc.status
                payload = {"message": exc.message, "code": exc.code}
                if exc.errors:
                    payload["errors"] = exc.errors
                if status == 429:
                    payload["retry_after"] = float(headers.pop("_retry_after"))
                    payload["global"] = headers.pop("_global") == "1"
            record = Request(request.method, request.path, route, params, dict(request.query),
                             body, status, time.monotonic(),
                             {k.lower(): v for k, v in request.headers.items()})
            self.requests.append(record)
            if handler is None:
                self.unhandled.append(record)
            hold = 0.0
            for st in self.stalls:
                if (st.method == request.method and st.route == route and st.hits < st.times
                        and all(params.get(k) == v for k, v in st.params.items())):
                    st.hits += 1
                    hold = st.seconds
                    break
            severed = False
            for sv in self.severs:
                if (sv.method == request.method and sv.route == route and sv.hits < sv.times
                        and all(params.get(k) == v for k, v in sv.params.items())):
                    sv.hits += 1
                    severed = True
                    break
        if hold:
            await asyncio.sleep(hold)
        if severed and request.transport is not None:
            request.transport.abort()  # a reset: no response, no orderly close
            return web.Response(status=status)  # written nowhere
        if payload is None:
            return web.Response(status=status, headers=headers)
        # Discord sends exactly "application/json": discord.py parses nothing else as JSON.
        headers["Content-Type"] = "application/json"
        return web.Response(status=status, body=json.dumps(payload).encode(), headers=headers)

    def _scripted(self, method: str, route: str, params: dict[str, str],
                  headers: dict[str, str]) -> None:
        """Apply scripted failures, then rate limits; raise the error to answer with."""
        for f in self.failures:
            if f.method != method or f.route != route:
                continue
            if any(params.get(k) != v for k, v in f.params.items()):
                continue
            if f.times is not None and f.hits >= f.times:
                continue
            f.hits += 1
            if f.status == 429:
                headers.update({"Retry-After": str(max(1, round(f.retry_after))),
                                "X-RateLimit-Scope": "global" if f.is_global else "user",
                                "_retry_after": str(f.retry_after),
                                "_global": "1" if f.is_global else "0"})
                if f.is_global:
                    headers["X-RateLimit-Global"] = "true"
                if f.via:
                    headers["Via"] = "1.1 google"
                raise ApiError(429, 0, f.message or "You are being rate limited.")
            code, message = f.code, f.message
            if code is None:
                code, message = {403: (50013, "Missing Permissions"),
                                 404: (10003, "Unknown Channel")}.get(
                                     f.status, (0, f"{f.status}: Server Error"))
            raise ApiError(f.status, code, message or "error")
        now = time.monotonic()
        for rl in self.limits:
            if rl.method != method or rl.route != route:
                continue
            major = params.get("channel_id") or params.get("guild_id") or (
                params.get("application_id", "") + params.get("token", ""))
            start, count = rl.windows.get(major, (now, 0))
            if now - start >= rl.per:
                start, count = now, 0
            reset_after = max(0.001, rl.per - (now - start))
            bucket = f"{abs(hash((rl.method, rl.route))):x}"
            headers.update({"X-RateLimit-Limit": str(rl.limit),
                            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                            "X-RateLimit-Bucket": bucket})
            if count >= rl.limit:
                rl.rejected += 1
                headers.update({"X-RateLimit-Remaining": "0", "Via": "1.1 google",
                                "Retry-After": str(max(1, round(reset_after))),
                                "X-RateLimit-Scope": "user",
                                "_retry_after": f"{reset_after:.3f}", "_global": "0"})
                raise ApiError(429, 0, "You are being rate limited.")
            rl.windows[major] = (start, count + 1)
            rl.granted.append((major, start))
            headers["X-RateLimit-Remaining"] = str(rl.limit - count - 1)

    # -- REST handlers (called with the lock held) -------------------------------------------
    def _get_gateway(self, **_: Any) -> tuple[int, Any]:
        return 200, {"url": self.gateway_url}

    def _get_gateway_bot(self, **_: Any) -> tuple[int, Any]:
        return 200, {"url": self.gateway_url, "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}}

    def _get_me(self, **_: Any) -> tuple[int, Any]:
        return 200, {**self._user_payload(self.bot), "verified": True, "mfa_enabled": False,
                     "email": None, "locale": "en-US"}

    def _app_flags(self) -> int:
        return APP_FLAG_GATEWAY_MESSAGE_CONTENT if self.message_content_enabled else 0

    def _get_application(self, **_: Any) -> tuple[int, Any]:
        return 200, {
            "id": str(self.application_id), "name": self.bot.name, "icon": None,
            "description": "", "bot_public": True, "bot_require_code_grant": False,
            "owner": self._user_payload(self.owner), "team": None, "verify_key": "0" * 64,
            "flags": self._app_flags(), "summary": "", "rpc_origins": [],
            "bot": self._user_payload(self.bot), "tags": [], "redirect_uris": [],
            "interactions_endpoint_url": None, "integration_types_config": {},
        }

    def _command_payload(self, cmd: Command) -> dict[str, Any]:
        out = {"id": str(cmd.id), "application_id": str(self.application_id), "version": "1",
               "type": 1, "description": "", "options": [], "nsfw": False,
               "default_member_permissions": None, **cmd.payload}
        if cmd.guild_id is not None:
            out["guild_id"] = str(cmd.guild_id)
        return out

    def _get_commands(self, *, params: dict[str, str], **_: Any) -> tuple[int, Any]:
        gid = int(params["guild_id"]) if "guild_id" in params else None
        return 200, [self._command_payload(c) for c in self.commands.values()
                     if c.guild_id == gid]

    def _put_commands(self, *, params: dict[str, str], body: Any, **_: Any) -> tuple[int, Any]:
        gid = int(params["guild_id"]) if "guild_id" in params else None
        if gid is not None and gid not in self.guilds:
            raise ApiError(403, 50001, "Missing Access")
        names = [c["name"] for c in body]
        if len(set(names)) != len(names):
            raise _form_error("0.name", "Application command names must be unique",
                              "APPLICATION_COMMANDS_DUPLICATE_NAME")
        for i, c in enumerate(body):
            self._validate_command(c, str(i))
        existing = {c.name: c for c in self.commands.values() if c.guild_id == gid}
        for cid in [c.id for c in existing.values()]:
            del self.commands[cid]
        out = []
        for c in body:
            cid = existing[c["name"]].id if c["name"] in existing else self._snowflake()
            cmd = Command(cid, gid, dict(c))
            self.commands[cid] = cmd
            out.append(self._command_payload(cmd))
        return 200, out

    def _validate_command(self, c: dict[str, Any], where: str) -> None:
        if not re.fullmatch(r"[-_\w]{1,32}", c.get("name", "")) or c["name"] != c["name"].lower():
            raise _form_error(f"{where}.name", "Invalid command name",
                              "APPLICATION_COMMAND_INVALID_NAME")
        if len(c.get("description", "")) > 100:
            raise _form_error(f"{where}.description", "Must be 100 or fewer in length.")
        for j, o in enumerate(c.get("options") or []):
            if o.get("type") == 3 and "max_length" in o and not 1 <= o["max_length"] <= 6000:
                raise _form_error(f"{where}.options.{j}.max_length",
                                  "int value should be less than or equal to 6000.")
            if o.get("type") in (1, 2):
                self._validate_command(o, f"{where}.options.{j}")

    def _get_guild(self, *, params: dict[str, str], **_: Any) -> tuple[int, Any]:
        guild = self.guilds.get(int(params["guild_id"]))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        payload = self._guild_payload(guild, Session("", INTENT_GUILDS, None))
        for key in ("members", "channels", "threads", "voice_states", "presences"):
            payload.pop(key, None)
        return 200, payload

    def _get_member(self, *, params: dict[str, str], **_: Any) -> tuple[int, Any]:
        guild = self.guilds.get(int(params["guild_id"]))
        member = guild.members.get(int(params["user_id"])) if guild else None
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        return 200, self._member_payload(member)

    def _channel_or_404(self, channel_id: str) -> Channel:
        ch = self._channel(int(channel_id))
        if ch is None or ch.deleted:
            raise ApiError(404, 10003, "Unknown Channel")
        return ch

    def _get_channel(self, *, params: dict[str, str], **_: Any) -> tuple[int, Any]:
        ch = self._channel_or_404(params["channel_id"])
        self._require(ch)
        return 200, self._channel_payload(ch)

    def _delete_channel_route(self, *, params: dict[str, str], **_: Any) -> tuple[int, Any]:
        ch = self._channel_or_404(params["channel_id"])
        self._require(ch, "manage_threads" if ch.is_thread else "manage_channels")
        self._delete_channel(ch)
        return 200, self._channel_payload(ch)

    def _message_or_404(self, ch: Channel, message_id: str) -> Message:
        msg = self.messages.get(int(message_id))
        if msg is None or msg.deleted or msg.channel_id != ch.id or msg.ephemeral:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def _rest_view(self, msg: Message) -> dict[str, Any]:
        # REST reads follow the portal switch, not the gateway intents.
        return self._message_payload(msg, intent=self.message_content_enabled)

    def _get_messages(self, *, params: dict[str, str], query: dict[str, str],
                      **_: Any) -> tuple[int, Any]:
        ch = self._channel_or_404(params["channel_id"])
        self._require(ch)
        if not self._permissions(self.bot.id, ch) & PERMISSION_BITS["read_message_history"]:
            return 200, []  # Discord answers an empty list without Read Message History
        limit = max(1, min(100, int(query.get("limit", 50))))
        msgs = [m for m in self.messages.values()
                if m.channel_id == ch.id and not m.deleted and not m.ephemeral]
        if "before" in query:
            msgs = [m for m in msgs if m.id < int(query["before"])]
        if "after" in query:
            msgs = sorted((m for m in msgs if m.id > int(query["after"])), key=lambda m: m.id)
            return 200, [self._rest_view(m) for m in msgs[:limit]][::-1]
        msgs.sort(key=lambda m: m.id, reverse=True)
        return 200, [self._rest_view(m) for m in msgs[:limit]]

    def _get_message(self, *, params: dict[str, str], **_: Any) -> tuple[int, Any]:
        ch = self._channel_or_404(params["channel_id"])
        self._require(ch, "read_message_history")
        return 200, self._rest_view(self._message_or_404(ch, params["message_id"]))

    def _check_message_body(self, body: dict[str, Any], *, creating: bool) -> None:
        content = body.get("content")
        if content is not None and len(str(content)) > 2000:
            raise _form_error("content", "Must be 2000 or fewer in length.")
        embeds = body.get("embeds")
        if embeds is not None:
            if len(embeds) > 10:
                raise _form_error("embeds", "Must be 10 or fewer in length.")
            total = 0
            for i, e in enumerate(embeds):
                total += self._check_embed(e, f"embeds.{i}")
            if total > EMBED_LIMITS["total"]:
                raise _form_error("embeds", "Embed size exceeds maximum size of 6000")
        self._check_components(body.get("components"))
        if creating and not (content or embeds or body.get("components")
                             or body.get("sticker_ids") or body.get("attachments")):
            raise ApiError(400, 50006, "Cannot send an empty message")

    @staticmethod
    def _check_components(rows: list[dict[str, Any]] | None) -> None:
        """Discord's limits on action rows and on select menus (a string select's options,
        labels, values and placeholder)."""
        if not rows:
            return
        if len(rows) > 5:
            raise _form_error("components", "Must be 5 or fewer in length.")
        for i, row in enumerate(rows):
            for j, c in enumerate(row.get("components") or []):
                where = f"components.{i}.components.{j}"
                if len(str(c.get("custom_id") or "")) > 100:
                    raise _form_error(f"{where}.custom_id", "Must be 100 or fewer in length.")
                if c.get("type") != 3:
                    continue
                options = c.get("options") or []
                if not 1 <= len(options) <= 25:
                    raise _form_error(f"{where}.options", "Must be between 1 and 25 in length.")
                if len(str(c.get("placeholder") or "")) > 150:
                    raise _form_error(f"{where}.placeholder", "Must be 150 or fewer in length.")
                for k, o in enumerate(options):
                    for key in ("label", "value", "description"):
                        if len(str(o.get(key) or "")) > 100:
                            raise _form_error(f"{where}.options.{k}.{key}",
                                              "Must be 100 or fewer in length.")
                    if not o.get("label") or not o.get("value"):
                        raise _form_error(f"{where}.options.{k}", "This field is required",
                                          "BASE_TYPE_REQUIRED")
                if len({o["value"] for o in options}) < len(options):
                    raise _form_error(f"{where}.options", "Values must be unique")

    @staticmethod
    def _check_embed(e: dict[str, Any], where: str) -> int:
        size = 0

        def check(key: str, value: Any, limit: int) -> None:
            nonlocal size
            text = str(value or "")
            if len(text) > limit:
                raise _form_error(f"{where}.{key}", f"Must be {limit} or fewer in length.")
            size += len(text)

        check("title", e.get("title"), EMBED_LIMITS["title"])
        check("description", e.get("description"), EMBED_LIMITS["description"])
        check("footer.text", (e.get("footer") or {}).get("text"), EMBED_LIMITS["footer.text"])
        check("author.name", (e.get("author") or {}).get("name"), EMBED_LIMITS["author.name"])
        fields = e.get("fields") or []
        if len(fields) > EMBED_LIMITS["fields"]:
            raise _form_error(f"{where}.fields", "Must be 25 or fewer in length.")
        for j, f in enumerate(fields):
            if not f.get("name") or not f.get("value"):
                raise _form_error(f"{where}.fields.{j}", "This field is required",
                                  "BASE_TYPE_REQUIRED")
            check(f"fields.{j}.name", f.get("name"), EMBED_LIMITS["field.name"])
            check(f"fields.{j}.value", f.get("value"), EMBED_LIMITS["field.value"])
        return size

    def _post_message(self, *, params: dict[str, str], body: dict[str, Any],
                      **_: Any) -> tuple[int, Any]:
        ch = self._channel_or_404(params["channel_id"])
        if ch.is_thread:
            self._require(ch, "send_messages_in_threads")
            if ch.locked:
                raise ApiError(400, 50083, "Thread is archived")
            ch.archived = False
        else:
            self._require(ch, "send_messages")
        self._check_message_body(body, creating=True)
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            seen = self._nonces.get((self.bot.id, str(nonce)))
            if seen is not None and time.monotonic() - seen[0] < self.nonce_window_s:
                return 200, self._rest_view(self.messages[seen[1]])
        reply_to = None
        ref = body.get("message_reference")
        if ref and ref.get("message_id"):
            reply_to = self.messages.get(int(ref["message_id"]))
            if reply_to is None or reply_to.deleted:
                if ref.get("fail_if_not_exists", True):
                    raise _form_error("message_reference", "Unknown message",
                                      "MESSAGE_REFERENCE_UNKNOWN_MESSAGE")
                reply_to = None
        allowed = body.get("allowed_mentions")
        msg = self._create_message(
            ch, self.bot.id, content=body.get("content") or "", embeds=body.get("embeds"),
            components=body.get("components"), reply_to=reply_to,
            reply_ping=bool((allowed or {}).get("replied_user", allowed is None)),
            allowed_mentions=allowed, flags=int(body.get("flags") or 0) & ~MESSAGE_FLAG_EPHEMERAL,
            nonce=str(nonce) if nonce is not None else None,
        )
        if nonce is not None:
            self._nonces[(self.bot.id, str(nonce))] = (time.monotonic(), msg.id)
        return 200, self._rest_view(msg)

    def _edit(self, msg: Message, body: dict[str, Any]) -> None:
        self._check_message_body(body, creating=False)
        if "content" in body:
            msg.content = body["content"] or ""
            users, roles, everyone = self._pings(msg.content, msg.guild_id, msg.author_id,
                                                 body.get("allowed_mentions"))
            msg.mentions, msg.mention_roles, msg.mention_everyone = users, roles, everyone
        if "embeds" in body:
            msg.embeds = list(body["embeds"] or [])
        if "components" in body:
            msg.components = list(body["components"] or [])
        if "flags" in body and body["flags"] is not None:
            msg.flags = (msg.flags & MESSAGE_FLAG_EPHEMERAL) | (int(body["flags"])
                                                                & ~MESSAGE_FLAG_EPHEMERAL)
        msg.flags &= ~MESSAGE_FLAG_LOADING
        msg.edited = time.time()
        msg.edits += 1
        self._dispatch_message("MESSAGE_UPDATE", msg)

    def _patch_message(self, *, params: dict[str, str], body: dict[str, Any],
                       **_: Any) -> tuple[int, Any]:
        ch = self._channel_or_404(params["channel_id"])
        self._require(ch)
        msg = self._message_or_404(ch, params["message_id"])
        if msg.author_id != self.bot.id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        self._edit(msg, body)
        return 200, self._rest_view(msg)

    def _delete_message(self, *, params: dict[str, str], **_: Any) -> tuple[int, Any]:
        ch = self._channel_or_404(params["channel_id"])
        msg = self._message_or_404(ch, params["message_id"])
        if msg.author_id != self.bot.id:
            self._require(ch, "manage_messages")
        self._remove(msg)
        return 204, None

    def _remove(self, msg: Message) -> None:
        msg.deleted = True
        if msg.ephemeral:
            return
        data = {"id": str(msg.id), "channel_id": str(msg.channel_id),
                **({"guild_id": str(msg.guild_id)} if msg.guild_id else {})}
        intent = INTENT_DIRECT_MESSAGES if msg.guild_id is None else INTENT_GUILD_MESSAGES
        self._dispatch_guild("MESSAGE_DELETE", msg.guild_id, lambda s: data, intent)

    def _new_thread(self, parent: Channel, name: str, body: dict[str, Any], *,
                    thread_id: int | None, type_: int) -> Channel:
        name = " ".join(str(name or "").split())
        if not 1 <= len(name) <= 100:
            raise _form_error("name", "Must be between 1 and 100 in length.")
        guild = self.guilds[parent.guild_id or 0]
        thread = Channel(thread_id or self._snowflake(), name, type=type_, guild_id=guild.id,
                         parent_id=parent.id, owner_id=self.bot.id,
                         auto_archive_duration=int(body.get("auto_archive_duration") or 4320))
        guild.channels[thread.id] = thread
        self._dispatch_guild("THREAD_CREATE", guild.id,
                             lambda s: {**self._channel_payload(thread), "newly_created": True,
                                        "member": {"id": str(thread.id),
                                                   "user_id": str(self.bot.id),
                                                   "join_timestamp": _iso(time.time()),
                                                   "flags": 0}},
                             INTENT_GUILDS)
        return thread

    def _thread_from_message(self, *, params: dict[str, str], body: dict[str, Any],
                             **_: Any) -> tuple[int, Any]:
        ch = self._channel_or_404(params["channel_id"])
        if ch.is_thread or ch.type == DM:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        self._require(ch, "create_public_threads")
        msg = self._message_or_404(ch, params["message_id"])
        if msg.thread_id is not None:
            raise ApiError(400, 160004, "A thread has already been created for this message")
        thread = self._new_thread(ch, body.get("name", ""), body, thread_id=msg.id,
                                  type_=PUBLIC_THREAD)
        msg.thread_id = thread.id
        return 201, self._channel_payload(thread)

    def _thread_without_message(self, *, params: dict[str, str], body: dict[str, Any],
                                **_: Any) -> tuple[int, Any]:
        ch = self._channel_or_404(params["channel_id"])
        type_ = int(body.get("type") or PRIVATE_THREAD)
        self._require(ch, "create_public_threads" if type_ == PUBLIC_THREAD
                      else "create_private_threads")
        thread = self._new_thread(ch, body.get("name", ""), body, thread_id=None, type_=type_)
        return 201, self._channel_payload(thread)

    def _typing(self, *, params: dict[str, str], **_: Any) -> tuple[int, Any]:
        ch = self._channel_or_404(params["channel_id"])
        self._require(ch, "send_messages_in_threads" if ch.is_thread else "send_messages")
        return 204, None

    def _open_dm(self, *, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        user = self.users.get(int(body.get("recipient_id", 0)))
        if user is None:
            raise ApiError(400, 50035, "Invalid Form Body")
        return 200, self._channel_payload(self._dm_channel(user))

    # -- interaction responses ---------------------------------------------------------------
    def _interaction_for(self, params: dict[str, str], *, first: bool) -> Interaction:
        key = "interaction_id" if first else "application_id"
        inter = None
        if first:
            inter = self.interactions.get(int(params[key]))
        else:
            if int(params["application_id"]) == self.application_id:
                inter = next((i for i in self.interactions.values()
                              if i.token == params["token"]), None)
        if inter is None or inter.token != params["token"]:
            raise ApiError(404, 10015 if not first else 10062,
                           "Unknown Webhook" if not first else "Unknown interaction")
        age = time.monotonic() - (inter.sent_at or inter.created)
        if first and age > self.interaction_deadline_s:
            raise ApiError(404, 10062, "Unknown interaction")
        if not first and age > FOLLOWUP_WINDOW_S:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return inter

    def _callback(self, *, params: dict[str, str], query: dict[str, str], body: dict[str, Any],
                  **_: Any) -> tuple[int, Any]:
        inter = self._interaction_for(params, first=True)
        if inter.responded_at is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        rtype = int(body["type"])
        data = body.get("data") or {}
        if rtype == 9:  # refused before it counts as the answer, as Discord does
            if inter.type == 5:
                raise _form_error("type", "A modal cannot answer a modal submit.",
                                  "INTERACTION_RESPONSE_TYPE_INVALID")
            _check_modal(data)
        inter.responded_at = time.monotonic()
        inter.response_type = rtype
        channel = self._channel(inter.channel_id)
        assert channel is not None
        message: Message | None = None
        if rtype in (4, 5):  # a message (5: "thinking" until edited)
            self._check_message_body(data, creating=rtype == 4)
            flags = int(data.get("flags") or 0)
            if rtype == 5:
                flags |= MESSAGE_FLAG_LOADING
            message = self._create_message(
                channel, self.bot.id, content=data.get("content") or "",
                embeds=data.get("embeds"), components=data.get("components"),
                allowed_mentions=data.get("allowed_mentions"), flags=flags,
                type=CHAT_INPUT_COMMAND, interaction_id=inter.id, webhook_id=self.application_id,
            )
            inter.original_id = message.id
        elif rtype == 7 and inter.message_id is not None:  # update the component's message
            message = self.messages[inter.message_id]
            self._edit(message, data)
        elif rtype == 8:
            inter.choices = list(data.get("choices") or [])
        elif rtype == 9:
            inter.modal = data
        elif rtype != 6:
            raise _form_error("type", "Value must be one of {1, 4, 5, 6, 7, 8, 9, 10, 12}.")
        if query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        resource: dict[str, Any] = {"type": rtype}
        if message is not None:
            resource["message"] = self._rest_view(message)
        return 200, {
            "interaction": {
                "id": str(inter.id), "type": inter.type,
                "response_message_id": str(message.id) if message else None,
                "response_message_loading": rtype == 5,
                "response_message_ephemeral": bool(message and message.ephemeral),
            },
            "resource": resource,
        }

    def _webhook_message(self, inter: Interaction, message_id: str) -> Message:
        if message_id == "@original":
            if inter.original_id is None:
                raise ApiError(404, 10008, "Unknown Message")
            return self.messages[inter.original_id]
        msg = self.messages.get(int(message_id))
        if msg is None or msg.deleted or msg.interaction_id != inter.id:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def _get_webhook_message(self, *, params: dict[str, str], **_: Any) -> tuple[int, Any]:
        inter = self._interaction_for(params, first=False)
        return 200, self._rest_view(self._webhook_message(inter, params["message_id"]))

    def _patch_webhook_message(self, *, params: dict[str, str], body: dict[str, Any],
                               **_: Any) -> tuple[int, Any]:
        inter = self._interaction_for(params, first=False)
        msg = self._webhook_message(inter, params["message_id"])
        if msg.deleted:
            raise ApiError(404, 10008, "Unknown Message")
        self._edit(msg, body)
        return 200, self._rest_view(msg)

    def _delete_webhook_message(self, *, params: dict[str, str], **_: Any) -> tuple[int, Any]:
        inter = self._interaction_for(params, first=False)
        self._remove(self._webhook_message(inter, params["message_id"]))
        return 204, None

    def _followup(self, *, params: dict[str, str], query: dict[str, str], body: dict[str, Any],
                  **_: Any) -> tuple[int, Any]:
        inter = self._interaction_for(params, first=False)
        if inter.responded_at is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        channel = self._channel(inter.channel_id)
        assert channel is not None
        self._check_message_body(body, creating=True)
        msg = self._create_message(
            channel, self.bot.id, content=body.get("content") or "", embeds=body.get("embeds"),
            components=body.get("components"), allowed_mentions=body.get("allowed_mentions"),
            flags=int(body.get("flags") or 0), interaction_id=inter.id,
            webhook_id=self.application_id,
        )
        inter.followups.append(msg.id)
        if query.get("wait") in ("1", "true", "True"):
            return 200, self._rest_view(msg)
        return 204, None

    # -- the gateway -------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        # The ws:// URL the client dialled (aiohttp sees it as http://).
        url = f"ws://{request.host}{request.path_qs}"
        with self._lock:
            self.gateway_urls.append(url)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        conn = _Connection(ws, queue, url)
        session: Session | None = None
        writer = asyncio.ensure_future(self._writer(conn))
        await queue.put({"op": OP_HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(msg.data)
                op, data = payload.get("op"), payload.get("d")
                if op == OP_HEARTBEAT:
                    if self.ack_heartbeats:
                        await queue.put({"op": OP_HEARTBEAT_ACK})
                elif op == OP_IDENTIFY:
                    session = await self._identify(conn, data)
                elif op == OP_RESUME:
                    session = await self._resume(conn, data)
        finally:
            with self._lock:
                if session is not None and session.conn is conn:
                    session.conn = None
                    if not session.resumable:
                        self.sessions.pop(session.id, None)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _writer(self, conn: _Connection) -> None:
        while True:
            payload = await conn.queue.get()
            if payload is None or conn.ws.closed:
                return
            await conn.ws.send_str(json.dumps(payload))
            if payload.get("t") == "INTERACTION_CREATE":
                with self._lock:
                    inter = self.interactions.get(int(payload["d"]["id"]))
                    if inter is not None:
                        inter.sent_at = time.monotonic()

    async def _identify(self, conn: _Connection, data: dict[str, Any]) -> Session | None:
        if data.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return None
        intents = int(data.get("intents") or 0)
        if intents & INTENT_MESSAGE_CONTENT and not self.message_content_enabled:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        shard = tuple(data["shard"]) if data.get("shard") else None
        with self._lock:
            self.identifies += 1
            session = Session(uuid.uuid4().hex, intents, shard)  # type: ignore[arg-type]
            self.sessions[session.id] = session
            session.conn = conn
            guilds = [g for g in self.guilds.values() if session.wants(g.id)]
            ready: dict[str, Any] = {
                "v": 10, "user": {**self._user_payload(self.bot), "verified": True,
                                  "mfa_enabled": False, "email": None},
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "session_id": session.id, "session_type": "normal",
                "resume_gateway_url": self.resume_gateway_url,
                "application": {"id": str(self.application_id), "flags": self._app_flags()},
                "private_channels": [], "relationships": [], "presences": [],
                "guild_join_requests": [], "geo_ordered_rtc_regions": [], "user_settings": {},
            }
            if shard is not None:
                ready["shard"] = list(shard)
            self.readies += 1
            self._send_event(session, "READY", ready)
            for g in guilds:
                self._send_event(session, "GUILD_CREATE", self._guild_payload(g, session))
        return session

    async def _resume(self, conn: _Connection, data: dict[str, Any]) -> Session | None:
        with self._lock:
            session = self.sessions.get(str(data.get("session_id")))
            if (session is None or not session.resumable or data.get("token") != self.token
                    or session.conn is not None):
                if session is not None and session.conn is None:
                    self.sessions.pop(session.id, None)
                conn.queue.put_nowait({"op": OP_INVALID_SESSION, "d": False})
                return None
            seq = int(data.get("seq") or 0)
            for payload in session.events:
                if payload["s"] > seq:
                    conn.queue.put_nowait(payload)
            session.conn = conn
            session.resumes += 1
            self._send_event(session, "RESUMED", {})
        return session
