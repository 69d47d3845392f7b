"""A long run of the service at a steady question rate, watching it for leaks.

    python -m bench.soak [--mode serve|run] [--minutes 30] [--every 2] [--sample 10]
                         [--item-every 60] [--no-model] [--out PATH]

Starts a real service on a fresh copy of a data dir holding the bundled sample articles:
``newsbot serve`` (questions through its control socket, as ``newsbot ask`` sends them) or
``newsbot run`` against the local Discord (questions as mentions and ``/ask``, in turn). The
service follows a feed served from 127.0.0.1 that gains an item every ``--item-every``
seconds (a teaser, so each new item also fetches its page; 0: the feed never changes, so
the store holds the same articles throughout), with NEWSBOT_POLL_MINUTES=1; under
``run`` a channel is subscribed to it, so every new item is also a brief posted to Discord.
Answers are written by the local OpenAI-compatible server (``--no-model``: extractive).

Every ``--sample`` seconds it reads the service process's resident memory
(/proc/PID/status VmRSS), open file descriptors (/proc/PID/fd) and threads, and the machine's
load average. It prints a row a minute, then per measure: the first and last sample, the
slope per hour of a least-squares line fitted over the second half of the run (the first
half is warm-up: the model, caches, discord.py's message cache filling), and the rise.

The rise is the lowest value of the last quarter of the run less the lowest value of the
third: the level the process comes back to, once warm, and how far that level moved. A leak
never gives back what it took, so it lifts that level; a pool that grows while the machine
is busy and shrinks after (worker threads under a load spike) does not, though it bends a
fitted line. A measure holds steady when its rise is within a floor for what a run this long
can tell apart from noise: 2% of the mean for memory, 2 file descriptors, 2 threads. One
descriptor or thread kept per poll, or per hundred questions, rises past its floor within a
30-minute run; memory must grow about 2% in a quarter of it (7.5 minutes) to be seen.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import git_commit, percentile
from bot.cogs.ask import BUSY
from bot.control import ControlClient
from tests.support.bot_process import (
    NEWSBOT,
    RunningBot,
    clean_env,
    copy_data,
    prepare_sample_data,
)
from tests.support.discord_server import MESSAGE_FLAG_LOADING, LocalDiscord, Message
from tests.support.feeds import Item, article_page, rss, sentence, story_paragraphs
from tests.support.http import StaticServer
from tests.support.openai_server import FakeOpenAIServer

# Our own questions: about the bundled sample articles, and about the feed's stories.
QUESTIONS = (
    "how did SpaceX catch the Starship booster?",
    "why did Voyager 1 stop sending science data?",
    "when did Notre-Dame reopen?",
    "what did Netflix use generative AI for in The Eternaut?",
    "what is new at the harbour market?",
    "what happened to the railway station?",
)
REPLY = "The article on the story explains it [1]."
FEED_WINDOW = 20  # items the feed keeps, newest first, as a real feed does
ANSWER_TIMEOUT_S = 120.0
MEASURES = ("rss_mb", "fds", "threads")
FLOORS = {"rss_mb": None, "fds": 2.0, "threads": 2.0}  # None: 2% of the mean
RSS_FLOOR_SHARE = 0.02


@dataclass(slots=True)
class Sample:
    t_s: float
    rss_mb: float
    fds: int
    threads: int
    load1: float


def read_sample(pid: int, t_s: float) -> Sample:
    rss_kb = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    load1 = float(Path("/proc/loadavg").read_text().split()[0])
    return Sample(round(t_s, 1), round(rss_kb / 1024, 1), fds, threads, load1)


def trend(samples: list[Sample], measure: str) -> dict[str, Any]:
    """First and last values, the line fitted over the second half and the rise (see the
    module's notes), for one measure."""
    ys = np.array([getattr(s, measure) for s in samples], dtype=float)
    ts = np.array([s.t_s for s in samples], dtype=float)
    end = ts[-1]
    half = ts >= end / 2
    third_q, last_q = (ts >= end / 2) & (ts < 3 * end / 4), ts >= 3 * end / 4
    out: dict[str, Any] = {"start": ys[0].item(), "end": ys[-1].item(),
                           "min": ys.min().item(), "max": ys.max().item()}
    if half.sum() < 3 or not third_q.any() or not last_q.any():
        return {**out, "slope_per_h": None, "rise": None, "steady": None}
    slope = float(np.polyfit(ts[half] / 3600, ys[half], 1)[0])
    rise = float(ys[last_q].min() - ys[third_q].min())
    floor = FLOORS[measure] if FLOORS[measure] is not None else RSS_FLOOR_SHARE * ys[half].mean()
    return {**out, "slope_per_h": round(slope, 2), "rise": round(rise, 2),
            "allowed": round(float(floor), 2), "steady": bool(rise <= floor)}


class Feed:
    """A feed on a local server that gains a teaser item (and its page) on every ``add``."""

    def __init__(self, server: StaticServer) -> None:
        self.server = server
        self.items: list[Item] = []
        self.url = server.url("/soak.xml")
        for _ in range(3):
            self.add()

    def add(self) -> None:
        n = len(self.items)
        title = f"Story {n}: {sentence(n, 5)}"
        link = self.server.add(f"/story/{n}", article_page(title, story_paragraphs(n)))
        self.items.insert(0, Item(title=title, link=link, guid=f"soak-{n}",
                                  description=sentence(n),  # a teaser: the page is fetched
                                  pub_date=format_datetime(datetime.now(UTC))))
        self.server.add("/soak.xml", rss(self.items[:FEED_WINDOW], title="Soak Gazette"),
                        content_type="application/rss+xml")


@dataclass
class Asked:
    """Questions sent and how each ended."""

    sent: int = 0
    answered: list[float] = field(default_factory=list)  # seconds to the finished answer
    busy: int = 0
    failed: int = 0
    late_sends: int = 0  # sends that fell behind the schedule by more than one interval
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        a = self.answered
        return {"sent": self.sent, "answered": len(a), "busy": self.busy, "failed": self.failed,
                "unfinished": self.sent - len(a) - self.busy - self.failed,
                "late_sends": self.late_sends, "errors": self.errors[:5],
                "latency_s_p50": round(percentile(a, 50), 2) if a else None,
                "latency_s_p95": round(percentile(a, 95), 2) if a else None,
                "latency_s_max": round(max(a), 2) if a else None}


def every(interval: float, stop: threading.Event, action: Callable[[int], None],
          on_late: Callable[[], None] | None = None) -> threading.Thread:
    """Calls ``action(k)`` at start + k * interval until ``stop``; a thread."""
    def loop() -> None:
        start, k = time.monotonic(), 0
        while not stop.is_set():
            due = start + k * interval
            wait = due - time.monotonic()
            if wait > 0 and stop.wait(wait):
                return
            if on_late and -wait > interval:
                on_late()
            action(k)
            k += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def serve_questions(data: Path, asked: Asked, stop: threading.Event,
                    interval: float) -> Callable[[], None]:
    """Asks over the control socket at a steady rate; returns a function that waits for the
    answers still in flight."""
    client = ControlClient.find(data)
    assert client is not None
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="soak-ask")
    lock = threading.Lock()

    def one(q: str) -> None:
        t0 = time.monotonic()
        try:
            a = client.call("ask", {"question": q})
            ok = bool(a["answer"])
        except Exception as exc:
            ok = False
            with lock:
                asked.errors.append(f"{type(exc).__name__}: {exc}")
        with lock:
            if ok:
                asked.answered.append(time.monotonic() - t0)
            else:
                asked.failed += 1

    def send(k: int) -> None:
        with lock:
            asked.sent += 1
        pool.submit(one, QUESTIONS[k % len(QUESTIONS)])

    def late() -> None:
        asked.late_sends += 1

    every(interval, stop, send, late)
    return lambda: pool.shutdown(wait=True)


def discord_questions(server: LocalDiscord, asked: Asked, stop: threading.Event,
                      interval: float) -> Callable[[], None]:
    """Mentions and ``/ask`` in turn at a steady rate, in #news; a tracker thread sees each
    one answered. Returns a function that waits for the answers still in flight."""
    guild = next(iter(server.guilds.values()))
    news = next(c for c in guild.channels.values() if c.name == "news")
    members = [server.add_member(guild, f"reader{i}") for i in range(6)]
    pending: dict[int, tuple[float, Callable[[], list[Message]]]] = {}
    lock = threading.Lock()

    def send(k: int) -> None:
        member, q = members[k % len(members)], QUESTIONS[k % len(QUESTIONS)]
        now = time.monotonic()
        replies: Callable[[], list[Message]]
        if k % 2:
            inter = server.slash(member, news, "ask", question=q)
            replies, key = partial(server.responses, inter), inter.id
        else:
            msg = server.say(member, news, f"<@{server.bot.id}> {q}")
            replies, key = partial(server.replies_to, msg), msg.id
        with lock:
            asked.sent += 1
            pending[key] = (now, replies)

    def check() -> None:
        with lock:
            items = list(pending.items())
        for key, (t0, replies) in items:
            got = replies()
            now = time.monotonic()
            outcome = None
            if any(m.embeds and m.components and not m.flags & MESSAGE_FLAG_LOADING
                   for m in got):
                outcome = "answered"
            elif any(m.content == BUSY for m in got):
                outcome = "busy"
            elif now - t0 > ANSWER_TIMEOUT_S:
                outcome = "failed"
            if outcome:
                with lock:
                    pending.pop(key, None)
                    if outcome == "answered":
                        asked.answered.append(now - t0)
                    elif outcome == "busy":
                        asked.busy += 1
                    else:
                        asked.failed += 1

    def late() -> None:
        asked.late_sends += 1

    every(interval, stop, send, late)
    tracking = threading.Event()
    tracker = every(0.5, tracking, lambda _: check())

    def finish() -> None:
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while pending and time.monotonic() < deadline:
            time.sleep(0.5)
        tracking.set()
        tracker.join()
        check()

    return finish


def run_cli(env: dict[str, str], cwd: Path, *argv: str) -> str:
    import subprocess

    proc = subprocess.run([str(NEWSBOT), *argv], env=env, cwd=cwd, text=True,
                          capture_output=True, timeout=300)
    if proc.returncode != 0:
        raise SystemExit(f"newsbot {' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("serve", "run"), default="serve")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--every", type=float, default=2.0, help="seconds between questions")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--item-every", type=float, default=60.0,
                    help="seconds between new feed items (0: none)")
    ap.add_argument("--model-delay", type=float, default=0.3,
                    help="seconds the local model takes per answer")
    ap.add_argument("--no-model", action="store_true", help="extractive answers only")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--summarize", type=Path, metavar="JSON",
                    help="print the summary of a saved run again (trends recomputed)")
    args = ap.parse_args()
    if args.summarize:
        saved = json.loads(args.summarize.read_text())
        kept = [Sample(**s) for s in saved["samples"]]
        saved["trend"] = {m: trend(kept, m) for m in MEASURES}
        saved["steady"] = all(saved["trend"][m]["steady"] for m in MEASURES)
        print_summary(saved)
        return 0 if saved["steady"] else 1

    commit = git_commit()  # the code the service starts with, whatever is checked out later
    work = Path(tempfile.mkdtemp(prefix="newsbot-soak-"))
    t = time.monotonic()
    template = prepare_sample_data(work / "template")
    print(f"sample data ready in {time.monotonic() - t:.1f} s ({work})", flush=True)
    data = copy_data(template, work / "data")
    # The feed is served on 127.0.0.1, which newsbot refuses to fetch unless allowed.
    env = {"NEWSBOT_POLL_MINUTES": "1", "NEWSBOT_USER_COOLDOWN_S": "0",
           "NEWSBOT_ALLOW_PRIVATE_URLS": "true"}
    asked = Asked()
    stop = threading.Event()
    samples: list[Sample] = []
    model = FakeOpenAIServer(default_reply=None if args.no_model else REPLY)
    http = StaticServer()
    discord = LocalDiscord() if args.mode == "run" else None
    bot: RunningBot | None = None
    proc: Any = None
    with model, http:
        if not args.no_model:
            env.update(OPENAI_BASE_URL=model.base_url, OPENAI_API_KEY="local")
            # Past the queue (a question may take more than one call), replies come at once.
            for _ in range(int(args.minutes * 60 / args.every) + 100):
                model.queue_reply(REPLY, delay=args.model_delay)
        feed = Feed(http)
        try:
            if discord is not None:
                discord.start()
                guild = discord.add_guild("Soak", channel=None)
                discord.add_channel(guild, "news")
                briefs = discord.add_channel(guild, "briefs")
                bot = RunningBot(discord, data, guild_id=guild.id, env=env).start()
                assert bot.proc is not None
                pid, cli_env = bot.proc.pid, bot.env
            else:
                import subprocess

                cli_env = clean_env(NEWSBOT_DATA_DIR=str(data), **env)
                log = (work / "serve.log").open("wb")
                proc = subprocess.Popen([str(NEWSBOT), "-v", "serve"], env=cli_env,
                                        cwd=work, stdout=log, stderr=subprocess.STDOUT)
                deadline = time.monotonic() + 120
                while ControlClient.find(data) is None:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("newsbot serve did not start; see "
                                         f"{work / 'serve.log'}")
                    time.sleep(0.2)
                pid = proc.pid
            run_cli(cli_env, work, "sources", "add", feed.url, "--name", "soak")
            if discord is not None:
                run_cli(cli_env, work, "subscriptions", "add", "--channel", str(briefs.id),
                        "--source", "soak")
            print(f"{args.mode}: pid {pid}; {args.minutes:g} min, a question every "
                  f"{args.every:g} s, a feed item every {args.item_every:g} s (0: none), "
                  f"a sample every {args.sample:g} s", flush=True)
            print(f"{'min':>6} {'RSS MB':>8} {'fds':>5} {'threads':>7} {'load1':>6} "
                  f"{'asked':>6} {'answered':>8}", flush=True)

            began = time.monotonic()
            finish = (discord_questions(discord, asked, stop, args.every) if discord
                      else serve_questions(data, asked, stop, args.every))
            if args.item_every > 0:
                every(args.item_every, stop, lambda k: k and feed.add())
            per_row = max(1, round(60 / args.sample))

            def take(k: int) -> None:
                s = read_sample(pid, time.monotonic() - began)
                samples.append(s)
                if k % per_row == 0:
                    print(f"{s.t_s / 60:6.1f} {s.rss_mb:8.1f} {s.fds:5d} {s.threads:7d} "
                          f"{s.load1:6.2f} {asked.sent:6d} {len(asked.answered):8d}",
                          flush=True)

            sampler = every(args.sample, stop, take)
            stop.wait(args.minutes * 60)
            stop.set()
            sampler.join()
            finish()
            status = json.loads(run_cli(cli_env, work, "status", "--json"))
            sources = json.loads(run_cli(cli_env, work, "sources", "list", "--json"))
            posted = len([m for m in discord.bot_messages(briefs) if m.embeds]) if discord else None
        finally:
            stop.set()
            if bot is not None:
                bot.stop()
            if proc is not None:
                proc.terminate()
                proc.wait(60)
            if discord is not None:
                discord.stop()

    feed_source = next((s for s in sources if s.get("name") == "soak"), {})
    result: dict[str, Any] = {
        "commit": commit, "mode": args.mode, "minutes": args.minutes,
        "question_every_s": args.every, "item_every_s": args.item_every,
        "sample_every_s": args.sample, "model": not args.no_model, "cores": os.cpu_count(),
        "load1_mean": round(float(np.mean([s.load1 for s in samples])), 2),
        "load1_max": max(s.load1 for s in samples),
        "questions": asked.summary(),
        "feed": {"items_published": len(feed.items), "articles": status.get("articles"),
                 "source": {k: feed_source.get(k) for k in ("status", "articles", "failures",
                                                            "last_error")},
                 "briefs_posted": posted},
        "trend": {m: trend(samples, m) for m in MEASURES},
        "samples": [asdict(s) for s in samples],
    }
    result["steady"] = all(result["trend"][m]["steady"] for m in MEASURES)
    print_summary(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0 if result["steady"] else 1


def print_summary(r: dict[str, Any]) -> None:
    q = r["questions"]
    print(f"\n{r['mode']}: {r['minutes']:g} min; load average (1 min) mean {r['load1_mean']} "
          f"max {r['load1_max']} on {r['cores']} cores")
    print(f"questions: {q['sent']} sent, {q['answered']} answered, {q['busy']} busy, "
          f"{q['failed']} failed, {q['unfinished']} unfinished; latency p50 "
          f"{q['latency_s_p50']} s, p95 {q['latency_s_p95']} s, max {q['latency_s_max']} s; "
          f"{q['late_sends']} sends behind schedule")
    f = r["feed"]
    print(f"feed: {f['items_published']} items published, {f['articles']} articles in the "
          f"store; source {f['source']}; briefs posted {f['briefs_posted']}")
    print(f"\n{'measure':>8} {'start':>8} {'end':>8} {'min':>8} {'max':>8} {'slope/h':>8} "
          f"{'rise':>7} {'allowed':>7}  steady")
    for m in MEASURES:
        x = r["trend"][m]
        print(f"{m:>8} {x['start']:8.1f} {x['end']:8.1f} {x['min']:8.1f} {x['max']:8.1f} "
              f"{x['slope_per_h']:8.2f} {x['rise']:7.2f} {x['allowed']:7.2f}  "
              f"{'yes' if x['steady'] else 'NO'}")
    print(f"holds steady: {'yes' if r['steady'] else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
