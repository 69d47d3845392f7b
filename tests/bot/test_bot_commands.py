"""App commands called with a spec'd Interaction (``spec_set``: a wrong attribute fails)."""

from __future__ import annotations

import logging
from typing import Any

import discord
import pytest

from bot import checks
from bot.client import GENERIC_FAILURE
from bot.cogs.ask import BUSY
from bot.core.models import StoreError, Turn
from bot.views import DOWN_ID, UP_ID
from tests.bot.discord_double import Harness, make_interaction, no_mentions

NETFLIX_Q = "what did Netflix use generative AI for in The Eternaut?"


def cog(h: Harness, name: str) -> Any:
    found = h.bot.get_cog(name)
    assert found is not None
    return found


def spy(obj: Any, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    real = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    setattr(obj, name, wrapper)
    return calls


async def ask(h: Harness, question: str, **options: Any) -> Any:
    rec = make_interaction(h)
    ask_cog = cog(h, "Ask")
    await ask_cog.ask.callback(ask_cog, rec.interaction, question, **options)
    return rec


async def test_ask_defers_then_answers_with_sources_buttons_and_a_thread(harness: Harness) -> None:
    h = harness
    rec = await ask(h, NETFLIX_Q)
    rec.interaction.response.defer.assert_awaited_once_with(thinking=True)
    msg = rec.original
    assert msg is not None and not rec.ephemeral and not rec.deleted
    [embed] = msg.embeds
    assert embed.title == NETFLIX_Q
    assert "building collapsing" in (embed.description or "")
    assert embed.fields[0].name == "Sources"
    assert {c.custom_id for row in msg.components for c in row.children} == {UP_ID, DOWN_ID}  # type: ignore[attr-defined]
    assert all(no_mentions(s.payload) for s in h.http.sent)
    # Recorded for feedback under the message that carries the buttons.
    assert h.services.feedback.vote(message_id=msg.id, user_id=9, value=1)

    # The answer opens a thread; a member's message there is a follow-up with the history.
    thread = h.thread(msg.id)
    assert thread.owner_id == h.me.id
    calls = spy(h.services.ask, "ask")
    await h.say("How much faster was that sequence finished?", channel=thread)
    history = calls[0][1]["history"]
    assert history[0] == Turn("user", NETFLIX_Q)  # the /ask question, from the answer's title
    assert history[1].role == "assistant" and "building collapsing" in history[1].text
    answer = h.message(h.http.sent[-1].message_id)
    assert "ten times faster" in (answer.embeds[0].description or "")


async def test_ask_without_threads_answers_in_place(harness: Harness) -> None:
    h = harness
    h.services.settings.answer_in_threads = False
    rec = await ask(h, NETFLIX_Q)
    assert rec.original is not None
    assert list(h.guild.threads) == []


@pytest.mark.parametrize("question", ["", "   ", "\u200b\u200c\u200d\ufeff", "?!"])
async def test_ask_refuses_empty_questions_without_touching_the_store(
    harness: Harness, question: str
) -> None:
    h = harness
    searched = spy(h.services.retriever, "search")
    rec = await ask(h, question)
    assert len(rec.ephemeral) == 1 and "no words" in rec.ephemeral[0]
    rec.interaction.response.defer.assert_not_awaited()
    assert searched == []


async def test_ask_too_long_question_is_one_ephemeral_line(harness: Harness) -> None:
    h = harness
    limit = h.services.settings.max_question_chars
    rec = await ask(h, "x" * (limit + 1))
    [line] = rec.ephemeral
    assert f"the limit is {limit}" in line and "\n" not in line


async def test_ask_since_and_source_options_reach_the_core(harness: Harness) -> None:
    h = harness
    calls = spy(h.services.ask, "ask")
    await ask(h, NETFLIX_Q, since="2025-01-01", source="Sample Wire")
    kwargs = calls[0][1]
    # As typed: the core reads it in the server's time zone.
    assert kwargs["since"] == "2025-01-01" and kwargs["guild_id"] is not None
    assert kwargs["outlet"] == "Sample Wire"
    calls.clear()
    await ask(h, NETFLIX_Q, since=" week ")
    assert calls[0][1]["since"] == "week"


async def test_ask_bad_since_is_refused(harness: Harness) -> None:
    h = harness
    calls = spy(h.services.ask, "ask")
    rec = await ask(h, NETFLIX_Q, since="the day before never")
    assert len(rec.ephemeral) == 1 and calls == []


async def test_ask_cooldown_and_busy_are_ephemeral(harness: Harness) -> None:
    h = harness
    h.services.settings.user_cooldown_s = 60
    await ask(h, NETFLIX_Q)
    again = await ask(h, NETFLIX_Q)
    assert again.ephemeral and again.ephemeral[0].startswith("You're asking quickly")
    h.services.settings.user_cooldown_s = 0
    ask_cog = cog(h, "Ask")
    ask_cog.capacity.admitted = ask_cog.capacity.limit  # every turn taken and every place
    busy = await ask(h, NETFLIX_Q)
    assert busy.ephemeral == [BUSY]


async def test_ask_unexpected_failure_is_one_line_and_a_logged_traceback(
    harness: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("index exploded")

    monkeypatch.setattr(h.services.retriever, "search", broken)
    with caplog.at_level(logging.ERROR):
        rec = await ask(h, NETFLIX_Q)
    assert rec.ephemeral == [GENERIC_FAILURE]
    assert rec.deleted  # the public "thinking" message is removed
    [record] = [r for r in caplog.records if r.exc_info]
    assert "index exploded" in str(record.exc_info[1])


async def test_ask_store_error_message_is_shown(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("The article store is unreachable at http://127.0.0.1:8000.")

    monkeypatch.setattr(h.services.retriever, "search", down)
    rec = await ask(h, NETFLIX_Q)
    assert rec.ephemeral == ["The article store is unreachable at http://127.0.0.1:8000."]


async def test_source_autocomplete_lists_outlets(harness: Harness) -> None:
    h = harness
    ask_cog = cog(h, "Ask")
    rec = make_interaction(h)
    choices = await ask_cog._outlets(rec.interaction, "samp")
    assert [c.value for c in choices] == ["Sample Wire"]
    assert await ask_cog._outlets(rec.interaction, "nothing like it") == []


async def test_sources_command(harness: Harness) -> None:
    h = harness
    rec = make_interaction(h)
    meta = cog(h, "Meta")
    await meta.sources.callback(meta, rec.interaction)
    rec.interaction.response.defer.assert_awaited_once_with(ephemeral=True, thinking=True)
    [embed] = rec.ephemeral_embeds
    assert "**Sample Wire** · 12 articles · newest 19 Jul 2025" in (embed.description or "")


async def test_status_command(harness: Harness) -> None:
    h = harness
    rec = make_interaction(h)
    meta = cog(h, "Meta")
    await meta.status.callback(meta, rec.interaction)
    [embed] = rec.ephemeral_embeds
    values = {f.name: f.value for f in embed.fields}
    assert values["Articles"] == "12"
    assert int(values["Chunks"]) >= 12
    assert values["Answer model"] == "none (extractive answers)"
    assert values["Embeddings"] == "fake-hash-384"
    assert values["Last ingest"].startswith("<t:")


async def test_feedback_stats_needs_a_moderator(harness: Harness) -> None:
    h = harness
    meta = cog(h, "Meta")
    command = meta.feedback_stats
    member = make_interaction(h, permissions=discord.Permissions(send_messages=True))
    with pytest.raises(checks.NotAllowed):
        for check in command.checks:
            check(member.interaction)
    # The tree turns the failed check into one ephemeral line.
    await h.bot.tree.on_error(member.interaction, checks.NotAllowed("mod"))
    assert member.ephemeral == ["Only moderators can use this command."]

    dm = make_interaction(h, permissions=discord.Permissions.all(), guild=False)
    with pytest.raises(checks.NotAllowed):
        for check in command.checks:
            check(dm.interaction)


async def test_feedback_stats_for_a_moderator(harness: Harness) -> None:
    h = harness
    rec = await ask(h, NETFLIX_Q)
    assert rec.original is not None
    h.services.feedback.vote(message_id=rec.original.id, user_id=1, value=-1)
    await ask(h, "who won the 2031 chess olympiad?")  # abstains: an unanswered question

    meta = cog(h, "Meta")
    mod = make_interaction(h, permissions=discord.Permissions(manage_messages=True))
    assert all(check(mod.interaction) for check in meta.feedback_stats.checks)
    await meta.feedback_stats.callback(meta, mod.interaction)
    [embed] = mod.ephemeral_embeds
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Votes"] == "👍 0 · 👎 1 · 2 answers"
    assert "who won the 2031 chess olympiad?" in fields["Unanswered questions"]
    assert NETFLIX_Q in fields["Most downvoted"]


async def test_feedback_buttons_record_votes(harness: Harness) -> None:
    h = harness
    rec = await ask(h, NETFLIX_Q)
    assert rec.original is not None
    click = make_interaction(h, member=1)
    click.interaction.message = rec.original
    await h.bot.feedback_view.down.callback(click.interaction)
    assert click.ephemeral and "noted 👎" in click.ephemeral[0]
    assert h.services.feedback.stats().down == 1


async def test_ask_streams_into_the_deferred_response(harness: Harness) -> None:
    from bot import render
    from tests.fakes import ScriptedModel

    h = harness
    h.services.ask.model = ScriptedModel(
        "For The Eternaut, Netflix used generative AI to create a building collapse [1]."
    )
    rec = await ask(h, NETFLIX_Q)
    edits = rec.interaction.edit_original_response.await_args_list
    assert len(edits) >= 2
    progress, final = edits[0].kwargs, edits[-1].kwargs
    assert progress["embed"].description.endswith(render.PROGRESS_CURSOR)
    assert "view" not in progress
    assert render.PROGRESS_CURSOR not in final["embed"].description
    assert final["view"] is h.bot.feedback_view
    assert final["embed"].footer.text.startswith("Model answer")
