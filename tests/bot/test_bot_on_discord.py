"""The bot on the local Discord: what Discord really delivers (and withholds), threads,
mentions, cooldowns and permissions, through discord.py's real HTTP client and gateway."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.cogs import ask as ask_cog
from bot.core.models import NewsbotError, Turn
from retrieval.store import SEARCH_UNAVAILABLE
from tests.bot.conftest import OnDiscord, is_answer
from tests.fakes import ScriptedModel, make_services
from tests.support.chroma_server import ChromaServer
from tests.support.discord_server import Message

NETFLIX_Q = "what did Netflix use generative AI for in The Eternaut?"
Start = Callable[..., Awaitable[OnDiscord]]


def spy_ask(w: OnDiscord, *, fail: Exception | None = None) -> list[dict[str, Any]]:
    """Record what reaches the core's ask (and optionally fail it)."""
    calls: list[dict[str, Any]] = []
    real = w.services.ask.ask

    def spy(question: str, **kwargs: Any) -> Any:
        calls.append({"question": question, **kwargs})
        if fail is not None:
            raise fail
        return real(question, **kwargs)

    w.services.ask.ask = spy  # type: ignore[method-assign]
    return calls


def hints(w: OnDiscord) -> list[str]:
    return [m.content for m in w.server.bot_messages() if m.content.startswith("I can't read")]


# -- what Discord delivers without the message content intent ------------------------------------


async def test_a_follow_up_in_the_bots_thread_without_a_mention_gets_one_hint(
    start_on_discord: Start,
) -> None:
    w = await start_on_discord()
    ana = w.member("ana")
    question = w.server.say(ana, w.news, w.mention(NETFLIX_Q))
    answer = await w.answer_to(question)
    thread = w.server.channel(answer.channel_id)
    assert thread is not None and thread.is_thread
    calls = spy_ask(w)
    w.server.say(ana, thread, "and who made the series?")  # Discord hides this text
    await w.wait(lambda: hints(w), "the hint")
    w.server.say(ana, thread, "hello?")
    await w.settle()
    assert len(hints(w)) == 1 and calls == []
    assert "/ask" in hints(w)[0] and "@newsbot" in hints(w)[0]
    # With a mention the text arrives, and the thread is the conversation.
    follow = w.server.say(ana, thread, w.mention("and who made the series?"))
    await w.wait(lambda: calls, "the follow-up to reach the core")
    assert calls[0]["question"] == "and who made the series?"
    history = calls[0]["history"]
    assert history[0] == Turn("user", NETFLIX_Q) and history[1].role == "assistant"
    await w.wait(lambda: [m for m in w.server.bot_messages(thread)
                          if is_answer(m) and m.id > follow.id], "the follow-up's answer")


async def test_a_reply_with_the_ping_off_gets_a_hint_and_with_it_on_an_answer(
    start_on_discord: Start,
) -> None:
    w = await start_on_discord(answer_in_threads=False)
    ben = w.member("ben")
    first = await w.answer_to(w.server.say(ben, w.news, w.mention(NETFLIX_Q)))
    calls = spy_ask(w)
    w.server.say(ben, w.news, "who wrote the comic?", reply_to=first, ping=False)
    await w.wait(lambda: hints(w), "the hint")
    reply = w.server.say(ben, w.news, "who wrote the comic?", reply_to=first, ping=True)
    answer = await w.answer_to(reply)
    assert calls[0]["question"] == "who wrote the comic?"
    assert [t.role for t in calls[0]["history"]][:2] == ["user", "assistant"]
    assert answer.reference_id == reply.id


async def test_with_the_intent_a_follow_up_needs_no_mention(start_on_discord: Start) -> None:
    w = await start_on_discord(message_content=True)
    cai = w.member("cai")
    answer = await w.answer_to(w.server.say(cai, w.news, w.mention(NETFLIX_Q)))
    thread = w.server.channel(answer.channel_id)
    calls = spy_ask(w)
    follow = w.server.say(cai, thread, "and who made the series?")  # type: ignore[arg-type]
    await w.wait(lambda: [m for m in w.server.bot_messages(thread)  # type: ignore[arg-type]
                          if is_answer(m) and m.id > follow.id], "the follow-up's answer")
    assert calls[0]["history"][0] == Turn("user", NETFLIX_Q)
    assert hints(w) == []


# -- threads -------------------------------------------------------------------------------------


async def test_a_failed_answer_opens_no_thread(start_on_discord: Start) -> None:
    w = await start_on_discord()
    spy_ask(w, fail=RuntimeError("the store went away"))
    question = w.server.say(w.member("dee"), w.news, w.mention(NETFLIX_Q))
    line = await w.wait(lambda: w.server.replies_to(question), "the failure line")
    assert line[0].content == ask_cog.GENERIC_FAILURE
    assert line[0].channel_id == w.news.id and line[0].reference_id == question.id
    assert w.server.threads() == []


async def test_without_send_messages_in_threads_the_answer_stays_in_the_channel(
    start_on_discord: Start, caplog: pytest.LogCaptureFixture,
) -> None:
    w = await start_on_discord()
    w.server.set_overwrite(w.news, w.server.bot_role(w.guild), deny=["send_messages_in_threads"])
    await w.settle()
    eve = w.member("eve")
    with caplog.at_level(logging.WARNING, logger="bot.client"):
        for _ in range(2):
            question = w.server.say(eve, w.news, w.mention(NETFLIX_Q))
            answer = await w.answer_to(question)
            assert answer.channel_id == w.news.id and answer.reference_id == question.id
    assert w.server.threads() == []
    warned = [r for r in caplog.records if "send_messages_in_threads" in r.getMessage()]
    assert len(warned) == 1  # once per channel and permission


async def test_a_403_inside_threads_is_logged_once_for_their_channel(
    start_on_discord: Start, caplog: pytest.LogCaptureFixture,
) -> None:
    w = await start_on_discord()
    fay = w.member("fay")
    # The cache says the bot may write in threads; Discord says no (an overwrite it has not
    # seen yet, say). Two questions, two threads, one warning.
    route = "/channels/{channel_id}/messages"
    w.server.fail("POST", route, 403, times=None)
    with caplog.at_level(logging.WARNING, logger="bot.client"):
        for n in (1, 2):
            w.server.say(fay, w.news, w.mention(NETFLIX_Q))
            await w.wait(lambda n=n: len(w.server.calls("POST", route)) == n, "a refused send")
        await w.settle()
    threads = w.server.threads()
    assert len(threads) == 2
    assert {r.params["channel_id"] for r in w.server.calls("POST", route)} == {
        str(t.id) for t in threads}
    warned = [r for r in caplog.records if "missing permission" in r.getMessage()]
    assert len(warned) == 1 and f"channel {w.news.id}" in warned[0].getMessage()


# -- answers split over several messages ---------------------------------------------------------

# An answer of about 12,000 characters: more than two messages.
LONG_TEXT = " ".join(f"Point {i}: the effects team kept adding detail to the collapsing "
                     "building until the shot matched the comic's panels [1]." for i in range(110))


def answer_at_length(w: OnDiscord) -> None:
    """The core's answers, with their text replaced by a long one (the core's checks of a
    model's long reply take seconds; this is about how Discord shows it)."""
    real = w.services.ask.ask
    w.services.ask.ask = (  # type: ignore[method-assign]
        lambda question, **kwargs: dataclasses.replace(real(question, **kwargs), text=LONG_TEXT))


def split_answer(parts: list[Message]) -> list[Message]:
    """The answer's messages once its last (the one with the buttons) is sent."""
    return parts if parts and is_answer(parts[-1]) else []


def whole_text(parts: list[Message]) -> str:
    return "\n\n".join(p.embeds[0]["description"] for p in parts)


async def test_a_reply_to_any_part_of_a_split_answer_continues_its_conversation(
    start_on_discord: Start,
) -> None:
    w = await start_on_discord(answer_in_threads=False)
    answer_at_length(w)
    ida, jan = w.member("ida"), w.member("jan")
    w.server.say(ida, w.news, w.mention(NETFLIX_Q))
    parts = await w.wait(lambda: split_answer(
        [m for m in w.server.bot_messages(w.news) if m.embeds]), "the answer's parts")
    assert len(parts) > 2 and parts[0].embeds[0]["title"] == NETFLIX_Q
    calls = spy_ask(w, fail=NewsbotError("enough"))
    for member, part in ((ida, parts[-1]), (jan, parts[1])):
        reply = w.server.say(member, w.news, "who said it was faster?", reply_to=part)
        await w.wait(lambda r=reply: w.server.replies_to(r), "the reply's answer")
    assert [c["history"] for c in calls] == [
        [Turn("user", NETFLIX_Q), Turn("assistant", whole_text(parts))],
        [Turn("user", NETFLIX_Q), Turn("assistant", whole_text(parts[:2]))],
    ]


async def test_a_split_answer_in_the_bots_thread_is_one_turn(start_on_discord: Start) -> None:
    w = await start_on_discord()
    answer_at_length(w)
    mia = w.member("mia")
    w.server.say(mia, w.news, w.mention(NETFLIX_Q))
    thread = await w.wait(lambda: next(iter(w.server.threads()), None), "the thread")
    parts = await w.wait(lambda: split_answer(w.server.bot_messages(thread)), "the parts")
    assert len(parts) > 2
    calls = spy_ask(w, fail=NewsbotError("enough"))
    follow = w.server.say(mia, thread, w.mention("who said it was faster?"))
    await w.wait(lambda: [m for m in w.server.bot_messages(thread) if m.id > follow.id],
                 "the follow-up's answer")
    assert calls[0]["history"] == [Turn("user", NETFLIX_Q),
                                   Turn("assistant", whole_text(parts))]


async def test_a_reply_to_the_last_part_of_a_split_ask_answer_has_its_question(
    start_on_discord: Start,
) -> None:
    w = await start_on_discord(answer_in_threads=False)
    answer_at_length(w)
    kai = w.member("kai")
    inter = w.server.slash(kai, w.news, "ask", question=NETFLIX_Q)
    parts = await w.wait(lambda: split_answer(w.server.responses(inter)), "the answer's parts")
    assert len(parts) > 2
    w.server.say(w.member("lou"), w.news, "unrelated chat after the answer")
    calls = spy_ask(w, fail=NewsbotError("enough"))
    reply = w.server.say(kai, w.news, w.mention("who said it was faster?"), reply_to=parts[-1])
    await w.wait(lambda: w.server.replies_to(reply), "the reply's answer")
    assert calls[0]["history"] == [Turn("user", NETFLIX_Q),
                                   Turn("assistant", whole_text(parts))]


# -- /ask ----------------------------------------------------------------------------------------


async def test_ask_inside_the_bots_thread_reads_the_thread(start_on_discord: Start) -> None:
    w = await start_on_discord()
    gus = w.member("gus")
    first = await w.answer_to(w.server.say(gus, w.news, w.mention(NETFLIX_Q)))
    thread = w.server.channel(first.channel_id)
    calls = spy_ask(w)
    inter = w.server.slash(gus, thread, "ask", question="who made the series?")  # type: ignore[arg-type]
    answer = await w.slash_answer(inter)
    history = calls[0]["history"]
    assert history[0] == Turn("user", NETFLIX_Q) and history[1].role == "assistant"
    assert answer.channel_id == thread.id  # type: ignore[union-attr]
    # A second /ask there sees the first one's question, taken from its answer's title.
    inter = w.server.slash(gus, thread, "ask", question="when was it released?")  # type: ignore[arg-type]
    await w.slash_answer(inter)
    assert Turn("user", "who made the series?") in calls[1]["history"]


async def test_ask_question_length_is_limited_where_discord_can_enforce_it(
    start_on_discord: Start,
) -> None:
    w = await start_on_discord(max_question_chars=120)
    command = next(c for c in w.server.commands.values() if c.name == "ask")
    option = command.payload["options"][0]
    assert option["name"] == "question" and option["max_length"] == 120
    with pytest.raises(ValueError, match="max_length"):
        w.server.slash(w.member("hal"), w.news, "ask", question="x" * 121)


# -- mentions ------------------------------------------------------------------------------------


async def test_mention_markup_is_shown_as_names_in_the_thread_title_and_query(
    start_on_discord: Start,
) -> None:
    w = await start_on_discord()
    ivy = w.member("ivy")
    role = w.server.add_role(w.guild, "critics", mentionable=True)
    calls = spy_ask(w)
    text = w.mention(f"<@{ivy.id}> and <@&{role.id}> ask: {NETFLIX_Q} @everyone")
    question = w.server.say(ivy, w.news, text)
    answer = await w.answer_to(question)
    asked = calls[0]["question"]
    assert "<@" not in asked and "@Ivy and @critics ask:" in asked
    thread = w.server.channel(answer.channel_id)
    assert thread is not None and "<@" not in thread.name and thread.name.startswith("@Ivy")
    assert "<@" not in answer.embeds[0]["title"]
    assert answer.pinged == set() and thread.name.count("@everyone") == 0


# -- cooldown ------------------------------------------------------------------------------------


async def test_cooldown_is_told_once_and_the_line_goes_away(
    start_on_discord: Start, monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = await start_on_discord(user_cooldown_s=60, answer_in_threads=False)
    # The cog runs from the module load_extension executed afresh, not the one imported
    # here: set on this one, the line stayed its full 15 s, as long as the wait below.
    monkeypatch.setattr(w.bot.extensions["bot.cogs.ask"], "NOTICE_S", 0.3)
    jo = w.member("jo")
    await w.answer_to(w.server.say(jo, w.news, w.mention(NETFLIX_Q)))
    calls = spy_ask(w)
    for text in ("and the music?", "and the cast?", "and the budget?"):
        w.server.say(jo, w.news, w.mention(text))
    await w.settle()

    def told() -> list[Message]:
        return [m for m in w.server.channel_messages(w.news, include_deleted=True)
                if m.content.startswith("You're asking quickly")]

    # The bot may have taken the marker of settle() before its reply was posted: waited for.
    [line] = await w.wait(told, "the cooldown line")
    await w.wait(lambda: w.server.messages[line.id].deleted, "the line to go")
    await w.settle()
    assert len(told()) == 1 and calls == []


async def test_a_cooldown_line_still_shown_goes_when_the_bot_stops(
    start_on_discord: Start,
) -> None:
    w = await start_on_discord(user_cooldown_s=60, answer_in_threads=False)
    ned = w.member("ned")
    await w.answer_to(w.server.say(ned, w.news, w.mention(NETFLIX_Q)))
    w.server.say(ned, w.news, w.mention("and the music?"))
    [line] = await w.wait(lambda: [m for m in w.server.bot_messages(w.news)
                                   if m.content.startswith("You're asking quickly")],
                          "the cooldown line")
    await w.bot.close()  # well within the line's 15 s
    assert w.server.messages[line.id].deleted


async def test_a_conversation_in_the_bots_thread_is_not_held_back_by_the_cooldown(
    start_on_discord: Start,
) -> None:
    w = await start_on_discord(user_cooldown_s=60)
    kim = w.member("kim")
    first = await w.answer_to(w.server.say(kim, w.news, w.mention(NETFLIX_Q)))
    thread = w.server.channel(first.channel_id)
    for text in ("who made it?", "when was it released?"):
        follow = w.server.say(kim, thread, w.mention(text))  # type: ignore[arg-type]
        await w.wait(lambda f=follow: [m for m in w.server.bot_messages(thread)  # type: ignore[arg-type]
                                       if is_answer(m) and m.id > f.id], "an answer")
    # A new question in the channel is still held back.
    w.server.say(kim, w.news, w.mention("and something else?"))
    await w.wait(lambda: [m for m in w.server.bot_messages(w.news)
                          if m.content.startswith("You're asking quickly")], "the cooldown")


async def test_a_second_question_while_the_first_is_answered_waits_its_turn(
    start_on_discord: Start,
) -> None:
    w = await start_on_discord()
    lee = w.member("lee")
    gate = asyncio.Event()
    real = w.services.ask.ask
    loop = asyncio.get_running_loop()

    def slow(question: str, **kwargs: Any) -> Any:
        asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(10)
        return real(question, **kwargs)

    w.services.ask.ask = slow  # type: ignore[method-assign]
    first = w.server.say(lee, w.news, w.mention(NETFLIX_Q))
    typing = "/channels/{channel_id}/typing"
    await w.wait(lambda: w.server.calls("POST", typing), "the first to start")
    w.server.say(lee, w.news, w.mention("and another thing?"))
    await w.wait(lambda: [m for m in w.server.bot_messages()
                          if m.content == ask_cog.STILL_ANSWERING], "the still-answering line")
    gate.set()
    await w.answer_to(first)


# -- the store -----------------------------------------------------------------------------------


@pytest.mark.integration
async def test_a_chroma_server_going_away_is_search_unavailable_and_no_model_call(
    start_on_discord: Start, tmp_path: Path,
) -> None:
    with ChromaServer(tmp_path / "chroma") as chroma:
        model = ScriptedModel("It was used for a building collapse scene [1].")
        services = make_services(tmp_path / "chroma-data", chroma_url=chroma.url, model=model,
                                 answer_in_threads=False)
        try:
            w = await start_on_discord(services=services)
            mo = w.member("mo")
            await w.answer_to(w.server.say(mo, w.news, w.mention(NETFLIX_Q)))
            assert len(model.prompts) == 1
            chroma.stop()
            question = w.server.say(mo, w.news, w.mention(NETFLIX_Q))
            line = await w.wait(lambda: w.server.replies_to(question), "the line")
        finally:
            services.close()
    assert line[0].content == SEARCH_UNAVAILABLE
    assert len(model.prompts) == 1  # no model call without the articles


async def test_an_ask_waiting_for_its_turn_is_deferred_at_once(start_on_discord: Start) -> None:
    """Discord drops an interaction not answered within 3 s: a question that must wait for a
    working slot is deferred first, then waits."""
    w = await start_on_discord(max_concurrent_answers=1, max_waiting_answers=4)
    gate = asyncio.Event()
    real = w.services.ask.ask
    loop = asyncio.get_running_loop()

    def slow(question: str, **kwargs: Any) -> Any:
        asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(10)
        return real(question, **kwargs)

    w.services.ask.ask = slow  # type: ignore[method-assign]
    first = w.server.slash(w.member("nia"), w.news, "ask", question=NETFLIX_Q)
    await w.wait(lambda: first.response_type == 5, "the first to be deferred")
    second = w.server.slash(w.member("oli"), w.news, "ask", question=NETFLIX_Q)
    await w.wait(lambda: second.response_type == 5, "the waiting one to be deferred")
    assert not w.server.responses(second)[0].embeds  # still "thinking"
    gate.set()
    await w.slash_answer(first)
    await w.slash_answer(second)
