"""Reading time from questions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from retrieval.timeparse import Span, parse_since, parse_time, spoken

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
    for ordered in ("put these in order: the fine, the warning", "which came first, the "
                    "strike or the sale?", "give me a timeline of the ferry dispute"):
        assert parse_time(ordered, NOW).ordering, ordered
    # A word of order inside a question about one event asks no timeline: the answer was
    # sorted by date, and "who was elected pope before leo?" led with an older report.
    for one in ("who was elected pope before leo?", "who became mayor after she quit?",
                "what did the first report say?", "what happened after the fire?"):
        assert not parse_time(one, NOW).ordering, one
    # Nor do a purpose and a thing named "order".
    for one in ("what did the studio do in order to cut costs?",
                "what did the executive order say?", "when did the court order a recount?"):
        assert not parse_time(one, NOW).ordering, one
    for ordered in ("in what order did the strikes happen?", "what was the order of events?",
                    "list them in chronological order", "order them by date"):
        assert parse_time(ordered, NOW).ordering, ordered
    assert not parse_time("did the House override the veto?", NOW).bounded


def test_bare_year_is_a_window_around_it() -> None:
    tf = parse_time("who won the 2022 World Cup final?", NOW)
    assert tf.since == d(2021, 1, 1) and tf.until == d(2024, 1, 1)


def test_since_option() -> None:
    assert parse_since("week", NOW) == d(2009, 3, 15, 12)
    assert parse_since("2024-05-01") == d(2024, 5, 1)
    # As a question says it: "yesterday" is the day before this one began.
    assert parse_since("yesterday", NOW) == d(2009, 3, 21)
    assert parse_since("Today", NOW) == d(2009, 3, 22)
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


def test_today_and_this_year_begin_at_midnight_where_now_is() -> None:
    new_york = ZoneInfo("America/New_York")
    now = datetime(2026, 11, 30, 0, 30, tzinfo=UTC).astimezone(new_york)  # 29 Nov, 19:30
    assert parse_time("any news today?", now).since == datetime(2026, 11, 29, tzinfo=new_york)
    assert parse_time("what happened this year?", now).since == datetime(2026, 1, 1,
                                                                         tzinfo=new_york)
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=new_york)


def test_a_span_reads_a_day_where_the_question_is_asked() -> None:
    york = ZoneInfo("America/New_York")
    day = Span.of(datetime(2025, 3, 5, tzinfo=york), datetime(2025, 3, 6, tzinfo=york), york)
    dated = {d: int(datetime(2025, 3, d, tzinfo=UTC).timestamp()) for d in (4, 5, 6)}
    assert [day.contains(dated[d]) for d in (4, 5, 6)] == [False, True, False]
    # A time of day is read as it is: 02:00 UTC on the 6th is still the 5th in New York.
    late = int(datetime(2025, 3, 6, 2, tzinfo=UTC).timestamp())
    assert day.contains(late) and not day.contains(-1)
    ts = np.array([*dated.values(), late, -1])
    assert day.mask(ts).tolist() == [day.contains(int(t)) for t in ts]
    assert Span().contains(-1) and Span().mask(ts).all()
    # A span ending in the morning holds the day begun: "now" at 08:00 still has today.
    morning = Span.of(None, datetime(2025, 3, 5, 8, tzinfo=york), york)
    assert morning.contains(dated[5]) and not morning.contains(dated[6])


def test_today_and_a_since_date_begin_at_midnight_where_asked() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    now = datetime(2025, 5, 8, 23, tzinfo=UTC).astimezone(tokyo)  # 08:00 on 9 May there
    assert parse_time("any news today?", now).since == datetime(2025, 5, 9, tzinfo=tokyo)
    assert parse_time("what happened in may 2025?", now).since == datetime(2025, 5, 1,
                                                                             tzinfo=tokyo)
    assert parse_since("today", now) == datetime(2025, 5, 9, tzinfo=tokyo)
    assert parse_since("day", now) == now - timedelta(days=1)


@pytest.mark.parametrize(("question", "day"), [
    ("what happened on the 8th of may 2025?", date(2025, 5, 8)),
    ("news from 8 may 2025", date(2025, 5, 8)),
    ("what happened june 8, 2024", date(2024, 6, 8)),
    ("anything on may 8?", date(2025, 5, 8)),
    ("what happened on march 3rd", date(2025, 3, 3)),
    ("what happened on december 25", date(2024, 12, 25)),  # the last one before now
    ("what happened on the 4th of july", date(2025, 7, 4)),
])
def test_a_named_day(question: str, day: date) -> None:
    now = datetime(2025, 7, 20, 10, tzinfo=UTC)
    tf = parse_time(question, now)
    start = datetime.combine(day, datetime.min.time(), UTC)
    # Searched with the days it is reported in; listed with the next morning's reports.
    assert (tf.since, tf.named_since, tf.named_until) == (
        start, start, start + timedelta(days=2))
    assert tf.until and tf.until > start + timedelta(days=1)


@pytest.mark.parametrize("question", [
    "how many may 2 companies hire?", "what happened in may 2025", "february 30 2024 news",
    # A number by a month names something else, or ends a range the other readings take.
    "what did the jan 6 committee conclude?", "oct 7 hostages latest", "the 2 may candidates",
    "what happened after june 3?", "what has happened since march 3rd?",
    "between may 1 and may 4 2025", "from may 1 to may 5 2025", "the meeting at 10:30 dec 5",
    "covid-19 march 2020 lockdown rules",
])
def test_not_a_named_day(question: str) -> None:
    tf = parse_time(question, datetime(2025, 7, 20, 10, tzinfo=UTC))
    assert tf.named_until is None or tf.named_until - tf.named_since > timedelta(days=2)


def test_a_period_is_said_back_with_its_names_capitalised() -> None:
    assert spoken("february 2030") == "February 2030"
    assert spoken("january 2009, march 2009") == "January 2009, March 2009"
    assert spoken("on may 8") == "on May 8" and spoken("yesterday") == "yesterday"
