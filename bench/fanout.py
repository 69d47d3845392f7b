"""One new story fanned out to many channels through the running bot: ``newsbot run``
against the local Discord, which enforces Discord's per-channel rate limit.

    python -m bench.fanout [--channels 100] [--limit 5 --per 5]

A feed served on 127.0.0.1 is followed (its first fetch posts nothing) and every channel
subscribes to it; then a new item appears and ``newsbot poll`` is handed to the running
bot. Prints the time from that poll to the last channel's brief, the sends, the 429s the
local Discord answered and the briefs per channel (each must be exactly one).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from bot.core.services import build_services
from bot.settings import Settings
from tests.support.bot_process import NEWSBOT, RunningBot, copy_data, prepare_sample_data
from tests.support.discord_server import LocalDiscord
from tests.support.http import StaticServer

ROUTE = "/channels/{channel_id}/messages"
ITEMS = [("Ferry timetable extended into the winter",
          "The harbour ferry will keep its summer timetable until March, the operator said on "
          "Monday. Four extra crossings a day are planned for the holidays."),
         ("Lifeboat station opens a training pool",
          "The lifeboat station at Carrow opened an indoor training pool on Tuesday. The pool "
          "cost 1.1 million euros and will train 200 volunteers a year.")]


def _rss(base: str, n: int) -> bytes:
    items = "".join(
        f"<item><title>{t}</title><link>{base}/story/{i}</link><guid>{base}/story/{i}</guid>"
        f"<pubDate>{format_datetime(datetime.now(UTC))}</pubDate><description>{d}"
        "</description></item>" for i, (t, d) in enumerate(ITEMS[:n]))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Carrow Post</title>'
            f"<link>{base}</link><description>news</description>{items}</channel></rss>"
            ).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, default=100)
    parser.add_argument("--limit", type=int, default=5, help="messages per channel ...")
    parser.add_argument("--per", type=float, default=5.0, help="... per this many seconds")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="newsbot-fanout-"))
    template = prepare_sample_data(tmp / "template")
    with StaticServer() as feed, LocalDiscord() as server:
        url = feed.add("/rss", _rss(feed.base_url, 1), content_type="application/rss+xml")
        guild = server.add_guild("Newsroom", channel=None)
        channels = [server.add_channel(guild, f"news-{i}") for i in range(args.channels)]
        data = copy_data(template, tmp / "bot")
        env = {"NEWSBOT_ALLOW_PRIVATE_URLS": "true"}
        # Following and subscribing before the bot starts: the setup is not what is timed.
        services = build_services(Settings(data_dir=data, allow_private_urls=True))
        try:
            services.sources.add(url, name="carrow")
            for ch in channels:
                services.desk.subscribe(channel_id=ch.id, guild_id=guild.id, source="carrow")
        finally:
            services.close()
        limit = server.rate_limit("POST", ROUTE, limit=args.limit, per=args.per)
        with RunningBot(server, data, guild_id=guild.id, env=env) as bot:
            time.sleep(1.1)  # the new item is dated after the subscriptions
            feed.add("/rss", _rss(feed.base_url, 2), content_type="application/rss+xml")
            t0 = time.monotonic()
            subprocess.run([str(NEWSBOT), "poll"], env=bot.env, cwd=data.parent, check=True,
                           capture_output=True, timeout=120)
            deadline = t0 + args.timeout
            while time.monotonic() < deadline:
                if all(server.bot_messages(ch) for ch in channels):
                    break
                time.sleep(0.05)
            took = time.monotonic() - t0
            time.sleep(2.0)  # anything sent twice would arrive by now
            per_channel = Counter(len([m for m in server.bot_messages(ch) if m.embeds])
                                  for ch in channels)
            posts = [r for r in server.requests if r.method == "POST" and r.route == ROUTE]
    print(f"{args.channels} channels, per-channel limit {args.limit} per {args.per:g} s")
    print(f"poll to the last channel's brief: {took:.1f} s; {len(posts)} sends, "
          f"{limit.rejected} answered 429; briefs per channel: "
          + ", ".join(f"{n} in {c} channels" for n, c in sorted(per_channel.items())))
    return 0 if per_channel == Counter({1: args.channels}) else 1


if __name__ == "__main__":
    raise SystemExit(main())
