"""Reading time from questions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from retrieval.timeparse import parse_since, parse_time

NOW = datetime(2009, 3, 22, 12, tzinfo=UTC)


def d(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("question", "since", "until_before"),
    [
        ("what happened in March 2008?", d(2008, 3, 1), d(2008, 4, 5)),
        ("what happened with general motors in early june 2009?", d(2009, 6, 1), d(2009, 6, 15)),
        ("what happened in zimbabwe's runoff in late june 2008?", d(2008, 6, 20), d(2008, 7, 5)),
        ("oil prices in the second half of 2008", d(2008, 7, 1), d(2009, 1, 2)),
        ("what went on in pakistan between november and december 2007?", d(2007, 11, 1),
         d(2008, 1, 5)),
        ("which happened first in 2007: a or b?", d(2007, 1, 1), d(2008, 1, 5)),
    ],
)
def test_explicit_periods(question: str, since: datetime, until_before: datetime) -> None:
    tf = parse_time(question, NOW)
    assert tf.since == since
    assert tf.until is not None and since < tf.until <= until_before


def test_relative_periods_follow_now() -> None:
    tf = parse_time("any news this week?", NOW)
    assert tf.recency and tf.since == d(2009, 3, 15, 12) and tf.until and tf.until > NOW
    last = parse_time("what happened last month", NOW)
    assert last.since and last.until and last.since < last.until < NOW


def test_recency_and_ordering_words() -> None:
    assert parse_time("what's the latest out of north korea?", NOW).recency
    assert parse_time("who's leading the delegate count right now?", NOW).recency
    # "Now" on its own asks for the current state as much as "right now" does.
    now = parse_time("what's the unemployment rate now?", NOW)
    assert now.recency and now.recency_phrase == "now"
    assert not parse_time("what did the union announce?", NOW).recency
    assert parse_time("who quit the race first, a or b?", NOW).ordering
    assert not parse_time("did the House override the veto?", NOW).bounded


def test_bare_year_is_a_window_around_it() -> None:
    tf = parse_time("who won the 2022 World Cup final?", NOW)
    assert tf.since == d(2021, 1, 1) and tf.until == d(2024, 1, 1)


def test_since_option() -> None:
    assert parse_since("week", NOW) == d(2009, 3, 15, 12)
    assert parse_since("2024-05-01") == d(2024, 5, 1)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_since("next tuesday-ish")


def test_a_period_covers_its_days_and_ends_before_until() -> None:
    tf = parse_time("what happened in march 2026?", NOW)
    assert tf.covers(d(2026, 3, 1)) and tf.covers(d(2026, 3, 31, 12))
    assert tf.until is not None and not tf.covers(tf.until)
    assert not tf.covers(d(2026, 2, 28)) and not tf.covers(None)


def test_the_period_as_named_and_the_words_asking_for_the_newest() -> None:
    july = parse_time("what happened in july 2008?", NOW)
    assert july.until is not None and july.until > d(2008, 8, 1)  # reports of the month's end
    assert (july.named_since, july.named_until) == (d(2008, 7, 1), d(2008, 8, 1))
    year = parse_time("the 2008 olympics", NOW)  # a bare year: reported around it
    assert year.since == d(2007, 1, 1)
    assert (year.named_since, year.named_until) == (d(2008, 1, 1), d(2009, 1, 1))
    assert parse_time("what is new?", NOW).recency_phrase == "what is new"
    assert parse_time("what's the latest on the strike?", NOW).recency_phrase == "latest"
    assert parse_time("who won the strike vote?", NOW).recency_phrase == ""
