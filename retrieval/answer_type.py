"""What kind of answer a question asks for, and whether a sentence can supply it.

"How much did they pay?" is answered by an amount of money, "how many?" by a number, "when?"
by a date or time, "how long?" by a duration, "what sentence did he get?" by a prison term,
and "firing squad or lethal injection?" by naming one of the choices. A story can match every
name in such a question and still never state the amount, count or date asked for: the
extractive answer then says the articles do not answer, rather than quoting a sentence about
something else. Only these kinds are recognised; every other question has no expected type
and is not checked.
"""

from __future__ import annotations

import re
from collections.abc import Set
from dataclasses import dataclass
from enum import Enum

from retrieval.lexical import tokenize


class AnswerType(Enum):
    MONEY = "amount"
    NUMBER = "number"
    DATE = "date"
    DURATION = "length of time"
    TERM = "prison term"
    CHOICE = "choice"


_CARDINALS = "|".join((
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundreds?",
    "thousands?", "millions?", "billions?", "trillions?", "dozens?", "half", "quarter", "third",
))
_MONTHS_DAYS = "|".join((
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sept?",
    "oct", "nov", "dec", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
    "sunday",
))
_NUMBER = re.compile(rf"\d|\b(?:{_CARDINALS})\b", re.I)
# "The princess, 67, announced ..." and "a 22-year-old trader" give an age, not a count.
_AGE = re.compile(r",\s*\d{1,3}\s*,|\b\d{1,3}[\s-]years?[\s-]old\b|\baged\s+\d{1,3}\b", re.I)
_MONEY = re.compile(
    r"[$£€¥₹]|\b(?:[A-Z]{1,2}\$|dollars?|cents?|pounds? sterling|pounds|euros?|yen|yuan|"
    r"renminbi|rupees?|pesos?|francs?|kronor|krona|kroner|roubles?|rubles?|rand|shekels?|"
    r"dinars?|dirhams?|riyals?|baht|ringgit|lira|naira|USD|EUR|GBP|JPY|CNY|AUD|CAD|INR)\b",
    re.I,
)
_DATE = re.compile(
    rf"\b(?:1[89]\d\d|20\d\d)s?\b|\b(?:{_MONTHS_DAYS})\b|\d{{1,2}}:\d\d"
    r"|\b(?:yesterday|today|tomorrow|tonight|noon|midnight|ago|(?:last|this|next|that) "
    r"(?:week|month|year|morning|night|spring|summer|autumn|fall|winter))\b",
    re.I,
)
_CUSTODY = re.compile(
    r"\b(?:sentenc\w*|prison|jail(?:ed)?|imprison\w*|behind bars)\b", re.I)
_UNITS = r"(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|decades?|centur(?:y|ies))"
_DURATION = re.compile(  # "a 22-year-old" states an age, not a length of time
    rf"(?:\d[\d,.]*|\b(?:{_CARDINALS}|a|an|several|few|many))[\s-]+{_UNITS}\b"
    r"(?![\s-]+old\b)|\blife\b|\bdecades?\b",
    re.I,
)
# Words that make "how much" a question about money rather than about a quantity or share.
_MONEY_WORDS = re.compile(
    r"\b(?:pay|paid|pays|cost|costs|costing|price|priced|worth|spend|spent|fine|fined|debt|"
    r"raise|raised|fund|funding|funded|sold|sell|budget|salary|earn|earned|compensation|"
    r"damages|bail|reward|bid|loan|loans|valued|charge|charged|owe|owed|donated?|tax|taxes|"
    r"revenue|profit|loss|bonus|ransom|settlement|fees?|money|cash|bill)\b",
    re.I,
)
_ASKS = (
    (AnswerType.TERM, re.compile(
        r"\b(?:prison|jail) (?:sentence|term)\b|\bwhat sentence\b|\bsentenced to what\b"
        r"|\bhow (?:many years|long) (?:in|behind) (?:prison|jail|bars)\b"
        r"|\bhow many years in (?:prison|jail)\b")),
    (AnswerType.DURATION, re.compile(
        r"\bhow long\b|\bhow many (?:seconds|minutes|hours|days|weeks|months|years|decades)\b"
        r"|\bhow (?:quickly|soon)\b")),
    (AnswerType.NUMBER, re.compile(
        r"\bhow many\b|\bhow much of\b|\bwhat (?:number|percentage|proportion|share)\b"
        r"|\b(?:death|casualty) toll\b")),
    (AnswerType.DATE, re.compile(
        # "When" opening the question, not "what happened when the storm hit?".
        r"^\W*(?:(?:so|and|but|ok|okay|hey|then|also|anyone know|does anyone know)\W+)?"
        r"when\b|\b(?:what|which) (?:year|date|day|month|time)\b")),
)


def expected_type(question: str) -> AnswerType | None:
    """The kind of answer ``question`` asks for, when it names one."""
    q = question.lower()
    if re.search(r"\bhow much\b(?! of\b)", q):
        return AnswerType.MONEY if _MONEY_WORDS.search(q) else AnswerType.NUMBER
    for kind, pattern in _ASKS:
        if pattern.search(q):
            return kind
    return AnswerType.CHOICE if choices(question) else None


# "..., firing squad or lethal injection?": the question ends by offering two answers.
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

    def met_by(self, sentence: str, terms: Set[str]) -> bool:
        """Whether ``sentence`` (whose index terms are ``terms``) supplies the answer.

        A choice is supplied by naming one of the answers offered: most of its terms.
        """
        if self.kind is AnswerType.CHOICE:
            return any(len(c & terms) * 2 >= len(c) for c in self.offered)
        return supplies(self.kind, sentence)


def expect(question: str) -> Expected | None:
    """The answer ``question`` asks for, when it names a kind or offers choices."""
    kind = expected_type(question)
    if kind is None:
        return None
    if kind is not AnswerType.CHOICE:
        return Expected(kind)
    offered = tuple(frozenset(t) for t in tokenize(list(choices(question))) if t)
    return Expected(kind, offered) if offered else None


def supplies(kind: AnswerType, sentence: str) -> bool:
    """Whether ``sentence`` contains something of ``kind`` (an amount, a number, ...)."""
    if kind is AnswerType.MONEY:
        return bool(_MONEY.search(sentence))
    if kind is AnswerType.NUMBER:
        return bool(_NUMBER.search(_AGE.sub(" ", sentence)))
    if kind is AnswerType.DATE:
        return bool(_DATE.search(sentence))
    if kind is AnswerType.TERM:
        return bool(_CUSTODY.search(sentence) and (
            _DURATION.search(sentence) or re.search(r"\bdeath\b", sentence, re.I)))
    if kind is AnswerType.CHOICE:
        raise ValueError("a choice depends on the answers offered: use expect()")
    # "How long?" is often answered with the two dates it lies between.
    return bool(_DURATION.search(sentence) or _DATE.search(sentence))
