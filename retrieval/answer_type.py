"""What kind of answer a question asks for, and where a sentence states one.

"How much did they pay?" is answered by an amount of money, "how many?" or "how far?" by a
number, "when?" by a date, "what year?" by a year, "what time?" by a time of day or a time
on the clock, "how long?" by a length of time, "what sentence did he get?" by a prison term,
"how old?" by an age, "how fast?" by a speed, and "..., the mill or the mine?" by one of the
answers offered. The kind is read from the question's own words; a sentence states it where
it holds such an expression (:func:`kind_spans`), and the extractive answer checks that the
expression stands next to the question's terms. Every other question has no expected kind;
"who", "where", "why" and "what did she say?" still hint at what answers them (:func:`cue`,
:func:`holds_cue`): a name or place the question does not use, a reason, words said.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from itertools import pairwise
from typing import Literal

from retrieval.lexical import tokenize


class AnswerType(Enum):
    MONEY = "amount"
    NUMBER = "number"
    DATE = "date"
    YEAR = "year"
    TIME = "time"
    DURATION = "length of time"
    TERM = "prison term"
    AGE = "age"
    SPEED = "speed"
    CHOICE = "choice"


_CARDINALS = "|".join((
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundreds?",
    "thousands?", "millions?", "billions?", "trillions?", "dozens?", "half", "quarter",
    "a third", "scores",
))
_MONTHS_DAYS = "|".join((
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sept?",
    "oct", "nov", "dec", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
    "sunday",
))
_YEAR_RE = r"\b(?:1[89]\d\d|20\d\d)s?\b"
_DIGITS = r"\d(?:[\d,.]*\d)?"  # "4,500" or "4.5", not the full stop after it
# A number: digits (not a bare year), or a number word.
_NUMBER = re.compile(
    rf"(?<![\w.])(?!{_YEAR_RE[2:-2]}\b(?![,.]\d)){_DIGITS}(?:\s?(?:%|per ?cent|percent))?"
    rf"|\b(?:{_CARDINALS})(?:[\s-](?:{_CARDINALS}))*\b",
    re.I,
)
_SCALE = r"(?:\s?(?:million|billion|trillion|bn|mn|m|k)\b)?"
_CURRENCY = (r"dollars?|cents?|pounds? sterling|pounds|euros?|yen|yuan|renminbi|rupees?|pesos?|"
             r"francs?|kronor|krona|kroner|roubles?|rubles?|rand|shekels?|dinars?|dirhams?|"
             r"riyals?|baht|ringgit|lira|naira|USD|EUR|GBP|JPY|CNY|AUD|CAD|INR|NZD")
_MONEY = re.compile(
    rf"(?:[$£€¥₹]|\b[A-Z]{{1,3}}\$|\b(?:US|AU|NZ|CA|HK)\s?\$)\s?{_DIGITS}{_SCALE}"
    rf"|\b{_DIGITS}{_SCALE}\s?(?:(?:US|U\.S\.|Australian|Canadian|Hong Kong)\s)?(?:{_CURRENCY})\b"
    rf"|\b(?:{_CARDINALS})\s(?:{_CURRENCY})\b",
    re.I,
)
# "in March 2021" is a month and a year, not "March 20".
_DATE = re.compile(
    rf"{_YEAR_RE}|\b(?:{_MONTHS_DAYS})\b\.?(?:\s\d{{1,2}}(?:st|nd|rd|th)?\b)?"
    r"|\b\d{1,2}(?:st|nd|rd|th)?\s(?:of\s)?(?:" + _MONTHS_DAYS + r")\b"
    r"|\b(?:yesterday|today|tomorrow|tonight|ago|(?:last|this|next|that) "
    r"(?:week|month|year|morning|night|spring|summer|autumn|fall|winter))\b",
    re.I,
)
_YEAR = re.compile(_YEAR_RE)
_TIME = re.compile(
    r"\b\d{1,2}:\d\d(?::\d\d)?(?:\s?[ap]\.?m\.?)?|\b\d{1,2}\s?[ap]\.m\.|\b\d{1,2}\s?[ap]m\b"
    r"|\b(?:noon|midday|midnight|dawn|dusk|o'clock)\b|\b\d{3,4}\s?(?:UTC|GMT|local time)\b",
    re.I,
)
_UNITS = r"(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|decades?|centur(?:y|ies))"
_DURATION = re.compile(  # "a 22-year-old" states an age, not a length of time
    rf"(?:\d[\d,.]*|\b(?:{_CARDINALS}|a|an|several|few|many))[\s-]+(?:and a half\s)?{_UNITS}\b"
    r"(?![\s-]+old\b)|\blife\b|\bdecades?\b|\b\d{1,2}:\d\d:\d\d\b",
    re.I,
)
# "15 years old", "a 79-year-old", "aged 79", "at the age of 79", "Denis Thatcher, 88, died".
_AGE = re.compile(
    rf"\b(?:\d{{1,3}}|(?:{_CARDINALS})(?:[\s-](?:{_CARDINALS}))*)[\s-]years?[\s-]old\b"
    r"|\baged?\s\d{1,3}\b|\bage of \d{1,3}\b|(?<=, )\d{1,3}(?=,)",
    re.I,
)
_SPEED = re.compile(
    rf"{_DIGITS}\s?(?:km/h|kmh|kph|mph|km/s|m/s|knots?\b|(?:kilomet(?:re|er)s?|miles?|"
    r"met(?:re|er)s?)\s(?:per|an|a)\s(?:hour|second)\b)|\bmach\s\d",
    re.I,
)
# "How long was he sentenced to?"; not "how long after the death sentence ...?".
_LOCKED_UP = re.compile(r"\b(?:sentenced|jailed|imprisoned|locked up|in (?:prison|jail)|"
                        r"behind bars)\b")
_CUSTODY = re.compile(r"\b(?:sentenc\w*|prison|jail(?:ed)?|imprison\w*|behind bars)\b", re.I)
# Words that make "how much" a question about money rather than about a quantity or share.
_MONEY_WORDS = re.compile(
    r"\b(?:pay|paid|pays|paying|cost|costs|costing|price|priced|worth|spend|spent|spending|"
    r"fine|fined|debt|selling|raising|charging|offering|earning|owing|"
    r"raise|raised|fund|funding|funded|sold|sell|budget|salary|earn|earned|compensation|"
    r"damages|bail|reward|bid|offer|offered|loan|loans|valued|charge|charged|owe|owed|"
    r"donated?|awards?|awarded|prize|tax|taxes|revenue|profit|loss|lose|lost|bonus|ransom|settlement|fees?|money|"
    r"cash|bill|aid|invest\w*)\b",
    re.I,
)
_ASKS = (
    (AnswerType.TERM, re.compile(
        r"\b(?:prison|jail) (?:sentence|term)\b|\bwhat sentence\b|\bsentenced to what\b"
        r"|\bhow (?:many years|long) (?:in|behind) (?:prison|jail|bars)\b"
        r"|\bhow many years in (?:prison|jail)\b")),
    # "How many years old is she?" asks an age, not a length of time.
    (AnswerType.AGE, re.compile(r"\bhow many years old\b")),
    (AnswerType.DURATION, re.compile(
        r"\bhow long\b|\bhow many (?:seconds|minutes|hours|days|weeks|months|years|decades)\b"
        r"|\bhow (?:quickly|soon)\b")),
    (AnswerType.AGE, re.compile(r"\bhow old\b|\bwhat age\b|\bat what age\b")),
    (AnswerType.SPEED, re.compile(r"\bhow fast\b|\bat what speed\b")),
    (AnswerType.NUMBER, re.compile(
        r"\bhow many\b|\bhow much of\b|\bwhat (?:number|percentage|proportion|share)\b"
        r"|\b(?:death|casualty) toll\b"
        # A measure: "how far away is the star?" is answered "about 520 light years".
        r"|\bhow (?:big|large|far|high|tall|deep|heavy|hot|cold|wide|strong)\b")),
    (AnswerType.YEAR, re.compile(r"\b(?:what|which) year\b")),
    (AnswerType.TIME, re.compile(r"\b(?:what|which) time\b|\bwhat hour\b")),
    (AnswerType.DATE, re.compile(r"\b(?:what|which) (?:date|day|month)\b")),
)
# A question word, as chat writes it too: "who's" as "whos", "who'll" as "wholl", "when's"
# as "whens".
_WH = re.compile(r"\b(what|who|whom|whose|which|where|why|how|when)"
                 r"(?:['’]?(?:s|ll|d)|['’](?:re|ve))?\b", re.I)


def asks_with_question_word(text: str) -> bool:
    """Whether ``text`` holds a question word, chat's forms ("whos", "when's") included."""
    return _WH.search(text) is not None


def expected_type(question: str) -> AnswerType | None:
    """The kind of answer ``question`` asks for, when its words name one."""
    q = question.lower()
    if re.search(r"\bhow much\b(?! of\b)", q):
        return AnswerType.MONEY if _MONEY_WORDS.search(q) else AnswerType.NUMBER
    for kind, pattern in _ASKS:
        if pattern.search(q):
            # "How long was he sentenced to?" asks for a prison term, not any length of time.
            if kind is AnswerType.DURATION and _LOCKED_UP.search(q):
                return AnswerType.TERM
            return kind
    # "When" asks for a date when it is the question's first question word ("so when is the
    # launch?", "anyone know when it opens?"), not in "what happened when the storm hit?".
    first = _WH.search(q)
    if first is not None and first.group(1) == "when":
        return AnswerType.DATE
    return AnswerType.CHOICE if choices(question) else None


# "..., the mill or the mine?": the question ends by offering two answers.
_CHOICES = re.compile(r"[,:]\s*([^,:?]+?)\s+or\s+([^,:?]+?)\s*\?*\s*$", re.I)


def choices(question: str) -> tuple[str, ...]:
    """The answers an either-or question offers ("A or B?"); none for "..., or not?"."""
    m = _CHOICES.search(question)
    if m is None or m.group(2).lower() in ("not", "what", "something else", "neither"):
        return ()
    return (m.group(1), m.group(2))


@dataclass(frozen=True, slots=True)
class Expected:
    """What a question asks for; for a choice, the index terms of each answer offered."""

    kind: AnswerType
    offered: tuple[frozenset[str], ...] = ()
    # The question's words that name the kind ("year", "time"), which a sentence giving the
    # answer need not repeat.
    kind_terms: frozenset[str] = frozenset()
    # A date alone answers "how long after the vote did he resign?" or "how long has it been
    # shut?", not "how long did the eclipse last?".
    one_date: bool = True
    # "How many athletes ...?" counts things: "six kilometres" measures, it does not count.
    counts: bool = False


_KIND_WORDS = frozenset(tokenize(["year date day month time hour long quickly soon number "
                                  "percentage proportion share toll big large fast far high "
                                  "tall deep heavy old age speed hot cold wide strong prison "
                                  "jail sentence term"])[0])


_LASTING = frozenset(tokenize(["last lasted lasting take took taken takes"])[0])
_LASTING_VERB = re.compile(r"\b(?<!the\s)(?<!its\s)(?<!their\s)(?<!his\s)(?<!her\s)"
                           r"(?<!this\s)(?<!that\s)(?:last|lasted|lasting|lasts|take|took|"
                           r"taken|takes|taking)\b", re.I)
_FROM_WHEN = re.compile(r"\b(?:ago|since)\b", re.I)


def expect(question: str) -> Expected | None:
    """The answer ``question`` asks for, when it names a kind or offers choices."""
    kind = expected_type(question)
    if kind is None:
        return None
    if kind is AnswerType.MONEY:
        # "How much did it cost?" is answered "at a price of $3,499": the money word names
        # the kind of answer, like "year" or "long".
        said = " ".join(m.group(0) for m in _MONEY_WORDS.finditer(question))
        return Expected(kind, kind_terms=_KIND_WORDS | frozenset(tokenize([said])[0]))
    if kind is AnswerType.DURATION:
        # "How long did it last?" is answered "for more than four minutes": the verb of
        # lasting names the kind of answer too.
        # "The last strike" names which strike, and "how long ago / since ...?" asks from
        # when: a date alone answers both.
        lasting = _LASTING_VERB.search(question) and not _FROM_WHEN.search(question)
        return Expected(kind, kind_terms=_KIND_WORDS | _LASTING, one_date=not lasting)
    if kind is AnswerType.NUMBER:
        # "How many riders?" counts; "how many light years / billion kilometres / dollars?"
        # asks for a measure or an amount in that unit.
        counts = (_COUNTED.search(question) is not None
                  and _COUNTED_IN_UNITS.search(question) is None)
        return Expected(kind, kind_terms=_KIND_WORDS, counts=counts)
    if kind is not AnswerType.CHOICE:
        return Expected(kind, kind_terms=_KIND_WORDS)
    offered = tuple(frozenset(t) for t in tokenize(list(choices(question))) if t)
    return Expected(kind, offered, _KIND_WORDS) if offered else None


# Units a number measures in; a count of people or seats is in none of them.
_MEASURES = (r"(?:kilomet(?:re|er)s?|km|met(?:re|er)s?|miles?|feet|foot|ft|inch(?:es)?|yards?"
             r"|light[\s-]years?|kilograms?|kg|grams?|tonnes?|tons?|pounds?|lbs?|degrees?"
             r"|hectares?|acres?|square|cubic|litres?|liters?|gallons?|barrels?|knots?|mph"
             rf"|{_UNITS[3:-1]})")
_SCALES = r"(?:million|billion|trillion|thousand|hundred)s?"
# "180 kilometres", "a 42km race".
_MEASURED = re.compile(rf"(?:\s?{_SCALES})?[\s-]?{_MEASURES}\b", re.I)
_COUNTED = re.compile(r"\bhow many\b", re.I)
_COUNTED_IN_UNITS = re.compile(
    rf"\bhow many\s+(?:{_SCALES}\s+)?(?:{_MEASURES}|{_CURRENCY})(?![\w-])", re.I)
_SINCE = re.compile(r"\b(?:since|until|till)\s+(?:\w+\s+){0,2}$", re.I)
_PATTERNS = {AnswerType.MONEY: _MONEY, AnswerType.NUMBER: _NUMBER, AnswerType.DATE: _DATE,
             AnswerType.YEAR: _YEAR, AnswerType.TIME: _TIME, AnswerType.DURATION: _DURATION,
             AnswerType.AGE: _AGE, AnswerType.SPEED: _SPEED}


def kind_spans(expected: Expected, sentence: str) -> list[tuple[int, int]]:
    """Where ``sentence`` states the kind of answer expected: character spans."""
    kind = expected.kind
    if kind is AnswerType.CHOICE:
        spans = []
        for option in expected.offered:
            hits = [m for m in re.finditer(r"[\w'-]+", sentence)
                    if set(tokenize([m.group(0)])[0]) & option]
            if len({t for m in hits for t in tokenize([m.group(0)])[0]}) * 2 >= len(option):
                spans += [(m.start(), m.end()) for m in hits]
        return spans
    if kind is AnswerType.TERM:
        if not _CUSTODY.search(sentence):
            return []
        spans = [m.span() for m in _DURATION.finditer(sentence)]
        return spans + [m.span() for m in re.finditer(r"\bdeath\b", sentence, re.I)]
    spans = [m.span() for m in _PATTERNS[kind].finditer(sentence)]
    if kind is AnswerType.NUMBER:
        # "On 13 October" neither counts nor measures anything; nor, for a count, does
        # "£150 million" or "six kilometres".
        other = [m.span() for m in _DATE.finditer(sentence)]
        if expected.counts:
            other += [m.span() for m in _MONEY.finditer(sentence)]
        spans = [(a, b) for a, b in spans
                 if not (expected.counts and _MEASURED.match(sentence, b))
                 and not any(lo <= a and b <= hi for lo, hi in other)]
    if kind is AnswerType.DURATION:
        # "How long?" is often answered with the two dates it lies between, or the one it
        # has lasted since; for how long something lasted or took, a single date ("it
        # crossed on 8 April") is when, not how long.
        dates = [m.span() for m in _DATE.finditer(sentence)]
        apart = any(sentence[a[1]:b[0]].strip(" ,") for a, b in pairwise(dates))
        if expected.one_date or apart:  # "8 April 2024" is one date in two matches
            spans += dates
        else:
            spans += [d for d in dates if _SINCE.search(sentence, 0, d[0])]
    return spans


# The answers some questions look for without naming a kind: "who ...?" a name, "where
# ...?" a place, "why ...?" a reason, "what did she say / how did he react?" words said.
# Only a hint for the sentence scores: an answer may well say "his brother" or "at home".
Cue = Literal["who", "where", "why", "said"]
# "What did the minister say / tell them?", "what has she said?", "how did she react?": the
# question asks for words said, not "which firm announced cuts?". "what'd" is "what did",
# "what's" (with "said") "what has". Of its verbs, only those an answer need not hold are no
# term for the judge (search's _SPEECH_TERMS); _SPEECH below is how sentences report words.
_AUX = r"(?:['’]?[ds]|\s+(?:did|does|do|has|have|had|will|would))\s"
_SPEECH_ASKED = re.compile(
    rf"\bwhat{_AUX}.{{0,60}}?\b(?:say|said|tell|told|claim(?:ed)?|argued?|proposed?|"
    rf"suggest(?:ed)?|warn(?:ed)?|repl(?:y|ied))\b"
    rf"|\bhow{_AUX}.{{0,60}}?\b(?:react(?:ed)?|respond(?:ed)?|repl(?:y|ied))\b")
# A run of capitalised words, accented ones too ("Émile Zola", "Łódź", "Ørsted").
_UPPER = "".join(ch for ch in map(chr, range(0x530)) if ch.isupper())  # Latin, Greek, Cyrillic
_CAPS = rf"[{_UPPER}][\w'’-]+(?:\s+[{_UPPER}][\w'’-]+)*"
_NAME_RUN = re.compile(rf"\b{_CAPS}")
_PLACE = re.compile(rf"\b(?i:in|at|near|from|to|outside|inside|into|of)\s+(?:(?i:the)\s+)?"
                    rf"({_CAPS})")
_CALENDAR_WORD = re.compile(rf"(?:{_MONTHS_DAYS})\.?", re.I)  # "on Monday" names no one
_REASON = re.compile(r"\b(?:because|due to|so that|in order to|as a result|owing to|reasons?|"
                     r"since|blamed|caused|after)\b", re.I)
# The verbs a question asks about ("what did she warn?") report words said too.
_SPEECH = re.compile(r"[\"“”]|\b(?:said|says|told|tells|stated|states|argued|argues|claimed|"
                     r"claims|suggested|proposed|called|described|announced|wrote|added|adds|"
                     r"warned|warns|replied|replies)\b")


def cue(question: str) -> Cue | None:
    """The answer a question without a named kind looks for: by its first question word
    (chat's "whos" and "wheres" included) a name, a place or a reason; words said for "what
    did she say?" or "how did he react?"; None for any other."""
    q = question.lower()
    m = _WH.search(q)
    wh = m.group(1) if m else ""
    if wh in ("who", "whom", "whose"):
        return "who"
    if wh in ("where", "why"):
        return wh  # type: ignore[return-value]
    return "said" if _SPEECH_ASKED.search(q) else None


_SAY = re.compile(r"\b(?:say|said|tell|told)\b")
# "What does the law say about ...?", "what did the report say?": what a text states, not
# words someone spoke.
_TEXT_SAYS = re.compile(
    r"\bwhat\s+(?:does|do|did)\s+(?:(?:the|its|this|that|these|those)\s+)?(?:[\w'’-]+\s+){0,3}?"
    r"(?:laws?|acts?|bills?|reports?|study|studies|rules?|ruling|treaty|deal|agreements?|"
    r"documents?|letter|statement|survey|poll|polls|policy|regulations?|directive|guidance|"
    r"judgment|verdict|decision|constitution|manifesto|it)\s+(?:say|tell)\b")


# Verbs that report what someone said without quoting it ("reviewers praised the displays
# but noted the weight"). Only for telling whether an answer to "what did they say?" has
# words said at all: as a hint in the sentence scores they lost answers on both halves.
_REPORTED = re.compile(r"\b(?:praised|praises|criticised|criticized|noted|notes|insisted|"
                       r"admitted|explained|denied|urged|vowed|acknowledged|conceded|"
                       r"complained|confirmed)\b")


def reports_words(sentence: str) -> bool:
    """Whether ``sentence`` quotes or reports words said."""
    return bool(_SPEECH.search(sentence) or _REPORTED.search(sentence))


def asks_what_was_said(question: str) -> bool:
    """Whether ``question`` asks for words said ("what did the pope say?"), not for a
    reaction ("how did they react?", which a deed answers) or for what a text states ("what
    does the AI Act say about hiring?", which its rules answer)."""
    q = question.lower()
    return cue(q) == "said" and _SAY.search(q) is not None and not _TEXT_SAYS.search(q)


# "Tell me more", "anything else?", "go on", "more details please": asking for more of the
# story being talked about, not for something in it.
# Chat's openings and closings around such a request: "ok, could you please ..., thanks".
_OPEN = (r"^\W*(?:(?:ok(?:ay)?|so|and|yes|yeah|pls|please)\W+)*"
         r"(?:(?:can|could|would) you\s+)?(?:please\s+)?")
_CLOSE = r"(?:\W+(?:please|pls|thanks))?\W*$"
_MORE = re.compile(
    _OPEN + r"(?:tell me (?:more|some more)(?: about (?:it|that|this|them))?|(?:some |any )?more"
    r"(?: details| info(?:rmation)?)?|(?:any )?(?:details|other details)|go on|continue"
    r"|keep going|(?:anything|what) else(?: happened)?|(?:and )?then what|and then"
    r"|say more|elaborate)" + _CLOSE, re.I)


# "Source?", "link please", "where did you read that?", "who reported it?": asking where
# the last answer came from.
_SOURCE = re.compile(
    _OPEN + r"(?:(?:give me |send me |got |got a |any |the |a |what(?:'s| is| are) (?:the|your) )?"
    r"(?:sources?|links?|urls?|citations?|refs?|references?)(?: for (?:that|this|it))?"
    r"|where did you (?:read|get|see|find|hear) (?:that|this|it)"
    r"|where(?:'s| is| was) (?:that|this|it) from|who (?:reported|said|wrote) (?:that|this|it)"
    r"|which (?:outlet|paper|site|article|report)(?: (?:said|reported|was it))?"
    r"(?: (?:that|this|it))?)" + _CLOSE, re.I)


def story_request(question: str) -> Literal["more", "source"] | None:
    """What ``question`` asks of its conversation's story, if it names nothing itself:
    more of it ("tell me more", "anything else?"), or the source of the last answer
    ("source?", "where did you read that?")."""
    q = question.strip()
    if _MORE.match(q):
        return "more"
    if _SOURCE.match(q):
        return "source"
    return None


def asks_for_more(question: str) -> bool:
    """Whether ``question`` asks for more of the story its conversation is about."""
    return story_request(question) == "more"


def holds_cue(kind: Cue, question: str, sentence: str) -> bool:
    """Whether ``sentence`` holds what ``kind`` looks for, beyond the question's own words:
    a name or a place the question does not use, a reason, words said."""
    if kind == "why":
        return bool(_REASON.search(sentence))
    if kind == "said":
        return bool(_SPEECH.search(sentence))
    asked = {_word(w) for w in re.findall(r"[\w'’-]+", question)}
    if kind == "where":
        runs = (m.group(1) for m in _PLACE.finditer(sentence))
    else:  # a sentence's capitalised first word alone (after a quotation mark) is no name
        first = re.search(r"\w", sentence)
        opens = first.start() if first else 0
        runs = (m.group(0) for m in _NAME_RUN.finditer(sentence)
                if m.start() > opens or " " in m.group(0))
    return any(_word(w) not in asked and not _CALENDAR_WORD.fullmatch(w)
               for run in runs for w in run.split())


def _word(word: str) -> str:
    """A word as a name is compared: "Anne’s" and "anne's" are one."""
    return word.lower().replace("’", "'")


def supplies(kind: AnswerType, sentence: str) -> bool:
    """Whether ``sentence`` contains something of ``kind`` (an amount, a number, ...)."""
    if kind is AnswerType.CHOICE:
        raise ValueError("a choice depends on the answers offered: use expect()")
    return bool(kind_spans(Expected(kind), sentence))
