"""Who may run which app command; every cog takes its checks from here.

A moderator or admin command carries two guards: ``default_permissions`` hides it from
members in Discord's UI (server admins can change that per guild), and a runtime check
enforces the same permissions when the command runs, whatever a guild's overrides say. The
services re-check where it matters; these checks are about the Discord surface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import discord
from discord import app_commands

Access = Literal["mod", "admin"]

# Moderators manage messages (post briefs, read feedback); admins manage the server (sources,
# reindex). An administrator has every permission, so passes both.
MOD_PERMISSIONS = discord.Permissions(manage_messages=True)
ADMIN_PERMISSIONS = discord.Permissions(manage_guild=True)
PERMISSIONS: dict[Access, discord.Permissions] = {
    "mod": MOD_PERMISSIONS,
    "admin": ADMIN_PERMISSIONS,
}

T = TypeVar("T")


class NotAllowed(app_commands.CheckFailure):
    """The user lacks the permissions of a moderator or admin command."""

    def __init__(self, access: Access, why: str | None = None) -> None:
        who = "moderators" if access == "mod" else "admins"
        super().__init__(why or f"Only {who} can use this command.")
        self.access = access


SEVERAL_SERVERS = ("Admin commands are off while the bot is in several servers: its owner "
                   "sets NEWSBOT_ADMIN_GUILD_IDS to the server whose admins manage its "
                   "sources.")
OTHER_SERVER = "Sources are managed from the bot's home server, not from this one."


def admin_server_refusal(interaction: discord.Interaction[Any]) -> str | None:
    """Why admin commands do not run in this server, or None when they do.

    Sources and the store are shared by every server the bot is in, so the admins of any one
    server would manage them for all: they are managed from NEWSBOT_ADMIN_GUILD_IDS, else
    from NEWSBOT_DEV_GUILD_ID, else from the bot's only server. A bot left public in the
    developer portal can be added to a server by anyone, who is that server's admin.
    """
    settings = getattr(interaction.client, "settings", None)
    home = {g for g in getattr(settings, "admin_guild_ids", None) or [] if isinstance(g, int)}
    dev = getattr(settings, "dev_guild_id", None)
    if not home and isinstance(dev, int):
        home = {dev}
    if home:
        return None if interaction.guild_id in home else OTHER_SERVER
    guilds = getattr(interaction.client, "guilds", None)
    return SEVERAL_SERVERS if isinstance(guilds, Sequence) and len(guilds) > 1 else None


def allowed(access: Access, interaction: discord.Interaction[Any]) -> bool:
    """Whether the user of ``interaction`` has the permissions ``access`` requires, here:
    the permissions, or the role named by NEWSBOT_ADMIN_ROLE_ID / NEWSBOT_MODERATOR_ROLE_ID
    (admins pass moderator checks too); admin commands only in the bot's home server."""
    if interaction.guild is None:
        return False  # these commands act on a server; there is none in a DM
    if access == "admin" and admin_server_refusal(interaction) is not None:
        return False
    perms = interaction.permissions
    if perms.administrator or perms >= PERMISSIONS[access]:
        return True
    return _has_role(access, interaction)


def _has_role(access: Access, interaction: discord.Interaction[Any]) -> bool:
    """Whether the user holds the role NEWSBOT_ADMIN_ROLE_ID or (for ``mod``)
    NEWSBOT_MODERATOR_ROLE_ID names: such a role holds across the server."""
    settings = getattr(interaction.client, "settings", None)
    roles = {r.id for r in getattr(interaction.user, "roles", [])}
    wanted = {getattr(settings, "admin_role_id", None)}
    if access == "mod":
        wanted.add(getattr(settings, "moderator_role_id", None))
    return bool(roles & (wanted - {None}))


class NotAllowedThere(app_commands.CheckFailure):
    """The user may run the command, but not on that channel (or server-wide setting)."""


def require_in(access: Access, interaction: discord.Interaction[Any],
               channel: discord.abc.GuildChannel | None) -> None:
    """NotAllowedThere unless the user has ``access``'s permissions in ``channel`` (None:
    server-wide), not only in the channel the command was run from: Manage Messages granted
    in one channel makes a moderator of that channel, not of the others."""
    member = interaction.user
    if interaction.guild is None or not isinstance(member, discord.Member):
        raise NotAllowedThere("Only moderators can use this command.")
    perms = channel.permissions_for(member) if channel is not None else \
        member.guild_permissions
    if perms.administrator or perms >= PERMISSIONS[access] or _has_role(access, interaction):
        return
    who = "moderators" if access == "mod" else "admins"
    raise NotAllowedThere(f"Only {who} of {channel.mention} can do that there."
                          if channel is not None else
                          f"Only {who} of the whole server can do that.")


def predicate(access: Access) -> Callable[[discord.Interaction[Any]], bool]:
    """The runtime check for ``access``; tagged so tests can see which access a command has."""

    def check(interaction: discord.Interaction[Any]) -> bool:
        if not allowed(access, interaction):
            # An admin of another server is told where sources are managed.
            why = admin_server_refusal(interaction) if access == "admin" else None
            raise NotAllowed(access, why if why and interaction.guild else None)
        return True

    check.newsbot_access = access  # type: ignore[attr-defined]
    return check


def access_of(command: app_commands.Command[Any, ..., Any] | app_commands.Group) -> Access | None:
    """The access a command requires, read from its checks (None for member commands)."""
    for check in getattr(command, "checks", []):
        access = getattr(check, "newsbot_access", None)
        if access is not None:
            return access
    return None


def _restrict(access: Access) -> Callable[[T], T]:
    def decorator(func: T) -> T:
        func = app_commands.guild_only()(func)  # type: ignore[arg-type]
        func = app_commands.default_permissions(PERMISSIONS[access])(func)  # type: ignore[arg-type]
        return app_commands.check(predicate(access))(func)  # type: ignore[arg-type,return-value]

    return decorator


def is_mod() -> Callable[[T], T]:
    """Moderator command: hidden from members by default and enforced at run time.

    On a subcommand, put ``group_kwargs("mod")`` on its group as well: Discord reads default
    permissions from the top-level command only.
    """
    return _restrict("mod")


def is_admin() -> Callable[[T], T]:
    """Admin command: hidden from members by default and enforced at run time."""
    return _restrict("admin")


def actor(interaction: discord.Interaction[Any]) -> Any:
    """The core's view of who runs a command, for the services' own re-check."""
    from bot.core.operations import Actor

    return Actor(name=f"discord user {interaction.user.id}",
                 mod=allowed("mod", interaction), admin=allowed("admin", interaction))


def group_kwargs(access: Access) -> dict[str, Any]:
    """Keyword arguments for an ``app_commands.Group`` whose commands all need ``access``."""
    return {"guild_only": True, "default_permissions": PERMISSIONS[access]}
