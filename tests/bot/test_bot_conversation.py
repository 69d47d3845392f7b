"""Mentions, replies and thread follow-ups through dpytest, against the real core."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import discord
import pytest

from bot import render
from bot.cogs.ask import BUSY, Streamer
from bot.core.models import Turn
from bot.views import DOWN_ID, UP_ID
from tests.bot.discord_double import Harness, no_mentions, post
from tests.fakes import ScriptedModel

NETFLIX_Q = "what did Netflix use generative AI for in The Eternaut?"


def spy_ask(h: Harness) -> list[tuple[str, dict[str, Any]]]:
    """Record the core's ask calls (the real service still answers)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    real = h.services.ask.ask

    def ask(question: str, **kwargs: Any) -> Any:
        calls.append((question, kwargs))
        return real(question, **kwargs)

    h.services.ask.ask = ask  # type: ignore[method-assign]
    return calls


def describe(h: Harness, message: discord.Message) -> list[str]:
    """A message as readable transcript lines."""
    ch = message.channel
    where = f"thread «{ch.name}»" if isinstance(ch, discord.Thread) else f"#{ch.name}"
    who = "newsbot" if message.author.id == h.me.id else message.author.name
    content = message.content.replace(h.me.mention, "@newsbot")
    lines = [f"[{where}] {who}: {content}".rstrip()]
    for e in message.embeds:
        if e.title:
            lines.append(f"    ## {e.title}")
        lines.extend(f"    {line}" for line in (e.description or "").splitlines())
        for f in e.fields:
            lines.append(f"    {f.name}:")
            lines.extend(f"      {line}" for line in f.value.splitlines())
        if e.footer.text:
            lines.append(f"    -- {e.footer.text}")
    if message.components:
        ids = [c.custom_id for row in message.components for c in row.children]  # type: ignore[attr-defined]
        lines.append(f"    [buttons: {', '.join(ids)}]")
    return lines


async def test_transcript_mention_answer_and_thread_follow_up(harness: Harness) -> None:
    """Acceptance transcript: run with ``pytest -s`` to read it."""
    h = harness
    calls = spy_ask(h)
    question = await h.say(f"<@{h.me.id}> {NETFLIX_Q}")

    thread = h.thread(question.id)  # opened on the question
    assert thread.owner_id == h.me.id and thread.name == NETFLIX_Q
    [answer_sent] = [s for s in h.http.sent if s.kind == "send"]
    assert answer_sent.channel_id == thread.id
    answer = h.message(answer_sent.message_id)
    [embed] = answer.embeds
    assert "building collapsing in Buenos Aires" in embed.description
    assert embed.fields[0].name == "Sources"
    assert "[Netflix puts generative AI footage" in embed.fields[0].value
    assert "<https://example.org/sample/netflix-eternaut-generative-ai>" in embed.fields[0].value
    assert "Sample Wire, 19 Jul 2025" in embed.fields[0].value
    assert embed.footer.text == "Extractive answer (quoted from articles) · as of 19 Jul 2025"
    custom_ids = {c.custom_id for row in answer.components for c in row.children}  # type: ignore[attr-defined]
    assert custom_ids == {UP_ID, DOWN_ID}

    follow = await h.say("How much faster was that sequence finished?", channel=thread)
    replies = [s for s in h.http.sent if s.kind == "send"]
    assert len(replies) == 2 and replies[1].channel_id == thread.id
    second = h.message(replies[1].message_id)
    assert "ten times faster" in second.embeds[0].description
    # The follow-up carried the conversation so far, oldest first.
    assert calls[1][1]["history"] == [
        Turn("user", NETFLIX_Q),
        Turn("assistant", render.embed_text(embed)),
    ]
    assert all(no_mentions(s.payload) for s in h.http.sent)
    # Both answers are on record for the 👍/👎 buttons.
    assert h.services.feedback.vote(message_id=answer.id, user_id=1, value=1)
    assert h.services.feedback.vote(message_id=second.id, user_id=1, value=-1)

    transcript = [line for m in (question, answer, follow, second) for line in describe(h, m)]
    print("\n" + "\n".join(transcript))


async def test_unaddressed_messages_are_ignored(harness: Harness) -> None:
    h = harness
    calls = spy_ask(h)
    await h.say(NETFLIX_Q)
    other = await h.say("just chatting", member=1)
    await h.say("a reply to a person, not the bot", reply_to=other)
    assert calls == [] and h.http.sent == []


async def test_reply_to_an_answer_continues_the_conversation(harness: Harness) -> None:
    h = harness
    h.services.settings.answer_in_threads = False
    calls = spy_ask(h)
    question = await h.say(f"<@{h.me.id}> {NETFLIX_Q}")
    [first] = h.http.sent
    assert (
        first.channel_id == h.channel.id
        and first.payload["message_reference"]["message_id"] == question.id
    )
    answer = h.message(first.message_id)

    # A reply without a mention (the reply ping is off) is still a follow-up.
    await h.say("Does it also use AI earlier in production?", reply_to=answer)
    _, kwargs = calls[1]
    assert [t.role for t in kwargs["history"]] == ["user", "assistant"]
    assert kwargs["history"][0].text == NETFLIX_Q
    second = h.message(h.http.sent[1].message_id)
    assert "pre-visualisation" in second.embeds[0].description
    assert list(h.guild.threads) == []


async def test_reply_chain_of_30_messages_is_cut_with_a_notice(harness: Harness) -> None:
    h = harness
    h.services.settings.answer_in_threads = False
    cap = h.services.settings.history_turns
    calls = spy_ask(h)
    state = h.bot._connection
    state.stop_dispatch()  # build the earlier chain without the bot answering it
    previous: discord.Message | None = None
    for i in range(29):
        if i % 2:
            embed = discord.Embed(description=f"Earlier answer {i} [1].", title="Q")
            previous = post(
                state,
                h.channel,
                state.user,
                "",
                reference_id=previous.id,  # type: ignore[union-attr]
                embeds=[embed.to_dict()],
            )
        else:
            previous = post(
                state,
                h.channel,
                h.members[0],
                f"Earlier question {i} about Netflix?",
                reference_id=previous.id if previous else None,
            )
    state.start_dispatch()
    fetches = 0
    real_get = h.http.get_message

    async def counting_get(channel_id: int, message_id: int) -> Any:
        nonlocal fetches
        fetches += 1
        return await real_get(channel_id, message_id)

    h.http.get_message = counting_get  # type: ignore[method-assign]
    await h.say(f"<@{h.me.id}> {NETFLIX_Q}", reply_to=previous)

    _, kwargs = calls[0]
    assert len(kwargs["history"]) == cap + 1  # one more than kept: the service sees the cut
    assert kwargs["history"][-2:] == [
        Turn("assistant", "Earlier answer 27 [1]."),
        Turn("user", "Earlier question 28 about Netflix?"),
    ]
    assert fetches <= cap + 1  # the walk stops at the cap instead of reading all 29
    answer = h.message(h.http.sent[-1].message_id)
    assert f"Only the last {cap} messages of this conversation were read." in (
        answer.embeds[-1].footer.text or ""
    )


async def test_empty_and_zero_width_questions_are_refused_without_the_store(
    harness: Harness,
) -> None:
    h = harness
    searched: list[str] = []
    real = h.services.retriever.search
    h.services.retriever.search = lambda *a, **k: searched.append(a[0]) or real(*a, **k)  # type: ignore[method-assign]
    for text in (f"<@{h.me.id}>", f"<@{h.me.id}>    ", f"<@{h.me.id}> \u200b\u200d\ufeff"):
        await h.say(text)
    lines = [s.payload.get("content") for s in h.http.sent]
    assert len(lines) == 3 and all(line and "no words" in line for line in lines)
    assert searched == []
    assert all(not s.payload.get("embeds") for s in h.http.sent)


async def test_too_long_question_gets_one_clear_line(harness: Harness) -> None:
    h = harness
    limit = h.services.settings.max_question_chars
    await h.say(f"<@{h.me.id}> " + "why " * limit)
    [sent] = h.http.sent
    assert f"the limit is {limit}" in sent.payload["content"]
    assert "\n" not in sent.payload["content"]


async def test_mentions_in_question_article_and_model_reply_never_ping(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    role = h.guild.default_role
    ben = h.members[1]
    article = tmp_path / "ping.md"
    article.write_text(
        "---\ntitle: Moderators warn about mass pings\noutlet: Ping Post\n"
        "published_at: 2025-07-01\nurl: https://example.org/ping\n---\n"
        f"The zebra club channel saw a message saying @everyone and <@{ben.id}> and "
        f"<@&{role.id}> to ping the whole zebra club server at once.\n",
        encoding="utf-8",
    )
    h.services.admin.ingest([str(article)])
    model = ScriptedModel(f"@everyone <@{ben.id}> the zebra club pinged everyone [1].")
    h.services.ask.model = model

    await h.say(
        f"<@{h.me.id}> @everyone <@{ben.id}> <@&{role.id}> what message did the zebra club "
        "channel see?"
    )
    h.services.ask.model = None  # the same question answered extractively, quoting the article
    thread = h.guild.threads[0]
    await h.say(f"<@{h.me.id}> @everyone what did the zebra club message say?", channel=thread)

    assert model.prompts, "the model was asked"
    answers = [s for s in h.http.sent if s.payload.get("embeds")]
    texts = " ".join(e.get("title", "") + e.get("description", "")
                     for s in answers for e in s.payload["embeds"])
    # The question is shown as Discord shows it: names, no markup, no mass mention ...
    assert "zebra club" in texts and "<@" not in texts and "@everyone" not in texts
    assert h.http.sent and all(no_mentions(s.payload) for s in h.http.sent)  # ... never pings


async def test_user_cooldown(harness: Harness) -> None:
    h = harness
    h.services.settings.user_cooldown_s = 30
    calls = spy_ask(h)
    await h.say(f"<@{h.me.id}> {NETFLIX_Q}")
    await h.say(f"<@{h.me.id}> and what about Apple?")
    await h.say(f"<@{h.me.id}> {NETFLIX_Q}", member=1)  # someone else is not held back
    assert len(calls) == 2
    lines = [s.payload.get("content") for s in h.http.sent if s.payload.get("content")]
    assert len(lines) == 1 and lines[0].startswith("You're asking quickly: please wait")


async def test_a_reply_to_an_answer_waits_out_the_cooldown_like_a_mention(
    harness: Harness,
) -> None:
    h = harness
    h.services.settings.answer_in_threads = False
    h.services.settings.user_cooldown_s = 30
    calls = spy_ask(h)
    await h.say(f"<@{h.me.id}> {NETFLIX_Q}")
    answer = h.message(h.http.sent[0].message_id)
    await h.say("Does it also use AI earlier in production?", reply_to=answer)
    await h.say("and who made it?", reply_to=answer, member=1)  # someone else is not held back
    # A reply is a new question in the channel: it starts the replier's cooldown too.
    await h.say(f"<@{h.me.id}> {NETFLIX_Q}", member=1)
    assert len(calls) == 2
    lines = [s.payload.get("content") for s in h.http.sent if s.payload.get("content")]
    assert len(lines) == 2 and all(x.startswith("You're asking quickly") for x in lines)


async def test_busy_reply_when_every_turn_and_waiting_place_is_taken(harness: Harness) -> None:
    h = harness
    cog = h.bot.get_cog("Ask")
    calls = spy_ask(h)
    cog.capacity.admitted = cog.capacity.limit  # type: ignore[union-attr]
    await h.say(f"<@{h.me.id}> {NETFLIX_Q}")
    assert calls == []
    assert [s.payload.get("content") for s in h.http.sent] == [BUSY]


async def test_forbidden_channel_is_logged_once_and_the_bot_carries_on(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    h.services.settings.answer_in_threads = False
    h.http.forbidden.add((h.channel.id, "send"))
    with caplog.at_level(logging.WARNING, logger="bot"):
        await h.say(f"<@{h.me.id}> {NETFLIX_Q}")
        await h.say(f"<@{h.me.id}> {NETFLIX_Q}", member=1)
    logged = [r.getMessage() for r in caplog.records if "missing permission" in r.getMessage()]
    assert len(logged) == 1
    assert "send_messages" in logged[0] and "#news" in logged[0]
    h.http.forbidden.clear()
    await h.say(f"<@{h.me.id}> {NETFLIX_Q}", member=0)  # still answering once allowed
    assert [s for s in h.http.sent if s.payload.get("embeds")]


async def test_thread_refused_answers_in_the_channel(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    h.http.forbidden.add((h.channel.id, "thread"))
    with caplog.at_level(logging.WARNING, logger="bot"):
        question = await h.say(f"<@{h.me.id}> {NETFLIX_Q}")
    assert any("create_public_threads" in r.getMessage() for r in caplog.records)
    [sent] = h.http.sent
    assert sent.channel_id == h.channel.id
    assert sent.payload["message_reference"]["message_id"] == question.id


async def test_streamed_model_answer_shows_progress_then_the_answer(harness: Harness) -> None:
    h = harness
    reply = (
        "For The Eternaut, Netflix used generative AI to create a building collapse in "
        "Buenos Aires [1]. The sequence was finished about ten times faster [1]."
    )
    h.services.ask.model = ScriptedModel(reply)
    await h.say(f"<@{h.me.id}> {NETFLIX_Q}")
    progress, *rest = h.http.sent
    assert progress.kind == "send"
    assert progress.payload["embeds"][0]["description"].endswith(render.PROGRESS_CURSOR)
    final = rest[-1]
    assert final.kind == "edit" and final.message_id == progress.message_id
    desc = final.payload["embeds"][0]["description"]
    assert "ten times faster [1]." in desc and render.PROGRESS_CURSOR not in desc
    assert final.payload["embeds"][0]["footer"]["text"].startswith("Model answer")
    assert final.payload["components"]  # the buttons come with the final answer
    message = h.message(progress.message_id)
    assert h.services.feedback.vote(message_id=message.id, user_id=5, value=1)


async def test_no_unchecked_sentence_reaches_discord_while_streaming(harness: Harness) -> None:
    h = harness
    good = ("For The Eternaut, Netflix used generative AI to create the scene of a building "
            "collapsing in Buenos Aires [1].")
    bad = "Ted Sarandos said the scene cost 40 million dollars [1]."  # not in the article
    later = "The team finished the sequence about ten times faster [1]."
    h.services.ask.model = ScriptedModel(f"{good} {bad} Tickets at evil.example. {later}")
    await h.say(f"<@{h.me.id}> {NETFLIX_Q}")
    descriptions = [e.get("description", "") for s in h.http.sent
                    for e in s.payload.get("embeds") or []]
    for s in h.http.sent:  # the transcript, with ``pytest -s``
        for e in s.payload.get("embeds") or []:
            print(f"{s.kind:>5}: {e.get('description', '')}")
            if e.get("footer"):
                print(f"       -- {e['footer']['text']}")
    assert descriptions and descriptions[0].endswith(render.PROGRESS_CURSOR)
    for text in descriptions:  # every send and edit, in progress or final
        assert "40 million" not in text and "evil.example" not in text
        assert text.removesuffix(render.PROGRESS_CURSOR).rstrip().endswith("[1].")
    final = h.http.sent[-1].payload["embeds"][0]
    assert final["description"] == f"{good} {later}"
    assert "2 sentences of the model's answer left out" in final["footer"]["text"]


async def test_long_model_answer_is_split_into_follow_up_messages(harness: Harness) -> None:
    h = harness
    # Six long sentences, each in the article's own words (so each passes the checks).
    parts = ["Netflix used generative AI to create the scene of a building collapsing in "
             "Buenos Aires", "co-chief executive Ted Sarandos said the team finished that "
             "visual-effects sequence about ten times faster than with the usual tools",
             "a conventional effects shot would have cost more than a series with that budget "
             "could afford", "Sarandos described the building collapse as the first "
             "generative AI footage to appear in a finished Netflix series or film",
             "the company also uses AI earlier in production for pre-visualisation and shot "
             "planning", "The Eternaut is an Argentine science-fiction drama"]
    reply = " ".join(", and ".join((parts[i:] + parts[:i]) * 2) + " [1]." for i in range(6))
    h.services.ask.model = ScriptedModel(reply)  # about 6,800 characters
    await h.say(f"<@{h.me.id}> {NETFLIX_Q}")
    finals = [h.message(s.message_id) for s in h.http.sent]
    finals = list({m.id: m for m in finals}.values())
    assert len(finals) == 2
    first, last = finals
    assert len(first.embeds[0].description) <= render.DESCRIPTION_LIMIT
    assert first.embeds[0].description.endswith("[1].")  # split between sentences
    assert not first.components and last.components
    assert last.embeds[0].fields and last.embeds[0].footer.text
    # Votes count on the message that carries the buttons.
    assert h.services.feedback.vote(message_id=last.id, user_id=5, value=1)


class _Timed:
    def __init__(self) -> None:
        self.times: list[float] = []
        self.texts: list[str] = []

    async def progress(self, embed: discord.Embed) -> None:
        self.times.append(asyncio.get_running_loop().time())
        self.texts.append(embed.description or "")
        await asyncio.sleep(0.01)

    async def deliver(self, embeds: Any, view: Any) -> Any:
        raise NotImplementedError

    async def fail(self, line: str) -> None:
        raise NotImplementedError


async def test_streamer_edits_at_most_once_per_interval() -> None:
    target = _Timed()
    loop = asyncio.get_running_loop()
    streamer = Streamer(target, "Q?", loop, interval=0.2)

    def produce() -> None:
        import time

        for i in range(60):
            streamer.feed(f"w{i} ")
            time.sleep(0.01)

    await asyncio.to_thread(produce)
    await asyncio.sleep(0.05)
    await streamer.stop()
    gaps = [b - a for a, b in zip(target.times, target.times[1:], strict=False)]
    assert 2 <= len(target.times) <= 6
    assert all(g >= 0.19 for g in gaps)
    assert target.texts[0].endswith(render.PROGRESS_CURSOR)
    assert "w59" in target.texts[-1] or len(target.times) >= 2


async def test_owner_sync_text_command(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    calls = spy_ask(h)
    synced: list[Any] = []

    async def fake_sync(*, guild: Any = None) -> list[Any]:
        synced.append(guild)
        return []

    monkeypatch.setattr(h.bot.tree, "sync", fake_sync)
    h.bot.owner_id = h.members[0].id
    await h.say(f"<@{h.me.id}> sync")
    assert [g.id for g in synced] == [h.guild.id]
    assert h.http.sent[-1].payload["content"] == "Synced 0 app commands to this server."
    await h.say(f"<@{h.me.id}> sync global")
    assert synced[-1] is None
    assert calls == []

    # For anyone else "sync" is just the start of a question.
    await h.say(f"<@{h.me.id}> sync", member=1)
    assert len(synced) == 2 and [q for q, _ in calls] == ["sync"]
