"""The command line when the world is not as it should be: a data dir it cannot use, a reader
that goes away, a terminal 80 columns wide, Discord out of reach."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bot.core.services as services_module
from bot.cli import main
from tests.fakes import FakeEmbedder

NEWSBOT = Path(sys.executable).with_name("newsbot")
REAL_MAKE_EMBEDDER = services_module.make_embedder


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Its own data dir, no keys, the fake embedding."""
    monkeypatch.chdir(tmp_path)
    for var in list(os.environ):
        if var.startswith(("NEWSBOT_", "OPENAI_", "DISCORD_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(services_module, "make_embedder", lambda settings: FakeEmbedder())
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEWSBOT_", "OPENAI_", "DISCORD_"))}
    env.update(HF_HUB_OFFLINE="1", **extra)
    return env


@pytest.mark.parametrize("command", [["status"], ["sources", "--json"], ["ask", "anything?"]])
def test_a_data_dir_under_a_file_is_one_line(
    cli_env: Path, command: list[str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (cli_env / "afile").write_text("not a folder")
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(cli_env / "afile" / "data"))
    assert main(command) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "afile" in err and "Traceback" not in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root may write to a read-only folder")
def test_a_read_only_data_dir_is_one_line(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    ro = cli_env / "ro"
    ro.mkdir(mode=0o500)
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(ro / "data"))
    assert main(["status"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_piping_into_a_reader_that_stops_early_is_quiet(tmp_path: Path) -> None:
    """``newsbot status | head -1``: the reader leaves after one line."""
    env = _env(NEWSBOT_DATA_DIR=str(tmp_path / "data"))
    for command in (["status"], ["sources", "--json"]):
        proc = subprocess.Popen([str(NEWSBOT), *command], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=tmp_path)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the first line
        err = proc.stderr.read().decode()
        proc.wait(120)
        assert "Traceback" not in err and "BrokenPipe" not in err, err
        assert proc.returncode == 141


def test_source_urls_stay_on_one_line_in_an_80_column_terminal(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "https://example.org/news/2025/07/01/" + "a-very-long-slug-" * 5 + "end"
    (cli_env / "long.md").write_text(
        "---\ntitle: Lighthouse keepers return to the northern cape\noutlet: Coast Post\n"
        f"published_at: 2025-07-01\nurl: {url}\n---\n"
        "Lighthouse keepers returned to the northern cape lighthouse in July after ten years "
        "of automatic operation, the coast authority said.\n", encoding="utf-8")
    assert main(["ingest", str(cli_env / "long.md")]) == 0
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["ask", "when did the lighthouse keepers return to the northern cape?"]) == 0
    out = capsys.readouterr().out
    assert len(url) > 80 and any(line.strip() == url for line in out.splitlines()), out


def test_sync_with_discord_unreachable_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = _env(NEWSBOT_DATA_DIR=str(tmp_path / "data"), DISCORD_TOKEN="a-token",
               NEWSBOT_DISCORD_API_BASE=f"http://127.0.0.1:{port}/api/v10")
    proc = subprocess.run([str(NEWSBOT), "sync"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "cannot reach Discord" in proc.stderr, proc.stderr
    assert not (tmp_path / "data" / "chroma").exists()  # sync never opened the store


def test_an_overlong_question_is_refused_before_anything_is_opened(
    cli_env: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ask", "why " * 5000]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the limit is" in err
    assert not (cli_env / "data").exists()  # no store opened, no sample loaded


def test_an_empty_name_to_ingest_is_one_plain_line(
    cli_env: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ingest", " "]) == 1
    assert capsys.readouterr().err == "error: an empty name is not a file, folder or URL\n"


@pytest.mark.parametrize("url", ["http://[::1/feed", "http://127.0.0.1:99999/feed"])
@pytest.mark.parametrize("command", [["ingest"], ["sources", "add"], ["sources", "remove"],
                                     ["brief", "preview"]])
def test_a_malformed_url_is_one_line(cli_env: Path, capsys: pytest.CaptureFixture[str],
                                     command: list[str], url: str) -> None:
    assert main([*command, url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and url in err
    assert main(["sources", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"  # nothing was recorded


@pytest.mark.parametrize("name", ["dump.jsonl", "dump.json", "dump.xml"])
def test_a_binary_file_is_one_line_and_records_nothing(
        cli_env: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    path = cli_env / name
    path.write_bytes(bytes(range(256)) * 64)
    assert main(["ingest", str(path)]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"error: {path}: binary data, not a text file\n")
    assert main(["sources", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"


def test_an_export_saved_in_cp1252_is_one_line_and_records_nothing(
        cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cli_env / "harbour.jsonl"
    path.write_bytes(json.dumps({
        "title": "Harbour caf\u00e9 wins a licence", "url": "https://harbour.example/cafe",
        "body": "The caf\u00e9 on the harbour wall may now open until midnight."},
        ensure_ascii=False).encode("cp1252") + b"\n")
    assert main(["ingest", str(path)]) == 1
    assert capsys.readouterr() == ("", f"error: {path}: not UTF-8 text: byte 0xe9 at line 1, "
                                       "column 23; save the file as UTF-8\n")
    assert main(["sources", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"


def test_importing_a_file_that_is_not_text_is_one_line(
        cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cli_env / "backup.jsonl"
    path.write_bytes(b"\xff\xfe" + bytes(range(256)) * 8)
    assert main(["import", str(path)]) == 1
    assert capsys.readouterr().err == ("error: backup.jsonl is not a newsbot export (not UTF-8 "
                                       "text); nothing was imported\n")
    assert main(["sources", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"


def test_a_negative_count_of_skipped_items_to_show_is_refused(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", "--show-skipped", "-1", "articles.jsonl"])
    assert exit_.value.code == 2 and "whole number of 0 or more" in capsys.readouterr().err


def test_a_dotenv_that_is_not_utf8_is_one_line(
        cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cli_env / ".env").write_bytes(b"NEWSBOT_TOP_K=3\nNEWSBOT_COLLECTION=caf\xe9\n")
    assert main(["status"]) == 2
    assert capsys.readouterr().err == ("error: invalid setting: .env is not UTF-8 text (byte "
                                       "0xe9 at offset 38); save it as UTF-8\n")
    assert not (cli_env / "data").exists()


@pytest.mark.parametrize("command", [
    ["ingest", "caf\udce9.md"], ["sources", "add", "http://example.org/\udce9"],
    ["sources", "remove", "\udce9"], ["subscriptions", "add", "--channel", "1", "--topic",
                                      "caf\udce9"], ["ask", "caf\udce9?"]])
def test_an_argument_that_is_not_utf8_is_one_line(
        cli_env: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    """Bytes that are not UTF-8 (a Latin-1 file name) reach Python as lone surrogates."""
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\\xe9" in err and "is not UTF-8 text" in err, err
    assert not (cli_env / "data").exists()  # nothing opened, nothing recorded


def test_a_chat_line_that_is_not_utf8_is_refused_and_the_chat_goes_on(
        cli_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    lines = iter(["caf\udce9 ol\udce9?", "what did Netflix use AI for in The Eternaut?",
                  "exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["chat"]) == 0
    out = capsys.readouterr().out
    assert "newsbot> That question is not UTF-8 text" in out and "Buenos Aires" in out


@pytest.mark.parametrize("setting", ["endpoint", "model folder"])
def test_an_embedding_model_that_cannot_be_used_is_one_line(
        cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        setting: str) -> None:
    monkeypatch.setattr(services_module, "make_embedder", REAL_MAKE_EMBEDDER)
    if setting == "endpoint":
        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        monkeypatch.setenv("NEWSBOT_EMBEDDING_BACKEND", "openai")
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.setenv("NEWSBOT_LLM_MAX_RETRIES", "0")
        expected = f"the embedding endpoint at {url} failed"
    else:
        (cli_env / "afile").write_text("not a folder")
        monkeypatch.setenv("NEWSBOT_MODEL_DIR", str(cli_env / "afile" / "models"))
        expected = f"cannot use the model folder {cli_env / 'afile' / 'models'}"
    src = cli_env / "items.jsonl"
    src.write_text(json.dumps({"title": "Tram line opens", "body": "The new tram line to the "
                               "harbour opened on Monday with twelve stops.",
                               "url": "https://news.example.org/tram"}) + "\n")
    assert main(["ingest", str(src)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "nothing was lost" in err, err
    assert main(["sources", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"  # nothing was recorded


def test_ctrl_c_during_an_ingest_says_what_became_of_it_and_loses_nothing(
        cli_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    class CtrlC(FakeEmbedder):
        def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
            raise KeyboardInterrupt  # what Python raises when Ctrl-C arrives mid-batch

    src = cli_env / "items.jsonl"
    src.write_text(json.dumps({"title": "Tram line opens", "body": "The new tram line to the "
                               "harbour opened on Monday with twelve stops.",
                               "url": "https://news.example.org/tram"}) + "\n")
    monkeypatch.setattr(services_module, "make_embedder", lambda settings: CtrlC())
    assert main(["ingest", str(src)]) == 130
    assert capsys.readouterr().err == (
        "interrupted: `newsbot ingest` stopped; nothing stored before was lost and the store "
        "serves as it did; run the command again to finish it\n")
    monkeypatch.setattr(services_module, "make_embedder", lambda settings: FakeEmbedder())
    assert main(["ingest", str(src)]) == 0
    assert capsys.readouterr().out.startswith("1 added")


def test_ingest_of_a_missing_file_is_the_one_error_line(
        cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", "nowhere.jsonl"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: nowhere.jsonl: no such file or folder\n")


@pytest.mark.integration
def test_a_chroma_server_gone_midway_is_one_line_and_a_rerun_completes(
        cli_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The server stops while an ingest writes to it (a restart, a crash): one line saying
    so and what became of the command, not the HTTP client's traceback."""
    from tests.support.chroma_server import ChromaServer

    def stories(name: str, n: int) -> Path:
        path = cli_env / f"{name}.jsonl"
        path.write_text("".join(json.dumps({
            "title": f"Harbour works, part {name}{i}", "url": f"https://news.example.org/{name}{i}",
            "body": f"The harbour wall repair number {i} of {name} took three weeks and cost "
                    f"{i + 2} hundred thousand euros."}) + "\n" for i in range(n)))
        return path

    class ServerGoes(FakeEmbedder):
        def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
            chroma.stop()
            return super().embed_documents(texts)

    with ChromaServer(cli_env / "chroma") as chroma:
        monkeypatch.setenv("NEWSBOT_CHROMA_URL", chroma.url)
        assert main(["ingest", str(stories("a", 2))]) == 0
        monkeypatch.setattr(services_module, "make_embedder", lambda settings: ServerGoes())
        capsys.readouterr()
        assert main(["ingest", str(stories("b", 3))]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: the Chroma server at {chroma.url} does not answer: "
                              "ingest stopped; nothing stored before was lost"), err
        assert err.count("\n") == 1
        chroma.start()
        monkeypatch.setattr(services_module, "make_embedder", lambda settings: FakeEmbedder())
        assert main(["ingest", str(cli_env / "b.jsonl")]) == 0
        capsys.readouterr()
        assert main(["reindex", "--dry-run", "--json"]) == 0
        sync = json.loads(capsys.readouterr().out)
        assert (sync["articles"], sync["added"], sync["updated"], sync["deleted"]) == (5, 0, 0, 0)


def test_a_service_that_vanishes_before_every_call_is_one_line(
        cli_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A service found each time and gone each time before the call reached it (one that
    keeps restarting): the command gives up with one line and opens nothing itself."""
    from bot.control import ControlClient

    def find(cls: type[ControlClient], data_dir: Path) -> ControlClient:
        return cls(cli_env / "gone.sock")  # nothing listens there: a real refused connect

    monkeypatch.setattr(ControlClient, "find", classmethod(find))
    assert main(["ingest", str(cli_env / "items.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the service on ") and "kept stopping" in err, err
    assert err.count("\n") == 1, err
    assert not (cli_env / "data").exists()  # the store was not opened here


@pytest.mark.parametrize(("holder", "waits"), [("newsbot ingest big.jsonl", False),
                                               ("newsbot chat", False),
                                               ("newsbot serve", True)])
def test_a_store_another_command_holds_is_refused_at_once(
        cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        holder: str, waits: bool) -> None:
    """Only a service that is starting (its socket not up yet) is worth waiting for: a
    command holds the store until it ends, which may be minutes away."""
    import bot.cli
    from retrieval.store import StoreLock

    lock = StoreLock(cli_env / "data" / "chroma.lock")
    lock.acquire()
    lock.owner_path.write_text(json.dumps({"pid": 4242, "cmd": holder}))
    opened = bot.cli._services
    tries: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        tries.append(1)
        return opened(*args, **kwargs)

    monkeypatch.setattr(bot.cli, "_services", counted)
    monkeypatch.setattr(bot.cli, "SERVICE_START_WAIT_S", 0.5)
    try:
        assert main(["status"]) == 1
    finally:
        lock.release()
    assert f"in use by pid 4242 ({holder})" in capsys.readouterr().err
    assert (len(tries) > 1) == waits
