"""Many questions at once through the running bot: ``newsbot run`` against the local Discord,
answers written by a local OpenAI-compatible server that takes ``--model-delay`` seconds each.

    python -m bench.discord_load [--questions 50] [--model-delay 2] [--working 16]
                                 [--waiting 64] [--mentions 0]

Every question is a member's ``/ask`` sent at the same moment (``--mentions`` of them are
mentions instead). Prints how many were answered, told "busy" and dropped (neither: must be
0), and, from the local Discord's own clock, the defer latency (INTERACTION_CREATE leaving
its socket to the callback arriving; Discord allows 3 s) and the time to the finished
answer. "Busy" should appear only past ``working + waiting``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import percentile
from bot.cogs.ask import BUSY
from tests.support.bot_process import RunningBot, copy_data, prepare_sample_data
from tests.support.discord_server import MESSAGE_FLAG_LOADING, Interaction, LocalDiscord, Message
from tests.support.openai_server import FakeOpenAIServer

# Our own questions about the bundled sample articles, and a reply citing source 1.
QUESTIONS = (
    "how did SpaceX catch the Starship booster?",
    "why did Voyager 1 stop sending science data?",
    "when did Notre-Dame reopen?",
    "what did Netflix use generative AI for in The Eternaut?",
)
REPLY = "The article on the story explains it [1]."


def finished(m: Message) -> bool:
    return bool(m.embeds) and bool(m.components) and not m.flags & MESSAGE_FLAG_LOADING


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=50)
    ap.add_argument("--model-delay", type=float, default=2.0)
    ap.add_argument("--working", type=int, default=16, help="NEWSBOT_MAX_CONCURRENT_ANSWERS")
    ap.add_argument("--waiting", type=int, default=64, help="NEWSBOT_MAX_WAITING_ANSWERS")
    ap.add_argument("--mentions", type=int, default=0, help="how many ask by mention")
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="newsbot-load-"))
    t = time.monotonic()
    template = prepare_sample_data(tmp / "template")
    print(f"sample data ready in {time.monotonic() - t:.1f} s")
    with FakeOpenAIServer() as model, LocalDiscord() as server:
        for _ in range(args.questions + 10):
            model.queue_reply(REPLY, delay=args.model_delay)
        guild = server.add_guild("Load", channel=None)
        channel = server.add_channel(guild, "news")
        members = [server.add_member(guild, f"m{i}") for i in range(args.questions)]
        env = {"OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "local",
               "NEWSBOT_MAX_CONCURRENT_ANSWERS": str(args.working),
               "NEWSBOT_MAX_WAITING_ANSWERS": str(args.waiting)}
        with RunningBot(server, copy_data(template, tmp / "bot"), guild_id=guild.id,
                        env=env) as bot:
            print(f"newsbot run connected in {bot.started_in:.1f} s")
            sent_at: dict[int, float] = {}
            slashes: list[Interaction] = []
            mentions: list[Message] = []
            for i, member in enumerate(members):
                question = QUESTIONS[i % len(QUESTIONS)]
                if i < args.mentions:
                    msg = server.say(member, channel, f"<@{server.bot.id}> {question}")
                    mentions.append(msg)
                    sent_at[msg.id] = time.monotonic()
                else:
                    inter = server.slash(member, channel, "ask", question=question)
                    slashes.append(inter)
                    sent_at[inter.id] = time.monotonic()

            done: dict[int, tuple[str, float]] = {}
            deadline = time.monotonic() + args.timeout
            while len(done) < args.questions and time.monotonic() < deadline:
                now = time.monotonic()
                for inter in slashes:
                    if inter.id in done:
                        continue
                    replies = server.responses(inter)
                    if any(finished(m) for m in replies):
                        done[inter.id] = ("answered", now - sent_at[inter.id])
                    elif any(m.content == BUSY for m in replies):
                        done[inter.id] = ("busy", now - sent_at[inter.id])
                for msg in mentions:
                    if msg.id in done:
                        continue
                    replies = server.replies_to(msg)
                    if any(finished(m) for m in replies):
                        done[msg.id] = ("answered", now - sent_at[msg.id])
                    elif any(m.content == BUSY for m in replies):
                        done[msg.id] = ("busy", now - sent_at[msg.id])
                time.sleep(0.05)
            defers = [i.response_latency for i in slashes if i.response_latency is not None]
            late = [i for i in slashes if i.response_latency is None]
            model_calls = len(model.requests_to("/v1/chat/completions"))

    answered = [s for kind, s in done.values() if kind == "answered"]
    busy = sum(1 for kind, _ in done.values() if kind == "busy")
    dropped = args.questions - len(done)
    cap = args.working + args.waiting
    print(f"\n{args.questions} questions at once ({len(slashes)} /ask, {len(mentions)} mentions); "
          f"model {args.model_delay:.1f} s per answer; {args.working} working + "
          f"{args.waiting} waiting = cap {cap}")
    print(f"answered {len(answered)}, busy {busy} (expected {max(0, args.questions - cap)}), "
          f"dropped {dropped}; model calls {model_calls}")
    if answered:
        print(f"answer latency s: p50 {percentile(answered, 50):.2f}  "
              f"p95 {percentile(answered, 95):.2f}  max {max(answered):.2f}")
    if defers:
        ms = [d * 1000 for d in defers]
        print(f"defer latency ms: p50 {percentile(ms, 50):.0f}  p99 {percentile(ms, 99):.0f}  "
              f"max {max(ms):.0f}  (never answered: {len(late)})")
    ok = dropped == 0 and not late and busy == max(0, args.questions - cap)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
