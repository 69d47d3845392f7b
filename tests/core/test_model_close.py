"""Closing the chat client (the service stopping) while an answer streams."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from bot.core.llm import LLMError, OpenAIChatModel
from tests.fakes import make_settings
from tests.support.openai_server import FakeOpenAIServer


def test_closing_the_client_ends_a_streaming_answer_at_once(
        tmp_path: Path, openai_server: FakeOpenAIServer) -> None:
    """The caller hears "closed" instead of waiting out its deadline: the answer's thread
    held the process's exit for the whole answer budget after a SIGTERM."""
    openai_server.queue_reply("The ferry sails again on Monday [1]. " * 20, chunk_delay=0.2,
                              stream_chunk_size=4)
    model = OpenAIChatModel(make_settings(tmp_path / "data",
                                          openai_base_url=openai_server.base_url))
    started = threading.Event()
    outcome: list[BaseException | str] = []

    def answer() -> None:
        try:
            done = model.generate([("human", "when does the ferry sail?")],
                                  on_token=lambda _: started.set(),
                                  deadline=time.monotonic() + 600)
            outcome.append(done.text)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    assert started.wait(30), "no token streamed"
    model.close()
    thread.join(60)  # far below the deadline, far above a close
    assert not thread.is_alive(), "the answer waited for its deadline after the close"
    (err,) = outcome
    assert isinstance(err, LLMError) and err.reason == "closed"
    with pytest.raises(LLMError):  # and a new answer is refused at once
        model.generate([("human", "and on Tuesday?")])
