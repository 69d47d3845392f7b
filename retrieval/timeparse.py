"""Read the time a question is about: explicit ranges become filters, "latest" becomes recency.

Only phrases with a clear meaning are read ("in March 2008", "early june 2009", "last month",
"this week", "the second half of 2008", "between november and december 2007"); anything
else leaves the search unfiltered rather than guessing.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
_MONTH = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|" \
         r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_YEAR = r"((?:19|20)\d\d)"

_RECENCY = re.compile(
    r"\b(latest|newest|most recent|recent(?:ly)?|lately|(?:right )?now|currently|current|"
    r"these days|so far|any (?:news|update|updates|word)|what(?:'?s| is) new|anything new|"
    r"update on|still)\b",
    re.I,
)
_ORDER = re.compile(
    r"\b(first|in order|order|before|after|earlier|later|how long between|timeline|sequence)\b",
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

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None

    def covers(self, when: datetime | None) -> bool:
        """``when`` falls in the period (which ends before ``until``, as the search's date
        filters have it); an undated moment falls in none."""
        return (when is not None and (self.since is None or when >= self.since)
                and (self.until is None or when < self.until))


def _utc(year: int, month: int = 1, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def _month_end(year: int, month: int) -> datetime:
    return _utc(year, month, calendar.monthrange(year, month)[1]) + timedelta(days=1)


def _month(name: str) -> int:
    return MONTHS[name.lower().rstrip(".")[:3] if name.lower()[:4] != "sept" else "sept"]


def parse_time(question: str, now: datetime | None = None) -> TimeFilter:
    """The time filter a question implies, relative to ``now`` (default: the current time)."""
    now = now or datetime.now(UTC)
    q = question.lower()
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
        found(_utc(y1, _month(m.group(1))), _month_end(y2, _month(m.group(3))), m.group(0),
              slack=True)
    elif m := re.search(rf"\b(first|second) half of {_YEAR}", q):
        y = int(m.group(2))
        found(*((_utc(y), _utc(y, 7)) if m.group(1) == "first" else (_utc(y, 7), _utc(y + 1))),
              m.group(0))
    elif m := re.search(rf"\b(early|mid|middle of|late|end of|start of|beginning of)[ -]"
                        rf"{_MONTH},? {_YEAR}", q):
        y, mo = int(m.group(3)), _month(m.group(2))
        end = _month_end(y, mo)
        part = m.group(1)
        if part in ("early", "start of", "beginning of"):
            found(_utc(y, mo), _utc(y, mo, 11), m.group(0), slack=True)
        elif part in ("mid", "middle of"):
            found(_utc(y, mo, 10), _utc(y, mo, 21), m.group(0), slack=True)
        else:
            found(_utc(y, mo, 20), end, m.group(0), slack=True)
    elif months := list(re.finditer(rf"\b{_MONTH},? {_YEAR}\b", q)):
        # "january 2009 or march 2009": the span covering every month named.
        spans = [(int(m.group(2)), _month(m.group(1))) for m in months]
        (y1, m1), (y2, m2) = min(spans), max(spans)
        found(_utc(y1, m1), _month_end(y2, m2), ", ".join(m.group(0) for m in months),
              slack=True)
    elif m := re.search(r"\b(today|yesterday|this week|past week|last week|this month|"
                        r"past month|last month|this year|last year)\b", q):
        word = m.group(1)
        day = _utc(now.year, now.month, now.day)
        span = {
            "today": (day, None),
            "yesterday": (day - timedelta(days=1), day),
            "this week": (now - timedelta(days=7), None),
            "past week": (now - timedelta(days=7), None),
            "last week": (now - timedelta(days=14), now - timedelta(days=7)),
            "this month": (now - timedelta(days=31), None),
            "past month": (now - timedelta(days=31), None),
            "last month": (now - timedelta(days=62), now - timedelta(days=28)),
            "this year": (_utc(now.year), None),
            "last year": (_utc(now.year - 1), _utc(now.year)),
        }[word]
        found(span[0], span[1] or now + timedelta(days=1), word)
        recency = True
    elif m := re.search(rf"\b(?:in|during|of|throughout|since) {_YEAR}\b", q):
        y = int(m.group(1))
        if m.group(0).startswith("since"):
            found(_utc(y), now + timedelta(days=1), m.group(0))
        else:
            found(_utc(y), _utc(y + 1), m.group(0), slack=True)
    elif m := re.search(rf"\b{_YEAR}\b", q):
        # A bare year names an event ("the 2008 race"), reported around that year.
        y = int(m.group(1))
        found(_utc(y - 1), _utc(y + 2), m.group(0), named=(_utc(y), _utc(y + 1)))
    return TimeFilter(since=since, until=until, recency=recency, ordering=ordering,
                      phrase=phrase, recency_phrase=recency_phrase, named_since=named_since,
                      named_until=named_until)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """A user's "since" option: "today", "week", "month", "year", or an ISO date."""
    now = now or datetime.now(UTC)
    v = value.strip().lower()
    rel = {"today": timedelta(days=1), "day": timedelta(days=1), "week": timedelta(days=7),
           "month": timedelta(days=31), "year": timedelta(days=366)}
    if v in rel:
        return now - rel[v]
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(
            f"can't read {value!r} as a date: use YYYY-MM-DD, today, week, month or year"
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
