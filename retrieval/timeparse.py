"""Read the time a question is about: explicit ranges become filters, "latest" becomes recency.

Only phrases with a clear meaning are read ("in March 2008", "early june 2009", "last month",
"this week", "the second half of 2008", "between november and december 2007"); anything
else leaves the search unfiltered rather than guessing.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
_MONTH_NAMES = (r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
                r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?")
_MONTH = rf"({_MONTH_NAMES})\.?"
_YEAR = r"((?:19|20)\d\d)"

# A day: "8 may 2025", "the 8th of may", "may 8th", "on june 8", "june 8, 2024".
_ORDINAL = r"(\d{1,2})(st|nd|rd|th)?"
_DAY_FIRST = re.compile(rf"(?<![\w:./-])(?:(on|the) )?{_ORDINAL}( of)? {_MONTH}(?:,? {_YEAR})?\b")
_MONTH_FIRST = re.compile(rf"\b(?:(on) )?{_MONTH} {_ORDINAL}\b(?![:.]\d)(?:,? {_YEAR}\b)?")
# A day after these words is one end of a range or a limit ("since march 3rd", "between may
# 1 and may 4"), which the other readings handle, not a day to search.
_NOT_A_DAY_AFTER = re.compile(r"\b(?:after|before|until|till|by|since|between|and|to)\s*$")
_FROM_TO = re.compile(r"\bfrom\b.*\b(?:to|until|till)\b")

_RECENCY = re.compile(
    r"\b(latest|newest|most recent|recent(?:ly)?|lately|(?:right )?now|currently|current|"
    r"these days|so far|any (?:news|update|updates|word)|what(?:'?s| is) new|anything new|"
    r"update on|still)\b",
    re.I,
)
# Asks for events in time order: "put these in order", "which came first, X or Y?", "who
# quit first, Thompson or Giuliani?". Not "the first pope", "who led after Gonzales quit?":
# a word of order alone asks about one event; nor do "in order to" (a purpose) and "the
# executive order" (a thing).
_ORDER = re.compile(
    r"\bin\s+(?:\w+\s+)?order\b(?!\s+to\b)|\b(?:what|which|chronological|time)\s+order\b"
    r"|\border\s+(?:of|they|them|these|those)\b|\b(?:how long between|timeline|sequence)\b"
    r"|\b(?:first|before|after|earlier|later)\b.*\bor\b|\bor\b.*\b(?:first|earlier|later)\b",
    re.I,
)

# News about an event is published on the day or soon after; a range ending on the last day
# of a period would miss the next morning's report.
_SLACK = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class TimeFilter:
    """What a question says about time."""

    since: datetime | None = None
    until: datetime | None = None
    recency: bool = False  # prefer the newest relevant articles
    ordering: bool = False  # the question asks which came first / in what order
    phrase: str = ""  # the words that set since/until
    # The words that asked for the newest ("what's new", "the latest"): when, not what.
    recency_phrase: str = ""
    # The period as named, without the days allowed for reporting it (``until`` has them)
    # nor a bare year's neighbours: what a list of the period's news keeps to.
    named_since: datetime | None = None
    named_until: datetime | None = None

    # Where the question was asked: its days begin at this zone's midnight.
    zone: tzinfo = UTC

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None

    def covers(self, when: datetime | None) -> bool:
        """``when`` falls in the period (which ends before ``until``, as the search's date
        filters have it; an article dated by day alone as :class:`Span` reads it); an
        undated moment falls in none."""
        return when is not None and Span.of(self.since, self.until, self.zone).contains(
            int(when.timestamp()))


def zone_named(name: str) -> tzinfo | None:
    """The IANA time zone ``name`` ("Europe/Paris"), or None when there is none by that name
    (a folder of zones such as "America" included)."""
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder
        return None


_DAY = 86_400


def by_day(ts: int) -> bool:
    """An article time of exactly 00:00 UTC is read as a date without a time of day: pages
    and files that give only a date are stored so, while feeds give times."""
    return ts >= 0 and ts % _DAY == 0


def local_date(when: datetime, zone: tzinfo) -> date:
    """``when``'s date where the reader is (23:30 UTC is the next day in Tokyo); an article
    dated by day alone keeps its date, the same everywhere."""
    at = UTC if by_day(int(when.timestamp())) else zone
    return when.astimezone(at).date()


def _day_of(moment: datetime, zone: tzinfo, *, end: bool) -> int:
    """00:00 UTC of ``moment``'s date in ``zone`` or, as the ``end`` of a span, of the first
    date not begun by then: the dates a span overlaps are [start's, end's)."""
    local = moment.astimezone(zone)
    day = local.date() + timedelta(days=1 if end and local.time() > time() else 0)
    return int(datetime.combine(day, time(), UTC).timestamp())


def _ts(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


@dataclass(frozen=True, slots=True)
class Span:
    """A period as the search filters articles by it (timestamps; None: open).

    An article with a time of day is inside when that time is in [lo, hi). One dated by day
    alone (stored at 00:00 UTC of its date, see :func:`by_day`) is inside when its date, as
    a day where the question was asked, overlaps [lo, hi): "today" in New York holds the
    reports dated today, though 00:00 UTC of that date is the evening before there, and a
    span ending now holds today's. [day_lo, day_hi) are those dates' 00:00 UTC timestamps.
    Undated articles are in no bounded span.
    """

    lo: int | None = None
    hi: int | None = None
    day_lo: int | None = None
    day_hi: int | None = None

    @classmethod
    def of(cls, lo: datetime | None, hi: datetime | None, zone: tzinfo = UTC) -> Span:
        return cls(_ts(lo), _ts(hi), None if lo is None else _day_of(lo, zone, end=False),
                   None if hi is None else _day_of(hi, zone, end=True))

    @property
    def bounded(self) -> bool:
        return self.lo is not None or self.hi is not None

    @property
    def outer(self) -> tuple[int | None, int | None]:
        """The smallest [lo, hi) holding every article inside."""
        lo = None if self.lo is None or self.day_lo is None else min(self.lo, self.day_lo)
        hi = None if self.hi is None or self.day_hi is None else max(self.hi, self.day_hi)
        return lo, hi

    def contains(self, ts: int | None) -> bool:
        if not self.bounded:
            return True
        if ts is None or ts < 0:
            return False
        lo, hi = (self.day_lo, self.day_hi) if by_day(ts) else (self.lo, self.hi)
        return (lo is None or ts >= lo) and (hi is None or ts < hi)

    def mask(self, ts: np.ndarray) -> np.ndarray:
        """:meth:`contains` for each timestamp of ``ts`` (undated: negative)."""
        if not self.bounded:
            return np.ones(len(ts), dtype=bool)
        day = (ts >= 0) & (ts % _DAY == 0)
        timed = ts >= 0
        dated = day.copy()
        if self.lo is not None:
            timed &= ts >= self.lo
            dated &= ts >= self.day_lo  # type: ignore[operator]
        if self.hi is not None:
            timed &= ts < self.hi
            dated &= ts < self.day_hi  # type: ignore[operator]
        return np.where(day, dated, timed)

    def where(self) -> dict[str, Any] | None:
        """The span as a store metadata filter on ``published_ts``.

        A filter cannot test for midnight, but the dates read by day differ from the plain
        range only at its ends (a day at most): those dates are listed, left out of the
        range or added to it."""
        if not self.bounded:
            return None
        clauses: list[dict[str, Any]] = [{"published_ts": {"$gte": max(self.lo or 0, 0)}}]
        if self.hi is not None:
            clauses.append({"published_ts": {"$lt": self.hi}})
        plain = (clauses[0] if len(clauses) == 1 else {"$and": clauses})
        mids = set()
        for a, b in ((self.lo, self.day_lo), (self.hi, self.day_hi)):
            if a is not None and b is not None:
                first = -(-min(a, b) // _DAY) * _DAY
                mids.update(range(first, max(a, b) + _DAY, _DAY))
        drop = sorted(m for m in mids if not self.contains(m) and _in(m, self.lo, self.hi))
        add = sorted(m for m in mids if self.contains(m) and not _in(m, self.lo, self.hi))
        if drop:
            plain = {"$and": [plain, {"published_ts": {"$nin": drop}}]}
        if add:
            return {"$or": [plain, {"published_ts": {"$in": add}}]}
        return plain


def _in(ts: int, lo: int | None, hi: int | None) -> bool:
    return ts >= 0 and (lo is None or ts >= lo) and (hi is None or ts < hi)


def _month(name: str) -> int:
    return MONTHS[name.lower().rstrip(".")[:3] if name.lower()[:4] != "sept" else "sept"]


def parse_time(question: str, now: datetime | None = None) -> TimeFilter:
    """The time filter a question implies, relative to ``now`` (default: the current time)."""
    now = now or datetime.now(UTC)
    zone = now.tzinfo or UTC
    q = question.lower()

    def at(year: int, month: int = 1, day: int = 1) -> datetime:
        # Named days, months and years begin at midnight where the question is asked.
        return datetime(year, month, day, tzinfo=zone)

    def month_end(year: int, month: int) -> datetime:
        return at(year, month, calendar.monthrange(year, month)[1]) + timedelta(days=1)
    recency_phrase = " ".join(m.group(0) for m in _RECENCY.finditer(q))
    recency = bool(recency_phrase)
    ordering = bool(_ORDER.search(q))
    since = until = named_since = named_until = None
    phrase = ""

    def found(s: datetime, u: datetime, text: str, *, slack: bool = False,
              named: tuple[datetime, datetime] | None = None) -> None:
        nonlocal since, until, phrase, named_since, named_until
        since, until, phrase = s, u + _SLACK if slack else u, text
        named_since, named_until = named or (s, u)

    m = re.search(rf"between {_MONTH}(?: {_YEAR})? and {_MONTH},? {_YEAR}", q)
    if m:
        y2 = int(m.group(4))
        y1 = int(m.group(2) or y2)
        found(at(y1, _month(m.group(1))), month_end(y2, _month(m.group(3))), m.group(0),
              slack=True)
    elif day := _named_day(q, now):
        # A day's news is mostly reported that day and the next.
        start, text = day
        found(start, start + timedelta(days=1), text, slack=True,
              named=(start, start + timedelta(days=2)))
    elif m := re.search(rf"\b(first|second) half of {_YEAR}", q):
        y = int(m.group(2))
        found(*((at(y), at(y, 7)) if m.group(1) == "first" else (at(y, 7), at(y + 1))),
              m.group(0))
    elif m := re.search(rf"\b(early|mid|middle of|late|end of|start of|beginning of)[ -]"
                        rf"{_MONTH},? {_YEAR}", q):
        y, mo = int(m.group(3)), _month(m.group(2))
        end = month_end(y, mo)
        part = m.group(1)
        if part in ("early", "start of", "beginning of"):
            found(at(y, mo), at(y, mo, 11), m.group(0), slack=True)
        elif part in ("mid", "middle of"):
            found(at(y, mo, 10), at(y, mo, 21), m.group(0), slack=True)
        else:
            found(at(y, mo, 20), end, m.group(0), slack=True)
    elif months := list(re.finditer(rf"\b{_MONTH},? {_YEAR}\b", q)):
        # "january 2009 or march 2009": the span covering every month named.
        spans = [(int(m.group(2)), _month(m.group(1))) for m in months]
        (y1, m1), (y2, m2) = min(spans), max(spans)
        found(at(y1, m1), month_end(y2, m2), ", ".join(m.group(0) for m in months),
              slack=True)
    elif m := re.search(r"\b(today|yesterday|this week|past week|last week|this month|"
                        r"past month|last month|this year|last year)\b", q):
        word = m.group(1)
        # Days and years begin at midnight where ``now`` is (its time zone).
        day = at(now.year, now.month, now.day)
        year = at(now.year)
        span = {
            "today": (day, None),
            "yesterday": (day - timedelta(days=1), day),
            "this week": (now - timedelta(days=7), None),
            "past week": (now - timedelta(days=7), None),
            "last week": (now - timedelta(days=14), now - timedelta(days=7)),
            "this month": (now - timedelta(days=31), None),
            "past month": (now - timedelta(days=31), None),
            "last month": (now - timedelta(days=62), now - timedelta(days=28)),
            "this year": (year, None),
            "last year": (year.replace(year=year.year - 1), year),
        }[word]
        found(span[0], span[1] or now + timedelta(days=1), word)
        recency = True
    elif m := re.search(rf"\b(?:in|during|of|throughout|since) {_YEAR}\b", q):
        y = int(m.group(1))
        if m.group(0).startswith("since"):
            found(at(y), now + timedelta(days=1), m.group(0))
        else:
            found(at(y), at(y + 1), m.group(0), slack=True)
    elif m := re.search(rf"\b{_YEAR}\b", q):
        # A bare year names an event ("the 2008 race"), reported around that year.
        y = int(m.group(1))
        found(at(y - 1), at(y + 2), m.group(0), named=(at(y), at(y + 1)))
    return TimeFilter(since=since, until=until, recency=recency, ordering=ordering,
                      phrase=phrase, recency_phrase=recency_phrase, named_since=named_since,
                      named_until=named_until, zone=zone)


def _named_day(q: str, now: datetime) -> tuple[datetime, str] | None:
    """The day a question names ("on may 8", "the 8th of may", "8 may 2025", "june 8, 2024")
    and its words; without a year, the last such day up to ``now``'s date.

    A number next to a month is often not a day ("the jan 6 committee", "oct 7 hostages",
    "the 2 may candidates"): one without a year counts only after "on" or as an ordinal, and
    "the" needs an ordinal or "of"."""
    for m in sorted((*_DAY_FIRST.finditer(q), *_MONTH_FIRST.finditer(q)), key=lambda m: m.start()):
        if m.re is _DAY_FIRST:
            lead, number, suffix, of, month, year = m.groups()
        else:
            lead, month, number, suffix, year = m.groups()
            of = None
        if _NOT_A_DAY_AFTER.search(q[: m.start()]) or _FROM_TO.search(q):
            continue
        if not year and lead != "on" and not suffix:
            continue
        if lead == "the" and not (suffix or of):
            continue
        zone = now.tzinfo or UTC
        try:
            day = datetime(int(year or now.year), _month(month), int(number), tzinfo=zone)
        except ValueError:  # "february 30"
            continue
        if not year and day.date() > now.date():
            day = day.replace(year=now.year - 1)
        return day, m.group(0).removeprefix(f"{lead} " if lead else "")
    return None


_CALENDAR_NAME = re.compile(rf"\b(?:{_MONTH_NAMES}|monday|tuesday|wednesday|thursday|friday"
                            r"|saturday|sunday)\b")


def spoken(phrase: str) -> str:
    """A period as read from a question, to be said back: "february 2030" as "February 2030"
    (questions are read in lower case)."""
    return _CALENDAR_NAME.sub(lambda m: m.group(0).capitalize(), phrase)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """A user's "since" option: "today", "yesterday", "day", "week", "month", "year", or an
    ISO date (read in ``now``'s time zone when it gives none)."""
    now = now or datetime.now(UTC)
    v = value.strip().lower()
    if v in ("today", "yesterday"):  # since that day began where ``now`` is
        start = datetime.combine(now.date(), time(), now.tzinfo or UTC)
        return start - timedelta(days=1) if v == "yesterday" else start
    rel = {"day": timedelta(days=1), "week": timedelta(days=7),
           "month": timedelta(days=31), "year": timedelta(days=366)}
    if v in rel:
        return now - rel[v]
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(
            f"can't read {value!r} as a date: use YYYY-MM-DD, today, yesterday, week, month "
            "or year"
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=now.tzinfo or UTC)
