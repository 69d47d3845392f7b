"""Stories that go out in a list (a burst of briefs, a daily digest) can be asked about as a
brief posted alone can: the bot runs in-process on the local Discord."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.core.delivery import OutMessage
from tests.bot.conftest import OnDiscord
from tests.support.discord_server import Interaction

Start = Callable[..., Awaitable[OnDiscord]]


async def _line(w: OnDiscord, inter: Interaction) -> str:
    msgs = await w.wait(lambda: [m for m in w.server.responses(inter) if m.content],
                        "the reply")
    assert all(m.ephemeral for m in msgs)
    return msgs[-1].content or ""


async def test_each_story_of_a_list_can_be_asked_about_in_a_thread_of_its_own(
        start_on_discord: Start) -> None:
    w = await start_on_discord()
    asked: list[dict[str, Any]] = []
    real = w.services.ask.ask

    def ask(question: str, **kwargs: Any) -> Any:
        asked.append(kwargs)
        return real(question, **kwargs)

    w.services.ask.ask = ask  # type: ignore[method-assign]
    stories = w.services.state.recent_titles(3)
    lines = [{"title": title, "url": None, "outlet": "Sample Wire", "article_id": article_id,
              "count": 1} for article_id, title in stories]
    listing = OutMessage(kind="digest", title="3 new stories since 01 May 08:00 UTC",
                         lines=lines)
    # Sent as the delivery loop sends it (the cog's own poster: the loaded extension's).
    poster = w.bot.get_cog("Briefs").poster  # type: ignore[union-attr]
    sent = w.server.messages[await poster.send(w.news.id, listing, nonce="list-1")]
    [menu] = [c for row in sent.components for c in row["components"]]
    assert menu["type"] == 3 and [o["value"] for o in menu["options"]] == [
        article_id for article_id, _ in stories]

    article_id, title = stories[1]
    reader = w.member("rue")
    line = await _line(w, w.server.choose(reader, sent, menu["custom_id"], [article_id]))
    [thread] = w.server.threads(w.news)
    assert thread.name == title[:100] and thread.owner_id == w.server.bot.id
    assert f"<#{thread.id}>" in line
    # The same story picked again, by anyone: the same thread.
    again = await _line(w, w.server.choose(w.member("sam"), sent, menu["custom_id"],
                                           [article_id]))
    assert f"<#{thread.id}>" in again and len(w.server.threads(w.news)) == 1
    # A question there is answered from that story's article first.
    question = w.server.say(reader, thread, w.mention("what happened?"))
    await w.answer_to(question)
    assert asked[-1]["prefer_article_id"] == article_id
    # A list at its longest, every title and outlet over a menu's limits, still goes out.
    longest = OutMessage(kind="digest", title="10 new stories since 01 May 08:00 UTC", lines=[
        {"title": f"Story {n} " + "with a headline far too long " * 12, "url": None,
         "outlet": "An outlet with a name far too long " * 4, "article_id": f"a{n:016x}",
         "count": 1} for n in range(10)])
    sent = w.server.messages[await poster.send(w.news.id, longest, nonce="list-2")]
    [menu] = [c for row in sent.components for c in row["components"]]
    assert len(menu["options"]) == 10
