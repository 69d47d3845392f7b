"""``newsbot doctor``: one test question to the configured model, against the local server."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.llm import OpenAIChatModel
from bot.core.model_check import log_model_check
from tests.fakes import make_settings
from tests.support.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.integration

CITED = "Captain Mira Osei said the crossing now takes 35 minutes [1]."


@pytest.fixture
def llama_like() -> Iterator[FakeOpenAIServer]:
    """A server that, like llama.cpp's, reads the cap only from ``max_tokens``."""
    with FakeOpenAIServer(cap_mode="max_tokens") as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        llama_like: FakeOpenAIServer) -> FakeOpenAIServer:
    monkeypatch.chdir(tmp_path)  # no .env
    for var in ("OPENAI_API_KEY", "DISCORD_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OPENAI_BASE_URL", llama_like.base_url)
    monkeypatch.setenv("NEWSBOT_ANSWER_BUDGET_S", "3")
    return llama_like


def _doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["doctor", "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_doctor_on_a_model_that_cites_and_stops(env: FakeOpenAIServer,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    env.queue_reply(CITED)
    env.queue_reply("one two three ", forever=True)
    code, out = _doctor(capsys)
    assert code == 0 and out["ok"] and out["reachable"] and out["cited"]
    assert out["cap_honoured"] and out["cap_tokens"] == 16
    assert out["cap_fields"] == "max_tokens and max_completion_tokens"
    assert out["tokens_per_s"]


def test_doctor_sees_a_cap_the_server_ignores(env: FakeOpenAIServer,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NEWSBOT_LLM_TOKEN_FIELDS", "max_completion_tokens")
    env.queue_reply(CITED)
    env.queue_reply("one two three ", forever=True)
    code, out = _doctor(capsys)
    assert code == 1 and out["reachable"] and out["cited"] and out["cap_honoured"] is False
    [_, stream] = env.wait_for_streams(2, timeout=30)
    assert stream.client_left  # the runaway reply was closed, not read to the end


def test_doctor_sees_a_model_that_does_not_cite(env: FakeOpenAIServer,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    env.queue_reply(CITED.replace(" [1]", ""))
    env.queue_reply("one two three ", forever=True)
    code, out = _doctor(capsys)
    assert code == 1 and out["reachable"] and not out["cited"]


def test_doctor_on_a_frozen_server(env: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NEWSBOT_ANSWER_BUDGET_S", "1")
    env.queue_reply(CITED, hang_after=0)
    code, out = _doctor(capsys)
    assert code == 1 and not out["reachable"] and out["error"] == "timed out"


@pytest.mark.parametrize("status", [501, 404])
def test_doctor_on_a_server_without_chat_completions(env: FakeOpenAIServer, status: int,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    env.queue_reply("Not Implemented" if status == 501 else "Not Found", status=status)
    env.queue_reply(CITED)  # a retry would get this: a 501 or 404 must not be retried
    assert main(["doctor"]) == 1
    out, err = capsys.readouterr()
    [line] = out.splitlines()
    assert f"HTTP {status}" in line and env.base_url in line
    assert "OPENAI_BASE_URL" in line and "NEWSBOT_LLM_MODEL=" in line
    assert err == "" and len(env.requests_to("/chat/completions")) == 1


def test_doctor_without_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    assert main(["doctor"]) == 0
    assert "answers are extractive" in capsys.readouterr().out


def test_the_check_is_logged_as_a_warning_when_something_is_off(
        tmp_path: Path, llama_like: FakeOpenAIServer, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path, openai_base_url=llama_like.base_url,
                             answer_budget_s=3, llm_max_retries=0)
    model = OpenAIChatModel(settings)
    llama_like.queue_reply("The crossing takes 35 minutes.")  # uncited
    llama_like.queue_reply("one two ", forever=True)
    with caplog.at_level(logging.INFO, logger="bot.core.model_check"):
        check = log_model_check(model, settings)
    model.close()
    assert check is not None and not check.ok
    [record] = [r for r in caplog.records if r.name == "bot.core.model_check"]
    assert record.levelno == logging.WARNING and "did NOT cite" in record.getMessage()


def test_the_cli_exits_without_pending_tasks(tmp_path: Path,
                                             llama_like: FakeOpenAIServer) -> None:
    """The real exit path: the process ends after closing the client, and asyncio reports a
    task left pending on the client's loop on stderr."""
    llama_like.queue_reply(CITED)
    llama_like.queue_reply("one two three ", forever=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEWSBOT_", "OPENAI_", "DISCORD_"))}
    env.update(NEWSBOT_DATA_DIR=str(tmp_path / "data"), OPENAI_BASE_URL=llama_like.base_url,
               NEWSBOT_ANSWER_BUDGET_S="10")
    proc = subprocess.run([str(Path(sys.executable).with_name("newsbot")), "doctor"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "reachable" in proc.stdout
    assert "Task was destroyed" not in proc.stderr and "Exception ignored" not in proc.stderr
