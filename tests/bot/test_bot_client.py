"""The client: start-up, intents, sharding, cogs and their checks, persistent views."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from bot import checks, client
from bot.client import NewsBot, ShardedNewsBot, create_bot, run_bot, sync_commands
from bot.core.services import Services
from bot.views import DOWN_ID, UP_ID, FeedbackView
from tests.fakes import make_services

# Commands that need more than membership, and who may run them.
RESTRICTED = {"feedback stats": "mod", "feeds add": "admin", "feeds remove": "admin",
              "feeds list": "admin", "reindex": "admin", "brief post": "mod",
              "brief subscribe": "mod", "brief unsubscribe": "mod", "brief list": "mod",
              "brief timezone": "mod"}


@pytest.fixture
def bare_services(tmp_path: Path) -> Iterator[Services]:
    svc = make_services(tmp_path / "data", sample=False)
    try:
        yield svc
    finally:
        svc.close()


def _interaction(bot: NewsBot, message_id: int, user_id: int = 7) -> Any:
    it = mock.create_autospec(discord.Interaction, instance=True, spec_set=True)
    it.client = bot
    it.user = mock.create_autospec(discord.Member, instance=True, spec_set=True)
    it.user.id = user_id
    it.message = mock.create_autospec(discord.Message, instance=True, spec_set=True)
    it.message.id = message_id
    it.message.components = [discord.ActionRow(row)  # type: ignore[arg-type]
                             for row in FeedbackView(bot.services).to_components()]
    it.message.flags = discord.MessageFlags()
    it.data = {"custom_id": UP_ID, "component_type": 2}
    it.response = mock.create_autospec(discord.InteractionResponse, instance=True, spec_set=True)
    it.response.is_done.return_value = False
    it.followup = mock.create_autospec(discord.Webhook, instance=True, spec_set=True)
    return it


# -- start -----------------------------------------------------------------------------------


def test_run_without_token_exits_2_naming_the_setting(
    bare_services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bare_services.settings.discord_token is None
    assert run_bot(bare_services) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DISCORD_TOKEN" in err
    assert sync_commands(bare_services.settings) == 2
    assert "DISCORD_TOKEN" in capsys.readouterr().err


def test_blank_token_counts_as_missing(
    bare_services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    from pydantic import SecretStr

    bare_services.settings.discord_token = SecretStr("   ")
    assert run_bot(bare_services) == 2
    assert "DISCORD_TOKEN" in capsys.readouterr().err


def test_rejected_token_exits_2(
    bare_services: Services, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import SecretStr

    async def rejected(token: str) -> bool:
        raise discord.LoginFailure("Improper token has been passed.")

    monkeypatch.setattr(client, "_message_content_enabled", rejected)
    bare_services.settings.discord_token = SecretStr("not-a-token")
    assert run_bot(bare_services) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DISCORD_TOKEN was rejected" in err


def test_intents_are_minimal(bare_services: Services) -> None:
    intents = NewsBot(bare_services).intents
    assert intents.guilds and intents.guild_messages
    assert not intents.message_content and not intents.members and not intents.presences
    assert not intents.dm_messages and not intents.guild_reactions and not intents.voice_states
    assert NewsBot(bare_services, message_content=True).intents.message_content


def test_shards_choose_the_client(bare_services: Services) -> None:
    settings = bare_services.settings
    single = create_bot(bare_services)
    assert type(single) is NewsBot and not isinstance(single, discord.AutoShardedClient)
    settings.shards = 3
    sharded = create_bot(bare_services)
    assert isinstance(sharded, ShardedNewsBot) and isinstance(sharded, commands.AutoShardedBot)
    assert sharded.shard_count == 3
    settings.shards = "auto"
    assert create_bot(bare_services).shard_count is None  # Discord recommends the count


def test_bot_sends_no_mentions_by_default(bare_services: Services) -> None:
    allowed = NewsBot(bare_services).allowed_mentions
    assert allowed is not None and allowed.to_dict() == {"parse": []}


async def test_setup_hook_syncs_to_the_dev_guild_only(bare_services: Services) -> None:
    bare_services.settings.dev_guild_id = 4242
    bot = NewsBot(bare_services)
    with mock.patch.object(bot.tree, "sync", autospec=True, return_value=[]) as sync:
        await bot.setup_hook()
    sync.assert_awaited_once()
    assert sync.await_args.kwargs["guild"].id == 4242  # type: ignore[union-attr]
    assert bot.tree.get_commands(guild=discord.Object(4242))  # the commands were copied there

    quiet = NewsBot(bare_services, sync_dev_guild=False)  # ``newsbot sync`` syncs globally
    with mock.patch.object(quiet.tree, "sync", autospec=True, return_value=[]) as sync:
        await quiet.setup_hook()
    sync.assert_not_awaited()

    bare_services.settings.dev_guild_id = None
    nothing = NewsBot(bare_services)
    with mock.patch.object(nothing.tree, "sync", autospec=True, return_value=[]) as sync:
        await nothing.setup_hook()
    sync.assert_not_awaited()


# -- cogs and checks ---------------------------------------------------------------------------


def _walk(
    cmds: list[app_commands.Command[Any, ..., Any] | app_commands.Group],
) -> Iterator[app_commands.Command[Any, ..., Any]]:
    for cmd in cmds:
        if isinstance(cmd, app_commands.Group):
            yield from _walk(cmd.commands)
        else:
            yield cmd


async def test_every_cog_loads_with_unique_names_and_checked_restricted_commands(
    bare_services: Services,
) -> None:
    bot = NewsBot(bare_services)
    await bot.setup_hook()
    assert {ext for ext in bot.extensions} == set(client.EXTENSIONS)

    top = [c.name for c in bot.tree.get_commands()]
    assert len(top) == len(set(top))
    leaves = list(_walk(bot.tree.get_commands()))
    names = [c.qualified_name for c in leaves]
    assert len(names) == len(set(names))
    assert {"ask", "sources", "status", "feedback stats"} <= set(names)

    for cmd in leaves:
        access = checks.access_of(cmd)
        assert access == RESTRICTED.get(cmd.qualified_name), cmd.qualified_name
        if access is None:
            continue
        root = cmd.root_parent or cmd
        # Hidden from members in Discord's UI ...
        assert root.default_permissions is not None
        assert root.default_permissions >= checks.PERMISSIONS[access]
        assert root.guild_only
        # ... and enforced when run.
        assert len(cmd.checks) == 1

    text = [c.qualified_name for c in bot.walk_commands()]
    assert text == ["sync"]
    assert all(
        any("is_owner" in getattr(p, "__qualname__", "") for p in c.checks)
        for c in bot.walk_commands()
    )


@pytest.mark.parametrize(
    ("perms", "mod", "admin"),
    [
        (discord.Permissions(send_messages=True), False, False),
        (discord.Permissions(manage_messages=True), True, False),
        (discord.Permissions(manage_guild=True), False, True),
        (discord.Permissions(administrator=True), True, True),
    ],
)
def test_access_levels(perms: discord.Permissions, mod: bool, admin: bool) -> None:
    it = mock.create_autospec(discord.Interaction, instance=True, spec_set=True)
    it.guild = mock.create_autospec(discord.Guild, instance=True, spec_set=True)
    it.permissions = perms
    assert checks.allowed("mod", it) is mod
    assert checks.allowed("admin", it) is admin


# -- feedback across a restart ------------------------------------------------------------------


async def test_feedback_buttons_work_after_a_restart(tmp_path: Path) -> None:
    from bot.core.models import Answer

    data = tmp_path / "data"
    before = make_services(data, sample=False)
    answer = Answer(
        text="An answer [1].",
        sources=[],
        abstained=False,
        mode="extractive",
        question="What happened?",
    )
    before.feedback.record_answer(message_id=1234, channel_id=1, user_id=2, answer=answer)
    before.close()

    # A new process: new services on the same data, a new bot, no message cache.
    after = make_services(data, sample=False)
    try:
        bot = NewsBot(after)
        await bot.setup_hook()
        view = bot.feedback_view
        assert isinstance(view, FeedbackView) and view.timeout is None
        assert {item.custom_id for item in view.children} == {UP_ID, DOWN_ID}  # type: ignore[attr-defined]

        # Discord sends a click with its custom id and the message it is on (with the message's
        # buttons); the buttons registered at start answer it.
        store = bot._connection._view_store
        click = _interaction(bot, message_id=1234)
        store.dispatch_view(2, UP_ID, click)
        await _drain(store)
        click.response.send_message.assert_awaited_once()
        assert "noted 👍" in click.response.send_message.await_args.args[0]
        assert click.response.send_message.await_args.kwargs["ephemeral"] is True
        assert after.feedback.stats().up == 1

        stranger = _interaction(bot, message_id=999)
        store.dispatch_view(2, DOWN_ID, stranger)
        await _drain(store)
        assert "no longer on record" in stranger.response.send_message.await_args.args[0]
        assert after.feedback.stats().down == 0
    finally:
        after.close()


async def _drain(store: Any) -> None:
    import asyncio

    for _ in range(100):
        tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("discord-ui-")]
        if not tasks:
            return
        await asyncio.gather(*tasks)


# -- failures ---------------------------------------------------------------------------------


def test_forbidden_is_logged_once_per_channel_and_permission(
    bare_services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    bot = NewsBot(bare_services)
    channel = mock.create_autospec(discord.TextChannel, instance=True, spec_set=True)
    channel.id, channel.name, channel.guild = 5, "news", None
    with caplog.at_level(logging.WARNING, logger="bot.client"):
        bot.log_forbidden(channel, "send_messages")
        bot.log_forbidden(channel, "send_messages")
        bot.log_forbidden(channel, "embed_links")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "send_messages" in lines[0] and "#news" in lines[0]


async def test_tree_error_is_one_line_and_a_logged_traceback(
    bare_services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    bot = NewsBot(bare_services)
    it = _interaction(bot, message_id=1)
    it.channel = None
    it.command = None
    boom = app_commands.CommandInvokeError(mock.Mock(), RuntimeError("boom"))  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR):
        await bot.tree.on_error(it, boom)
    it.response.send_message.assert_awaited_once()
    assert it.response.send_message.await_args.args[0] == client.GENERIC_FAILURE
    assert it.response.send_message.await_args.kwargs["ephemeral"] is True
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)


def test_discord_endpoints_are_checked_and_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    from bot.settings import Settings

    with pytest.raises(ValidationError, match="http"):
        Settings(data_dir=tmp_path, discord_api_base="ftp://proxy/api/v10")
    with pytest.raises(ValidationError, match="ws://"):
        Settings(data_dir=tmp_path, discord_gateway_url="http://proxy/gateway")
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    settings = Settings(data_dir=tmp_path, discord_api_base="http://127.0.0.1:9/api/v10/",
                        discord_gateway_url="ws://127.0.0.1:9/gateway")
    client.use_endpoints(settings)
    assert discord.http.Route("GET", "/users/@me").url == "http://127.0.0.1:9/api/v10/users/@me"
    assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:9/gateway"


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def restore_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)


def test_run_and_sync_with_discord_unreachable_say_one_line(
    bare_services: Services, capsys: pytest.CaptureFixture[str], restore_endpoints: None,
) -> None:
    from pydantic import SecretStr

    settings = bare_services.settings
    settings.discord_token = SecretStr("a-token")
    settings.discord_api_base = f"http://127.0.0.1:{_closed_port()}/api/v10"
    for run in (lambda: sync_commands(settings), lambda: run_bot(bare_services)):
        code = run()
        err = capsys.readouterr().err
        assert code == 1, err
        lines = [line for line in err.splitlines() if line.startswith("newsbot:")]
        assert len(lines) == 1 and lines[0].startswith(
            f"newsbot: cannot reach Discord at {settings.discord_api_base}: ")
        assert "Traceback" not in err


def test_sync_does_not_open_the_store(
    bare_services: Services, capsys: pytest.CaptureFixture[str], restore_endpoints: None,
) -> None:
    from pydantic import SecretStr

    from tests.support.discord_server import LocalDiscord

    # bare_services holds the embedded store's lock, as a running bot would.
    settings = bare_services.settings
    with LocalDiscord() as server:
        settings.discord_token = SecretStr(server.token)
        settings.discord_api_base = server.api_base
        assert sync_commands(settings) == 0
        synced = sorted(c.name for c in server.commands.values() if c.guild_id is None)
    assert {"ask", "sources", "status"} <= set(synced)
    assert "Synced" in capsys.readouterr().out


def test_asks_since_option_names_every_word_it_takes() -> None:
    # The option's help is all a member reads before typing: the words the refusal names
    # ("use YYYY-MM-DD, today, yesterday, week, month or year") are all in it.
    from bot.cogs.ask import Ask

    assert isinstance(Ask.ask, app_commands.Command)
    (since,) = [p for p in Ask.ask.parameters if p.name == "since"]
    for word in ("today", "yesterday", "week", "month", "year"):
        assert word in since.description, word
    assert len(since.description) <= 100  # Discord's limit for an option's description
