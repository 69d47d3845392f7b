"""``newsbot run`` end to end: the real bot process, discord.py's real HTTP client and
gateway, the local Discord, the real local model over the bundled sample articles.

The message content intent is off, as it is for most bots: Discord delivers the text of a
message only when it mentions the bot or replies to one of its regular messages with the
ping on.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.bot_process import NEWSBOT, RunningBot, copy_data
from tests.support.discord_server import (
    MESSAGE_FLAG_LOADING,
    Channel,
    Guild,
    Interaction,
    LocalDiscord,
    Message,
    User,
)

pytestmark = pytest.mark.integration

ANSWER_TIMEOUT = 60.0  # generous: the machine is shared; nothing asserts on it


@dataclass
class World:
    server: LocalDiscord
    guild: Guild
    news: Channel
    bot: RunningBot

    def member(self, name: str) -> User:
        return self.server.add_member(self.guild, name)

    def mention(self, text: str) -> str:
        return f"<@{self.server.bot.id}> {text}"


@pytest.fixture(scope="module")
def world(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with LocalDiscord() as server:
        guild = server.add_guild("Newsroom", channel=None)
        news = server.add_channel(guild, "news")
        data = copy_data(sample_data, tmp_path_factory.mktemp("bot") / "data")
        with RunningBot(server, data, guild_id=guild.id) as bot:
            yield World(server, guild, news, bot)


def is_answer(m: Message) -> bool:
    """A finished answer: an embed, not loading, with the feedback buttons."""
    return bool(m.embeds) and bool(m.components) and not m.flags & MESSAGE_FLAG_LOADING


def answer_to(world: World, question: Message) -> Message:
    server = world.server
    return server.wait(lambda: next((m for m in server.replies_to(question) if is_answer(m)),
                                    None), timeout=ANSWER_TIMEOUT, what="the answer")


def slash_answer(world: World, inter: Interaction) -> Message:
    server = world.server
    return server.wait(lambda: next((m for m in server.responses(inter) if is_answer(m)), None),
                       timeout=ANSWER_TIMEOUT, what="the /ask answer")


def sources_of(answer: Message) -> str:
    return "\n".join(f["value"] for e in answer.embeds for f in e.get("fields") or []
                     if f["name"].startswith("Sources"))


def test_a_mention_is_answered_in_a_thread_with_an_embed_and_sources(world: World) -> None:
    server, ana = world.server, world.member("ana")
    question = server.say(ana, world.news, world.mention("why did Voyager 1 stop sending "
                                                         "science data?"))
    answer = answer_to(world, question)
    embed = answer.embeds[0]
    assert embed["title"] == "why did Voyager 1 stop sending science data?"
    assert "[1]" in embed["description"] and "Voyager 1" in embed["description"]
    assert "<https://example.org/sample/voyager-1-science-data>" in sources_of(answer)
    thread = server.channel(answer.channel_id)
    assert thread is not None and thread.is_thread and thread.parent_id == world.news.id
    assert thread.id == question.id and thread.owner_id == server.bot.id
    assert answer.pinged == set() and answer.nonce is not None


def test_ask_is_deferred_at_once_then_answered(world: World) -> None:
    server, ben = world.server, world.member("ben")
    inter = server.slash(ben, world.news, "ask", question="how did SpaceX catch the "
                                                          "Starship booster?")
    answer = slash_answer(world, inter)
    assert inter.response_type == 5  # deferred: "newsbot is thinking..."
    latency = inter.response_latency
    assert latency is not None and latency < 3.0, latency  # Discord's deadline
    print(f"\n/ask deferred {latency * 1000:.0f} ms after INTERACTION_CREATE")
    assert answer.id == inter.original_id and "launch tower" in answer.text()
    assert "starship-booster-catch" in sources_of(answer)
    # Follow-ups go in a thread opened on the answer.
    server.wait(lambda: answer.thread_id, what="a thread on the answer")


def test_a_follow_up_in_the_bots_thread_reads_the_thread(world: World) -> None:
    server, cai = world.server, world.member("cai")
    question = server.say(cai, world.news, world.mention("why did Voyager 1 stop sending "
                                                         "science data?"))
    first = answer_to(world, question)
    thread = server.channel(first.channel_id)
    assert thread is not None and thread.is_thread
    # "it" is Voyager 1 only for someone who read the thread; alone, the question is about
    # the Starship launch.
    follow = server.say(cai, thread, world.mention("when was it launched?"))
    answer = server.wait(lambda: next((m for m in server.bot_messages(thread)
                                       if is_answer(m) and m.id > follow.id), None),
                         timeout=ANSWER_TIMEOUT, what="the follow-up's answer")
    assert "voyager-1-science-data" in sources_of(answer)
    assert "1977" in answer.text()


def test_a_reply_to_an_answer_continues_the_conversation(world: World) -> None:
    server, dee = world.server, world.member("dee")
    question = server.say(dee, world.news, world.mention("when did Notre-Dame reopen?"))
    first = answer_to(world, question)
    # A reply with the ping on: Discord delivers its text although it names no one.
    reply = server.say(dee, server.channel(first.channel_id), "when did the fire happen?",  # type: ignore[arg-type]
                       reply_to=first, ping=True)
    answer = server.wait(lambda: next((m for m in server.replies_to(reply) if is_answer(m)),
                                      None), timeout=ANSWER_TIMEOUT, what="the reply's answer")
    assert "notre-dame-reopens" in sources_of(answer)
    assert "2019" in answer.text()


def test_a_dropped_session_identifies_again_and_one_feed_watcher_runs_on(world: World) -> None:
    server, eve = world.server, world.member("eve")
    readies = world.bot.readies()
    identifies = server.identifies
    server.drop(code=4000, resumable=False)
    server.wait(lambda: world.bot.readies() == readies + 1, timeout=ANSWER_TIMEOUT,
                what="on_ready a second time")
    assert server.identifies == identifies + 1
    question = server.say(eve, world.news, world.mention("when did Notre-Dame reopen?"))
    assert "notre-dame-reopens" in sources_of(answer_to(world, question))
    # The service behind the bot still runs one feed watcher, started once.
    proc = subprocess.run([str(NEWSBOT), "status", "--json"], capture_output=True, text=True,
                          env=world.bot.env, cwd=world.bot.data_dir.parent, timeout=120)
    service = json.loads(proc.stdout)["service"]
    assert service is not None and service["watcher"] and service["watcher_starts"] == 1


def test_a_resumed_session_loses_no_question(world: World) -> None:
    server, fay = world.server, world.member("fay")
    server.drop(code=4000)
    question = server.say(fay, world.news, world.mention("when did Notre-Dame reopen?"))
    assert "notre-dame-reopens" in sources_of(answer_to(world, question))
    assert server.calls("GET", "/gateway") == []  # resumed at resume_gateway_url
    assert any(url.startswith(server.resume_gateway_url) for url in server.gateway_urls)


def test_start_up_logs_no_warning_that_is_not_a_problem(world: World) -> None:
    log = world.bot.log()
    assert "connected as" in log
    for noise in ("Guilds intent seems to be disabled", "PyNaCl is not installed",
                  "davey is not installed"):
        assert noise not in log
