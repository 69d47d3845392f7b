"""The running service under admin work: a full reindex while members ask, and feed polls.

    python -m bench.live --corpus ../shared/data/wikinews --qa ../shared/data/qa/dev.jsonl

Starts a real ``newsbot serve`` on a fresh data dir (the local int8 model), then through
the command line, as an admin would:
(a) ingests the corpus (timed);
(b) runs ``newsbot reindex --full`` while a client asks the development questions in a loop
    over the control socket, and reports the reindex's time, the service's peak memory,
    the latency of every answer during it and the longest gap between two answers;
(c) follows a 100-item feed served from 127.0.0.1 (the first fetch stores 100 articles),
    then times ``newsbot poll --once`` when 100 new items have arrived, when nothing has
    changed, and when the server answers 304.
Figures go to stdout and, with --out, to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench.common import corpus_files, git_commit, percentile, read_jsonl
from bot.control import ControlClient
from tests.support.feeds import numbered_items, rss
from tests.support.http import StaticServer

NEWSBOT = Path(sys.executable).with_name("newsbot")


def _rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Asker(threading.Thread):
    """Asks questions back to back over the control socket, recording each answer."""

    def __init__(self, client: ControlClient, questions: list[str]) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.questions = questions
        self.stop = threading.Event()
        self.done: list[tuple[float, float, bool]] = []  # start, end, answered with sources

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            q = self.questions[i % len(self.questions)]
            i += 1
            t0 = time.monotonic()
            try:
                a = self.client.call("ask", {"question": q})
                ok = bool(a["answer"]) and bool(a["sources"] or a["closest"])
            except Exception:
                ok = False
            self.done.append((t0, time.monotonic(), ok))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--qa", required=True, type=Path, help="questions asked meanwhile")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    files = corpus_files(args.corpus)
    questions = [r["question"] for r in read_jsonl(args.qa)]
    work = Path(tempfile.mkdtemp(prefix="newsbot-live-"))
    data = work / "data"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEWSBOT_", "OPENAI_", "DISCORD_"))}
    # The bench feed is served on 127.0.0.1, which newsbot refuses to fetch unless allowed.
    env.update(NEWSBOT_DATA_DIR=str(data), HF_HUB_OFFLINE="1", NEWSBOT_ALLOW_PRIVATE_URLS="true")

    def cli(*argv: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        t0 = time.perf_counter()
        proc = subprocess.run([str(NEWSBOT), *argv], env=env, text=True, capture_output=True)
        if proc.returncode != 0:
            raise SystemExit(f"newsbot {' '.join(argv)} failed: {proc.stderr.strip()}")
        return time.perf_counter() - t0, proc

    serve = subprocess.Popen([str(NEWSBOT), "serve"], env=env, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out: dict[str, Any] = {"commit": git_commit()}
    try:
        while (client := ControlClient.find(data)) is None:
            time.sleep(0.2)
        print(f"serve pid {serve.pid}; data dir {data}", flush=True)

        seconds, proc = cli("ingest", *map(str, files))
        out["ingest"] = {"seconds": round(seconds, 1), "summary": proc.stdout.strip()}
        print(f"(a) ingest through the service: {proc.stdout.strip()} [{seconds:.1f}s wall]",
              flush=True)
        status = client.call("status", {})
        rss_before = _rss_mb(serve.pid, "VmRSS")

        asker = Asker(client, questions)
        asker.start()
        while not asker.done:  # the first answer after an ingest also loads the keyword index
            time.sleep(0.1)
        first_answer_s = asker.done[0][1] - asker.done[0][0]
        print(f"    the first answer after it: {first_answer_s:.2f}s", flush=True)
        time.sleep(5)  # answers before the reindex, for comparison
        t_start = time.monotonic()
        seconds, proc = cli("reindex", "--full", "--json")
        t_end = time.monotonic()
        time.sleep(5)
        asker.stop.set()
        asker.join()
        report = json.loads(proc.stdout)
        during = [(s, e, ok) for s, e, ok in asker.done if e >= t_start and s <= t_end]
        before = [e - s for s, e, _ in asker.done if e < t_start]
        ends = sorted(e for _, e, _ in during)
        marks = [t_start, *ends, t_end]
        gap, gap_at = max((b - a, a - t_start) for a, b in pairwise(marks))
        slowest = max(during, key=lambda d: d[1] - d[0]) if during else None
        lat = [e - s for s, e, _ in during]
        out["reindex"] = {
            "articles": report["articles"], "chunks": report["chunks"],
            "chunks_before": status["chunks"], "seconds": round(seconds, 1),
            "minutes": round(seconds / 60, 2),
            "service_rss_mb_before": round(rss_before, 0),
            "service_peak_rss_mb": round(_rss_mb(serve.pid, "VmHWM"), 0),
            "answers_during": len(during), "failed_or_empty": sum(not ok for *_, ok in during),
            "latency_ms_before_p50": round(1000 * percentile(before, 50), 0) if before else None,
            "latency_ms_p50": round(1000 * percentile(lat, 50), 0) if lat else None,
            "latency_ms_p95": round(1000 * percentile(lat, 95), 0) if lat else None,
            "latency_ms_max": round(1000 * max(lat), 0) if lat else None,
            "longest_gap_s": round(gap, 2),
            # Where in the reindex (seconds from its start) the gap and the slowest answer
            # began, to tell the switch from the machine's other load.
            "longest_gap_at_s": round(gap_at, 1),
            "slowest_answer_at_s": round(slowest[0] - t_start, 1) if slowest else None,
            "first_answer_after_ingest_s": round(first_answer_s, 2),  # printed with (a)
            "load_average": os.getloadavg()[0],
        }
        r = out["reindex"]
        print(f"(b) full reindex through the service: {r['articles']} articles, {r['chunks']} "
              f"chunks in {r['seconds']}s ({r['minutes']} min); service peak RSS "
              f"{r['service_peak_rss_mb']} MB (before {r['service_rss_mb_before']} MB)\n"
              f"    {r['answers_during']} answers during it, {r['failed_or_empty']} failed or "
              f"empty; latency p50/p95/max {r['latency_ms_p50']}/{r['latency_ms_p95']}/"
              f"{r['latency_ms_max']} ms (p50 before: {r['latency_ms_before_p50']} ms); "
              f"longest gap between answers {r['longest_gap_s']} s, "
              f"{r['longest_gap_at_s']} s into the reindex (slowest answer began at "
              f"{r['slowest_answer_at_s']} s; the reindex took {r['seconds']} s); "
              f"load average {r['load_average']:.1f}", flush=True)

        with StaticServer() as http:
            url = http.add("/feed.xml", rss(numbered_items(0, 100, long_text=True)),
                           content_type="application/rss+xml")
            _, proc = cli("sources", "add", url, "--name", "bench-feed", "--json")
            first = json.loads(proc.stdout)["poll"]
            http.add("/feed.xml", rss(numbered_items(100, 200, long_text=True)),
                     content_type="application/rss+xml")

            def poll() -> dict[str, Any]:
                wall, proc = cli("poll", "--once", "--json")
                return {**json.loads(proc.stdout)["sources"][0], "wall": wall}

            new = poll()
            # A question right after a poll that stored articles: answered with the keyword
            # index as it was while the next one is built beside it.
            t0 = time.monotonic()
            client.call("ask", {"question": questions[0]})
            ask_after_poll = time.monotonic() - t0
            same = poll()
            http.add("/feed.xml", rss(numbered_items(100, 200, long_text=True)),
                     content_type="application/rss+xml", etag='"v2"')
            poll()  # stores the ETag
            cond = poll()
        out["poll_100"] = {
            "first_fetch": {"s": round(first["seconds"], 2), "added": first["added"]},
            "new_items": {"s": round(new["seconds"], 2), "added": new["added"],
                          "cli_wall_s": round(new["wall"], 2)},
            "ask_after_new_items_s": round(ask_after_poll, 2),
            "unchanged": {"s": round(same["seconds"], 2), "unchanged": same["unchanged"]},
            "not_modified": {"s": round(cond["seconds"], 3), "outcome": cond["outcome"]},
        }
        print(f"(c) a 100-item feed, one poll in the service: first fetch "
              f"{first['seconds']:.2f}s ({first['added']} stored); 100 new items "
              f"{new['seconds']:.2f}s ({new['added']} added; the CLI command took "
              f"{new['wall']:.1f}s wall; a question right after it {ask_after_poll:.2f}s); "
              f"nothing new {same['seconds']:.2f}s; 304 "
              f"{cond['seconds']:.3f}s ({cond['outcome']})", flush=True)
    finally:
        serve.terminate()
        serve.wait(timeout=60)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
