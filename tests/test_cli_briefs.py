"""``newsbot brief preview``: by article id, by URL (ingested first when new), and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from tests.support.feeds import numbered_items, rss
from tests.support.http import StaticServer
from tests.test_cli import cli_env  # noqa: F401  (the fixture)

PARAGRAPHS = [
    "The Marlow county council voted on Tuesday to turn the disused tram depot into a "
    "workshop space for 40 small firms.",
    "The conversion will cost 3.2 million pounds and is due to finish in October 2026, "
    "councillor Oskar Brandt told the meeting.",
    "Neighbours had asked for the depot's clock tower to be kept, and the plan keeps it.",
    "The depot closed in 1998 when the last tram line was replaced by buses, and it has stood "
    "empty since then apart from a market held there each summer.",
]


def _page() -> str:
    body = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            "<title>Tram depot to house workshops | Marlow Courier</title>"
            "<meta property='og:site_name' content='Marlow Courier'>"
            "<meta property='article:published_time' content='2025-05-06T09:00:00Z'></head>"
            f"<body><article><h1>Tram depot to house workshops</h1>{body}</article></body></html>")


@pytest.mark.usefixtures("allow_private_urls")
def test_preview_by_url_ingests_then_by_id(cli_env: Path,  # noqa: F811
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with StaticServer() as server:
        url = server.add("/depot", _page().encode())
        assert main(["brief", "preview", url, "--json"]) == 0
        first = json.loads(capsys.readouterr().out)
        assert set(first) == {"headline", "synopsis", "points", "url", "published_at",
                              "outlet", "article_id"}
        assert first["headline"] == "Tram depot to house workshops"
        assert first["synopsis"].startswith("The Marlow county council voted on Tuesday")
        assert first["outlet"] == "Marlow Courier"
        assert any("1998" in p for p in first["points"])
        fetched = len(server.requests)
        # Now it is in the registry: by URL or by id, nothing is fetched again.
        assert main(["brief", "preview", url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == first
        assert main(["brief", "preview", first["article_id"]]) == 0
        out = capsys.readouterr().out
        assert "Tram depot to house workshops" in out and "extractive" in out
        assert len(server.requests) == fetched
    # Wrapped to the terminal, a key point's lines hang under its text, none ending in a space.
    lines = out.splitlines()
    points = lines[next(i for i, line in enumerate(lines) if line.startswith("  • ")):
                   next(i for i, line in enumerate(lines) if line.startswith("http"))]
    assert all(line.startswith(("  • ", "    ")) for line in points if line), points
    assert any(line.startswith("    ") for line in points), points  # a point was wrapped
    assert not [line for line in lines if line.endswith(" ")], lines


def test_preview_of_unknown_article_is_a_short_error(cli_env: Path,  # noqa: F811
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["brief", "preview", "a0000000000000000"]) == 1
    assert "no article with id 'a0000000000000000'" in capsys.readouterr().err
    with StaticServer() as server:
        assert main(["brief", "preview", server.url("/missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not read an article at") and err.count("\n") == 1


def test_post_and_subscriptions_from_the_command_line(cli_env: Path,  # noqa: F811
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    record = {"title": "Ferry timetable changes for winter", "body": PARAGRAPHS[0] + " "
              + PARAGRAPHS[1], "url": "https://courier.example.org/ferry-winter",
              "published_at": "2025-10-01", "outlet": "Marlow Courier"}
    feed = cli_env / "courier.jsonl"
    feed.write_text(json.dumps(record) + "\n")
    assert main(["ingest", str(feed)]) == 0
    capsys.readouterr()
    assert main(["brief", "post", record["url"], "--channel", "4242", "--headline",
                 "Winter ferry timetable"]) == 0
    assert capsys.readouterr().out.startswith("queued for channel 4242: Winter ferry timetable")
    assert main(["brief", "post", record["url"], "--channel", "4242"]) == 0
    assert "already posted in channel 4242 (pending)" in capsys.readouterr().out
    assert main(["brief", "post", record["url"]]) == 2
    assert "--channel" in capsys.readouterr().err

    # A file read once brings no new articles: following it would post nothing, ever.
    assert main(["subscriptions", "add", "--channel", "4242", "--source", str(feed)]) == 1
    assert "is not followed" in capsys.readouterr().err
    assert main(["subscriptions", "add", "--channel", "4242", "--topic", "ferry news",
                 "--keywords", "ferry,timetable", "--daily-cap", "3", "--json"]) == 0
    sub = json.loads(capsys.readouterr().out)
    assert sub["keywords"] == ["ferry", "timetable"] and sub["daily_cap"] == 3
    assert main(["subscriptions", "add", "--channel", "4242", "--topic", "ferries",
                 "--mode", "digest", "--digest-hour", "7", "--tz", "Europe/Dublin"]) == 0
    assert "follows topic \"ferries\" (digest)" in capsys.readouterr().out
    assert main(["subscriptions", "add", "--channel", "4242", "--topic", "x", "--tz",
                 "Nowhere/City"]) == 1
    assert "unknown time zone" in capsys.readouterr().err
    assert main(["subscriptions", "list"]) == 0
    out = capsys.readouterr().out
    assert "keywords: ferry, timetable; at most 3 a day" in out
    assert "daily digest at 07:00 Europe/Dublin" in out
    assert main(["subscriptions", "remove", str(sub["id"])]) == 0
    assert main(["subscriptions", "remove", str(sub["id"])]) == 1
    assert "no subscription" in capsys.readouterr().err


@pytest.mark.usefixtures("allow_private_urls")
def test_a_feed_url_is_refused_and_nothing_is_taken_in(cli_env: Path,  # noqa: F811
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Taking in a whole feed is following a source, an admin's action: a brief's URL must be
    an article page."""
    assert main(["status", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    with StaticServer() as server:
        url = server.add("/rss", rss(numbered_items(0, 3, long_text=True)),
                         content_type="application/rss+xml")
        assert main(["brief", "preview", url]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {url} is a feed, not an article page") and \
            err.count("\n") == 1
        assert "`/feeds add`" in err and "`newsbot sources add`" in err
        assert len(server.requests) == 1  # read once; none of its items fetched
    assert main(["status", "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert (after["articles"], after["sources"]) == (before["articles"], before["sources"])


@pytest.mark.usefixtures("allow_private_urls")
def test_subscriptions_list_names_the_source_and_the_channel(
        cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    # A moderator may not see the admins' source list: "source #2" alone names nothing, and
    # a terminal shows Discord's channel markup as it is.
    with StaticServer() as server:
        url = server.add("/rss", rss(numbered_items(0, 2, long_text=True)),
                         content_type="application/rss+xml")
        assert main(["sources", "add", url, "--name", "coast"]) == 0
        assert main(["subscriptions", "add", "--channel", "4242", "--source", "coast"]) == 0
    capsys.readouterr()
    assert main(["subscriptions", "list"]) == 0
    out = capsys.readouterr().out
    assert 'channel 4242 follows source #1 "coast"' in out and "<#" not in out
    assert main(["subscriptions", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["subscriptions"]
    assert listed[0]["describe"] == '#1 <#4242> follows source #1 "coast"'


@pytest.mark.usefixtures("allow_private_urls")
def test_a_source_name_is_one_line_of_at_most_80_characters(
        cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    """As /feeds add's name option allows: the command line took a name of any length, with
    line breaks that split `newsbot sources` listings; a feed's own title, its default name,
    is held to the same."""
    with StaticServer() as server:
        url = server.add("/rss", rss(numbered_items(0, 1), title="Coast\nNews " + "x" * 200),
                         content_type="application/rss+xml")
        assert main(["sources", "add", url, "--name", "n" * 81]) == 1
        err = capsys.readouterr().err
        assert err == "error: a source name is 1 to 80 characters\n"
        assert server.requests == []  # refused before anything was fetched
        assert main(["sources", "add", url]) == 0
        capsys.readouterr()
        assert main(["sources", "--json"]) == 0
        (listed,) = json.loads(capsys.readouterr().out)
        assert listed["name"].startswith("Coast News xxx") and len(listed["name"]) <= 80
        assert main(["sources", "add", url, "--name", " coast \n  news "]) == 0
        capsys.readouterr()
        assert main(["sources", "--json"]) == 0
        (listed,) = json.loads(capsys.readouterr().out)
        assert listed["name"] == "coast news"
