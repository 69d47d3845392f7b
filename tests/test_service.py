"""The service in this process: control socket, one write at a time, reads during writes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import textwrap
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.control import ControlClient, ControlServer, ServiceError, ServiceRunning, socket_path
from bot.core.models import NewsbotError
from bot.core.operations import Actor, Context, NotPermitted, run_operation
from bot.core.services import Services
from bot.service import NewsService
from tests.fakes import FakeEmbedder, make_services

QUESTION = "what did Netflix use AI for in The Eternaut?"


class SlowEmbedder(FakeEmbedder):
    """Holds every document batch until released: a reindex that takes as long as a test
    needs."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        self.entered.set()
        self.release.wait(10)
        return super().embed_documents(texts)


@pytest_asyncio.fixture
async def service(tmp_path: Path) -> AsyncIterator[NewsService]:
    svc = NewsService(make_services(tmp_path / "d"), tick_s=3600)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


async def _client_call(svc: NewsService, op: str, args: dict[str, Any],
                       events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    client = ControlClient.find(svc.services.settings.data_dir)
    assert client is not None
    return await asyncio.to_thread(client.call, op, args, events.append if events is not None
                                   else None)


async def test_the_socket_is_private_and_answers_like_a_local_run(service: NewsService,
                                                                  tmp_path: Path) -> None:
    path = socket_path(service.services.settings.data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    remote = await _client_call(service, "ask", {"question": QUESTION})
    local = run_operation("ask", Context(service.services), {"question": QUESTION})
    assert remote == local and "Buenos Aires" in remote["answer"]
    status = await _client_call(service, "status", {})
    assert status["service"]["pid"] == os.getpid() and status["articles"] == 12


async def test_ingest_through_the_socket_streams_progress(service: NewsService,
                                                          tmp_path: Path) -> None:
    story = tmp_path / "story.md"
    story.write_text("---\ntitle: Night trams return to the old town\nurl: "
                     "https://news.example.org/night-trams\npublished_at: 2026-10-02\n---\n"
                     "Night trams returned to the old town on Friday after two years.\n")
    events: list[dict[str, Any]] = []
    result = await _client_call(service, "ingest", {"sources": [str(story)]}, events)
    assert result["added"] == 1 and not result["failed"]
    assert any("phase" in e for e in events) and any("articles" in e for e in events)
    answer = await _client_call(service, "ask", {"question": "when did night trams return?"})
    assert answer["sources"][0]["title"].startswith("Night trams")
    # A refusal comes back as the same one-line error a local run gives.
    with pytest.raises(ServiceError, match="no source 'nothing-like-this'") as err:
        await _client_call(service, "sources.remove", {"spec": "nothing-like-this"})
    assert err.value.user


async def test_a_second_reindex_is_refused_while_members_keep_getting_answers(
        tmp_path: Path) -> None:
    services = make_services(tmp_path / "d")
    slow = SlowEmbedder()
    services.admin.target_embedder = slow
    svc = NewsService(services, tick_s=3600, control=False)
    await svc.start()
    try:
        first = asyncio.ensure_future(svc.call("reindex", {"full": True}))
        await asyncio.to_thread(slow.entered.wait, 10)
        with pytest.raises(NewsbotError, match=r"a reindex is already running since \d\d:\d\d"):
            await svc.call("reindex", {})
        answers = [await svc.call("ask", {"question": QUESTION}) for _ in range(5)]
        assert all(not a["abstained"] and a["answer"] for a in answers)
        assert svc.info()["job"]["name"] == "reindex"
        slow.release.set()
        report = await first
        assert report["full"] and report["chunks"] == services.store.count()
    finally:
        slow.release.set()
        await svc.stop()


async def test_stopping_abandons_a_long_job_within_the_grace(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.core.admin

    monkeypatch.setattr(bot.core.admin, "BATCH_ARTICLES", 5)  # 12 sample articles: 3 batches
    services = make_services(tmp_path / "d")
    live = services.store.collection_name
    slow = SlowEmbedder()
    services.admin.target_embedder = slow
    svc = NewsService(services, tick_s=3600, control=False)
    await svc.start()
    job = asyncio.ensure_future(svc.call("reindex", {"full": True}))
    await asyncio.to_thread(slow.entered.wait, 10)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await svc.stop()
    assert loop.time() - t0 < 10
    with pytest.raises(NewsbotError, match="shutting down"):
        await svc.call("status", {})
    slow.release.set()
    with pytest.raises(NewsbotError, match="shutting down"):
        await job  # it stopped at its next batch boundary: nothing was switched
    assert services.store.collection_name == live
    assert services.store.count() == services.state.counts()[1]
    services.close()


def test_work_ending_after_the_service_stopped_prints_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A worker thread still busy when the service stops (here its warm-up) ends after the
    event loop has closed: its result is dropped without a word. It used to die printing
    "RuntimeError: Event loop is closed"."""
    entered, release = threading.Event(), threading.Event()

    def slow_warm_up() -> None:
        entered.set()
        release.wait(10)

    async def serve_and_stop() -> None:
        svc = NewsService(make_services(tmp_path / "d"), tick_s=3600, control=False)
        svc._warm_up = slow_warm_up  # type: ignore[method-assign]
        await svc.start()
        await asyncio.to_thread(entered.wait, 10)
        await svc.stop()

    asyncio.run(serve_and_stop())  # as `newsbot serve` runs: the loop is closed after it
    died: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", died.append)
    workers = [t for t in threading.enumerate() if t.name == "newsbot-job"]
    release.set()
    for worker in workers:
        worker.join(10)
    assert died == []
    assert "Event loop is closed" not in capfd.readouterr().err


async def test_a_second_service_on_a_data_dir_is_refused_in_one_line(
        service: NewsService, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Not told to run a Chroma server, as a second process on the store is: every command
    is handed to the service already there."""
    import bot.core.services as services_module
    from bot.cli import main

    for var in list(os.environ):
        if var.startswith(("NEWSBOT_", "OPENAI_", "DISCORD_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(service.services.settings.data_dir))
    monkeypatch.setattr(services_module, "make_embedder", lambda settings: FakeEmbedder())
    assert await asyncio.to_thread(main, ["serve"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: newsbot already runs on "
                          f"{service.services.settings.data_dir} (pid {os.getpid()}, "), err
    assert err.endswith("); commands are handed to it, so stop it before starting "
                        "another\n") and err.count("\n") == 1, err


async def test_a_stale_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    path = socket_path(data)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a kill -9 leaves
    assert ControlClient.find(data) is None

    async def handler(op: str, args: dict[str, Any], emit: Any) -> dict[str, Any]:
        return {"op": op}

    first = ControlServer(path, handler, dict)
    await first.start()
    try:
        second = ControlServer(path, handler, dict)
        with pytest.raises(ServiceRunning):
            await second.start()
        client = ControlClient.find(data)
        assert client is not None
        assert await asyncio.to_thread(client.call, "x", {}) == {"op": "x"}
    finally:
        await first.stop()
    assert not path.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
async def test_another_user_is_refused() -> None:
    import tempfile

    async def handler(op: str, args: dict[str, Any], emit: Any) -> dict[str, Any]:
        return {}

    folder = Path(tempfile.mkdtemp(prefix="nb-"))
    folder.chmod(0o755)  # others may reach the socket file: only its mode and uid stop them
    path = folder / "newsbot.sock"
    server = ControlServer(path, handler, dict)
    await server.start()
    code = textwrap.dedent("""
        import os, socket
        os.setgid(65534); os.setuid(65534)
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(PATH)
        except PermissionError:
            print("EACCES"); raise SystemExit
        s.sendall(b"GET /v1/ping HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
        print(s.recv(200).split(b"\\r\\n")[0].decode())
    """).replace("PATH", repr(str(path)))

    async def as_nobody() -> str:
        proc = await asyncio.create_subprocess_exec(
            "python3", "-c", code, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        return out.decode().strip()

    try:
        assert await as_nobody() == "EACCES"  # mode 0600
        os.chmod(path, 0o666)  # even when the file is opened up, the peer's uid is checked
        assert await as_nobody() == "HTTP/1.1 403 Forbidden"
    finally:
        await server.stop()
        folder.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_another_user_cannot_read_the_state_or_the_store() -> None:
    import shutil
    import subprocess
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="nb-"))
    folder.chmod(0o755)  # a shared place such as /srv: others may look inside
    services = make_services(folder / "data", sample=False)
    try:
        code = textwrap.dedent("""
            import os, sys
            os.setgid(65534); os.setuid(65534)
            for path in sys.argv[1:]:
                try:
                    open(path, "rb").close() if os.path.isfile(path) else os.listdir(path)
                except PermissionError:
                    print("EACCES")
                else:
                    print("read", path)
        """)
        state = services.settings.state_path
        done = subprocess.run(["python3", "-c", code, str(state),
                               str(services.settings.chroma_path)],
                              capture_output=True, text=True, check=True)
        assert done.stdout.split() == ["EACCES", "EACCES"], done.stdout
        assert stat.S_IMODE(os.stat(folder / "data").st_mode) == 0o700
    finally:
        services.close()
        shutil.rmtree(folder)


def test_operations_check_who_asks(services: Services) -> None:
    member = Actor(name="member", mod=False, admin=False)
    ctx = Context(services, actor=member)
    with pytest.raises(NotPermitted, match="only admins"):
        run_operation("reindex", ctx, {})
    with pytest.raises(NotPermitted):
        run_operation("sources.add", ctx, {"url": "https://example.org/feed"})
    assert run_operation("status", ctx, {})["articles"] == 12
    assert json.dumps(run_operation("ask", ctx, {"question": QUESTION}))


def test_asking_for_an_outlet_no_article_is_from_is_refused_naming_them(
        services: Services) -> None:
    """`newsbot ask --source`: a misspelt outlet is told apart from articles that do not
    answer."""
    ctx = Context(services)
    with pytest.raises(NewsbotError) as refused:
        run_operation("ask", ctx, {"question": QUESTION, "source": "Sample Wyre"})
    assert str(refused.value) == ("no article is from an outlet named 'Sample Wyre'; "
                                  "the outlets are: Sample Wire")
    answer = run_operation("ask", ctx, {"question": QUESTION, "source": " sample wire "})
    assert answer["sources"]


@pytest.mark.usefixtures("allow_private_urls")
async def test_moderators_hear_once_of_a_failed_reindex_and_a_disabled_source(
        tmp_path: Path) -> None:
    from tests.support.http import StaticServer

    services = make_services(tmp_path / "d", feed_max_failures=2, fetch_timeout_s=3)

    class Broken(FakeEmbedder):
        def embed_documents(self, texts):  # type: ignore[no-untyped-def]
            raise RuntimeError("embedding backend went away")

    svc = NewsService(services, tick_s=3600, control=False)
    told: list[str] = []

    async def alert(line: str) -> None:
        told.append(line)

    svc.alert = alert
    await svc.start()
    try:
        good = services.admin.target_embedder
        services.admin.target_embedder = Broken()
        with pytest.raises(RuntimeError):
            await svc.call("reindex", {"full": True})
        services.admin.target_embedder = good
        with StaticServer() as http:
            from tests.support.feeds import numbered_items, rss

            url = http.add("/f.xml", rss(numbered_items(0, 1, long_text=True)),
                           content_type="application/rss+xml")
            await svc.call("sources.add", {"url": url, "name": "f"})
            http.add("/f.xml", b"gone", status=503, content_type="text/plain")
            for _ in range(4):
                await svc.call("poll", {})
        await asyncio.sleep(0.2)  # the alerts are sent beside the calls
    finally:
        await svc.stop()
    assert len(told) == 2, told
    assert "reindex failed" in told[0] and "embedding backend went away" in told[0]
    assert "(f) was disabled after 2 failed polls" in told[1]


async def test_reads_beside_writes_run_a_bounded_number_at_once(tmp_path: Path) -> None:
    services = make_services(tmp_path / "d", max_concurrent_answers=3)
    release = threading.Event()
    running = peak = 0
    lock = threading.Lock()
    status = services.admin.status

    def slow_status() -> dict[str, Any]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(10)
        with lock:
            running -= 1
        return status()

    services.admin.status = slow_status  # type: ignore[method-assign]
    svc = NewsService(services, tick_s=3600, control=False)
    await svc.start()
    try:
        calls = [asyncio.ensure_future(svc.call("status", {})) for _ in range(10)]
        for _ in range(200):  # until three have started (a loaded machine is slow)
            if peak >= 3:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # room for a fourth to start, were there no bound
        assert peak == 3  # the other seven wait for a turn, without a thread of their own
        release.set()
        results = await asyncio.gather(*calls)
        assert len(results) == 10 and all(r["articles"] for r in results)
    finally:
        release.set()
        await svc.stop()


async def _reindex_from_the_cli_while_stopping(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, reaches_a_batch: bool) -> str:
    """`newsbot reindex --full` handed to a service that is stopped while it runs; returns
    the one line the command ends with."""
    import bot.core.admin
    import bot.service
    from bot import cli

    monkeypatch.setattr(bot.core.admin, "BATCH_ARTICLES", 5)  # 12 sample articles: 3 batches
    monkeypatch.setattr(bot.service, "GRACE_S", 4.0 if reaches_a_batch else 0.3)
    services = make_services(tmp_path / "d")
    slow = SlowEmbedder()
    services.admin.target_embedder = slow
    svc = NewsService(services, tick_s=3600)
    await svc.start()
    await asyncio.sleep(0.2)  # the start-up sync
    command = asyncio.ensure_future(asyncio.to_thread(
        cli.call, "reindex", {"full": True}, settings=services.settings))
    try:
        await asyncio.to_thread(slow.entered.wait, 10)
        stopping = asyncio.ensure_future(svc.stop())
        if reaches_a_batch:
            await asyncio.sleep(1.5)
            slow.release.set()  # the batch ends within the grace: the job stops there
        await stopping
        with pytest.raises(NewsbotError) as err:
            await command
        return str(err.value)
    finally:
        slow.release.set()
        services.close()


async def test_a_command_whose_service_stops_midway_is_told_so_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service abandoned the job (as a kill -9 would end it): the command says what
    became of it instead of a transport traceback."""
    said = await _reindex_from_the_cli_while_stopping(tmp_path, monkeypatch,
                                                      reaches_a_batch=False)
    assert said.startswith("the service stopped while it ran `newsbot reindex`"), said
    assert "run the command again" in said and "\n" not in said


async def test_a_job_stopped_at_a_batch_by_a_stopping_service_tells_its_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    said = await _reindex_from_the_cli_while_stopping(tmp_path, monkeypatch,
                                                      reaches_a_batch=True)
    assert said.startswith("stopped because the service is shutting down"), said


def test_a_service_gone_before_the_call_reached_it_is_told_apart(tmp_path: Path) -> None:
    """Nothing ran, so the command may run on its own (it did not reach the service)."""
    from bot.control import ServiceUnreachable

    with pytest.raises(ServiceUnreachable):
        ControlClient(tmp_path / "newsbot.sock").call("status", {})


@pytest.mark.parametrize("label", [None, "remove"], ids=["plain", "with-bars"])
async def test_a_write_waiting_behind_a_reindex_says_what_it_waits_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], label: str | None) -> None:
    """`sources remove` while a reindex runs waits its turn: it says so, once, instead of
    hanging without a word for as long as the reindex takes (a command that draws progress
    bars as well)."""
    from bot import cli

    services = make_services(tmp_path / "d")
    slow = SlowEmbedder()
    services.admin.target_embedder = slow
    svc = NewsService(services, tick_s=3600)
    await svc.start()
    try:
        await asyncio.sleep(0.2)  # the start-up sync
        reindex = asyncio.ensure_future(svc.call("reindex", {"full": True}))
        await asyncio.to_thread(slow.entered.wait, 10)
        remove = asyncio.ensure_future(asyncio.to_thread(
            cli.call, "sources.remove", {"spec": "1"}, label=label,
            settings=services.settings))
        for _ in range(100):
            if svc.waiting:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert not remove.done()
        slow.release.set()
        await reindex
        assert (await remove)["articles_removed"] == 12
        err = capsys.readouterr().err
        assert err.startswith("waiting: a reindex is running since "), err
        assert err.count("waiting:") == 1, err
    finally:
        slow.release.set()
        await svc.stop()


async def test_ask_from_the_command_line_leaves_the_answering_to_the_service(
        service: NewsService) -> None:
    """With a service running, `newsbot ask` loads none of the answer machinery (about 40%
    of the command's CPU): the service checks the question as a local run would."""
    import sys

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEWSBOT_", "OPENAI_", "DISCORD_"))}
    env["NEWSBOT_DATA_DIR"] = str(service.services.settings.data_dir)
    code = ("import sys; from bot.cli import main; code = main(sys.argv[1:]); "
            "print('loaded:', 'bot.core.ask' in sys.modules); sys.exit(code)")

    async def ask(question: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, "ask", question, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    rc, out, err = await ask(QUESTION)
    assert rc == 0 and "Buenos Aires" in out, err
    assert out.rstrip().endswith("loaded: False"), out
    rc, out, err = await ask("x" * 501)
    assert rc == 1 and err == ("error: That question is 501 characters long; the limit is "
                               "500. Please shorten it.\n"), err
