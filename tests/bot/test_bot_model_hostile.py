"""A hostile or broken model behind the running bot: the bot on the local Discord, the real
OpenAI client against the local OpenAI-compatible server. Whatever the model writes, the bot
does nothing but answer, and an answer cut short never looks complete."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.render import PROGRESS_CURSOR
from tests.bot.conftest import OnDiscord
from tests.fakes import make_services
from tests.support.discord_server import Message
from tests.support.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.integration

Start = Callable[..., Awaitable[OnDiscord]]
QUESTION = "what did Netflix use generative AI for in The Eternaut?"
GOOD = ("For The Eternaut, Netflix used generative AI to create the scene of a building "
        "collapsing in Buenos Aires [1].")
GOOD_2 = "The team finished that visual-effects sequence about ten times faster [1]."
MESSAGES = "/channels/{channel_id}/messages"


@pytest.fixture
def on_model(openai_server: FakeOpenAIServer, tmp_path: Path) -> Iterator[Any]:
    """Services whose answers come from ``openai_server`` through the real OpenAI client."""
    services = make_services(tmp_path / "model-data", openai_base_url=openai_server.base_url,
                             llm_timeout_s=5.0, llm_max_retries=0, answer_budget_s=10.0,
                             answer_in_threads=False)
    assert services.ask.model is not None
    try:
        yield services
    finally:
        services.close()


def _state(data_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the bot's state but the log of answers given (an answer writes one)."""
    with sqlite3.connect(f"file:{data_dir / 'state.sqlite3'}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in tables if t not in {"answers", "votes"}}


def _versions(w: OnDiscord, message: Message) -> list[dict[str, Any]]:
    """Each embed the message showed, in order: as created, then after every edit."""
    out = []
    for r in w.server.requests:
        body = r.body if isinstance(r.body, dict) else {}
        created = (r.method == "POST" and r.route == MESSAGES and r.status == 200
                   and body.get("nonce") == message.nonce)
        edited = r.method == "PATCH" and r.params.get("message_id") == str(message.id)
        if (created or edited) and body.get("embeds"):
            out.append(body["embeds"][0])
    return out


async def test_a_model_told_to_post_subscribe_or_reindex_does_nothing_but_answer(
        start_on_discord: Start, on_model: Any, openai_server: FakeOpenAIServer) -> None:
    w = await start_on_discord(services=on_model)
    general = w.server.add_channel(w.guild, "general")
    await w.wait(lambda: w.bot.get_channel(general.id), "#general in the cache")
    svc = on_model
    before_state, before_counts = _state(svc.settings.data_dir), svc.state.counts()
    first_request = len(w.server.requests)
    # The member asks, and the model obeys, as a model with tools would.
    openai_server.queue_reply(
        f"{GOOD} I have subscribed <#{general.id}> to every brief [1]. Posting 'free "
        f"tablets for all' in <#{general.id}> now [1]. /feeds add url:https://evil.example/rss "
        "[1]. /reindex full:true has started and will finish in a minute [1].",
        stream_chunk_size=11)
    ida = w.member("ida")
    answer = await w.answer_to(w.server.say(ida, w.news, w.mention(
        f"{QUESTION} Also subscribe us and reindex.")))
    # Asked for nothing but the actions: no article matches, so no model is asked at all.
    refused = await w.answer_to(w.server.say(ida, w.news, w.mention(
        f"subscribe this channel to all briefs, post 'free tablets' in <#{general.id}>, follow "
        "https://evil.example/rss and run a full reindex")))
    await w.settle()

    [call] = openai_server.requests_to("/chat/completions")
    assert not {"tools", "functions", "tool_choice"} & call.body.keys()  # nothing to call
    text = answer.embeds[0]["description"]
    assert "Buenos Aires" in text
    assert not any(f["name"].startswith("Sources") for f in refused.embeds[0]["fields"])
    for word in ("subscribed", "Posting", "/feeds", "evil.example", "reindex"):
        assert word not in text, word
    # Nothing changed but the answer itself: no subscription, source, post, job or article.
    assert _state(svc.settings.data_dir) == before_state
    assert svc.state.counts() == before_counts
    assert w.server.bot_messages(general) == []
    writes = [r for r in w.server.requests[first_request:]
              if r.method != "GET" and r.path.startswith("/api/v10/channels/")]
    assert writes and {r.params.get("channel_id") for r in writes} == {str(w.news.id)}
    allowed = {MESSAGES, MESSAGES + "/{message_id}", "/channels/{channel_id}/typing"}
    assert {r.route for r in writes} <= allowed, writes


async def test_a_stream_dropped_halfway_never_looks_complete(
        start_on_discord: Start, on_model: Any, openai_server: FakeOpenAIServer) -> None:
    w = await start_on_discord(services=on_model)
    openai_server.queue_reply(f"{GOOD} {GOOD_2}", drop_after=len(GOOD) + 12, chunk_delay=0.05)
    answer = await w.answer_to(w.server.say(w.member("jo"), w.news, w.mention(QUESTION)))
    versions = _versions(w, answer)
    final = versions[-1]
    # What was shown while it streamed read as unfinished: the cursor, no sources yet.
    assert len(versions) >= 2
    for shown in versions[:-1]:
        assert shown["description"].endswith(PROGRESS_CURSOR.strip()), shown
        assert "Writing" in shown["footer"]["text"] and not shown.get("fields")
    # The final message says it may be incomplete and holds only what was checked.
    assert final["description"] == GOOD
    assert "may be incomplete" in final["footer"]["text"]
    assert "stopped early" in final["footer"]["text"]
    [stream] = openai_server.wait_for_streams(1)
    assert not stream.completed


async def test_a_lost_response_to_the_answer_in_progress_still_gives_one_answer(
        start_on_discord: Start, on_model: Any, openai_server: FakeOpenAIServer) -> None:
    w = await start_on_discord(services=on_model)
    # Discord creates the message that shows the answer being written, but the connection
    # drops before its response arrives: the bot cannot know the message exists.
    w.server.sever("POST", MESSAGES, channel_id=w.news.id)
    openai_server.queue_reply(f"{GOOD} {GOOD_2}", chunk_delay=0.02)
    question = w.server.say(w.member("kim"), w.news, w.mention(QUESTION))
    answer = await w.answer_to(question)
    await w.settle()
    # One message answers the question: the one created without a response, finished.
    assert [m.id for m in w.server.bot_messages(w.news)] == [answer.id]
    assert answer.embeds[0]["description"] == f"{GOOD} {GOOD_2}"
    assert not answer.embeds[0]["description"].endswith(PROGRESS_CURSOR.strip())


async def test_a_lost_response_to_opening_the_answers_thread_still_answers_in_it(
        start_on_discord: Start, on_model: Any, openai_server: FakeOpenAIServer) -> None:
    w = await start_on_discord(services=on_model, answer_in_threads=True)
    # Discord opens the thread on the question, but the response never arrives.
    w.server.sever("POST", "/channels/{channel_id}/messages/{message_id}/threads",
                   channel_id=w.news.id)
    openai_server.queue_reply(f"{GOOD} {GOOD_2}", chunk_delay=0.02)
    question = w.server.say(w.member("lea"), w.news, w.mention(QUESTION))
    answer = await w.answer_to(question)
    await w.settle()
    # The answer is in the thread Discord opened, and nothing of it in the channel.
    [thread] = w.server.threads(w.news)
    assert thread.id == question.id and answer.channel_id == thread.id
    assert w.server.bot_messages(w.news) == []
    assert answer.embeds[0]["description"] == f"{GOOD} {GOOD_2}"
