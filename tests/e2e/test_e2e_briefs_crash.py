"""Briefs from a followed feed, through ``newsbot run`` and the command line, across a crash.

A new feed item becomes one brief in each of two subscribed channels. The bot is killed
(SIGKILL) after Discord created one of them but before the bot learnt so; the restarted bot
finds it among the channel's messages instead of posting it again. A question in the brief's
thread is then answered from that article first.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.support.bot_process import NEWSBOT, RunningBot, copy_data
from tests.support.discord_server import LocalDiscord, Message
from tests.support.http import StaticServer

pytestmark = pytest.mark.integration

ROUTE = "/channels/{channel_id}/messages"
ITEM_1 = ("Lighthouse keepers' cottages restored on Skerry Point",
          "The three cottages beside the Skerry Point lighthouse have been restored by a "
          "heritage trust and open to visitors in June. The work took two years.")
ITEM_2 = ("Glass recycling plant opens in Dunmore with 120 jobs",
          "A glass recycling plant opened in Dunmore on Monday, creating 120 jobs. The plant "
          "can process 90,000 tonnes of bottles a year, its operator Clearcullet said. It cost "
          "38 million euros and was built on the site of a closed brickworks.")


def _rss(base: str, items: list[tuple[str, str, datetime]]) -> bytes:
    entries = "".join(
        f"<item><title>{t}</title><link>{base}/story/{i}</link><guid>{base}/story/{i}</guid>"
        f"<pubDate>{format_datetime(when)}</pubDate><description>{d}</description>"
        "</item>" for i, (t, d, when) in enumerate(items))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Coast Courier</title>'
            f"<link>{base}</link><description>news</description>{entries}</channel></rss>"
            ).encode()


def _cli(bot: RunningBot, *args: str, transcript: list[str]) -> str:
    proc = subprocess.run([str(NEWSBOT), *args], capture_output=True, text=True, timeout=120,
                          env=bot.env, cwd=bot.data_dir.parent)
    transcript.append(f"$ newsbot {' '.join(args)}\n{proc.stdout.rstrip()}")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _pending(data: Path) -> int:
    """Posts not confirmed yet, read from the bot's state file as it runs."""
    with sqlite3.connect(f"file:{data / 'state.sqlite3'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM posts WHERE status = 'pending'")
                   .fetchone()[0])


def _briefs(server: LocalDiscord, channel: object) -> list[Message]:
    return [m for m in server.bot_messages(channel) if m.embeds]  # type: ignore[arg-type]


@pytest.fixture
def feed() -> Iterator[StaticServer]:
    with StaticServer() as srv:
        yield srv


# The feed is served on 127.0.0.1, which newsbot refuses to fetch unless allowed.
LOCAL_FEEDS = {"NEWSBOT_ALLOW_PRIVATE_URLS": "true"}


def test_a_feed_item_is_posted_once_per_channel_across_a_sigkill(
        sample_data: Path, tmp_path: Path, feed: StaticServer) -> None:
    transcript: list[str] = []
    first = (*ITEM_1, datetime.now(UTC))
    url = feed.add("/rss", _rss(feed.base_url, [first]), content_type="application/rss+xml")
    with LocalDiscord() as server:
        guild = server.add_guild("Newsroom", channel=None)
        one, two = server.add_channel(guild, "news"), server.add_channel(guild, "headlines")
        reader = server.add_member(guild, "rue")
        data = copy_data(sample_data, tmp_path / "data")
        bot = RunningBot(server, data, guild_id=guild.id, env=LOCAL_FEEDS).start()
        try:
            # Following the feed: its first fetch stores the item it holds and posts nothing.
            _cli(bot, "sources", "add", url, "--name", "coast", transcript=transcript)
            for ch in (one, two):
                _cli(bot, "subscriptions", "add", "--channel", str(ch.id), "--source", "coast",
                     transcript=transcript)
            # A new item; Discord will create the first channel's brief but hold the answer.
            # Published after the subscriptions (feeds give whole seconds): an item older than
            # a subscription is never posted to it.
            time.sleep(1.1)
            feed.add("/rss", _rss(feed.base_url, [first, (*ITEM_2, datetime.now(UTC))]),
                     content_type="application/rss+xml")
            stall = server.stall("POST", ROUTE, 15.0, channel_id=one.id)
            _cli(bot, "poll", transcript=transcript)
            server.wait(lambda: stall.hits == 1 and _briefs(server, two), timeout=60,
                        what="both briefs created, the first one unanswered")
            bot.proc.kill()  # type: ignore[union-attr]  # SIGKILL: no cleanup at all
            bot.proc.wait(10)  # type: ignore[union-attr]
            transcript.append("(newsbot run killed with SIGKILL while Discord held its "
                              "answer for #news)")
            assert [m.embeds[0]["title"] for m in _briefs(server, one)] == [ITEM_2[0]]
            server.clear_faults()

            bot = RunningBot(server, data, guild_id=guild.id, env=LOCAL_FEEDS).start()
            transcript.append("(newsbot run restarted)")
            # Its delivery loop reconciles the unconfirmed post: it reads the channel back.
            server.wait(lambda: any(r.method == "GET" and r.params.get("channel_id")
                                    == str(one.id) for r in server.requests), timeout=60,
                        what="the restarted bot to look at #news")
            server.wait(lambda: _pending(data) == 0, timeout=30, what="an empty queue")
            out = json.loads(_cli(bot, "subscriptions", "list", "--json",
                                  transcript=transcript))
            assert out["queue"] == {"pending": 0, "unconfirmed": 0}
            for ch in (one, two):
                (brief,) = _briefs(server, ch)
                assert brief.embeds[0]["title"] == ITEM_2[0]
                labels = [c["label"] for r in brief.components for c in r["components"]]
                transcript.append(f"#{ch.name}: {brief.embeds[0]['title']} {labels}")
            assert len(out["subscriptions"]) == 2
            posts = [r for r in server.requests if r.method == "POST" and r.route == ROUTE
                     and r.params.get("channel_id") in (str(one.id), str(two.id))]
            assert len(posts) == 2  # nothing was sent twice

            # "Ask about this": a thread on the brief, answered from the brief's article.
            (brief,) = _briefs(server, one)
            server.click(reader, brief, brief.components[0]["components"][0]["custom_id"])
            (thread,) = server.wait(lambda: [t for t in server.threads(one)
                                             if t.id == brief.id], timeout=30,
                                    what="the brief's thread")
            question = server.say(reader, thread, f"<@{server.bot.id}> how many jobs "
                                                  "does it create?")
            answer = server.wait(lambda: [m for m in server.replies_to(question) if m.embeds
                                          and m.embeds[0].get("fields")], timeout=90,
                                 what="an answer in the thread")[-1].embeds[0]
            transcript.append(f"rue in the thread: how many jobs does it create?\n"
                              f"newsbot: {answer['description']}\n"
                              f"{answer['fields'][0]['value']}")
            assert "120" in answer["description"]
            assert answer["fields"][0]["value"].startswith(f"**[1]** [{ITEM_2[0]}]")
        except BaseException:
            print(bot.log()[-6000:])
            raise
        finally:
            bot.stop()
            print("\n\n".join(transcript))
