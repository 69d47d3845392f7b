"""What a hostile feed can put in front of moderators through the bot: its own words, shown
as words. The bot runs in-process on the local Discord with the real service behind it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from bot.service import NewsService
from tests.bot.conftest import OnDiscord
from tests.support.feeds import numbered_items, rss
from tests.support.http import StaticServer
from tests.support.markdown import masked_links

Start = Callable[..., Awaitable[OnDiscord]]


@pytest.mark.usefixtures("allow_private_urls")
async def test_a_feed_that_fails_shows_moderators_no_link_of_its_own(start_on_discord: Start
                                                                     ) -> None:
    # The feed's title becomes the source's name; what its server sends becomes the error.
    w = await start_on_discord(allow_private_urls=True, feed_max_failures=1, fetch_timeout_s=3)
    mods = w.server.add_channel(w.guild, "mods")
    w.services.settings.mod_channel_id = mods.id
    svc = NewsService(w.services, tick_s=3600, control=False)
    svc.alert = w.bot.get_cog("Admin").alert  # type: ignore[union-attr]
    await svc.start()
    try:
        with StaticServer() as http:
            title = "Harbour Weekly [Verify [your] bot token](https://evil.example/v(1))"
            url = http.add("/f.xml", rss(numbered_items(0, 1, long_text=True), title=title),
                           content_type="application/rss+xml")
            added = await svc.call("sources.add", {"url": url})
            assert added["name"] == title
            http.add("/f.xml", b"<html>moved</html>",
                     content_type="[Re-authorise the bot](https://evil.example/r)")
            await svc.call("poll", {})
            alert = await w.wait(lambda: next(iter(w.server.channel_messages(mods)), None),
                                 "the moderators' alert")
    finally:
        await svc.stop()
    assert "was disabled" in alert.content
    assert masked_links(alert.content) == [], alert.content
    assert "<https://evil.example/r>" in alert.content  # the target spelled out
