"""Rendering at Discord's limits: long answers, many sources, hostile model output."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from bot import render
from bot.cogs.briefs import message_embed
from bot.core.briefs import Brief
from bot.core.delivery import OutMessage
from bot.core.models import Answer, Source, redact_url
from tests.support.markdown import masked_links


def _source(n: int, *, title: str = "", url: str | None = None, day: int = 1) -> Source:
    return Source(
        n=n,
        article_id=f"a{n}",
        title=title or f"Article number {n}",
        outlet="The Daily",
        url=url if url is not None else f"https://news.example/{n}",
        published_at=datetime(2024, 3, day, tzinfo=UTC),
    )


def _answer(text: str, sources: list[Source] | None = None, **kw: object) -> Answer:
    kw.setdefault("question", "What happened?")
    return Answer(text=text, sources=sources or [_source(1)], abstained=False, mode="model", **kw)


def _sentences(n_chars: int) -> str:
    out, i = [], 0
    while sum(len(s) + 1 for s in out) < n_chars:
        out.append(f"Sentence {i} says something about the news of the day [1].")
        i += 1
    return " ".join(out)[: n_chars - 1].rstrip() + "."


def _fits(embeds: list) -> None:
    """Each embed is sent as its own message."""
    for e in embeds:
        assert render.limit_problems([e]) == []


def test_short_answer_one_embed_with_sources_and_footer() -> None:
    answer = _answer(
        "Netflix used generative AI for a building collapse scene [1].",
        [_source(1, day=2), _source(2, day=5)],
    )
    [embed] = render.answer_embeds(answer)
    assert embed.title == "What happened?"
    assert embed.description.startswith("Netflix used")
    [field] = embed.fields
    assert field.name == "Sources"
    assert (
        "**[1]** [Article number 1](<https://news.example/1>) · The Daily, 2 Mar 2024"
        in field.value
    )
    assert embed.footer.text == "Model answer · as of 5 Mar 2024"


def test_extractive_mode_note_and_history_notice_in_footer() -> None:
    answer = _answer("Quoted [1].", history_cut=True, note="The model timed out.")
    answer.mode = "extractive"
    footer = render.answer_embeds(answer, history_turns=8)[0].footer.text
    assert footer.startswith("Extractive answer")
    assert "The model timed out." in footer
    assert "Only the last 8 messages" in footer


def test_exactly_4096_chars_stays_one_message() -> None:
    text = _sentences(4096)
    text += "!" * (4096 - len(text))
    embeds = render.answer_embeds(_answer(text))
    assert len(embeds) == 1
    assert embeds[0].description == text
    _fits(embeds)


def test_5000_char_model_output_splits_between_sentences() -> None:
    text = _sentences(5000)
    embeds = render.answer_embeds(_answer(text, [_source(i) for i in range(1, 11)]))
    assert len(embeds) == 2
    _fits(embeds)
    first, last = embeds
    assert first.description.endswith(".")  # not cut mid-sentence
    assert re.match(r"Sentence \d+ ", last.description)
    assert " ".join(e.description for e in embeds) == text
    assert first.title and not last.title
    assert not first.fields and last.fields and last.footer.text  # sources go last


def test_ten_sources_with_long_titles_and_max_text_fit_6000() -> None:
    sources = [
        _source(i, title="T" * 300 + f" {i}", url="https://x.example/" + "p" * 350)
        for i in range(1, 11)
    ]
    embeds = render.answer_embeds(_answer(_sentences(4096), sources, question="Q" * 400))
    _fits(embeds)
    listed = "\n".join(f.value for f in embeds[-1].fields)
    assert all(f"**[{i}]**" in listed for i in range(1, 11))


def test_more_than_ten_sources_are_summarised() -> None:
    embeds = render.answer_embeds(_answer("x [1].", [_source(i) for i in range(1, 31)]))
    _fits(embeds)
    listed = "\n".join(f.value for f in embeds[-1].fields)
    assert "**[10]**" in listed and "**[11]**" not in listed and "and 20 more" in listed


def test_huge_model_output_never_breaks_limits() -> None:
    for text in ("word " * 6000, "x" * 20000, "```\n" + "code line\n" * 2000):
        _fits(render.answer_embeds(_answer(text, [_source(i) for i in range(1, 11)])))


def test_unbalanced_fence_is_closed() -> None:
    [embed] = render.answer_embeds(_answer("Look:\n```python\nprint('hi')"))
    assert embed.description.count("```") % 2 == 0


def test_fence_open_at_split_is_closed_and_reopened() -> None:
    text = "Intro.\n```python\n" + "\n".join(f"x = {i}  # line" for i in range(600)) + "\n```\nEnd."
    embeds = render.answer_embeds(_answer(text))
    assert len(embeds) >= 2
    _fits(embeds)
    for e in embeds:
        assert e.description.count("```") % 2 == 0
    assert embeds[1].description.startswith("```python\n")


def test_masked_links_in_model_output_show_their_target() -> None:
    text = "See [the official report](https://evil.example/phish) and [1](https://news.example/1)."
    desc = render.answer_embeds(_answer(text))[0].description
    assert "](" not in desc
    assert "the official report (<https://evil.example/phish>)" in desc
    assert "[1] (<https://news.example/1>)" in desc


def test_bare_links_are_wrapped_so_they_do_not_unfurl() -> None:
    out = render.clean_text("Read https://news.example/a?b=1, or <https://news.example/c>.")
    assert out == "Read <https://news.example/a?b=1>, or <https://news.example/c>."


def test_source_title_with_markdown_and_brackets_cannot_break_the_link() -> None:
    line = render.source_line(
        _source(3, title="A [bad](https://evil.example) *title*", url="https://news.example/a b)")
    )
    assert "[A (bad)(https://evil.example) \\*title\\*](<https://news.example/a%20b%29>)" in line


def test_non_http_or_missing_url_is_not_linked() -> None:
    assert "](" not in render.source_line(_source(1, url="javascript:alert(1)"))
    assert "](" not in render.source_line(_source(1, url=""))


def test_abstained_answer_names_closest_articles() -> None:
    answer = Answer(
        text="I could not find this in the articles.",
        sources=[],
        abstained=True,
        mode="extractive",
        question="Who won?",
        closest=[_source(4)],
    )
    [embed] = render.answer_embeds(answer)
    assert embed.fields[0].name == "Closest articles"
    assert "**[4]**" in embed.fields[0].value
    assert embed.colour == render.ABSTAIN_COLOUR


def test_progress_embed_shows_cursor_and_tail_of_long_text() -> None:
    embed = render.progress_embed("a" * 10000, question="Q?")
    assert embed.description.endswith(render.PROGRESS_CURSOR)
    assert len(embed.description) <= render.DESCRIPTION_LIMIT
    assert render.embed_text(embed) == embed.description[: -len(render.PROGRESS_CURSOR)]
    assert "Writing" in embed.footer.text


@pytest.mark.parametrize("limit", [40, 100, 1000])
def test_split_text_respects_limit_and_keeps_all_words(limit: int) -> None:
    text = _sentences(5000)
    parts = render.split_text(text, limit)
    assert all(len(p) <= limit for p in parts)
    assert " ".join(parts).split() == text.split()


def test_sources_embed_many_outlets_fits() -> None:
    summaries = [
        SimpleNamespace(
            outlet=f"Outlet {i}",
            articles=i,
            newest=datetime(2024, 1, 1, tzinfo=UTC) if i else None,
        )
        for i in range(200)
    ]
    embed = render.sources_embed(summaries)
    _fits([embed])
    assert "more" in embed.description
    assert "200 outlets" in embed.footer.text
    assert "newest undated" in embed.description


def test_sources_embed_empty() -> None:
    assert "No articles yet" in render.sources_embed([]).description


def test_feeds_embed_shows_health_and_fits() -> None:
    sources = [{"id": i, "name": f"Feed {i}" if i % 2 else None, "kind": "feed",
                "spec": f"https://feeds.example/{i}.xml", "status": "ok" if i else "disabled",
                "failures": 0 if i else 8, "articles": i, "last_error": None if i else
                "disabled after 8 failed polls in a row; last: HTTP 404",
                "next_poll": "2026-01-01T10:00:00+00:00" if i else None}
               for i in range(120)]
    embed = render.feeds_embed(sources)
    _fits([embed])
    assert "HTTP 404" in embed.description and "not polled" in embed.description
    assert "<https://feeds.example/1.xml>" in embed.description
    assert "more" in embed.description


SECRET_FEED = "https://reader:hunter2@feeds.example/paid.xml?api_key=s3cret&lang=en&token=t0k"


def test_a_sources_keys_and_password_are_never_shown() -> None:
    unnamed = {"id": 1, "name": None, "kind": "feed", "spec": SECRET_FEED, "status": "failing",
               "failures": 2, "articles": 0, "last_error": "HTTP 500", "next_poll": None}
    shown = [render.feeds_embed([unnamed]).description or ""]
    shown += [f.name for f in render.status_embed({"sources": [unnamed]}).fields]
    assert all("s3cret" not in x and "t0k" not in x and "hunter2" not in x for x in shown)
    assert "<https://REDACTED@feeds.example/paid.xml?api_key=REDACTED&lang=en&token=REDACTED>" \
        in shown[0]
    assert redact_url(SECRET_FEED) == (
        "https://REDACTED@feeds.example/paid.xml?api_key=REDACTED&lang=en&token=REDACTED")
    # Nothing to hide: shown as it is; a file's path is no URL.
    for spec in ("https://feeds.example/news.xml?keyword=ferry&author=ana#top",
                 "/srv/news/key=abc.jsonl"):
        assert redact_url(spec) == spec


def test_status_embed() -> None:
    embed = render.status_embed(
        {
            "articles": 12,
            "chunks": 40,
            "embedding_model": "minilm",
            "store": "local",
            "model": None,
            "last_ingest": "2024-03-05T10:00:00+00:00",
        }
    )
    values = {f.name: f.value for f in embed.fields}
    assert values["Articles"] == "12" and values["Chunks"] == "40"
    assert values["Answer model"] == "none (extractive answers)"
    assert values["Last ingest"].startswith("<t:")


def test_feedback_stats_embed_within_25_fields_and_values() -> None:
    stats = SimpleNamespace(
        up=3,
        down=2,
        answers=7,
        unanswered=[("q" * 900 + f" {i}", i) for i in range(100)],
        most_downvoted=[("question " * 50, "answer " * 300, 9) for _ in range(100)],
    )
    embed = render.feedback_stats_embed(stats)
    _fits([embed])
    assert embed.fields[0].value == "👍 3 · 👎 2 · 7 answers"
    assert len(embed.fields) <= render.FIELD_COUNT_LIMIT


def test_limit_problems_reports_each_broken_limit() -> None:
    import discord

    embed = discord.Embed(title="t" * 300, description="d" * 5000)
    for _ in range(26):
        embed.add_field(name="n", value="v" * 1100)
    wheres = {p.where for p in render.limit_problems([embed], content="c" * 2001)}
    assert {
        "content",
        "total",
        "embed 0 title",
        "embed 0 description",
        "embed 0 fields",
        "embed 0 field 0 value",
    } <= wheres


def test_status_embed_shows_failing_sources_to_moderators_only() -> None:
    status = {"articles": 3, "chunks": 9, "sources": [
        {"name": None, "spec": "/srv/private/feeds/city.xml", "status": "disabled",
         "last_error": "HTTP 404 from https://intranet.example/feed"},
        {"name": "harbour", "spec": "https://harbour.example/rss", "status": "ok",
         "last_error": None}]}
    for_members = render.status_embed(status, detailed=False)
    text = " ".join(f"{f.name} {f.value}" for f in for_members.fields)
    assert "1 failing or disabled" in text
    assert "/srv/private" not in text and "intranet" not in text
    for_mods = render.status_embed(status, detailed=True)
    text = " ".join(f"{f.name} {f.value}" for f in for_mods.fields)
    assert "/srv/private/feeds/city.xml" in text and "HTTP 404" in text


def test_a_time_of_day_is_shown_in_each_readers_zone() -> None:
    # 23:30 UTC is the next day in Tokyo: Discord's timestamp shows each reader their date.
    late = datetime(2024, 3, 2, 23, 30, tzinfo=UTC)
    timed = Source(n=1, article_id="a1", title="Ferry back", outlet="The Daily",
                   url="https://news.example/1", published_at=late)
    assert render.source_line(timed).endswith(f"· The Daily, <t:{int(late.timestamp())}:D>")
    # A date alone is that date everywhere.
    assert render.source_line(_source(2, day=2)).endswith("· The Daily, 2 Mar 2024")
    brief = Brief(headline="Ferry back", synopsis="The ferry is back.", points=[],
                  url="https://news.example/1", published_at=late, outlet="The Daily",
                  article_id="a1")
    embed = render.brief_embed(brief)
    assert embed.timestamp == late and embed.footer.text == "The Daily"
    dated = render.brief_embed(replace(brief, published_at=datetime(2024, 3, 2, tzinfo=UTC)))
    assert dated.timestamp is None and dated.footer.text == "The Daily · 2 Mar 2024"


# Forms Discord renders as a link with its target hidden behind the label.
HOSTILE_LINKS = [
    "[Sign in again](https://evil.example/login)",
    "[Read [the full] report](https://evil.example/r)",
    "[Wiki](https://evil.example/Bridge_(1932))",
    "[Report](https://evil.example/r 'official')",
    "[Two\nlines](https://evil.example/two)",
    "[" + "long label " * 30 + "](https://evil.example/long)",
]


@pytest.mark.parametrize("hostile", HOSTILE_LINKS)
def test_no_form_of_masked_link_survives_in_what_a_feed_or_model_writes(hostile: str) -> None:
    assert masked_links(hostile)  # the oracle sees the link in the raw text
    outlet = f"Harbour Herald {hostile}"
    answer = render.answer_embeds(_answer(f"The bridge reopened [1]. {hostile} [1].",
                                          [replace(_source(1), outlet=outlet)]))[0]
    shown = [answer.description, *(f.value for f in answer.fields)]
    shown.append(render.sources_embed([SimpleNamespace(outlet=outlet, articles=2,
                                                       newest=None)]).description)
    failing = {"id": 3, "name": outlet, "spec": "https://feed.example/rss", "kind": "feed",
               "status": "disabled", "failures": 5, "articles": 0, "next_poll": None,
               "last_error": f"not a feed: {hostile}"}
    shown.append(render.feeds_embed([failing]).description)
    status = render.status_embed({"sources": [failing]}, detailed=True)
    shown += [f.value for f in status.fields]
    stats = SimpleNamespace(up=0, down=1, answers=1, unanswered=[(hostile, 2)],
                            most_downvoted=[(hostile, hostile, 1)])
    shown += [f.value for f in render.feedback_stats_embed(stats).fields]
    brief = Brief(article_id="a1", headline="Bridge", synopsis=hostile, points=[hostile],
                  url="https://news.example/1", published_at=None, outlet=outlet)
    shown.append(render.brief_embed(brief).description)
    digest = OutMessage(kind="digest", title="Top stories", lines=[
        {"title": "Bridge", "url": "https://news.example/1", "outlet": outlet, "count": 2}])
    shown.append(message_embed(digest).description)
    for text in shown:  # the sources' own links to their articles are the bot's
        assert [t for _, t in masked_links(text or "") if "evil" in t] == [], text
    # The target is spelled out, not lost.
    assert "evil.example" in answer.description


def test_counts_of_one_read_in_the_singular() -> None:
    one = {"id": 3, "name": "coast", "spec": "https://news.example.org/rss", "kind": "feed",
           "status": "ok", "failures": 1, "articles": 1, "next_poll": None,
           "last_error": None}
    feeds = render.feeds_embed([one])
    assert "1 article " in str(feeds.description) and "1 articles" not in str(feeds.description)
    assert "1 failure" in str(feeds.description) and "1 failures" not in str(feeds.description)
    assert feeds.footer.text == "1 source"
    summary = SimpleNamespace(outlet="Coast News", articles=1, newest=None)
    assert render.sources_embed([summary]).footer.text == "1 outlet · 1 article"
    stats = SimpleNamespace(up=1, down=0, answers=1, unanswered=[], most_downvoted=[])
    assert render.feedback_stats_embed(stats).fields[0].value == "👍 1 · 👎 0 · 1 answer"
