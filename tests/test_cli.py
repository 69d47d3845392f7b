"""The ``newsbot`` command line, in-process (fake embedding) and as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bot.core.services as services_module
from bot.cli import main
from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parents[1]
NEWSBOT = Path(sys.executable).with_name("newsbot")


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment: its own data dir, no .env, no keys, the fake embedding."""
    monkeypatch.chdir(tmp_path)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DISCORD_TOKEN", "NEWSBOT_CHROMA_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(services_module, "make_embedder", lambda settings: FakeEmbedder())
    return tmp_path


def test_ask_json_loads_the_sample_on_first_run(cli_env: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "what did Netflix use AI for in The Eternaut?", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"answer", "sources", "abstained", "mode"}
    assert out["mode"] == "extractive" and not out["abstained"]
    assert "Buenos Aires" in out["answer"]
    assert set(out["sources"][0]) == {"n", "article_id", "title", "outlet", "url",
                                      "published_at"}


def test_ingest_twice_then_status(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = cli_env / "items.jsonl"
    src.write_text("\n".join(json.dumps({
        "title": f"Tram line {i} opens", "body": f"Tram line {i} opened to passengers. " * 5,
        "url": f"https://news.example.org/tram/{i}", "published_at": "2025-01-0{i}",
        "source": "Example Gazette"}) for i in range(1, 4)) + "\n{broken\n")
    assert main(["ingest", str(src)]) == 0
    first = capsys.readouterr().out
    assert "3 added" in first and "1 skipped (1 invalid JSON)" in first
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert main(["ingest", str(src)]) == 0
    assert "0 added, 0 updated, 3 unchanged" in capsys.readouterr().out
    assert main(["status", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    # Only the fetch times of the source move; counts and everything else stay.
    assert {k: v for k, v in again.items() if k != "sources"} == {
        k: v for k, v in status.items() if k != "sources"}
    assert [s["articles"] for s in again["sources"]] == [3]
    assert {"articles", "chunks", "embedding_model", "store"} <= set(status)
    assert status["articles"] == 3


def test_status_without_a_model_says_answers_are_extractive(
        cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^ +model: none \(extractive answers\)$", out, re.M)
    assert "model: None" not in out
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["model"] is None and status["mode"] == "extractive"


def test_sources_list_and_remove(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = cli_env / "one.md"
    src.write_text("---\ntitle: Pier reopens\nurl: https://news.example.org/pier\n---\n"
                   "The old pier reopened after repairs to its timber deck.\n")
    main(["ingest", str(src)])
    capsys.readouterr()
    assert main(["sources", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["articles"] == 1 and listed[0]["kind"] == "file"
    assert main(["sources", "remove", str(src)]) == 0
    assert main(["sources", "remove", str(src)]) == 1
    assert "no source" in capsys.readouterr().err


def test_bad_since_is_a_short_error(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "any news?", "--since", "someday"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: can't read 'someday'") and err.count("\n") == 1


def _run(*args: str, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("DISCORD_TOKEN", "OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run([str(NEWSBOT), *args], capture_output=True, text=True, timeout=600,
                          env={**base, **(env or {})}, cwd=cwd or ROOT)


def test_help_lists_the_commands() -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    for command in ("ask", "chat", "ingest", "status", "sources", "reindex", "run", "sync"):
        assert command in proc.stdout


def test_run_without_token_exits_2_naming_the_setting(tmp_path: Path) -> None:
    proc = _run("run", env={"NEWSBOT_DATA_DIR": str(tmp_path / "data")}, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "DISCORD_TOKEN" in proc.stderr


def test_chat_keeps_the_conversation_and_opens_the_store_once(
        cli_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    lines = iter(["what did Netflix use AI for in The Eternaut?", "", "who said so?", "exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    opened: list[object] = []
    real = services_module.build_services

    def counting(*args: object, **kwargs: object) -> object:
        opened.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services_module, "build_services", counting)
    assert main(["chat"]) == 0
    out = capsys.readouterr().out
    assert out.count("newsbot> ") == 2 and "Buenos Aires" in out
    assert len(opened) == 1


def test_the_closest_article_an_answer_quotes_is_listed_under_its_number(
        cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The story is there, the amount is not: the answer quotes the closest sentence as [1].
    assert main(["ask", "how much did the building collapse scene in The Eternaut cost?"]) == 0
    out = capsys.readouterr().out
    assert "the closest they come" in out and out.count("[1]") == 2
    assert re.search(r"^  \[1\] Netflix puts generative AI footage", out, re.M)
    assert re.search(r"^  \[3\] ", out, re.M)


def test_article_dates_are_printed_where_the_reader_is() -> None:
    from zoneinfo import ZoneInfo

    from bot.cli import _day

    tokyo = ZoneInfo("Asia/Tokyo")
    # 23:30 UTC is the next morning in Tokyo; a date alone is that date everywhere.
    assert _day("2025-05-08T23:30:00+00:00", tokyo) == "2025-05-09"
    assert _day("2025-05-08T00:00:00+00:00", tokyo) == "2025-05-08"
    assert _day(None, tokyo) == "undated"


def test_sources_listing_hides_a_feeds_key(cli_env: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from bot.core.state import State

    state = State(cli_env / "data" / "state.sqlite3")
    state.add_source("https://feeds.example.org/paid.rss?key=s3cret", "feed", watch=True)
    state.close()
    assert main(["sources"]) == 0
    out = capsys.readouterr().out
    assert "https://feeds.example.org/paid.rss?key=REDACTED" in out and "s3cret" not in out
    assert main(["sources", "--json"]) == 0  # for scripts: the address as stored
    assert json.loads(capsys.readouterr().out)[0]["spec"].endswith("?key=s3cret")


def test_doctor_json_without_a_model_is_json(cli_env: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # --json promises JSON on stdout, a model configured or not (a script reads it).
    assert main(["doctor", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["configured"] is False and out["ok"] is True and out["model"] is None
    assert main(["doctor"]) == 0
    assert "no language model configured" in capsys.readouterr().out


def test_sources_add_of_a_local_file_points_to_ingest(cli_env: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    src = cli_env / "feed.xml"
    src.write_text("<rss version='2.0'><channel><title>x</title></channel></rss>")
    assert main(["sources", "add", str(src)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"`newsbot ingest {src}`" in err
    assert main(["sources", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_counts_of_one_read_in_the_singular(cli_env: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = cli_env / "one.md"
    src.write_text("---\ntitle: Pier reopens\nurl: https://news.example.org/pier\n---\n"
                   "The old pier reopened after repairs to its timber deck.\n")
    assert main(["ingest", str(src)]) == 0
    assert "1 chunk written" in capsys.readouterr().out
    assert main(["sources"]) == 0
    assert "  1 article  " in capsys.readouterr().out
    assert main(["export", str(cli_env / "backup.jsonl")]) == 0
    assert "exported 1 source and 1 article to" in capsys.readouterr().out
    assert main(["sources", "remove", str(src)]) == 0
    assert "1 article taken out of the store" in capsys.readouterr().out


def test_chat_says_how_much_of_a_long_conversation_was_read(
        cli_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # NEWSBOT_HISTORY_TURNS counts messages, questions and answers alike, as Discord's
    # footer says: the terminal says the same, not "earlier turns were cut".
    monkeypatch.setenv("NEWSBOT_HISTORY_TURNS", "2")
    lines = iter(["what did Netflix use AI for in The Eternaut?", "who said so?",
                  "when was that?", "exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["chat"]) == 0
    out = capsys.readouterr().out
    assert out.count("only the last 2 messages of the conversation were read") == 1
    assert "turns were cut" not in out


def test_a_misspelt_setting_is_named_not_silently_ignored(
        cli_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    (cli_env / ".env").write_text("NEWSBOT_TOPK=3\nNEWSBOT_POLL_MINUTES=5\n")
    monkeypatch.setenv("NEWSBOT_TIMEZON", "Europe/Paris")
    assert main(["status", "--json"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)  # stdout stays JSON
    assert captured.err.splitlines() == [
        "warning: NEWSBOT_TIMEZON is not a newsbot setting and is ignored (did you mean "
        "NEWSBOT_TIMEZONE?)",
        "warning: NEWSBOT_TOPK (in .env) is not a newsbot setting and is ignored (did you "
        "mean NEWSBOT_TOP_K?)"]
    (cli_env / ".env").write_text("NEWSBOT_TOP_K=3\n")
    monkeypatch.delenv("NEWSBOT_TIMEZON")
    assert main(["status", "--json"]) == 0
    assert capsys.readouterr().err == ""


def test_a_data_dir_that_is_a_file_is_named_as_one(cli_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # "File exists" (mkdir's errno) reads as if the folder were fine.
    (cli_env / "notes.txt").write_text("mine\n")
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(cli_env / "notes.txt"))
    assert main(["status"]) == 1
    assert capsys.readouterr().err == (
        f"error: cannot use the data folder {cli_env / 'notes.txt'}: it is a file; set "
        "NEWSBOT_DATA_DIR to a folder\n")
    assert (cli_env / "notes.txt").read_text() == "mine\n"


def test_the_bundled_sample_is_a_source_named_sample(cli_env: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # Once a community follows its own feeds, the examples are removed by a name, not by
    # the path of the installed package.
    assert main(["ask", "what did Netflix use AI for in The Eternaut?", "--json"]) == 0
    capsys.readouterr()
    assert main(["sources", "--json"]) == 0
    (sample,) = json.loads(capsys.readouterr().out)
    assert sample["name"] == "sample" and sample["articles"] == 12
    assert main(["sources", "remove", "sample"]) == 0
    assert "12 articles taken out of the store" in capsys.readouterr().out
    assert main(["ask", "what did Netflix use AI for in The Eternaut?", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["abstained"]  # and it is not loaded again


def test_subscriptions_tz_default_is_the_setting(cli_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # --help said UTC; a digest hour is read in NEWSBOT_TIMEZONE unless --tz says otherwise.
    monkeypatch.setenv("NEWSBOT_TIMEZONE", "Europe/Dublin")
    assert main(["subscriptions", "add", "--channel", "7", "--topic", "ferries", "--mode",
                 "digest", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tz"] == "Europe/Dublin"
    with pytest.raises(SystemExit):
        main(["subscriptions", "--help"])
    assert "NEWSBOT_TIMEZONE" in " ".join(capsys.readouterr().out.split())


def test_export_does_not_write_over_a_file_that_is_no_export(
        cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = cli_env / "notes.txt"
    notes.write_text("my notes\n")
    assert main(["export", str(notes)]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: {notes} exists and is not a newsbot export; nothing was written "
                   "(give another name, or remove it first)\n")
    assert notes.read_text() == "my notes\n"
    backup = cli_env / "backup.jsonl"
    src = cli_env / "one.md"
    src.write_text("---\ntitle: Pier reopens\nurl: https://news.example.org/pier\n---\n"
                   "The old pier reopened after repairs to its timber deck.\n")
    assert main(["ingest", str(src)]) == 0
    assert main(["export", str(backup)]) == 0
    assert main(["export", str(backup)]) == 0  # last night's backup is replaced
    assert "exported 1 source and 1 article" in capsys.readouterr().out
