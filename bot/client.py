"""The Discord client: a thin shell around the core services.

The entry point builds the services and passes them in (discord.py's advanced_startup
pattern); ``setup_hook`` loads the cogs, registers the persistent feedback view and syncs app
commands to the development guild. Global sync only happens on request (``newsbot sync`` or
the owner's ``@newsbot sync global``), because it takes up to an hour to reach every guild
and is rate limited.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.core.models import NewsbotError
from bot.views import FeedbackButton, FeedbackView

if TYPE_CHECKING:
    from bot.core.services import Services
    from bot.service import NewsService
    from bot.settings import Settings

log = logging.getLogger(__name__)

EXTENSIONS = ("bot.cogs.ask", "bot.cogs.meta", "bot.cogs.admin", "bot.cogs.briefs")
NO_MENTIONS = discord.AllowedMentions.none()
GENERIC_FAILURE = "Sorry, something went wrong there; it has been logged."
# What sending an answer needs, the most likely culprit of a 403 first.
SEND_PERMISSIONS = ("send_messages", "embed_links", "read_message_history")
THREAD_SEND_PERMISSIONS = ("send_messages_in_threads", "embed_links", "read_message_history")


def make_intents(*, message_content: bool) -> discord.Intents:
    """The fewest intents that work: slash commands need none, mentions and replies need
    guild messages; message content only adds follow-ups in threads without a mention."""
    intents = discord.Intents.none()
    intents.guilds = True  # channels, threads and permissions in the cache
    intents.guild_messages = True  # mentions, replies and messages in the bot's threads
    intents.message_content = message_content
    return intents


def one_line(text: str, limit: int = 300) -> str:
    """A failure as one short line for a user."""
    line = " ".join(str(text).split()) or GENERIC_FAILURE
    return line if len(line) <= limit else line[: limit - 1] + "…"


class NewsTree(app_commands.CommandTree["NewsBot"]):
    """Turns app-command failures into one short ephemeral line; tracebacks go to the log."""

    async def on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        name = interaction.command.qualified_name if interaction.command else "?"
        await tell_failure(interaction, error, f"app command /{name}")


async def tell_failure(interaction: discord.Interaction[Any], error: BaseException,
                       what: str) -> None:
    """A failed command, button or form as one short ephemeral line (a refusal says why);
    tracebacks go to the log."""
    original = getattr(error, "original", error)
    if isinstance(error, app_commands.CheckFailure) or isinstance(original, NewsbotError):
        line = one_line(str(original))
    elif isinstance(original, discord.Forbidden) and interaction.channel is not None:
        bot = interaction.client
        if isinstance(bot, NewsBot):
            bot.log_forbidden(interaction.channel, bot.missing_permission(interaction.channel))
        line = "I lack a permission in this channel; the server's admins can see which."
    else:
        log.error("%s failed", what, exc_info=original)
        line = GENERIC_FAILURE
    await send_ephemeral(interaction, line)


async def send_ephemeral(interaction: discord.Interaction[Any], line: str) -> None:
    """One ephemeral line, whether or not the interaction was already answered."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(line, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(
                line, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
    except discord.HTTPException:
        log.warning("could not tell the user: %s", line)


class NewsBot(commands.Bot):
    """The bot, built with its services; holds no clients of its own."""

    def __init__(
        self,
        services: Services,
        *,
        message_content: bool = False,
        sync_dev_guild: bool = True,
        intents: discord.Intents | None = None,
        service: NewsService | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            # Text commands are for the owner only (``@newsbot sync``); a mention gives the
            # message content even without the privileged intent.
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents or make_intents(message_content=message_content),
            allowed_mentions=NO_MENTIONS,
            tree_cls=NewsTree,
            **options,
        )
        self.services = services
        # The running service (feed watcher, one-at-a-time writes); None when only syncing.
        self.service = service
        self.sync_dev_guild = sync_dev_guild
        self.feedback_view = FeedbackView(services)
        self._forbidden_logged: set[tuple[int, str]] = set()

    @property
    def settings(self) -> Settings:
        return self.services.settings

    async def setup_hook(self) -> None:
        for name in EXTENSIONS:
            await self.load_extension(name)
        # Registered by custom id: buttons on answers from before a restart work too.
        self.add_dynamic_items(FeedbackButton)
        guild_id = self.settings.dev_guild_id
        if guild_id and self.sync_dev_guild:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d app commands to the development guild %s", len(synced), guild_id)

    async def on_ready(self) -> None:
        log.info("connected as %s to %d guilds", self.user, len(self.guilds))

    async def close(self) -> None:
        """Finish the answers being written (see ``Ask.wind_down``), then disconnect."""
        ask = self.get_cog("Ask")
        if ask is not None and not self.is_closed():
            try:
                await ask.wind_down()  # type: ignore[attr-defined]
            except Exception:  # stopping goes on regardless
                log.exception("finishing the answers in progress at the stop failed")
        await super().close()

    # -- owner text commands -----------------------------------------------------------------
    async def owner_command(self, message: discord.Message) -> commands.Context[NewsBot] | None:
        """The context of an owner's text command in ``message``, or None: every other mention
        is a question for the ask cog."""
        if message.author.bot:
            return None
        ctx = await self.get_context(message)
        if ctx.valid and await self.is_owner(message.author):
            return ctx
        return None

    async def process_commands(self, message: discord.Message) -> None:
        ctx = await self.owner_command(message)
        if ctx is not None:
            await self.invoke(ctx)

    async def on_command_error(
        self, context: commands.Context[NewsBot], exception: commands.CommandError, /
    ) -> None:
        log.error("text command %s failed", context.command, exc_info=exception)

    # -- permissions -------------------------------------------------------------------------
    def missing_permission(self, channel: Any, wanted: Iterable[str] | None = None) -> str:
        """The first of ``wanted`` the bot lacks in ``channel`` by the cache's reckoning; when
        the cache shows none missing, the permission the action needs most (the first)."""
        if wanted is None:
            is_thread = isinstance(channel, discord.Thread)
            wanted = THREAD_SEND_PERMISSIONS if is_thread else SEND_PERMISSIONS
        wanted = tuple(wanted)
        guild = getattr(channel, "guild", None)
        me = guild.me if guild is not None else None
        if me is not None and hasattr(channel, "permissions_for"):
            perms = channel.permissions_for(me)
            # Without view_channel every other permission reads as missing too: name it first.
            for name in ("view_channel", *wanted):
                if not getattr(perms, name, True):
                    return name
        return wanted[0]

    def log_forbidden(self, channel: Any, permission: str) -> None:
        """Log a 403 once per channel and permission (a thread counts as its channel: the
        permission comes from there); the bot carries on."""
        if isinstance(channel, discord.Thread) and channel.parent is not None:
            channel = channel.parent
        key = (getattr(channel, "id", 0), permission)
        if key in self._forbidden_logged:
            return
        self._forbidden_logged.add(key)
        guild = getattr(channel, "guild", None)
        log.warning(
            "missing permission %s in #%s (channel %s, guild %s); carrying on without it",
            permission,
            getattr(channel, "name", "?"),
            key[0],
            getattr(guild, "name", "?"),
        )


class ShardedNewsBot(NewsBot, commands.AutoShardedBot):
    """NewsBot over several shards (``NEWSBOT_SHARDS``): one process, many gateway sessions."""


def create_bot(services: Services, **kwargs: Any) -> NewsBot:
    """A NewsBot, sharded when ``settings.shards`` asks for it ("auto": Discord decides)."""
    shards = services.settings.shards
    if shards is None:
        return NewsBot(services, **kwargs)
    count = None if shards == "auto" else int(shards)
    return ShardedNewsBot(services, shard_count=count, **kwargs)


# -- entry points for the CLI --------------------------------------------------------------------


def _token(settings: Settings) -> str | None:
    secret = settings.discord_token
    value = secret.get_secret_value().strip() if secret is not None else ""
    return value or None


def _fail(line: str, code: int = 2) -> int:
    print(f"newsbot: {line}", file=sys.stderr)
    return code


def _unreachable(exc: BaseException) -> int:
    """One line for a Discord (or proxy) that cannot be reached; exit code 1."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return _fail(f"cannot reach Discord at {discord.http.Route.BASE}: {reason}. Check the "
                 "network, or NEWSBOT_DISCORD_API_BASE if a proxy is set.", 1)


# Raised when Discord (or the proxy in front of it) cannot be reached at all.
UNREACHABLE = (aiohttp.ClientConnectionError, OSError, asyncio.TimeoutError)


MISSING_TOKEN = (
    "DISCORD_TOKEN is not set: put the bot's token in the environment or in .env "
    "(Discord developer portal > your application > Bot > Token)."
)
BAD_TOKEN = "DISCORD_TOKEN was rejected by Discord: check the token (it may have been reset)."


def use_endpoints(settings: Settings) -> None:
    """Point discord.py at the REST base and gateway the settings name, if any (a REST proxy
    in front of Discord, or a local server in tests). Call before connecting."""
    if settings.discord_api_base:
        discord.http.Route.BASE = settings.discord_api_base
    if settings.discord_gateway_url:
        # aiohttp's URL type: discord.py adds the query (version, encoding) to it.
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def _setup_logging() -> None:
    # The CLI may have configured logging already; do not add a second handler.
    if not logging.getLogger().handlers:
        discord.utils.setup_logging()
    # A text bot has no use for voice: no warnings at every start that its libraries are absent.
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


async def _message_content_enabled(token: str) -> bool:
    """Whether the application may use the message content intent (portal setting); asked
    before connecting, because requesting a privileged intent not enabled fails the login."""
    # The guilds intent only so discord.py does not warn that it is off: this client never
    # connects to the gateway.
    probe = discord.Client(intents=discord.Intents(guilds=True))
    async with probe:
        await probe.login(token)
        info = await probe.application_info()
    flags = info.flags
    return flags.gateway_message_content or flags.gateway_message_content_limited


async def _run(services: Services, token: str) -> int:
    from bot.service import NewsService, stop_on_signals

    try:
        content = await _message_content_enabled(token)
    except discord.LoginFailure:
        return _fail(BAD_TOKEN)
    except UNREACHABLE as exc:
        return _unreachable(exc)
    if not content:
        log.info(
            "the message content intent is off: answering slash commands, mentions and replies "
            "(enable it in the developer portal for follow-ups in threads without a mention)"
        )
    service = NewsService(services)
    await service.start()
    stop = asyncio.Event()
    stop_on_signals(stop)
    try:
        bot = create_bot(services, message_content=content, service=service)
        async with bot:
            runner = asyncio.ensure_future(bot.start(token))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not runner.done():
                log.info("stopping")
                await bot.close()
            try:
                await runner
            except discord.LoginFailure:
                return _fail(BAD_TOKEN)
            except discord.PrivilegedIntentsRequired:
                return _fail("Discord refused the message content intent; enable it or try "
                             "again.")
            except UNREACHABLE as exc:
                return _unreachable(exc)
    finally:
        await service.stop()
    return 0


def run_bot(services: Services) -> int:
    """``newsbot run``: the service plus Discord, until SIGTERM or Ctrl-C. Returns the exit
    code (2 when DISCORD_TOKEN is missing or rejected)."""
    token = _token(services.settings)
    if token is None:
        services.close()
        return _fail(MISSING_TOKEN)
    _setup_logging()
    use_endpoints(services.settings)
    try:
        return asyncio.run(_run(services, token))
    except KeyboardInterrupt:
        return 0


class CommandsOnly:
    """Stands in for the services where only the commands' declarations are needed (``newsbot
    sync``): the settings, and nothing that opens the vector store, which a running bot may
    hold."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"services.{name} is not available while syncing commands")


async def _sync(settings: Settings, token: str) -> int:
    bot = create_bot(CommandsOnly(settings), sync_dev_guild=False)  # type: ignore[arg-type]
    async with bot:
        try:
            await bot.login(token)  # HTTP only: no gateway connection is needed to sync
            synced = await bot.tree.sync()
        except discord.LoginFailure:
            return _fail(BAD_TOKEN)
        except UNREACHABLE as exc:
            return _unreachable(exc)
        finally:
            # Cogs' background loops stop with their cogs; nothing here should run them.
            for name in list(bot.extensions):
                await bot.unload_extension(name)
    print(
        f"Synced {len(synced)} app commands globally: "
        + ", ".join(f"/{c.name}" for c in synced)
        + ". Discord may take up to an hour to show them everywhere."
    )
    return 0


def sync_commands(settings: Settings) -> int:
    """``newsbot sync``: publish the app commands to every guild, without opening the store.
    Returns the exit code."""
    token = _token(settings)
    if token is None:
        return _fail(MISSING_TOKEN)
    _setup_logging()
    use_endpoints(settings)
    return asyncio.run(_sync(settings, token))
