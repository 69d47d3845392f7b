"""Briefs against the local Discord: fan-out under a rate limit, 403 and 404, moderators
only, /brief post with its preview, and a question in a brief's thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import discord
import pytest
import pytest_asyncio

from bot.client import NewsBot
from bot.core.delivery import OutMessage, PostError
from bot.core.operations import Actor, Context, NotPermitted, run_operation
from bot.core.services import Services
from tests.fakes import make_services
from tests.support.discord_server import Channel, LocalDiscord

ROUTE = "/channels/{channel_id}/messages"
STORY = {"title": "Tram depot reopens as a market hall", "outlet": "Marlow Courier",
         "url": "https://courier.example.org/depot-market",
         "published_at": "2030-05-06T09:00:00Z",
         "body": "The old tram depot in Marlow reopened on Tuesday as a covered market with 40 "
                 "stalls. The conversion cost 3.2 million pounds, councillor Oskar Brandt "
                 "said.\n\nTraders pay a reduced rent for the first year. The depot had stood "
                 "empty since 1998."}


@pytest.fixture
def server(point_discord_py: LocalDiscord) -> LocalDiscord:
    return point_discord_py


@pytest.fixture
def svc(tmp_path: Path, server: LocalDiscord) -> Iterator[Services]:
    guild = next(iter(server.guilds.values()))
    services = make_services(tmp_path / "data", sample=True, dev_guild_id=guild.id,
                             brief_send_rate=50.0)
    try:
        yield services
    finally:
        services.close()


@pytest_asyncio.fixture
async def bot(server: LocalDiscord, svc: Services) -> AsyncIterator[NewsBot]:
    client = NewsBot(svc, guild_ready_timeout=0.05)
    await client.login(server.token)
    task = asyncio.create_task(client.connect())
    await server.wait_async(lambda: client.is_ready() or task.done(), what="the bot to be ready")
    if task.done():
        task.result()
    try:
        yield client
    finally:
        await client.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, 5)


def _guild(server: LocalDiscord) -> Any:
    return next(iter(server.guilds.values()))


def _general(server: LocalDiscord) -> Channel:
    return next(c for c in _guild(server).channels.values() if c.name == "general")


def _mod(server: LocalDiscord) -> Any:
    guild = _guild(server)
    mod = server.add_member(guild, "mia")
    server.add_role(guild, "desk", ["manage_messages"], members=[mod])
    return mod


def _add_story(svc: Services, tmp_path: Path, record: dict[str, Any] = STORY) -> str:
    path = tmp_path / f"{abs(hash(record['url']))}.jsonl"
    path.write_text(json.dumps(record) + "\n")
    report = svc.admin.ingest([str(path)])
    return (report.added_ids or report.updated_ids)[0]


def _titles(server: LocalDiscord, channel: Channel) -> list[str]:
    return [m.embeds[0]["title"] for m in server.bot_messages(channel) if m.embeds]


async def test_fan_out_to_100_channels_under_a_rate_limit_drops_nothing(
        server: LocalDiscord, svc: Services, bot: NewsBot, tmp_path: Path) -> None:
    guild = _guild(server)
    channels = [server.add_channel(guild, f"news-{i}") for i in range(100)]
    await server.wait_async(lambda: all(bot.get_channel(c.id) for c in channels),
                            what="the channels in the cache")
    for ch in channels:
        svc.desk.subscribe(channel_id=ch.id, guild_id=guild.id, topic="tram depot market")
    svc.desk.topic_threshold = 0.2  # the fake embedding's scale
    limit = server.rate_limit("POST", ROUTE, limit=2, per=1.0)  # per channel
    server.fail("POST", ROUTE, 429, times=2, retry_after=0.05, via=False)  # raised to us
    server.fail("POST", ROUTE, 429, times=2, retry_after=0.05, is_global=True)  # retried
    assert svc.desk.plan([_add_story(svc, tmp_path)]).briefs == 100
    # A second report of the story reaches every channel as a reply: two posts a channel
    # against a limit of two a second per channel.
    later = dict(STORY, title="Market hall in old tram depot draws crowds",
                 url="https://gazette.example.net/depot-crowds",
                 published_at="2030-05-06T18:00:00Z")
    cog = bot.get_cog("Briefs")
    assert cog is not None
    first = await svc.desk.deliver(cog.poster)  # type: ignore[attr-defined]
    assert first.sent == 100 and first.failed == 0
    assert svc.desk.plan([_add_story(svc, tmp_path, later)]).updates == 100
    # The bot's own delivery loop sends them (or this pass does, whichever runs first).
    await svc.desk.deliver(cog.poster)  # type: ignore[attr-defined]
    await server.wait_async(lambda: all(len(server.bot_messages(c)) == 2 for c in channels),
                            what="an update in every channel")
    for ch in channels:
        assert _titles(server, ch) == [STORY["title"], later["title"]]
        brief, update = server.bot_messages(ch)
        assert update.reference_id == brief.id
    # No 429 storm: the limit's headers paced the sends; the scripted ones were retried.
    assert limit.rejected == 0
    assert first.rate_limited == 2  # the two raised to us, retried after a pause
    per_window = Counter(start for _, start in limit.granted)
    assert max(per_window.values()) <= 2 and len(limit.granted) == 200
    edited = [m for c in channels for m in server.bot_messages(c)[:1] if m.edited]
    assert len(edited) == 100  # each brief now lists the second report


async def test_403_disables_and_tells_moderators_404_removes(
        server: LocalDiscord, svc: Services, bot: NewsBot, tmp_path: Path) -> None:
    guild = _guild(server)
    muted, gone, mods = (server.add_channel(guild, n) for n in ("muted", "gone", "mods"))
    await server.wait_async(lambda: bot.get_channel(mods.id), what="the channels")
    svc.desk.mod_channel_id = mods.id
    svc.desk.topic_threshold = 0.2
    a = svc.desk.subscribe(channel_id=muted.id, guild_id=guild.id, topic="tram depot market")
    b = svc.desk.subscribe(channel_id=gone.id, guild_id=guild.id, topic="tram depot market")
    server.set_overwrite(muted, server.bot_role(guild), deny=["send_messages"])
    server.delete_channel(gone)
    svc.desk.plan([_add_story(svc, tmp_path)])
    report = await svc.desk.deliver(bot.get_cog("Briefs").poster)  # type: ignore[union-attr]
    assert report.disabled == [a.id] and report.removed == [b.id]
    (notice,) = server.bot_messages(mods)
    assert f"<#{muted.id}>" in notice.embeds[0]["description"]
    subs = {s.id: s for s in svc.desk.subscriptions()}
    assert not subs[a.id].enabled and b.id not in subs
    assert server.bot_messages(muted) == []


async def test_only_moderators_at_every_layer(server: LocalDiscord, svc: Services,
                                              bot: NewsBot) -> None:
    general = _general(server)
    member = server.add_member(_guild(server), "sam")
    # Hidden from members by default permissions: Discord's client does not send it.
    with pytest.raises(PermissionError):
        server.slash(member, general, "brief list")
    # Sent anyway (a server that opened it up): the runtime check refuses.
    inter = server.slash(member, general, "brief list", bypass_client_checks=True)
    (reply,) = await server.wait_async(lambda: server.responses(inter), what="a refusal")
    assert reply.content == "Only moderators can use this command." and reply.ephemeral
    assert svc.desk.subscriptions() == []
    # And the service refuses a member whatever the adapter did.
    with pytest.raises(NotPermitted):
        run_operation("subscriptions.add", Context(svc, actor=Actor(mod=False, admin=False)),
                      {"channel_id": general.id, "topic": "trams"})
    assert svc.desk.subscriptions() == []


async def test_brief_post_previews_then_posts_with_an_ask_button(
        server: LocalDiscord, svc: Services, bot: NewsBot, tmp_path: Path) -> None:
    general = _general(server)
    mod = _mod(server)
    article_id = _add_story(svc, tmp_path)
    suggest = server.autocomplete(mod, general, "brief post", "article", "tram depot")
    await server.wait_async(lambda: suggest.choices is not None, what="suggestions")
    assert suggest.choices and suggest.choices[0]["value"] == article_id
    inter = server.slash(mod, general, "brief post", article=article_id)
    (preview,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                                  if m.embeds], what="the preview")
    assert preview.ephemeral and preview.embeds[0]["title"] == STORY["title"]
    assert all(m.ephemeral for m in server.bot_messages(general))  # nothing posted yet
    click = server.click(mod, preview, next(c["custom_id"] for row in preview.components
                                            for c in row["components"] if c["label"] == "Post"))
    posted = await server.wait_async(lambda: [m for m in server.bot_messages(general)
                                              if not m.ephemeral and m.embeds],
                                     what="the posted brief")
    (brief,) = posted
    assert brief.embeds[0]["title"] == STORY["title"]
    labels = [c["label"] for row in brief.components for c in row["components"]]
    assert labels == ["Ask about this"]
    await server.wait_async(lambda: any("Posted in" in m.content
                                        for m in server.responses(click)), what="the receipt")
    # Posting the same story again queues nothing.
    article = svc.state.get_article(article_id)
    assert article is not None
    assert svc.desk.post_article(article, general.id)[1] is False


async def test_a_question_in_a_briefs_thread_is_answered_from_that_article(
        server: LocalDiscord, svc: Services, bot: NewsBot, tmp_path: Path) -> None:
    general = _general(server)
    reader = server.add_member(_guild(server), "rue")
    article_id = _add_story(svc, tmp_path)
    svc.desk.post_article(svc.state.get_article(article_id), general.id)  # type: ignore[arg-type]
    await svc.desk.deliver(bot.get_cog("Briefs").poster)  # type: ignore[union-attr]
    (brief,) = server.bot_messages(general)
    custom_id = brief.components[0]["components"][0]["custom_id"]
    click = server.click(reader, brief, custom_id)
    await server.wait_async(lambda: server.responses(click), what="the thread link")
    thread = await server.wait_async(lambda: [t for t in server.threads(general)
                                              if t.id == brief.id], what="the thread")
    question = server.say(reader, thread[0], f"<@{server.bot.id}> how much did the "
                          "conversion cost?")
    answer = await server.wait_async(
        lambda: [m for m in server.replies_to(question) if m.embeds and m.embeds[0].get(
            "fields")], timeout=30, what="an answer")
    embed = answer[-1].embeds[0]
    assert "3.2 million" in embed["description"]
    sources = embed["fields"][0]["value"]
    assert sources.startswith(f"**[1]** [{STORY['title']}]")


@pytest.mark.usefixtures("allow_private_urls")
async def test_brief_post_of_a_feed_url_is_refused_in_one_line(
        server: LocalDiscord, svc: Services, bot: NewsBot) -> None:
    """A moderator cannot take in a whole feed through /brief post: that is following a
    source, an admin's action."""
    from tests.support.feeds import numbered_items, rss
    from tests.support.http import StaticServer

    general = _general(server)
    mod = _mod(server)
    before = svc.state.counts(), len(svc.state.list_sources())
    with StaticServer() as http:
        url = http.add("/rss", rss(numbered_items(0, 3, long_text=True)),
                       content_type="application/rss+xml")
        inter = server.slash(mod, general, "brief post", article=url)
        (line,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                                   if m.content], what="the refusal")
    assert line.ephemeral and line.content.count("\n") == 0
    assert line.content.startswith(f"{url} is a feed, not an article page")
    assert "`/feeds add`" in line.content
    assert (svc.state.counts(), len(svc.state.list_sources())) == before


def _button(message: Any, label: str) -> str:
    return next(c["custom_id"] for row in message.components for c in row["components"]
                if c.get("label") == label)


async def test_edit_opens_a_modal_whose_headline_and_synopsis_are_posted(
        server: LocalDiscord, svc: Services, bot: NewsBot, tmp_path: Path) -> None:
    general = _general(server)
    mod = _mod(server)
    article_id = _add_story(svc, tmp_path)
    inter = server.slash(mod, general, "brief post", article=article_id)
    (preview,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                                  if m.embeds], what="the preview")

    async def edit(values: dict[str, str], **kw: Any) -> Any:
        """Press Edit, then submit the modal with ``values``; the submit interaction."""
        opened = server.click(mod, preview, _button(preview, "Edit"))
        modal = await server.wait_async(lambda: opened.modal, what="the modal")
        assert modal["title"] == "Edit the brief"
        return server.submit_modal(mod, opened, values, **kw)

    async def refusal(submit: Any) -> str:
        (line,) = await server.wait_async(lambda: server.responses(submit),
                                          what="the refusal")
        assert line.ephemeral and line.content.count("\n") == 0
        assert preview.embeds[0]["title"] == STORY["title"]  # the preview is as it was
        return str(line.content)

    # Discord's client does not send an empty or over-long field ...
    opened = server.click(mod, preview, _button(preview, "Edit"))
    modal = await server.wait_async(lambda: opened.modal, what="the modal")
    shown = {c["custom_id"]: c for row in modal["components"] for c in row["components"]}
    headline_id, synopsis_id = shown
    assert shown[headline_id]["value"] == STORY["title"]
    with pytest.raises(ValueError, match="required"):
        server.submit_modal(mod, opened, {headline_id: ""})
    with pytest.raises(ValueError, match="max_length"):
        server.submit_modal(mod, opened, {synopsis_id: "x" * 1001})
    # ... but spaces pass it, and a forged submit passes anything: the bot refuses both.
    line = await refusal(await edit({headline_id: "   "}))
    assert line == "The headline cannot be empty; the preview was not changed."
    line = await refusal(await edit({synopsis_id: "word " * 300}, bypass_client_checks=True))
    assert line.startswith("The synopsis is at most 1,000 characters (this one has 1,499)")

    headline = "Marlow's tram depot becomes a 40-stall market"
    synopsis = "The depot, empty since 1998, reopened on Tuesday as a covered market."
    submit = await edit({headline_id: f"  {headline} ", synopsis_id: synopsis})
    await server.wait_async(lambda: submit.response_type == 7, what="the preview updated")
    assert preview.embeds[0]["title"] == headline
    server.click(mod, preview, _button(preview, "Post"))
    (brief,) = await server.wait_async(lambda: [m for m in server.bot_messages(general)
                                                if not m.ephemeral and m.embeds],
                                       what="the posted brief")
    assert brief.embeds[0]["title"] == headline
    assert brief.embeds[0]["description"].startswith(synopsis)
    assert brief.embeds[0]["url"] == STORY["url"]


SECOND = {"title": "Ferry to Lundholm resumes after storm repairs", "outlet": "Marlow Courier",
          "url": "https://courier.example.org/lundholm-ferry",
          "published_at": "2030-05-07T08:00:00Z",
          "body": "The ferry to Lundholm sails again from Wednesday after six weeks of repairs "
                  "to its ramp, the harbour office said.\n\nThe first crossing leaves at 7:40 "
                  "and the timetable is unchanged."}


async def test_a_channel_the_bot_may_not_post_in_holds_its_briefs_until_it_is_resumed(
        server: LocalDiscord, svc: Services, bot: NewsBot, tmp_path: Path) -> None:
    guild = _guild(server)
    general = _general(server)
    muted, mods = (server.add_channel(guild, n) for n in ("muted", "mods"))
    await server.wait_async(lambda: bot.get_channel(mods.id), what="the channels")
    mod = _mod(server)
    svc.desk.mod_channel_id = mods.id
    svc.desk.topic_threshold = -1.0  # every story is on topic
    # More held than a burst, but one of them was tried (refused) before: it may be in the
    # channel, so it is never folded into a list, and the reply must not promise one.
    svc.desk.burst = 1
    sub = svc.desk.subscribe(channel_id=muted.id, guild_id=guild.id, topic="local news")
    server.set_overwrite(muted, server.bot_role(guild), deny=["send_messages"])
    await server.wait_async(lambda: not muted_ok(bot, muted.id), what="the overwrite")
    poster = bot.get_cog("Briefs").poster  # type: ignore[union-attr]
    svc.desk.plan([_add_story(svc, tmp_path)])
    report = await svc.desk.deliver(poster)
    assert report.disabled == [sub.id]
    (notice,) = server.bot_messages(mods)
    assert "/brief subscribe" in notice.embeds[0]["description"]
    # A story arriving while the channel is paused is held for it too.
    svc.desk.plan([_add_story(svc, tmp_path, SECOND)])
    await svc.desk.deliver(poster)
    assert server.bot_messages(muted) == []

    async def resubscribe() -> str:
        inter = server.slash(mod, general, "brief subscribe", channel=muted.id,
                             topic="local news")
        (line,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                                   if m.content], what="the reply")
        assert line.ephemeral and line.content.count("\n") == 0
        return str(line.content)

    # Still refused: told so, and nothing changes.
    line = await resubscribe()
    assert "Send Messages" in line and f"<#{muted.id}>" in line
    assert not svc.desk.subscriptions()[0].enabled
    server.set_overwrite(muted, server.bot_role(guild))
    await server.wait_async(lambda: muted_ok(bot, muted.id), what="the overwrite lifted")
    line = await resubscribe()
    assert line.startswith(f"Subscription #{sub.id} resumed") and "2 held briefs" in line
    assert "list" not in line
    assert [s.enabled for s in svc.desk.subscriptions()] == [True]
    await svc.desk.deliver(poster)
    await svc.desk.deliver(poster)
    assert sorted(_titles(server, muted)) == sorted([STORY["title"], SECOND["title"]])


def muted_ok(bot: NewsBot, channel_id: int) -> bool:
    channel = bot.get_channel(channel_id)
    assert channel is not None and not isinstance(channel, discord.abc.PrivateChannel)
    return bool(channel.permissions_for(channel.guild.me).send_messages)


async def test_brief_post_to_a_channel_the_bot_may_not_post_in_says_so(
        server: LocalDiscord, svc: Services, bot: NewsBot, tmp_path: Path) -> None:
    guild = _guild(server)
    general = _general(server)
    mod = _mod(server)
    muted = server.add_channel(guild, "muted")
    server.set_overwrite(muted, server.bot_role(guild), deny=["embed_links"])
    await server.wait_async(lambda: bot.get_channel(muted.id) and not bot.get_channel(
        muted.id).permissions_for(bot.get_guild(guild.id).me).embed_links,  # type: ignore
        what="the overwrite")
    article_id = _add_story(svc, tmp_path)
    inter = server.slash(mod, general, "brief post", article=article_id, channel=muted.id)
    (line,) = await server.wait_async(lambda: server.responses(inter), what="the refusal")
    assert line.ephemeral and line.content == (
        f"I cannot post in <#{muted.id}>: the bot lacks Embed Links there. Grant it, then "
        "try again.")
    # Allowed by the cache when the preview was made, refused by Discord at the Post: the
    # moderator hears it was not posted.
    server.set_overwrite(muted, server.bot_role(guild))
    await server.wait_async(lambda: bot.get_channel(muted.id).permissions_for(  # type: ignore
        bot.get_guild(guild.id).me).embed_links, what="the overwrite lifted")  # type: ignore
    inter = server.slash(mod, general, "brief post", article=article_id, channel=muted.id)
    (preview,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                                  if m.embeds], what="the preview")
    server.fail("POST", ROUTE, 403, times=1)
    click = server.click(mod, preview, _button(preview, "Post"))
    (receipt,) = await server.wait_async(lambda: [m for m in server.responses(click)
                                                  if m.content], what="the receipt")
    assert receipt.content.startswith(f"Could not post in <#{muted.id}>: Discord refused it")
    assert server.bot_messages(muted) == []



async def test_a_brief_discord_rejects_as_malformed_is_not_retried_forever(
        server: LocalDiscord, svc: Services, bot: NewsBot, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A 400 answers the same payload the same way every time: the post fails once, is
    logged, and the channel's next brief still goes out."""
    guild = _guild(server)
    news = server.add_channel(guild, "news")
    await server.wait_async(lambda: bot.get_channel(news.id), what="the channel")
    svc.desk.topic_threshold = -1.0
    svc.desk.subscribe(channel_id=news.id, guild_id=guild.id, topic="local news")
    svc.desk.plan([_add_story(svc, tmp_path)])
    rejected = server.fail("POST", ROUTE, 400, times=None, code=50035,
                           message="Invalid Form Body", channel_id=news.id)
    poster = bot.get_cog("Briefs").poster  # type: ignore[union-attr]
    report = await svc.desk.deliver(poster)
    assert report.failed == 1 and report.waiting == 0
    assert any("refused" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    later = datetime.now(UTC) + timedelta(days=1)
    svc.desk.clock = lambda: later
    assert (await svc.desk.deliver(poster)).sent == 0
    server.clear_faults()
    svc.desk.plan([_add_story(svc, tmp_path, SECOND)])
    assert (await svc.desk.deliver(poster)).sent == 1
    assert _titles(server, news) == [SECOND["title"]]
    assert rejected.hits == 1


async def test_a_429_discord_py_does_not_retry_carries_its_retry_after_to_delivery(
        server: LocalDiscord, bot: NewsBot) -> None:
    """A 429 without the Via header (Cloudflare's) reaches delivery, which waits what Discord
    asked before the next send rather than its own short pause."""
    general = _general(server)
    server.fail("POST", ROUTE, 429, retry_after=7.0, via=False)
    poster = bot.get_cog("Briefs").poster  # type: ignore[union-attr]
    with pytest.raises(PostError) as refused:
        await poster.send(general.id, OutMessage(kind="notice", title="t", text="x"),
                          nonce="n429")
    assert refused.value.kind == "rate_limited" and refused.value.retry_after == 7.0


async def test_a_post_the_service_refuses_after_the_preview_is_told_not_left_thinking(
        server: LocalDiscord, svc: Services, bot: NewsBot, tmp_path: Path) -> None:
    """The moderator's role loses Manage Messages between the preview and the Post: the
    service refuses, and the moderator reads why in one line."""
    general = _general(server)
    guild = _guild(server)
    mod = server.add_member(guild, "mia")
    desk = server.add_role(guild, "desk", ["manage_messages"], members=[mod])
    article_id = _add_story(svc, tmp_path)
    inter = server.slash(mod, general, "brief post", article=article_id)
    (preview,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                                  if m.embeds], what="the preview")
    server.set_role_permissions(desk, 0)
    click = server.click(mod, preview, _button(preview, "Post"))
    (line,) = await server.wait_async(lambda: [m for m in server.responses(click)
                                               if m.content], what="the refusal")
    assert line.ephemeral and line.content.count("\n") == 0
    assert "moderators" in line.content
    assert all(m.ephemeral for m in server.bot_messages(general))  # nothing posted
    assert svc.state.pending_posts() == []


async def test_a_moderator_of_one_channel_acts_on_that_channel_only(
        server: LocalDiscord, svc: Services, bot: NewsBot, tmp_path: Path) -> None:
    guild = _guild(server)
    club, news = server.add_channel(guild, "club"), server.add_channel(guild, "news")
    cleo = server.add_member(guild, "cleo")
    server.set_overwrite(club, cleo, allow=["manage_messages"])  # moderates #club alone
    await server.wait_async(lambda: bot.get_channel(news.id), what="the channels")
    article_id = _add_story(svc, tmp_path)
    other = svc.desk.subscribe(channel_id=news.id, guild_id=guild.id, topic="harbour")

    async def reply(name: str, **options: Any) -> str:
        inter = server.slash(cleo, club, name, **options)
        (line,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                                   if m.content], what=f"/{name}'s reply")
        return str(line.content)

    for name, options in (("brief subscribe", {"channel": news.id, "topic": "trams"}),
                          ("brief post", {"article": article_id, "channel": news.id}),
                          ("brief unsubscribe", {"subscription": other.id})):
        line = await reply(name, **options)
        assert line == f"Only moderators of <#{news.id}> can do that there.", name
    assert await reply("brief timezone", zone="Asia/Tokyo") == (
        "Only moderators of the whole server can do that.")
    assert [s.id for s in svc.desk.subscriptions()] == [other.id]
    assert server.bot_messages(news) == []
    # In the channel she moderates, she may.
    line = await reply("brief subscribe", channel=club.id, topic="trams")
    assert line.startswith("Subscription #")


async def test_with_no_moderators_channel_a_pause_is_told_to_who_subscribed(
        server: LocalDiscord, svc: Services, bot: NewsBot, tmp_path: Path) -> None:
    guild = _guild(server)
    news = server.add_channel(guild, "news")
    await server.wait_async(lambda: bot.get_channel(news.id), what="the channel")
    mod = _mod(server)
    assert svc.desk.mod_channel_id is None
    svc.desk.topic_threshold = -1.0  # every story is on topic
    inter = server.slash(mod, _general(server), "brief subscribe", channel=news.id,
                         topic="local news")
    await server.wait_async(lambda: [m for m in server.responses(inter) if m.content],
                            what="the subscription")
    server.set_overwrite(news, server.bot_role(guild), deny=["send_messages"])
    await server.wait_async(lambda: not muted_ok(bot, news.id), what="the overwrite")
    svc.desk.plan([_add_story(svc, tmp_path)])
    await svc.desk.deliver(bot.get_cog("Briefs").poster)  # type: ignore[union-attr]
    (notice,) = server.bot_messages(server.dm_channel(mod))
    assert notice.embeds[0]["title"].startswith("Briefs paused")
    assert f"<#{news.id}>" in notice.embeds[0]["description"]


async def test_the_timezone_reply_counts_one_subscription_in_the_singular(
        server: LocalDiscord, svc: Services, bot: NewsBot) -> None:
    guild, general = _guild(server), _general(server)
    svc.desk.subscribe(channel_id=general.id, guild_id=guild.id, topic="harbour")
    inter = server.slash(_mod(server), general, "brief timezone", zone="Asia/Tokyo")
    (line,) = await server.wait_async(lambda: [m for m in server.responses(inter)
                                               if m.content], what="the reply")
    assert line.content == "Digest hours are now in Asia/Tokyo (1 subscription follows)."
