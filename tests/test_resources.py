"""A long-running process keeps its open files and threads flat: what a store, a question or a
feed poll opens is released. (bench/soak.py watches a real service for half an hour.)"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from bot.control import ControlClient
from bot.core.services import Services
from bot.service import NewsService
from tests.fakes import make_services
from tests.support.feeds import article_page, numbered_items, rss, story_paragraphs
from tests.support.http import StaticServer

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")

QUESTIONS = ("what did Netflix use AI for in The Eternaut?", "when did Notre-Dame reopen?",
             "what is new at the harbour?")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    """Every thread of this process, native ones (Chroma's runtime, ONNX) included."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line in /proc/self/status")


def settled(fds: int, thr: int, slack: int = 2, wait_s: float = 5.0) -> tuple[int, int]:
    """This process's fds and threads, once they are back within ``slack`` of ``fds`` and
    ``thr`` (a finished job's thread may take a moment to exit), or as they are at the end
    of ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        now = open_fds(), threads()
        if (now[0] <= fds + slack and now[1] <= thr + slack) or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def threads_but_the_loops_pool() -> int:
    """:func:`threads` less the event loop's default executor, a pool that grows to its
    bound (a few threads) as ``asyncio.to_thread`` calls happen to overlap: not a leak."""
    pool = sum(t.name.startswith("asyncio_") for t in threading.enumerate())
    return threads() - pool


async def settled_beside_the_loop(fds: int, thr: int, slack: int = 2,
                                  wait_s: float = 5.0) -> tuple[int, int]:
    """:func:`settled` for a test whose service runs on its own event loop: the wait yields
    to that loop, which closes the connections it served (a blocking wait would keep them
    open for as long as it lasts)."""
    deadline = time.monotonic() + wait_s
    while True:
        now = open_fds(), threads_but_the_loops_pool()
        if (now[0] <= fds + slack and now[1] <= thr + slack) or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.05)


async def quiet(service: NewsService, wait_s: float = 60.0) -> None:
    """Until the listeners of the service's last poll (briefs), which run after it
    returns, are done."""
    deadline = time.monotonic() + wait_s
    while service._busy:
        assert time.monotonic() < deadline, "the service's background work did not end"
        await asyncio.sleep(0.05)


def store_connections() -> int:
    return sum(os.readlink(f"/proc/self/fd/{fd}").endswith("chroma.sqlite3")
               for fd in os.listdir("/proc/self/fd") if os.path.islink(f"/proc/self/fd/{fd}"))


def fill_the_store_pool(services: Services) -> None:
    """Bring Chroma's SQLite pool to its bound. It opens a connection (with a worker thread)
    whenever a request finds none idle, and keeps it: how many a run opens depends on how
    its requests happen to overlap, which a busy machine changes. Full, it opens no more."""
    def reads() -> None:
        for _ in range(20):
            services.store.count()

    unchanged = 0
    while unchanged < 2:  # two bursts of concurrent reads in a row open nothing new
        before = store_connections()
        burst = [threading.Thread(target=reads) for _ in range(16)]
        for t in burst:
            t.start()
        for t in burst:
            t.join()
        unchanged = unchanged + 1 if store_connections() == before else 0


def test_closed_services_release_the_store_files_and_threads(tmp_path: Path) -> None:
    # Each store holds about seven descriptors (Chroma's SQLite file, segment files, its
    # runtime's event loop) and a few threads while open.
    make_services(tmp_path / "warm").close()  # libraries load their own files once
    fds, thr = open_fds(), threads()
    for i in range(4):
        make_services(tmp_path / f"d{i}").close()
    after = settled(fds, thr)
    assert after[0] <= fds + 2, f"open files {fds} -> {after[0]} over four closed stores"
    assert after[1] <= thr + 2, f"threads {thr} -> {after[1]} over four closed stores"


@pytest.mark.usefixtures("allow_private_urls")
async def test_a_service_answering_and_polling_keeps_its_files_and_threads(
        tmp_path: Path) -> None:
    with StaticServer() as http:
        items = numbered_items(0, 2, base=http.base_url)
        for it in numbered_items(0, 12, base=http.base_url):
            assert it.link is not None
            http.add(it.link.removeprefix(http.base_url),
                     article_page(it.title or "", story_paragraphs(int(it.guid[3:]))))
        url = http.add("/feed.xml", rss(items), content_type="application/rss+xml")
        service = NewsService(make_services(tmp_path / "d"), tick_s=3600)
        await service.start()
        try:
            await service.call("sources.add", {"url": url, "name": "harbour"})
            client = ControlClient.find(service.services.settings.data_dir)
            assert client is not None

            async def round_(n: int) -> None:
                """Questions over the socket, then a new item and a poll that fetches its
                page (a teaser in the feed)."""
                for q in QUESTIONS:
                    answer = await asyncio.to_thread(client.call, "ask", {"question": q})
                    assert answer["answer"]
                http.add("/feed.xml", rss(numbered_items(0, n, base=http.base_url)),
                         content_type="application/rss+xml")
                report = await asyncio.to_thread(client.call, "poll", {})
                assert report["sources"][0]["added"] == 1

            await round_(3)  # warm-up: the model, the keyword index, the first fetch
            await quiet(service)
            await asyncio.to_thread(fill_the_store_pool, service.services)
            fds, thr = open_fds(), threads_but_the_loops_pool()
            for n in range(4, 12):
                await round_(n)
            await quiet(service)
            after = await settled_beside_the_loop(fds, thr)
        finally:
            await service.stop()
    # Eight rounds: 24 questions, 8 polls, 8 page fetches, 32 control connections.
    assert after[0] <= fds + 2, f"open files {fds} -> {after[0]}"
    assert after[1] <= thr + 2, f"threads {thr} -> {after[1]}"
