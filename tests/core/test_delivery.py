"""Delivery: subscriptions, one brief per story, updates, caps, digests and exactly-once
posting against an in-memory Poster (crashes, 403, 404, 429)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.core.delivery import PAUSED_REASON, Desk, PostError, Subscription, make_nonce
from bot.core.models import NewsbotError
from bot.core.services import Services
from tests.fakes import make_services
from tests.support.poster import Crash, MemoryPoster

NEWS, SPORT, MODS = 101, 102, 900
T0 = datetime(2025, 4, 30, tzinfo=UTC)

FERRY = {"title": "Harbour ferry crews strike over pay", "outlet": "Gazette",
         "url": "https://gazette.example.org/ferry-strike", "published_at": "2025-05-01T08:00:00Z",
         "body": "Ferry crews in Kestrel Harbour stopped work on Thursday in a dispute over pay. "
                 "The strike halted all 14 crossings between the islands.\n\nThe union said "
                 "talks would resume on Monday."}
FERRY_2 = {"title": "Kestrel Harbour ferry crews strike over pay", "outlet": "Courier",
           "url": "https://courier.example.net/ferries", "published_at": "2025-05-01T09:30:00Z",
           "body": "Ferry crews in Kestrel Harbour stopped work on Thursday over pay. All 14 "
                   "crossings between the islands were halted by the strike."}
FERRY_END = {"title": "Kestrel Harbour ferry strike ends with pay deal", "outlet": "Gazette",
             "url": "https://gazette.example.org/ferry-deal",
             "published_at": "2025-05-03T10:00:00Z",
             "body": "Ferry crews in Kestrel Harbour went back to work on Saturday after a pay "
                     "deal ended their strike. The 14 crossings between the islands resumed."}
MUSEUM = {"title": "Museum opens a wing for meteorites", "outlet": "Gazette",
          "url": "https://gazette.example.org/meteorites", "published_at": "2025-05-01T12:00:00Z",
          "body": "The Linden natural history museum opened a new wing on Friday to show its "
                  "meteorite collection. Visitors can touch a 30 kg iron meteorite."}
LIBRARY = {"title": "Town library extends its opening hours", "outlet": "Gazette",
           "url": "https://gazette.example.org/library-hours",
           "published_at": "2025-05-02T07:00:00Z",
           "body": "The Linden town library will open until 9 pm on weekdays from June. The "
                   "council approved 2 new librarian posts to cover the longer hours."}


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    services = make_services(tmp_path / "data", sample=False)
    try:
        yield services
    finally:
        services.close()


def _desk(svc: Services, **kw: Any) -> Desk:
    kw.setdefault("topic_threshold", 0.2)  # the fake embedding's scale, not MiniLM's
    kw.setdefault("send_rate", 1000.0)
    return Desk(svc.state, svc.embedder, mod_channel_id=MODS, **kw)


def _feed(tmp_path: Path, name: str, *records: dict[str, Any]) -> str:
    """A file source holding ``records`` (rewritten, so later ingests see new items)."""
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _ingest(svc: Services, spec: str) -> list[str]:
    """The new articles of ``spec``, a source followed (as polls would) from now on."""
    report = svc.admin.ingest([spec])
    assert not report.updated_ids
    source = svc.state.find_source(spec)
    assert source is not None
    svc.state.update_source(source.id, watch=True)
    return report.added_ids


def _changed(svc: Services, spec: str) -> list[str]:
    """The articles of ``spec`` that changed."""
    report = svc.admin.ingest([spec])
    assert not report.added_ids
    return report.updated_ids


async def test_new_article_becomes_one_brief_per_subscribed_channel(
        svc: Services, tmp_path: Path) -> None:
    desk = _desk(svc)
    feed = _feed(tmp_path, "gazette", MUSEUM)
    _ingest(svc, feed)
    desk.subscribe(channel_id=NEWS, source=feed, now=T0)
    desk.subscribe(channel_id=SPORT, topic="ferry strikes", now=T0)
    new = _ingest(svc, _feed(tmp_path, "gazette", MUSEUM, FERRY))
    report = desk.plan(new)
    assert report.briefs == 2
    poster = MemoryPoster()
    sent = await desk.deliver(poster)
    assert sent.sent == 2 and sent.failed == 0
    for channel in (NEWS, SPORT):
        (msg,) = poster.in_channel(channel)
        assert msg.kind == "brief" and msg.title == FERRY["title"] and msg.url == FERRY["url"]
        assert msg.brief and msg.brief["points"] is not None and msg.article_id
    # Delivering again sends nothing; planning the same articles again records nothing.
    assert (await desk.deliver(poster)).sent == 0
    assert desk.plan(new).briefs == 0
    assert (await desk.deliver(poster)).sent == 0
    assert poster.sends == 2


async def test_first_fetch_posts_nothing_unless_backfilled(svc: Services, tmp_path: Path) -> None:
    desk = _desk(svc)
    desk.subscribe(channel_id=NEWS, topic="ferry strikes", now=T0)
    ids = _ingest(svc, _feed(tmp_path, "new", FERRY, MUSEUM))
    report = desk.plan(ids, first_fetch=True)
    assert report.briefs == 0 and report.skipped == {"first fetch": 2}
    # An item held back at the first fetch is not posted when it changes later either.
    retitled = dict(FERRY, title="Harbour ferry crews strike over pay and hours")
    changed = _changed(svc, _feed(tmp_path, "new", retitled, MUSEUM))
    assert desk.plan([], changed=changed).skipped == {"changed, never posted here": 1}
    ids = _ingest(svc, _feed(tmp_path, "other", FERRY_END))
    assert desk.plan(ids, first_fetch=True, backfill=5).briefs == 1


async def test_items_older_than_the_subscription_keywords_and_daily_cap(
        svc: Services, tmp_path: Path) -> None:
    desk = _desk(svc)
    feed = _feed(tmp_path, "f", FERRY, MUSEUM)
    ids = _ingest(svc, feed)
    late = datetime.now(UTC)  # after both were published, and read
    desk.subscribe(channel_id=NEWS, source=feed, now=late)
    desk.subscribe(channel_id=SPORT, source=feed, keywords=["Meteorite"], now=T0)
    capped = desk.subscribe(channel_id=MODS + 1, source=feed, daily_cap=1, now=T0)
    report = desk.plan(ids, now=datetime(2025, 5, 1, 13, tzinfo=UTC))
    assert report.skipped["older than the subscription"] >= 1
    poster = MemoryPoster()
    await desk.deliver(poster)
    assert poster.in_channel(NEWS) == []
    assert [m.title for m in poster.in_channel(SPORT)] == [MUSEUM["title"]]
    assert len(poster.in_channel(capped.channel_id)) == 1
    assert report.skipped["daily cap"] == 1


async def test_an_item_dated_just_before_the_subscription_and_read_after_it_is_posted(
        svc: Services, tmp_path: Path) -> None:
    """A feed lists an item some minutes after its date, and the first poll after a
    subscription is made reads what was published since the poll before: such an item was
    dropped as "older than the subscription", so the brief a moderator who had just
    subscribed was waiting for never came. An item read after the subscription is news to it
    unless dated more than a day before it (an old story a feed lists again)."""
    desk = _desk(svc)
    spec = _feed(tmp_path, "coast", LIBRARY)
    _ingest(svc, spec)  # the source's first fetch, before the subscription
    sub = desk.subscribe(channel_id=NEWS, source=spec)
    fresh = dict(FERRY, published_at=(sub.created_at - timedelta(minutes=20)).isoformat())
    stale = dict(MUSEUM, published_at=(sub.created_at - timedelta(days=3)).isoformat())
    ids = _ingest(svc, _feed(tmp_path, "coast", LIBRARY, fresh, stale))
    assert len(ids) == 2
    report = desk.plan(ids)
    assert report.briefs == 1 and report.skipped == {"older than the subscription": 1}
    poster = MemoryPoster()
    await desk.deliver(poster)
    assert [m.title for m in poster.in_channel(NEWS)] == [FERRY["title"]]


async def test_two_outlets_one_story_one_brief_then_an_update(
        svc: Services, tmp_path: Path) -> None:
    desk = _desk(svc)
    desk.subscribe(channel_id=NEWS, topic="ferry strikes", now=T0)
    ids = _ingest(svc, _feed(tmp_path, "a", FERRY)) + _ingest(svc, _feed(tmp_path, "b", FERRY_2))
    report = desk.plan(ids)
    assert (report.briefs, report.folded, report.updates) == (1, 1, 0)
    poster = MemoryPoster()
    await desk.deliver(poster)
    (brief,) = poster.in_channel(NEWS)
    assert [s["outlet"] for s in brief.also] == ["Courier"]
    # Days later the story moves on: a reply to the brief, and the brief lists the source.
    ids = _ingest(svc, _feed(tmp_path, "a", FERRY, FERRY_END))
    assert desk.plan(ids).updates == 1
    result = await desk.deliver(poster)
    assert (result.sent, result.edited) == (1, 1)
    first, update = poster.messages[NEWS]
    assert update.message.kind == "update" and update.message.reply_to == first.id
    assert update.message.title == FERRY_END["title"]
    assert [s["title"] for s in first.message.also] == [FERRY_2["title"], FERRY_END["title"]]


async def test_changed_article_is_posted_again_only_for_a_new_headline(
        svc: Services, tmp_path: Path) -> None:
    desk = _desk(svc)
    desk.subscribe(channel_id=NEWS, topic="ferry strikes", now=T0)
    desk.plan(_ingest(svc, _feed(tmp_path, "a", FERRY)))
    poster = MemoryPoster()
    await desk.deliver(poster)
    body_changed = dict(FERRY, body=FERRY["body"] + " Ferry passengers were offered refunds.")
    ids = _changed(svc, _feed(tmp_path, "a", body_changed))
    assert ids and desk.plan([], changed=ids).skipped == {"unchanged headline": 1}
    retitled = dict(body_changed, title="Harbour ferry strike: all crossings cancelled")
    assert desk.plan([], changed=_changed(svc, _feed(tmp_path, "a", retitled))).updates == 1
    await desk.deliver(poster)
    assert [m.kind for m in poster.in_channel(NEWS)] == ["brief", "update"]


@pytest.mark.parametrize("when", ["after", "before"])
async def test_crash_between_send_and_confirm_posts_exactly_once(
        svc: Services, tmp_path: Path, when: str) -> None:
    desk = _desk(svc)
    desk.subscribe(channel_id=NEWS, topic="ferry strikes", now=T0)
    desk.plan(_ingest(svc, _feed(tmp_path, "a", FERRY)))
    poster = MemoryPoster(**{f"crash_{when}_send": 1})
    with pytest.raises(Crash):
        await desk.deliver(poster)
    (row,) = svc.state.pending_posts()
    assert row["attempts"] == 1 and row["message_id"] is None
    # A new process on the same state: it looks before it sends.
    restarted = _desk(svc)
    poster.crash_after_send = poster.crash_before_send = None
    report = await restarted.deliver(poster)
    assert len(poster.in_channel(NEWS)) == 1
    if when == "after":
        assert (report.reconciled, report.sent) == (1, 0)
        assert poster.calls == ["send 101", "recent 101"]
    else:
        assert (report.reconciled, report.sent) == (0, 1)
    confirmed = svc.state.get_post(NEWS, row["item_key"])
    assert confirmed is not None and confirmed["status"] == "sent"
    assert confirmed["message_id"] == poster.messages[NEWS][0].id
    assert confirmed["nonce"] == make_nonce(NEWS, row["item_key"])


async def test_403_disables_and_tells_mods_once_404_removes(svc: Services,
                                                            tmp_path: Path) -> None:
    desk = _desk(svc)
    muted = desk.subscribe(channel_id=NEWS, topic="ferry strikes", now=T0)
    gone = desk.subscribe(channel_id=SPORT, topic="ferry strikes", now=T0)
    desk.plan(_ingest(svc, _feed(tmp_path, "a", FERRY)))
    poster = MemoryPoster(refuse={NEWS: PostError("forbidden", "403 Missing Permissions"),
                                  SPORT: PostError("not_found", "404 Unknown Channel")})
    report = await desk.deliver(poster)
    assert report.disabled == [muted.id] and report.removed == [gone.id]
    (notice,) = poster.in_channel(MODS)
    assert notice.kind == "notice" and f"#{muted.id}" in (notice.text or "")
    subs = {s.id: s for s in desk.subscriptions()}
    assert not subs[muted.id].enabled and "403" in (subs[muted.id].disabled_reason or "")
    assert gone.id not in subs
    # Nothing more goes to the refused channel, and moderators are not told again.
    desk.plan(_ingest(svc, _feed(tmp_path, "b", MUSEUM)))
    await desk.deliver(poster)
    assert len(poster.in_channel(MODS)) == 1 and poster.calls.count("send 101") == 1


async def test_a_pause_of_one_subscription_is_told_in_the_singular(svc: Services,
                                                                  tmp_path: Path) -> None:
    """The moderators' notice read "Subscriptions #1 are paused and their briefs held" of a
    channel with one subscription."""
    desk = _desk(svc)
    muted = desk.subscribe(channel_id=NEWS, topic="ferry strikes", now=T0)
    desk.plan(_ingest(svc, _feed(tmp_path, "a", FERRY)))
    poster = MemoryPoster(refuse={NEWS: PostError("forbidden", "403 Missing Permissions")})
    await desk.deliver(poster)
    (notice,) = poster.in_channel(MODS)
    assert notice.title == f"Briefs paused: subscription #{muted.id}"
    assert f"Subscription #{muted.id} is paused and its briefs held; " in (notice.text or "")
    assert "to resume it." in (notice.text or "") and "Subscriptions" not in (notice.text or "")


async def test_429_is_retried_not_dropped(svc: Services, tmp_path: Path) -> None:
    desk = _desk(svc)
    for channel in range(10):
        desk.subscribe(channel_id=channel, topic="ferry strikes", now=T0)
    desk.plan(_ingest(svc, _feed(tmp_path, "a", FERRY)))
    poster = MemoryPoster(rate_limits=3)
    report = await desk.deliver(poster)
    assert report.rate_limited == 3 and report.sent == 10
    assert all(len(poster.in_channel(c)) == 1 for c in range(10))


async def test_digest_once_a_day_at_the_local_hour(svc: Services, tmp_path: Path) -> None:
    desk = _desk(svc)
    feed = _feed(tmp_path, "a", FERRY, FERRY_2, MUSEUM)
    ids = _ingest(svc, feed)
    desk.subscribe(channel_id=NEWS, source=feed, mode="digest", digest_hour=18,
                   tz="Europe/Paris", now=T0)
    assert desk.plan(ids).briefs == 0  # digest subscriptions get no immediate briefs
    assert desk.plan_digests(datetime(2025, 5, 1, 15, 59, tzinfo=UTC)) == 0  # 17:59 in Paris
    assert desk.plan_digests(datetime(2025, 5, 1, 16, 0, tzinfo=UTC)) == 1
    assert desk.plan_digests(datetime(2025, 5, 1, 21, 0, tzinfo=UTC)) == 0  # once a day
    poster = MemoryPoster()
    await desk.deliver(poster)
    (digest,) = poster.in_channel(NEWS)
    assert digest.kind == "digest" and digest.title == f"Top stories: {feed}, 1 May 2025"
    # The two outlets' ferry reports are one story, listed first.
    assert [(line["title"], line["count"]) for line in digest.lines] == [
        (FERRY["title"], 2), (MUSEUM["title"], 1)]


def test_bad_subscriptions_are_refused_and_write_nothing(svc: Services) -> None:
    desk = _desk(svc)
    for kwargs, message in [
        ({}, "give a source to follow or a topic"),
        ({"source": "nowhere"}, "no source"),
        ({"topic": "x", "daily_cap": 0}, "daily cap"),
        ({"topic": "x", "mode": "hourly"}, "immediate or digest"),
        ({"topic": "x", "digest_hour": 24}, "0 to 23"),
        ({"topic": "x", "tz": "Mars/Olympus"}, "time zone"),
        ({"topic": "x", "keywords": ["k"] * 11}, "keywords"),
    ]:
        with pytest.raises(NewsbotError, match=message):
            desk.subscribe(channel_id=NEWS, **kwargs)
    assert desk.subscriptions() == []
    sub = desk.subscribe(channel_id=NEWS, topic="ferries")
    with pytest.raises(NewsbotError, match="already follows"):
        desk.subscribe(channel_id=NEWS, topic="ferries")
    with pytest.raises(NewsbotError, match="no subscription"):
        desk.unsubscribe(sub.id, guild_id=5)
    assert desk.unsubscribe(sub.id).id == sub.id and desk.subscriptions() == []


def test_the_guilds_time_zone_is_the_default_and_moves_its_subscriptions(
        svc: Services) -> None:
    desk = _desk(svc)
    before = desk.subscribe(channel_id=NEWS, guild_id=7, topic="ferries", mode="digest")
    assert before.tz == "UTC"
    for bad in ("Atlantis/Capital", "America", ""):  # "America" is a folder of zones
        with pytest.raises(NewsbotError, match="time zone"):
            desk.set_timezone(7, bad)
    assert desk.set_timezone(7, "Asia/Tokyo") == 1
    after = desk.subscribe(channel_id=SPORT, guild_id=7, topic="ferries")
    other = desk.subscribe(channel_id=MODS, guild_id=8, topic="ferries")
    assert {s.id: s.tz for s in desk.subscriptions()} == {
        before.id: "Asia/Tokyo", after.id: "Asia/Tokyo", other.id: "UTC"}
    # Until a server sets its own, the zone is NEWSBOT_TIMEZONE's.
    paris = _desk(svc, default_tz="Europe/Paris")
    assert paris.subscribe(channel_id=NEWS, guild_id=9, topic="trams").tz == "Europe/Paris"


async def test_a_network_fault_leaves_the_row_for_later_and_nothing_is_sent_twice(
        svc: Services, tmp_path: Path) -> None:
    """A send that dies of a network fault (no HTTP answer at all) ends neither the pass nor
    the other channels' sends: the pass returns only when every send is done, so the next
    pass never sends again what one still in flight is sending."""
    desk = _desk(svc)
    feed = _feed(tmp_path, "gazette", MUSEUM)
    _ingest(svc, feed)
    desk.subscribe(channel_id=NEWS, source=feed, now=T0)
    desk.subscribe(channel_id=SPORT, source=feed, now=T0)
    assert desk.plan(_ingest(svc, _feed(tmp_path, "gazette", MUSEUM, FERRY, LIBRARY))).briefs == 4
    poster = MemoryPoster(refuse={NEWS: ConnectionResetError("connection reset by peer")},
                          delay=0.05)
    reports = [await desk.deliver(poster) for _ in range(3)]
    assert poster.calls.count(f"send {SPORT}") == 2 and len(poster.in_channel(SPORT)) == 2
    assert reports[0].sent == 2 and reports[0].waiting == 2
    assert not poster.in_channel(NEWS)
    for row in svc.state.pending_posts():
        assert row["channel_id"] == NEWS and "connection reset" in row["error"]


async def test_a_failed_send_waits_longer_each_time_then_goes_once(
        svc: Services, tmp_path: Path) -> None:
    now = [T0 + timedelta(days=2)]
    desk = _desk(svc, clock=lambda: now[0], retry_base=30.0)
    desk.subscribe(channel_id=NEWS, topic="ferry strikes", now=T0)
    desk.plan(_ingest(svc, _feed(tmp_path, "a", FERRY)))
    poster = MemoryPoster(refuse={NEWS: OSError("network is unreachable")})
    await desk.deliver(poster)
    assert (await desk.deliver(poster)).waiting == 0  # not due yet: not even looked at
    now[0] += timedelta(seconds=31)
    assert (await desk.deliver(poster)).waiting == 1  # tried again, failed again
    now[0] += timedelta(seconds=31)
    await desk.deliver(poster)  # the wait doubled: not tried
    assert poster.calls.count(f"send {NEWS}") == 2
    poster.refuse.clear()
    now[0] += timedelta(seconds=31)
    report = await desk.deliver(poster)
    # It looks before it sends again: the failed attempt might have reached the channel.
    assert report.sent == 1 and poster.calls[-2:] == [f"recent {NEWS}", f"send {NEWS}"]
    assert len(poster.in_channel(NEWS)) == 1 and not svc.state.pending_posts()


async def test_a_send_accepted_but_never_answered_is_found_not_sent_again(
        svc: Services, tmp_path: Path) -> None:
    """The hard case: Discord created the message but its answer never came back. The pass
    gives the send up after its timeout (the other channels are not held), and the retry
    reads the channel and confirms the message instead of sending it again."""
    now = [T0 + timedelta(days=2)]
    desk = _desk(svc, clock=lambda: now[0], send_timeout=0.2)
    desk.subscribe(channel_id=NEWS, topic="ferry strikes", now=T0)
    desk.subscribe(channel_id=SPORT, topic="ferry strikes", now=T0)
    desk.plan(_ingest(svc, _feed(tmp_path, "a", FERRY)))
    poster = MemoryPoster(hang_after_send=1)
    report = await desk.deliver(poster)
    assert (report.sent, report.waiting) == (1, 1)
    (row,) = svc.state.pending_posts()
    hung, key = int(row["channel_id"]), row["item_key"]
    assert row["attempts"] == 1 and "TimeoutError" in row["error"]
    assert len(poster.in_channel(hung)) == 1  # Discord has it; the bot does not know
    now[0] += timedelta(seconds=11)
    report = await desk.deliver(poster)
    assert (report.reconciled, report.sent) == (1, 0)
    assert poster.calls.count(f"send {hung}") == 1 and poster.calls[-1] == f"recent {hung}"
    row = svc.state.get_post(hung, key)
    assert row is not None and row["status"] == "sent"
    assert row["message_id"] == poster.messages[hung][0].id


async def test_a_paused_channel_is_told_of_each_time_and_unsubscribing_drops_its_briefs(
        svc: Services, tmp_path: Path) -> None:
    desk = _desk(svc)
    sub = desk.subscribe(channel_id=NEWS, topic="ferry strikes", now=T0)
    refused = MemoryPoster(refuse={NEWS: PostError("forbidden", "403 Missing Permissions")})
    desk.plan(_ingest(svc, _feed(tmp_path, "a", FERRY)))
    await desk.deliver(refused)
    assert desk.subscribe(channel_id=NEWS, topic="ferry strikes").resumed == 1
    # Resumed while the bot still may not post there: paused again, and the moderators
    # hear of it again (a second pause is not the first one's notice).
    await desk.deliver(refused)
    assert [s.enabled for s in desk.subscriptions()] == [False]
    assert len(refused.in_channel(MODS)) == 2
    # Unsubscribed while paused: its held briefs go nowhere, even once the bot could post.
    desk.plan(_ingest(svc, _feed(tmp_path, "b", FERRY_END)))
    desk.unsubscribe(sub.id)
    allowed = MemoryPoster()
    report = await desk.deliver(allowed)
    assert report.sent == 0 and allowed.in_channel(NEWS) == []


WAVE = [("Dunmore council votes to pedestrianise the high street", "Traders"),
        ("Quarry blast rattles windows across Ashby", "Residents"),
        ("Orchard growers report record cider apple harvest", "Farmers"),
        ("Railway signal fault delays Tuesday commuters", "Passengers"),
        ("Chapel bells recast after a century of silence", "Parishioners"),
        ("Bakery wins regional sourdough prize in Kelton", "Judges"),
        ("Theatre troupe tours lighthouses along the coast", "Actors"),
        ("River otters return to the Wendle after forty years", "Ecologists")]


async def test_a_wave_of_briefs_or_a_long_pause_comes_as_one_list(
        svc: Services, tmp_path: Path) -> None:
    desk = _desk(svc, topic_threshold=-1.0, burst=5)  # every story is on topic
    desk.subscribe(channel_id=NEWS, topic="local news", now=T0)
    records = [{"title": t, "outlet": "Gazette", "url": f"https://gazette.example.org/w{i}",
                "published_at": f"2025-05-0{1 + i % 7}T08:00:00Z",
                "body": f"{who} in the district spoke on Monday about item {i}. {t}."}
               for i, (t, who) in enumerate(WAVE)]
    assert desk.plan(_ingest(svc, _feed(tmp_path, "a", *records))).briefs == 8
    poster = MemoryPoster()
    report = await desk.deliver(poster)
    (listed,) = poster.in_channel(NEWS)
    assert report.sent == 1 and listed.kind == "digest"
    assert listed.title.startswith("8 new stories since ")
    assert sorted(line["title"] for line in listed.lines) == sorted(t for t, _ in WAVE)
    assert (await desk.deliver(poster)).sent == 0 and desk.queue()["pending"] == 0
    # A story of the list reported again is an update of its own, without a brief to edit.
    again = dict(records[0], url="https://courier.example.net/street", outlet="Courier")
    desk.plan(_ingest(svc, _feed(tmp_path, "b", again)))
    await desk.deliver(poster)
    assert [m.kind for m in poster.in_channel(NEWS)] == ["digest", "update"]
    assert poster.in_channel(NEWS)[1].reply_to is None
    # A few at a time go out one by one.
    desk.plan(_ingest(svc, _feed(tmp_path, "c", FERRY)))
    await desk.deliver(poster)
    assert [m.kind for m in poster.in_channel(NEWS)][-1] == "brief"
    # Paused by a 403 (the brief it refused goes on its own, as tried once) while six more
    # stories come in: resumed, they come as one list too.
    refused = MemoryPoster(refuse={NEWS: PostError("forbidden", "403 Missing Permissions")})
    desk.plan(_ingest(svc, _feed(tmp_path, "d", MUSEUM)))
    await desk.deliver(refused)
    later = [LIBRARY, FERRY_END, *(dict(r, title=f"{r['title']}, again", outlet="Courier",
                                        url=f"https://courier.example.net/{n}")
                                   for n, r in enumerate(records[3:7]))]
    for n, record in enumerate(later):
        desk.plan(_ingest(svc, _feed(tmp_path, f"e{n}", record)))
    resumed = desk.subscribe(channel_id=NEWS, topic="local news")
    assert resumed.resumed == 7 and resumed.resumed_listed == 6  # the refused one on its own
    sent = await desk.deliver(poster)
    assert sent.sent == 2
    assert [m.title for m in poster.in_channel(NEWS)][-2:][0] == MUSEUM["title"]
    assert poster.in_channel(NEWS)[-1].title.startswith("6 new stories since ")


async def test_a_wave_recorded_slowly_still_comes_as_one_list(svc: Services,
                                                              tmp_path: Path) -> None:
    import asyncio
    import threading

    desk = _desk(svc, topic_threshold=-1.0, burst=5)
    desk.subscribe(channel_id=NEWS, topic="local news", now=T0)
    records = [{"title": t, "outlet": "Gazette", "url": f"https://gazette.example.org/s{i}",
                "published_at": "2025-05-02T08:00:00Z", "body": f"{who} spoke. {t}."}
               for i, (t, who) in enumerate(WAVE)]
    new = _ingest(svc, _feed(tmp_path, "a", *records))
    embed, gate, halfway = desk.embedder.embed_documents, threading.Event(), threading.Event()

    def slow(texts: Any) -> Any:  # as a slow model would, between two briefs
        if desk.embedder.calls >= 5:  # type: ignore[attr-defined]
            halfway.set()
            gate.wait(10)
        return embed(texts)

    desk.embedder.embed_documents = slow  # type: ignore[method-assign]
    planning = asyncio.create_task(asyncio.to_thread(desk.plan, new))
    await asyncio.to_thread(halfway.wait, 10)
    poster = MemoryPoster()
    assert (await desk.deliver(poster)).sent == 0  # half the wave is in: it waits
    gate.set()
    await planning
    await desk.deliver(poster)
    assert [m.kind for m in poster.in_channel(NEWS)] == ["digest"]


async def test_a_paused_channel_holds_its_newest_briefs_only(svc: Services,
                                                             tmp_path: Path) -> None:
    desk = _desk(svc, topic_threshold=-1.0, held_max=2)
    desk.subscribe(channel_id=NEWS, topic="local news", now=T0)
    refused = MemoryPoster(refuse={NEWS: PostError("forbidden", "403 Missing Permissions")})
    desk.plan(_ingest(svc, _feed(tmp_path, "a", MUSEUM)))
    await desk.deliver(refused)  # paused
    for n, (title, who) in enumerate(WAVE[:4]):
        desk.plan(_ingest(svc, _feed(tmp_path, f"w{n}", {
            "title": title, "outlet": "Gazette", "url": f"https://gazette.example.org/h{n}",
            "published_at": f"2025-05-0{n + 1}T08:00:00Z", "body": f"{who} spoke. {title}."})))
    assert desk.subscribe(channel_id=NEWS, topic="local news").resumed == 3
    poster = MemoryPoster()
    await desk.deliver(poster)
    assert [m.title for m in poster.in_channel(NEWS)] == [
        MUSEUM["title"], WAVE[2][0], WAVE[3][0]]


async def test_a_notice_that_failed_is_not_taken_for_an_earlier_one(svc: Services,
                                                                    tmp_path: Path) -> None:
    desk = _desk(svc, retry_base=0.0)
    for channel in (NEWS, SPORT):
        desk.subscribe(channel_id=channel, topic="ferry strikes", now=T0)
    poster = MemoryPoster(refuse={NEWS: PostError("forbidden", "403 Missing Permissions")})
    desk.plan(_ingest(svc, _feed(tmp_path, "a", FERRY)))
    await desk.deliver(poster)  # #news refuses: the moderators are told
    assert len(poster.in_channel(MODS)) == 1
    poster.refuse[SPORT] = PostError("forbidden", "403 Missing Permissions")
    poster.refuse[MODS] = OSError("connection reset")
    desk.plan(_ingest(svc, _feed(tmp_path, "b", FERRY_END)))
    await desk.deliver(poster)  # #sport refuses: telling the moderators fails
    del poster.refuse[MODS]
    await desk.deliver(poster)  # tried again: looked for, not found, sent
    notices = [m.text or "" for m in poster.in_channel(MODS)]
    assert len(notices) == 2 and f"<#{SPORT}>" in notices[1]


def _wave(lo: int, hi: int, host: str) -> list[dict[str, Any]]:
    return [{"title": t, "outlet": "Gazette", "url": f"https://{host}/w{i}",
             "published_at": "2025-05-02T08:00:00Z", "body": f"{who} spoke on item {i}. {t}."}
            for i, (t, who) in enumerate(WAVE) if lo <= i < hi]


def _two_feeds_one_wave(svc: Services, tmp_path: Path, desk: Desk) -> tuple[int, int]:
    """Channel NEWS follows feed A and feed B; 4 briefs of A's and 3 of B's wait for it."""
    seed = {"title": "Lighthouse keeper retires", "outlet": "Gazette",
            "url": "https://a.example.org/seed", "published_at": "2025-04-01T08:00:00Z",
            "body": "The keeper of the Dunmore lighthouse retired after thirty years."}
    feed_a = _feed(tmp_path, "a", seed)
    feed_b = _feed(tmp_path, "b", dict(seed, url="https://b.example.org/seed"))
    _ingest(svc, feed_a)
    _ingest(svc, feed_b)
    sub_a = desk.subscribe(channel_id=NEWS, source=feed_a, now=T0)
    sub_b = desk.subscribe(channel_id=NEWS, source=feed_b, now=T0)
    desk.plan(_ingest(svc, _feed(tmp_path, "a", seed, *_wave(0, 4, "a.example.org"))))
    desk.plan(_ingest(svc, _feed(tmp_path, "b", dict(seed, url="https://b.example.org/seed"),
                                 *_wave(4, 7, "b.example.org"))))
    assert desk.queue()["pending"] == 7
    return sub_a.id, sub_b.id


def _posts(svc: Services) -> list[Any]:
    """Channel NEWS's rows of the posted log, oldest first."""
    with svc.state.transaction() as db:
        return db.execute("SELECT * FROM posts WHERE channel_id = ? ORDER BY created_at, "
                          "rowid", (NEWS,)).fetchall()


def _listed_titles(poster: MemoryPoster) -> list[str]:
    return [line["title"] for m in poster.in_channel(NEWS) for line in m.lines or []]


async def test_unsubscribing_one_subscription_of_a_list_keeps_the_others_briefs(
        svc: Services, tmp_path: Path) -> None:
    """A list of two subscriptions' briefs whose send failed: unsubscribing one of them drops
    its own briefs only; the list goes out once and the other's briefs are sent in it."""
    desk = _desk(svc, topic_threshold=-1.0, burst=5, retry_base=0.0)
    sub_a, sub_b = _two_feeds_one_wave(svc, tmp_path, desk)
    down = MemoryPoster(refuse={NEWS: ConnectionResetError("connection reset by peer")})
    assert (await desk.deliver(down)).waiting == 1
    desk.unsubscribe(sub_a)
    poster = MemoryPoster()
    await desk.deliver(poster)
    await desk.deliver(poster)
    (listed,) = poster.in_channel(NEWS)
    assert listed.kind == "digest" and set(_listed_titles(poster)) >= {t for t, _ in WAVE[4:7]}
    assert desk.queue()["pending"] == 0
    b_posts = [r for r in _posts(svc) if r["subscription_id"] == sub_b]
    assert [r["status"] for r in b_posts] == ["sent"] * 3


async def test_a_list_refused_by_a_403_waits_for_any_of_its_subscriptions_resumed(
        svc: Services, tmp_path: Path) -> None:
    desk = _desk(svc, topic_threshold=-1.0, burst=5)
    sub_a, sub_b = _two_feeds_one_wave(svc, tmp_path, desk)
    refused = MemoryPoster(refuse={NEWS: PostError("forbidden", "403 Missing Permissions")})
    assert sorted((await desk.deliver(refused)).disabled) == [sub_a, sub_b]
    poster = MemoryPoster()
    assert (await desk.deliver(poster)).sent == 0  # paused: the list is held
    desk.unsubscribe(sub_a)
    assert (await desk.deliver(poster)).sent == 0  # B is still paused
    resumed = desk.subscribe(channel_id=NEWS, source=str(tmp_path / "b.jsonl"))
    assert resumed.id == sub_b and resumed.resumed == 3 and resumed.resumed_listed == 3
    await desk.deliver(poster)
    await desk.deliver(poster)
    assert [m.kind for m in poster.in_channel(NEWS)] == ["digest"]
    assert set(_listed_titles(poster)) >= {t for t, _ in WAVE[4:7]}
    assert desk.queue()["pending"] == 0
    # Every brief unsubscribed: the list has nothing left to carry, and goes nowhere.
    desk.unsubscribe(sub_b)
    assert [r["status"] for r in _posts(svc)
            if r["item_key"].startswith("burst:")] == ["sent"]


async def test_a_list_whose_briefs_were_all_dropped_is_not_sent(svc: Services,
                                                                tmp_path: Path) -> None:
    desk = _desk(svc, topic_threshold=-1.0, burst=5)
    sub_a, sub_b = _two_feeds_one_wave(svc, tmp_path, desk)
    refused = MemoryPoster(refuse={NEWS: PostError("forbidden", "403 Missing Permissions")})
    await desk.deliver(refused)
    desk.unsubscribe(sub_a)
    desk.unsubscribe(sub_b)
    poster = MemoryPoster()
    assert (await desk.deliver(poster)).sent == 0 and poster.in_channel(NEWS) == []
    assert desk.queue()["pending"] == 0


async def test_a_crash_after_the_list_went_out_confirms_it_and_its_briefs_once(
        svc: Services, tmp_path: Path) -> None:
    desk = _desk(svc, topic_threshold=-1.0, burst=5)
    sub_a, sub_b = _two_feeds_one_wave(svc, tmp_path, desk)
    poster = MemoryPoster(crash_after_send=1)
    with pytest.raises(Crash):
        await desk.deliver(poster)
    poster.crash_after_send = None
    desk.unsubscribe(sub_a)  # after the crash, before the restart
    again = _desk(svc, topic_threshold=-1.0, burst=5)  # the restarted process
    assert (await again.deliver(poster)).reconciled == 1
    await again.deliver(poster)
    assert [m.kind for m in poster.in_channel(NEWS)] == ["digest"] and poster.sends == 1
    b_posts = [r for r in _posts(svc) if r["subscription_id"] == sub_b]
    assert [r["status"] for r in b_posts] == ["sent"] * 3


async def test_a_report_added_while_a_list_is_made_is_counted_not_overwritten(
        svc: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The planner adds a second report to a waiting brief between the delivery pass's read
    of the queue and its making of the list: the list counts it, and the brief keeps it."""
    desk = _desk(svc, topic_threshold=-1.0, burst=5)
    desk.subscribe(channel_id=NEWS, topic="local news", now=T0)
    records = [*_wave(0, 6, "gazette.example.org"), FERRY]
    desk.plan(_ingest(svc, _feed(tmp_path, "a", *records)))
    read = svc.state.pending_posts

    def then_a_report(*args: Any, **kw: Any) -> Any:
        rows = read(*args, **kw)
        monkeypatch.setattr(svc.state, "pending_posts", read)
        desk.plan(_ingest(svc, _feed(tmp_path, "b", FERRY_2)))  # the planner's thread
        return rows

    monkeypatch.setattr(svc.state, "pending_posts", then_a_report)
    poster = MemoryPoster()
    await desk.deliver(poster)
    (listed,) = poster.in_channel(NEWS)
    (ferry,) = [line for line in listed.lines or [] if line["title"] == FERRY["title"]]
    assert ferry["count"] == 2 and listed.lines[0] is ferry
    (brief,) = [json.loads(r["payload"]) for r in _posts(svc) if r["kind"] == "brief" and
                json.loads(r["payload"])["article_title"] == FERRY["title"]]
    assert [s["url"] for s in brief["also"]] == [FERRY_2["url"]]


def test_a_subscription_refused_by_its_channel_is_listed_as_paused() -> None:
    sub = Subscription(7, 42, None, None, "ferry strikes", (), None, "immediate", 9, "UTC",
                       datetime(2025, 5, 1, tzinfo=UTC), False, PAUSED_REASON, None)
    assert "paused, its briefs held: the bot may not post" in sub.describe()
    other = replace(sub, disabled_reason="removed by a moderator")
    assert "disabled: removed by a moderator" in other.describe()
