"""`newsbot serve` as a real process, and the command line beside it.

The first test runs the real local model; the others embed through the local
OpenAI-compatible test server, whose delay per request makes a job last long enough to be
killed part-way. Processes are killed with SIGKILL where a crash is the point.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.control import ControlClient
from tests.support.http import StaticServer
from tests.support.openai_server import FakeOpenAIServer

NEWSBOT = Path(sys.executable).with_name("newsbot")
QUESTION = "what did Netflix use AI for in The Eternaut?"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One converted model for every process of this module."""
    return tmp_path_factory.mktemp("model")


@dataclass
class Env:
    data: Path
    vars: dict[str, str]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(NEWSBOT), *args], capture_output=True, text=True,
                              env=self.vars, timeout=timeout, cwd=self.data.parent)

    def json(self, *args: str) -> Any:
        proc = self.run(*args, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """A command left running in the background, its output dropped."""
        return subprocess.Popen([str(NEWSBOT), *args], env=self.vars, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=self.data.parent)

    def serve(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen([str(NEWSBOT), "serve"], env=self.vars, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                cwd=self.data.parent)
        deadline = time.monotonic() + 120
        # A killed service leaves its socket file: wait for one that answers.
        while ControlClient.find(self.data) is None:
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"serve exited with {proc.returncode}: {err}")
            assert time.monotonic() < deadline, "serve did not open its socket"
            time.sleep(0.1)
        return proc

    def call(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Straight to the service's socket, without starting a CLI process."""
        client = ControlClient.find(self.data)
        assert client is not None
        return client.call(op, args)


def _clean_env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("NEWSBOT_", "OPENAI_", "DISCORD_"))}
    # A crash in native code (Chroma, onnxruntime) still leaves a trace on stderr.
    base.update(NEWSBOT_DATA_DIR=str(tmp_path / "data"), HF_HUB_OFFLINE="1",
                PYTHONFAULTHANDLER="1")
    return base


@pytest.fixture
def env(tmp_path: Path, model_dir: Path) -> Env:
    """The real local model."""
    return Env(tmp_path / "data", {**_clean_env(tmp_path), "NEWSBOT_MODEL_DIR": str(model_dir)})


@pytest.fixture
def fast_env(tmp_path: Path, openai_server: FakeOpenAIServer) -> Env:
    """Embeddings from the local test server, 20 ms per request of 64 texts."""
    openai_server.embedding_delay = 0.02
    return Env(tmp_path / "data", {
        **_clean_env(tmp_path), "NEWSBOT_EMBEDDING_BACKEND": "openai",
        "NEWSBOT_EMBEDDING_MODEL": "fake-embedding-model",
        "OPENAI_BASE_URL": f"{openai_server.base_url}", "OPENAI_API_KEY": "test",
        "NEWSBOT_LLM_TIMEOUT_S": "2", "NEWSBOT_LLM_MAX_RETRIES": "0"})


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> float:
    t0 = time.monotonic()
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return time.monotonic() - t0


def _stories(path: Path, n: int, start: int = 0, sentences: int = 12) -> Path:
    """Articles with distinct wording, long enough to take a few seconds to embed."""
    towns = ["Arlen", "Brisk", "Corrow", "Dunmere", "Eskby", "Fallow", "Gorse", "Hethel"]
    works = ["bridge", "library", "market", "tram depot", "harbour wall"]
    with path.open("w") as out:
        for i in range(start, start + n):
            town = towns[i % len(towns)]
            body = " ".join(
                f"In {town}, council item {i}-{j} concerned the {works[j % 5]} and a budget of "
                f"{i * 7 + j} thousand euros." for j in range(sentences))
            out.write(json.dumps({"title": f"{town} council notes {i}", "body": body,
                                  "url": f"https://news.example.org/council/{i}",
                                  "published_at": "2025-06-01", "source": "Council Wire"}) + "\n")
    return path


def _wait_for_job(env: Env, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = env.call("status", {})["service"]["job"]
        if job and job["name"] == name:
            return
        time.sleep(0.1)
    raise AssertionError(f"no {name} job seen")


def _store_matches_registry(env: Env) -> dict[str, Any]:
    status = env.json("status")
    registry = sum(s["articles"] for s in status["sources"])
    assert registry >= status["articles"]
    sync = env.json("reindex", "--dry-run")
    assert (sync["added"], sync["updated"], sync["deleted"]) == (0, 0, 0), sync
    return status


def test_the_cli_works_beside_a_running_service(env: Env, tmp_path: Path) -> None:
    env.vars["NEWSBOT_ALLOW_PRIVATE_URLS"] = "true"  # the feed below is served on 127.0.0.1
    proc = env.serve()
    try:
        answer = env.json("ask", QUESTION)  # the first ask loads the sample, in the service
        assert not answer["abstained"] and "Buenos Aires" in answer["answer"]
        story = tmp_path / "story.md"
        story.write_text("---\ntitle: Ferry fares frozen for a year\nurl: "
                         "https://news.example.org/ferry\npublished_at: 2026-11-28\n"
                         "outlet: Harbour Gazette\n---\nThe harbour council froze ferry fares "
                         "for twelve months; the freeze costs the city 1.4 million euros.\n")
        ingest = env.run("ingest", str(story))
        assert ingest.returncode == 0, ingest.stderr
        assert ingest.stdout.startswith("1 added, 0 updated")
        found = env.json("ask", "how much does the ferry fare freeze cost?")
        assert found["sources"][0]["title"] == "Ferry fares frozen for a year"
        status = env.json("status")
        assert status["service"]["pid"] == proc.pid and status["articles"] == 13
        # Sources: a feed from a local server is checked, followed, listed, removed.
        with StaticServer() as http:
            http.add("/rss.xml", _feed(["Tide gauge installed at the pier"]),
                     content_type="application/rss+xml")
            added = env.json("sources", "add", http.url("/rss.xml"), "--name", "harbour")
            assert added["kind"] == "feed" and added["poll"]["added"] == 1
            bad = env.run("sources", "add", http.url("/missing.xml"))
            assert bad.returncode == 1 and bad.stderr.startswith("error: cannot follow")
            assert bad.stderr.count("\n") == 1
        listed = env.json("sources")
        assert [s["name"] for s in listed if s["kind"] == "feed"] == ["harbour"]
        removed = env.json("sources", "remove", "harbour")
        assert removed["articles_removed"] == 1
        # A second service on the same data dir is refused, naming the holder.
        second = env.run("serve", timeout=120)
        assert second.returncode == 1
        assert f"pid {proc.pid}" in second.stderr and "newsbot serve" in second.stderr
        assert _stop(proc) < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    # Without the service the same command gives the same JSON.
    assert env.json("ask", QUESTION) == answer


def test_a_stop_that_abandons_a_job_in_the_model_exits_cleanly(env: Env, tmp_path: Path) -> None:
    """SIGTERM while the local model embeds a batch that outlasts the stop's grace: the job
    is abandoned and the service exits 0. The interpreter's exit, with the job's thread
    inside the model's native code, aborted it (exit 134, a core dump)."""
    proc = env.serve()
    try:
        # One batch of long articles: tens of seconds of embedding even on a fast machine,
        # where 400 short ones finished inside the grace and nothing was abandoned.
        client = env.start("ingest", str(_stories(tmp_path / "b.jsonl", 500, sentences=48)))
        _wait_for_job(env, "ingest")
        time.sleep(1.0)  # into the batch: many seconds of embedding are left
        _stop(proc)
        assert proc.stderr is not None
        said = proc.stderr.read()
        assert "abandoning the running ingest" in said, said
        assert proc.returncode == 0, said
        client.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_answers_keep_coming_during_a_full_reindex(fast_env: Env, tmp_path: Path) -> None:
    env = fast_env
    proc = env.serve()
    try:
        assert env.run("ingest", str(_stories(tmp_path / "s.jsonl", 300))).returncode == 0
        question = {"question": "Corrow council notes 17: what was the tram depot budget?"}
        before = env.call("ask", question)
        assert before["answer"] and (before["sources"] or before["closest"])
        reindex = subprocess.Popen([str(NEWSBOT), "reindex", "--full", "--json"],
                                   env=env.vars, text=True, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        _wait_for_job(env, "reindex")
        answers = []
        while reindex.poll() is None:
            answers.append(env.call("ask", question))
            time.sleep(0.05)
        out, err = reindex.communicate()
        assert reindex.returncode == 0, err
        assert json.loads(out)["full"] is True
        assert answers, "the reindex ended before any question was asked"
        # The same answer throughout: no error, no gap, no half-built index.
        changed = [a for a in answers if a != before]
        assert not changed, changed[:2]
        assert _stop(proc) < 10
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("job", ["ingest", "reindex"])
def test_kill_9_mid_job_leaves_a_store_that_serves_and_a_rerun_completes(
        fast_env: Env, openai_server: FakeOpenAIServer, tmp_path: Path, job: str) -> None:
    env = fast_env
    first = _stories(tmp_path / "a.jsonl", 40)
    big = _stories(tmp_path / "b.jsonl", 600, start=40)
    proc = env.serve()
    try:
        assert env.run("ingest", str(first)).returncode == 0
        if job == "reindex":
            assert env.run("ingest", str(big)).returncode == 0
        before = env.json("status")
        # About 30 embedding requests of 0.25 s each: seconds of embedding and writing.
        openai_server.embedding_delay = 0.25
        args = ["reindex", "--full"] if job == "reindex" else ["ingest", str(big)]
        client = subprocess.Popen([str(NEWSBOT), *args], env=env.vars, text=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_for_job(env, job)
        time.sleep(3.0)  # well into embedding and writing (two batches of articles)
        assert client.poll() is None, "the job ended before the kill"
        proc.kill()
        proc.wait(timeout=30)
        _, said = client.communicate(timeout=60)
        assert client.returncode != 0  # the command saw its service go away
        # ... and says so in one line, not with a traceback of the socket's client.
        assert said.startswith(f"error: the service stopped while it ran `newsbot {job}`"), said
        assert said.count("\n") == 1, said
    finally:
        if proc.poll() is None:
            proc.kill()

    openai_server.embedding_delay = 0.0
    proc = env.serve()  # a stale socket and a half-written store are what it finds
    try:
        _wait_idle(env)
        after = env.json("status")
        if job == "reindex":
            assert after["collection"] == before["collection"]  # the old one still serves
            assert after["chunks"] == before["chunks"]
        answer = env.call("ask", {"question": "what budget did the Arlen bridge get?"})
        assert answer["sources"] or answer["closest"]
        rerun = env.run(*args)
        assert rerun.returncode == 0, rerun.stderr
        status = _store_matches_registry(env)
        assert status["articles"] == 640
    finally:
        _stop(proc)


def test_sigterm_during_a_long_job_stops_within_seconds(fast_env: Env, tmp_path: Path) -> None:
    env = fast_env
    proc = env.serve()
    try:
        client = env.start("ingest", str(_stories(tmp_path / "b.jsonl", 600)))
        _wait_for_job(env, "ingest")
        assert _stop(proc) < 10
        client.wait(timeout=60)
        assert not (env.data / "newsbot.sock").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
    proc = env.serve()
    try:
        _wait_idle(env)
        _store_matches_registry(env)
    finally:
        _stop(proc)


def _wait_idle(env: Env, timeout: float = 120) -> None:
    """Until the start-up sync (and anything else) has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not env.call("status", {})["service"]["job"]:
            return
        time.sleep(0.1)
    raise AssertionError("the service stayed busy")


def _feed(titles: list[str]) -> bytes:
    items = "".join(
        f"<item><title>{t}</title><link>https://news.example.org/feed/{i}</link>"
        f"<guid>feed-{i}</guid><pubDate>Mon, 02 Jun 2025 10:00:00 GMT</pubDate>"
        f"<description>{t}. The harbour authority said the work took three weeks and cost "
        f"{i + 2} hundred thousand euros, paid from the port's maintenance budget."
        f"</description></item>"
        for i, t in enumerate(titles))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Harbour News</title>'
            f"<link>https://news.example.org/</link><description>x</description>{items}"
            f"</channel></rss>").encode()


def test_a_full_disk_fails_an_ingest_safely_and_it_resumes_with_space(
        fast_env: Env, tmp_path: Path) -> None:
    import resource

    env = fast_env
    proc = env.serve()
    try:
        assert env.run("ingest", str(_stories(tmp_path / "a.jsonl", 30))).returncode == 0
        question = {"question": "Arlen council notes 8: what was the bridge budget?"}
        before = env.call("ask", question)
        # No file of the service may grow past its size now: what a full disk does to it.
        biggest = max(p.stat().st_size for p in env.data.rglob("*") if p.is_file())
        limit = biggest + 4096
        hard = resource.prlimit(proc.pid, resource.RLIMIT_FSIZE)[1]
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (limit, hard))
        big = _stories(tmp_path / "b.jsonl", 400, start=30)
        failed = env.run("ingest", str(big))
        assert failed.returncode == 1
        assert failed.stderr.startswith("error: writing to the disk failed"), failed.stderr
        assert failed.stderr.count("\n") == 1, failed.stderr
        assert env.call("ask", question) == before  # still answering, as before
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
        again = env.run("ingest", str(big))
        assert again.returncode == 0, again.stderr
        status = _store_matches_registry(env)
        assert status["articles"] == 430
    finally:
        _stop(proc)


def test_serve_started_while_a_command_holds_the_store_waits_for_it(
        fast_env: Env, tmp_path: Path) -> None:
    """No service was up, so a command opened the store itself (a chat holds it until it
    ends): the service starts once the command is done, instead of exiting."""
    env = fast_env
    chat = subprocess.Popen([str(NEWSBOT), "chat"], env=env.vars, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=env.data.parent)
    deadline = time.monotonic() + 60
    while not (env.data / "chroma.owner").exists():  # the chat holds the store
        assert chat.poll() is None and time.monotonic() < deadline, chat.communicate()
        time.sleep(0.05)
    proc = subprocess.Popen([str(NEWSBOT), "serve"], env=env.vars, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=env.data.parent)
    try:
        assert proc.stderr is not None
        said = next(line for line in proc.stderr if line.startswith(("waiting:", "error:")))
        assert said.startswith("waiting: the store at") and "newsbot chat" in said, said
        assert proc.poll() is None
        chat.communicate("exit\n", timeout=60)
        assert chat.returncode == 0
        while ControlClient.find(env.data) is None:
            assert proc.poll() is None and time.monotonic() < deadline + 60
            time.sleep(0.1)
        assert env.json("status")["service"]["pid"] == proc.pid
    finally:
        if chat.poll() is None:
            chat.kill()
        _stop(proc)


def test_a_deleted_file_source_is_removed_by_the_path_it_was_given(
        fast_env: Env, tmp_path: Path) -> None:
    """`sources remove notes.jsonl` after the file was deleted: the path is the command's,
    not the service's (whose working directory is another)."""
    env = fast_env
    work = tmp_path / "work"
    work.mkdir()
    notes = _stories(work / "notes.jsonl", 3)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(NEWSBOT), *args], capture_output=True, text=True,
                              env=env.vars, cwd=work, timeout=120)

    proc = env.serve()
    try:
        assert run("ingest", "notes.jsonl").returncode == 0
        notes.unlink()
        removed = run("sources", "remove", "notes.jsonl")
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout.startswith(f"removed source 1 ({notes}): 3 articles")
    finally:
        _stop(proc)


def test_a_first_load_killed_before_anything_landed_leaves_no_source(
        fast_env: Env, openai_server: FakeOpenAIServer, tmp_path: Path) -> None:
    """`newsbot ingest` of a new file, with no service up, killed while its first batch is
    embedded: nothing of it landed, so it is not listed as a source with no articles."""
    env = fast_env
    openai_server.embedding_delay = 60.0  # the first batch cannot land before the kill
    stories = _stories(tmp_path / "a.jsonl", 5)
    proc = env.start("ingest", str(stories))
    try:
        deadline = time.monotonic() + 60
        while not _recorded_sources(env) or not openai_server.requests_to("/embeddings"):
            assert proc.poll() is None and time.monotonic() < deadline, "no batch was embedded"
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert env.json("sources") == []


def _recorded_sources(env: Env) -> list[str]:
    """The specs of the registry's sources, read beside the process that writes them."""
    path = env.data / "state.sqlite3"
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            return [row[0] for row in db.execute("SELECT spec FROM sources")]
        except sqlite3.OperationalError:  # the schema is not written yet
            return []
