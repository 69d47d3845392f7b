"""Fixtures for tests against the local Discord (tests/support/discord_server.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import discord
import pytest
import pytest_asyncio
import yarl

from tests.support.discord_server import LocalDiscord


@pytest.fixture
def local_discord() -> Iterator[LocalDiscord]:
    """A fresh local Discord with one guild (#general) for one test."""
    with LocalDiscord() as server:
        server.add_guild("Newsroom")
        yield server


@pytest.fixture
def point_discord_py(local_discord: LocalDiscord, monkeypatch: pytest.MonkeyPatch) -> LocalDiscord:
    """discord.py in this process talks to the local Discord."""
    monkeypatch.setattr(discord.http.Route, "BASE", local_discord.api_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                        yarl.URL(local_discord.gateway_url))
    return local_discord


class Probe(discord.Client):
    """A bare discord.py client that remembers what the gateway delivered."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("intents", discord.Intents(guilds=True, guild_messages=True,
                                                      dm_messages=True))
        # The local Discord sends every guild at once; no need to wait 2 s for more.
        options.setdefault("guild_ready_timeout", 0.05)
        super().__init__(**options)
        self.received: list[discord.Message] = []
        self.edited: list[discord.Message] = []
        self.interactions: list[discord.Interaction[Any]] = []
        self.readies = 0
        self.resumes = 0
        self.on_interaction_hook: Any = None

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass  # discord.py waits 5 s before identifying again; nothing here needs it

    async def on_ready(self) -> None:
        self.readies += 1

    async def on_resumed(self) -> None:
        self.resumes += 1

    async def on_message(self, message: discord.Message) -> None:
        self.received.append(message)

    async def on_message_edit(self, before: discord.Message, after: discord.Message) -> None:
        self.edited.append(after)

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        self.interactions.append(interaction)
        if self.on_interaction_hook is not None:
            await self.on_interaction_hook(interaction)


async def start_probe(server: LocalDiscord, **options: Any) -> Probe:
    """A Probe logged in and READY against ``server``."""
    probe = Probe(**options)
    await probe.login(server.token)
    probe._newsbot_task = asyncio.create_task(probe.connect())  # type: ignore[attr-defined]
    await server.wait_async(lambda: probe.readies or probe._newsbot_task.done(),  # type: ignore[attr-defined]
                            what="the probe to be ready")
    if probe._newsbot_task.done():  # type: ignore[attr-defined]
        probe._newsbot_task.result()  # type: ignore[attr-defined]
    return probe


async def stop_probe(probe: Probe) -> None:
    await probe.close()
    task = getattr(probe, "_newsbot_task", None)
    if task is not None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, 5)


@pytest_asyncio.fixture
async def probe(point_discord_py: LocalDiscord) -> AsyncIterator[Probe]:
    client = await start_probe(point_discord_py)
    try:
        yield client
    finally:
        await stop_probe(client)


# -- newsbot run as a subprocess -----------------------------------------------------------------
from pathlib import Path  # noqa: E402

from tests.support.bot_process import prepare_sample_data  # noqa: E402


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the bundled sample articles, embedded by the real local model;
    copy it (``copy_data``) for each bot."""
    return prepare_sample_data(tmp_path_factory.mktemp("e2e") / "template")
