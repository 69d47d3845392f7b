"""The ephemeral preview of `/brief post` against the local Discord, past its time."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bot.client import NewsBot
from bot.core.services import Services
from tests.e2e.test_e2e_briefs import (  # noqa: F401
    STORY,
    _add_story,
    _general,
    _mod,
    bot,
    server,
    svc,
)
from tests.support.discord_server import LocalDiscord


async def test_a_preview_left_open_past_its_time_says_so_and_offers_no_dead_button(
        server: LocalDiscord, svc: Services, bot: NewsBot, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The preview's buttons stop answering after its time (ten minutes): a moderator who
    came back to it and pressed Post read "This interaction failed", and nothing said why or
    what to do. The preview now says it expired, keeps the brief in view and drops the
    buttons; nothing is posted."""
    # The module the bot loaded (an extension is loaded as a module object of its own).
    cog = sys.modules[type(bot.get_cog("Briefs")).__module__]
    monkeypatch.setattr(cog, "PREVIEW_TIMEOUT_S", 0.5, raising=False)
    general = _general(server)
    mod = _mod(server)
    article_id = _add_story(svc, tmp_path)
    inter = server.slash(mod, general, "brief post", article=article_id)
    (preview,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                                  if m.embeds], what="the preview")
    assert preview.components  # Post, Edit, Cancel
    await server.wait_async(lambda: not preview.components, timeout=20,
                            what="the expired preview without its buttons")
    assert preview.ephemeral and preview.embeds[0]["title"] == STORY["title"]
    assert "expired" in preview.content and "/brief post" in preview.content
    assert preview.content.count("\n") == 0
    assert all(m.ephemeral for m in server.bot_messages(general))  # nothing posted
    assert svc.state.pending_posts() == []
