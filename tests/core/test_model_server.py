"""The model mode against the local OpenAI-compatible server playing real servers' faults.

Budgets are short (about 1.5 s) so the module stays quick. Nothing here asserts on wall
time: each test asserts on what came out (the mode, the note, what was shown) and on how the
server saw the stream end.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import bot.core.llm as llm
import bot.core.services as services_module
from bot.cli import _print_answer, main
from bot.core.answer_model import Kept, SentenceChecker, sources_of
from bot.core.llm import LLMError, OpenAIChatModel, StopStreaming
from bot.core.models import Answer
from bot.core.services import Services, sample_dir
from bot.render import answer_footer
from bot.settings import Settings
from tests.fakes import FakeEmbedder, make_services, make_settings
from tests.support.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.integration

QUESTION = "what did Netflix use generative AI for in The Eternaut?"
GOOD = ("For The Eternaut, Netflix used generative AI to create the scene of a building "
        "collapsing in Buenos Aires [1].")
GOOD_2 = "The team finished that visual-effects sequence about ten times faster [1]."
BAD = "Ted Sarandos said the sequence cost 40 million dollars [1]."  # no such figure
BUDGET_S = 1.5


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    services = make_services(tmp_path_factory.mktemp("model-server") / "data")
    yield services
    services.close()


def _ask(svc: Services, server: FakeOpenAIServer, question: str = QUESTION, *,
         shown: list[str] | None = None, **settings: Any) -> Answer:
    """One question through a real OpenAI client pointed at ``server``."""
    values: dict[str, Any] = {"openai_base_url": server.base_url, "llm_timeout_s": 5.0,
                              "llm_max_retries": 1, "answer_budget_s": BUDGET_S}
    values.update(settings)
    model_settings = make_settings(svc.settings.data_dir, **values)
    model = OpenAIChatModel(model_settings)
    previous = (svc.ask.model, svc.ask.settings)
    svc.ask.model, svc.ask.settings = model, model_settings
    try:
        return svc.ask.ask(question, on_token=shown.append if shown is not None else None)
    finally:
        svc.ask.model, svc.ask.settings = previous
        model.close()


def _chat_bodies(server: FakeOpenAIServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests_to("/chat/completions")]


# -- the length cap ----------------------------------------------------------------------------
def test_the_cap_reaches_a_server_that_reads_only_max_tokens(svc: Services) -> None:
    with FakeOpenAIServer(cap_mode="max_tokens") as server:
        server.queue_reply(f"{GOOD} ", forever=True)
        answer = _ask(svc, server, llm_max_tokens=40, answer_budget_s=20)
        [body] = _chat_bodies(server)
        [stream] = server.wait_for_streams(1)
    assert body["max_tokens"] == 40 and body["max_completion_tokens"] == 40
    assert stream.capped and stream.completed and not stream.client_left
    assert answer.mode == "model" and answer.text == GOOD
    assert "length limit" in (answer.note or "")


def test_a_server_refusing_both_cap_fields_gets_the_one_it_takes(svc: Services) -> None:
    with FakeOpenAIServer(cap_mode="openai") as server:
        server.default_reply = GOOD
        answer = _ask(svc, server, llm_max_retries=0)
        bodies = _chat_bodies(server)
    assert answer.mode == "model" and answer.text == GOOD
    assert [("max_tokens" in b, "max_completion_tokens" in b) for b in bodies] == [
        (True, True), (False, True)]


# -- the budget --------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["before the reply", "after the headers"])
def test_the_budget_holds_against_a_server_that_hangs(svc: Services, server: FakeOpenAIServer,
                                                      where: str) -> None:
    if where == "before the reply":
        server.queue_reply(GOOD, delay=60)  # would answer well, a minute late
    else:
        server.queue_reply(GOOD, hang_after=0)
    answer = _ask(svc, server)
    assert answer.mode == "extractive" and "timed out" in (answer.note or "")
    assert "Buenos Aires" in answer.text  # the fallback, from the article
    assert len(_chat_bodies(server)) == 1  # no retry past the budget
    if where == "after the headers":
        [stream] = server.wait_for_streams(1)
        assert stream.client_left and not stream.completed


def test_the_budget_holds_against_a_server_that_trickles(svc: Services,
                                                         server: FakeOpenAIServer) -> None:
    server.queue_reply(f"{GOOD} {GOOD_2}", stream_chunk_size=4, chunk_delay=0.2)  # ~8 s
    shown: list[str] = []
    answer = _ask(svc, server, shown=shown)
    [stream] = server.wait_for_streams(1)
    assert stream.client_left and not stream.completed  # the stream was closed
    assert "timed out" in (answer.note or "")
    if answer.mode == "model":  # what was shown in time stays, marked as incomplete
        assert "".join(shown) == answer.text and "may be incomplete" in (answer.note or "")


def test_the_budget_holds_against_a_server_that_never_stops(svc: Services) -> None:
    with FakeOpenAIServer(cap_mode="none") as server:
        # No sentence ever ends: nothing to show, nothing that repeats.
        server.queue_reply("and then the scene went on ", forever=True, stream_chunk_size=8,
                           chunk_delay=0.005)
        shown: list[str] = []
        answer = _ask(svc, server, shown=shown)
        [stream] = server.wait_for_streams(1)
    assert stream.client_left and not stream.completed
    assert answer.mode == "extractive" and shown == []
    assert "timed out" in (answer.note or "")


def test_a_server_repeating_itself_forever_is_left_once_it_loops(svc: Services) -> None:
    with FakeOpenAIServer(cap_mode="none") as server:
        server.queue_reply(f"{GOOD} ", forever=True, stream_chunk_size=8, chunk_delay=0.005)
        shown: list[str] = []
        answer = _ask(svc, server, shown=shown)
        [stream] = server.wait_for_streams(1)
    assert stream.client_left and not stream.completed
    assert answer.mode == "model" and answer.text == GOOD == "".join(shown)
    assert "repeat" in (answer.note or "") and "timed out" not in (answer.note or "")


def test_a_runaway_answer_is_closed_once_enough_was_said(svc: Services) -> None:
    sentences = [GOOD, GOOD_2,
                 "Sarandos described the building collapse as the first generative AI footage "
                 "to appear in a finished Netflix series or film [1].",
                 "The Eternaut is an Argentine science-fiction drama [1].",
                 "The company also uses AI for pre-visualisation and shot planning [1].",
                 "Netflix has used generative AI to make final on-screen footage [1].",
                 "A conventional effects shot would have cost more than the budget [1]."]
    with FakeOpenAIServer(cap_mode="none") as server:
        server.queue_reply(" ".join(sentences) + " ", forever=True, chunk_delay=0.002)
        answer = _ask(svc, server, answer_budget_s=20)
        [stream] = server.wait_for_streams(1)
    assert stream.client_left and not stream.completed
    assert answer.mode == "model" and answer.text == " ".join(sentences[:6])
    assert answer.note is None


# -- errors and retries ------------------------------------------------------------------------
def test_a_429_with_retry_after_is_retried_within_the_budget(svc: Services,
                                                             server: FakeOpenAIServer) -> None:
    server.queue_reply("slow down", status=429, retry_after=0.2,
                       retry_after_header="retry-after")
    server.queue_reply(GOOD)
    answer = _ask(svc, server)
    assert answer.mode == "model" and answer.text == GOOD
    assert len(_chat_bodies(server)) == 2


def test_a_retry_after_past_the_budget_falls_back_at_once(svc: Services,
                                                          server: FakeOpenAIServer) -> None:
    server.queue_reply("slow down", status=429, retry_after=60, retry_after_header="retry-after")
    server.queue_reply(GOOD)
    answer = _ask(svc, server)
    assert answer.mode == "extractive" and "rate limited" in (answer.note or "")
    assert len(_chat_bodies(server)) == 1


@pytest.mark.parametrize(("retry_after", "retried"), [(5, True), (300, False)])
def test_retry_after_against_the_default_budget(svc: Services, server: FakeOpenAIServer,
                                                retry_after: int, retried: bool) -> None:
    """A 429 saying "5 s" is waited out within the default answer budget; "300 s" is not
    waited for: the extractive answer comes at once."""
    server.queue_reply("slow down", status=429, retry_after=retry_after,
                       retry_after_header="retry-after")
    server.queue_reply(GOOD)
    answer = _ask(svc, server, answer_budget_s=Settings.model_fields["answer_budget_s"].default)
    if retried:
        assert answer.mode == "model" and answer.text == GOOD
        assert len(_chat_bodies(server)) == 2
    else:
        assert answer.mode == "extractive" and "rate limited" in (answer.note or "")
        assert "Buenos Aires" in answer.text and len(_chat_bodies(server)) == 1


def test_a_500_is_retried(svc: Services, server: FakeOpenAIServer) -> None:
    server.queue_reply("upstream failed", status=500)
    server.queue_reply(GOOD)
    answer = _ask(svc, server)
    assert answer.mode == "model" and answer.text == GOOD
    assert len(_chat_bodies(server)) == 2


@pytest.mark.parametrize(("status", "said"), [
    (404, "does not know the model or its address (HTTP 404)"),
    (401, "refused the API key (HTTP 401)"),
])
def test_a_refusal_says_what_was_refused(svc: Services, server: FakeOpenAIServer, status: int,
                                         said: str, caplog: pytest.LogCaptureFixture) -> None:
    server.queue_reply("The model `fake-chat-model` does not exist.", status=status)
    with caplog.at_level(logging.WARNING, logger="bot.core.llm"):
        answer = _ask(svc, server)
    assert answer.mode == "extractive" and said in (answer.note or "")
    assert len(_chat_bodies(server)) == 1  # asking again gets the same refusal
    hint = "NEWSBOT_LLM_MODEL" if status == 404 else "OPENAI_API_KEY"
    assert hint in caplog.text and "does not exist" in caplog.text


@pytest.mark.parametrize(("raw", "kind"), [
    ('data: {"id": "chatcmpl-1", "choices": [{"delta": {"content": "For The\n\n',
     "text/event-stream"),
    ("<html><body>502 Bad Gateway</body></html>", "text/html"),
], ids=["malformed-json", "html"])
def test_an_unreadable_reply_falls_back_saying_so(svc: Services, server: FakeOpenAIServer,
                                                  raw: str, kind: str) -> None:
    server.queue_reply("", raw=raw, raw_type=kind)
    shown: list[str] = []
    answer = _ask(svc, server, shown=shown)
    assert shown == [] and answer.mode == "extractive"
    assert "the language model did not answer (its reply could not be read)" in (
        answer.note or "")


def test_the_model_is_told_the_date_where_the_question_is_asked(
        svc: Services, server: FakeOpenAIServer) -> None:
    # At any moment these two zones, 25 hours apart, are on different dates.
    told = {}
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        server.queue_reply(GOOD)
        before = datetime.now(ZoneInfo(zone)).date()
        assert _ask(svc, server, timezone=zone).mode == "model"
        after = datetime.now(ZoneInfo(zone)).date()
        system = _chat_bodies(server)[-1]["messages"][0]["content"]
        told[zone] = re.search(r"Today is (\d{4}-\d\d-\d\d)", system).group(1)  # type: ignore[union-attr]
        assert told[zone] in (before.isoformat(), after.isoformat()), zone
    assert told["Pacific/Kiritimati"] != told["Pacific/Pago_Pago"]


def test_a_stream_dropped_halfway_keeps_only_what_was_checked(svc: Services,
                                                              server: FakeOpenAIServer) -> None:
    server.queue_reply(f"{GOOD} {GOOD_2}", drop_after=len(GOOD) + 12)
    shown: list[str] = []
    answer = _ask(svc, server, shown=shown)
    assert shown == [GOOD] and answer.mode == "model" and answer.text == GOOD
    assert "stopped early" in (answer.note or "") and "may be incomplete" in (answer.note or "")
    assert len(_chat_bodies(server)) == 1  # text was shown: no second, different answer


# A connection dropped, or a body ended cleanly with no finish reason, before any text.
@pytest.mark.parametrize("cut", ["drop_after", "end_after"])
def test_a_stream_cut_before_any_text_is_retried(svc: Services, server: FakeOpenAIServer,
                                                 cut: str) -> None:
    server.queue_reply(GOOD, **{cut: 0})
    server.queue_reply(GOOD)
    answer = _ask(svc, server)
    assert answer.mode == "model" and answer.text == GOOD
    assert len(_chat_bodies(server)) == 2


def test_a_stream_ended_without_a_finish_shows_no_cut_sentence(svc: Services,
                                                               server: FakeOpenAIServer) -> None:
    # The body ends cleanly mid-sentence, with no finish reason: the reply was cut, and the
    # words that did arrive ("... about ten") must not be read as a whole sentence.
    server.queue_reply(f"{GOOD} {GOOD_2}", end_after=len(GOOD) + 40)
    shown: list[str] = []
    answer = _ask(svc, server, shown=shown)
    assert server.wait_for_streams(1)[0].completed is False
    assert shown == [GOOD] and answer.mode == "model" and answer.text == GOOD
    assert "stopped early" in (answer.note or "") and "cut off" in (answer.note or "")


# -- what small models write -------------------------------------------------------------------
def test_an_echoed_prompt_is_not_shown(svc: Services, server: FakeOpenAIServer) -> None:
    server.queue_reply("", echo=True)
    shown: list[str] = []
    answer = _ask(svc, server, shown=shown)
    assert shown == [] and answer.mode == "extractive"
    assert "repeated its instructions" in (answer.note or "")


@pytest.mark.parametrize(("reply", "expected"), [
    # Both numbers are read; the second article says nothing of the sentence, so only the
    # first is kept.
    (GOOD.replace("[1]", "[1, 2]"), GOOD),
    (GOOD.replace(" [1].", ".【1】"), GOOD),
    (GOOD.replace("[1]", "[Article 1]"), GOOD),
])
def test_other_citation_forms_are_read(svc: Services, server: FakeOpenAIServer, reply: str,
                                       expected: str) -> None:
    server.queue_reply(reply)
    answer = _ask(svc, server)
    assert answer.mode == "model" and answer.text == expected


def test_a_reasoning_models_thinking_is_not_the_answer(svc: Services,
                                                       server: FakeOpenAIServer) -> None:
    server.queue_reply("<think>\nThe member asks about The Eternaut. Article 1 says Netflix "
                       "used generative AI to create the scene of a building collapsing in "
                       "Buenos Aires. End every sentence with the article number.\n</think>\n"
                       f"{GOOD}", stream_chunk_size=5)
    shown: list[str] = []
    answer = _ask(svc, server, shown=shown)
    assert shown == [GOOD] and answer.mode == "model" and answer.text == GOOD
    assert answer.note is None


def test_thinking_without_its_opening_tag_is_neither_the_answer_nor_left_out(
        svc: Services, server: FakeOpenAIServer) -> None:
    server.queue_reply("The member asks about The Eternaut. Article 1 says Netflix used "
                       "generative AI for a building collapsing in Buenos Aires. End every "
                       f"sentence with the article number.\n</think>\n\n{GOOD}",
                       stream_chunk_size=5)
    answer = _ask(svc, server)
    assert answer.mode == "model" and answer.text == GOOD and answer.note is None


def test_a_list_of_sources_after_the_answer_is_neither_shown_nor_noted(
        svc: Services, server: FakeOpenAIServer) -> None:
    server.queue_reply(f"{GOOD}\n\nSources:\n[1] Netflix puts generative AI footage into an "
                       "original series for the first time (Sample Wire, 2025-07-19)")
    shown: list[str] = []
    answer = _ask(svc, server, shown=shown)
    assert shown == [GOOD] and answer.text == GOOD and answer.note is None


def test_a_model_saying_in_words_that_the_articles_do_not_answer(
        svc: Services, server: FakeOpenAIServer) -> None:
    server.queue_reply("The articles do not say how much the building collapse scene cost.")
    answer = _ask(svc, server, "how much did the building collapse scene in The Eternaut cost?")
    assert answer.abstained and "found no answer in the articles" in (answer.note or "")


def test_a_model_that_never_cites(svc: Services, server: FakeOpenAIServer) -> None:
    server.queue_reply(f"{GOOD.removesuffix(' [1].')}. Netflix also makes robots on Mars.")
    answer = _ask(svc, server)
    # The sentence the article supports is attributed to it; the other is dropped and said so.
    assert answer.mode == "model" and answer.text == GOOD
    assert "1 sentence of the model's answer left out" in (answer.note or "")
    server.queue_reply("Netflix also makes robots on Mars. They are very tall.")
    answer = _ask(svc, server)
    assert answer.mode == "extractive" and "cited no article" in (answer.note or "")


def test_no_unchecked_sentence_is_ever_shown(svc: Services, server: FakeOpenAIServer) -> None:
    server.queue_reply(f"{GOOD} {BAD} Visit evil.example for more. {GOOD_2}",
                       stream_chunk_size=3)
    shown: list[str] = []
    answer = _ask(svc, server, shown=shown)
    result = svc.retriever.search(QUESTION, k=svc.settings.top_k)
    checker = SentenceChecker(sources_of(result))
    assert shown == [GOOD, " " + GOOD_2]
    assert all(isinstance(checker.check(piece.strip()), Kept) for piece in shown)
    assert answer.text == "".join(shown)
    assert "2 sentences of the model's answer left out" in (answer.note or "")


def test_a_question_declined_at_retrieval_never_reaches_the_model(
        svc: Services, server: FakeOpenAIServer) -> None:
    answer = _ask(svc, server, "what is the best recipe for sourdough bread with rye flour?")
    assert answer.abstained and answer.mode == "extractive" and answer.note
    assert _chat_bodies(server) == []


def test_the_model_saying_not_found_is_an_abstention(svc: Services,
                                                     server: FakeOpenAIServer) -> None:
    server.queue_reply("NOT_IN_ARTICLES")
    shown: list[str] = []
    answer = _ask(svc, server, shown=shown)
    assert answer.abstained and shown == [] and answer.mode == "extractive"
    assert "found no answer" in (answer.note or "")


# -- what the footer says ----------------------------------------------------------------------
SOURDOUGH = "what is the best recipe for sourdough bread with rye flour?"


@pytest.mark.parametrize(("script", "question", "origin", "why"), [
    ({"text": GOOD}, QUESTION, "Model answer", None),
    ({"text": GOOD, "hang_after": 0}, QUESTION, "Extractive answer (quoted from articles)",
     "the language model did not answer (timed out)"),
    ({"text": "Netflix also makes robots on Mars. They are very tall."}, QUESTION,
     "Extractive answer (quoted from articles)", "the model's answer cited no article"),
    ({"text": "NOT_IN_ARTICLES"}, QUESTION, "No answer",
     "the language model found no answer in the articles"),
    (None, SOURDOUGH, "No answer", "match the question too weakly"),
], ids=["model", "timed out", "uncited", "model found nothing", "declined at retrieval"])
def test_the_footer_says_where_the_answer_came_from(
        svc: Services, server: FakeOpenAIServer, capsys: pytest.CaptureFixture[str],
        script: dict[str, Any] | None, question: str, origin: str, why: str | None) -> None:
    if script is not None:
        server.queue_reply(**script)
    hangs = script is not None and script.get("hang_after") == 0
    answer = _ask(svc, server, question, answer_budget_s=0.6 if hangs else BUDGET_S)
    footer = answer_footer(answer)
    _print_answer(answer.to_json())
    cli = capsys.readouterr().out.rstrip("\n").rsplit("\n", 1)[-1]
    assert (answer.mode == "model") == (origin == "Model answer")
    assert (why in (answer.note or "")) if why else answer.note is None
    for line in (footer, cli):  # one line, in Discord and in the terminal
        assert line.startswith(origin) and "\n" not in line and (why or "") in line
        assert "so this" not in line and "no language model" not in line


# -- closing the client ------------------------------------------------------------------------
@pytest.mark.parametrize("ending", ["finished", "stopped by the caller", "timed out"])
def test_closing_the_client_leaves_nothing_pending(tmp_path: Path, server: FakeOpenAIServer,
                                                   caplog: pytest.LogCaptureFixture,
                                                   ending: str) -> None:
    # A long budget when stopping: the stream must be closed when asked, not at the deadline.
    budget = {"stopped by the caller": 30.0, "timed out": 0.5}.get(ending, BUDGET_S)
    model = OpenAIChatModel(make_settings(tmp_path, openai_base_url=server.base_url,
                                          answer_budget_s=budget, llm_max_retries=0))

    def stop(_: str) -> None:
        raise StopStreaming

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        if ending == "finished":
            server.queue_reply(GOOD)
            assert model.generate([("human", QUESTION)]).text == GOOD
        elif ending == "stopped by the caller":
            server.queue_reply(f"{GOOD} ", forever=True)
            assert model.generate([("human", QUESTION)], on_token=stop).finish_reason == "stopped"
            [stream] = server.wait_for_streams(1, timeout=10)
            assert stream.client_left
        else:
            server.queue_reply(GOOD, hang_after=10)
            with pytest.raises(LLMError, match="timed out"):
                model.generate([("human", QUESTION)])
        model.close()
        gc.collect()  # a task left pending on the closed loop complains when collected
    assert not model._thread.is_alive() and model._loop.is_closed() and model._http.is_closed
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    with pytest.raises(LLMError, match="closed"):
        model.generate([("human", QUESTION)])  # refused at once, not left to time out


def test_the_model_client_is_built_on_first_use_only(tmp_path: Path, server: FakeOpenAIServer,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    built: list[OpenAIChatModel] = []

    class Counted(OpenAIChatModel):
        def __init__(self, settings: Settings) -> None:
            super().__init__(settings)
            built.append(self)

    monkeypatch.setattr(llm, "OpenAIChatModel", Counted)
    monkeypatch.setattr(services_module, "make_embedder", lambda settings: FakeEmbedder())
    monkeypatch.chdir(tmp_path)
    for var in list(os.environ):
        if var.startswith(("NEWSBOT_", "OPENAI_", "DISCORD_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    for command in (["ingest", str(sample_dir())], ["status"], ["sources", "list"],
                    ["poll", "--once"]):
        assert main(command) == 0
    assert built == []  # none of these asks a model
    assert re.search(r"^ +mode: model$", capsys.readouterr().out, re.M)  # status still says so
    server.queue_reply(GOOD)
    assert main(["ask", QUESTION, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "model"
    assert len(built) == 1 and not built[0]._thread.is_alive()  # closed at exit

    services = make_services(tmp_path / "data", sample=False, openai_base_url=server.base_url,
                             answer_budget_s=BUDGET_S)
    try:
        assert services.ask.model is services.briefs.model is services.desk.model
        for _ in range(2):
            server.queue_reply(GOOD)
            assert services.ask.ask(QUESTION).mode == "model"
    finally:
        services.close()
    assert len(built) == 2  # one more client, for both questions
    assert not built[1]._thread.is_alive()
