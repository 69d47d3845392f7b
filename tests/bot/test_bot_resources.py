"""The running bot keeps nothing per answer that it never lets go of."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from bot.views import DOWN_ID, UP_ID
from tests.bot.conftest import LocalNewsBot, OnDiscord

QUESTION = "when did Notre-Dame reopen?"


async def test_answers_leave_no_per_message_state_and_their_buttons_still_vote(
        start_on_discord: Callable[..., Awaitable[OnDiscord]]) -> None:
    world = await start_on_discord(answer_in_threads=False)
    member = world.member("ana")
    answers = []
    for _ in range(6):
        question = world.server.say(member, world.news, world.mention(QUESTION))
        answers.append(await world.answer_to(question))
    # discord.py keeps a view sent with a message for that message id until the view stops,
    # which a view with no timeout never does: one entry per answer, for the process's life.
    store: Any = world.bot._connection._view_store
    assert not store._synced_message_views
    assert set(store._views) <= {None}

    # The buttons on an answer record a vote, by the message they are on.
    first = world.server.click(member, answers[0], UP_ID)
    await world.wait(lambda: world.server.responses(first), "the first vote's reply")
    assert "noted 👍" in world.server.responses(first)[0].content

    # A new client on the same data, with no message cache and nothing sent: the buttons on
    # answers from before it started still vote, as they do after a restart.
    await world.bot.close()
    again = LocalNewsBot(world.services, guild_ready_timeout=0.05)
    await again.login(world.server.token)
    running = asyncio.create_task(again.connect())
    try:
        await world.wait(lambda: again.is_ready() or running.done(), "the new client")
        assert not running.done()
        assert not again.cached_messages
        last = world.server.click(world.member("ben"), answers[-1], DOWN_ID)
        await world.wait(lambda: world.server.responses(last), "the second vote's reply")
        assert "noted 👎" in world.server.responses(last)[0].content
    finally:
        await again.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(running, 5)
    stats = world.services.feedback.stats()
    assert (stats.up, stats.down) == (1, 1)
