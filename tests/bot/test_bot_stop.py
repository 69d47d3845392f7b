"""Stopping the bot while it writes an answer with a model: the member gets the answer as far
as it was written, marked as such, not a message left "Writing…" for good."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from bot.core.services import Services
from bot.render import PROGRESS_CURSOR
from tests.bot.conftest import OnDiscord
from tests.fakes import make_services
from tests.support.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.integration

Start = Callable[..., Awaitable[OnDiscord]]
QUESTION = "what did Netflix use generative AI for in The Eternaut?"
GOOD = ("For The Eternaut, Netflix used generative AI to create the scene of a building "
        "collapsing in Buenos Aires [1].")
LATER = "The team finished that visual-effects sequence about ten times faster [1]."


@pytest.fixture
def on_model(openai_server: FakeOpenAIServer, tmp_path: Path) -> Iterator[Services]:
    services = make_services(tmp_path / "model-data", openai_base_url=openai_server.base_url,
                             llm_max_retries=0, answer_budget_s=120.0,
                             answer_in_threads=False)
    try:
        yield services
    finally:
        services.close()


async def test_an_answer_being_written_at_a_stop_is_finished_as_far_as_it_went(
        start_on_discord: Start, on_model: Services, openai_server: FakeOpenAIServer) -> None:
    w = await start_on_discord(services=on_model)
    # The model writes its first sentence, then nothing more (a slow model, mid-answer).
    openai_server.queue_reply(f"{GOOD} {LATER}", hang_after=len(GOOD) + 4)
    question = w.server.say(w.member("jo"), w.news, w.mention(QUESTION))
    shown = await w.wait(lambda: next((m for m in w.server.bot_messages(w.news)
                                       if m.embeds and GOOD in m.embeds[0]["description"]),
                                      None), "the answer's first sentence shown")
    assert shown.embeds[0]["description"].endswith(PROGRESS_CURSOR.strip())
    await w.bot.close()  # what SIGTERM or Ctrl-C does
    # The answer was finished before the bot left: its checked sentence, said to be cut short.
    (answer,) = [m for m in w.server.replies_to(question) if m.embeds]
    final = answer.embeds[0]
    assert final["description"] == GOOD
    assert "may be incomplete" in final["footer"]["text"]
    # Said so a member understands it: not the client's "stopped early (closed)".
    assert "(closed)" not in final["footer"]["text"]
    assert "the bot was shutting down" in final["footer"]["text"]
    assert "Writing" not in final["footer"]["text"]
    assert openai_server.wait_for_streams(1)[0].client_left
    assert not on_model.state.answers_writing()  # finished: nothing for the next start to mend
