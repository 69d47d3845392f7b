"""What kind of answer a question asks for, and whether a sentence can supply it.

"How much did they pay?" is answered by an amount of money, "how many?" by a number, "when?"
by a date or time, "how long?" by a duration. A story can match every name in such a question
and still never state the amount, count or date asked for: the extractive answer then says
the articles do not answer, rather than quoting a sentence about something else. Only these
four kinds are recognised; every other question has no expected type and is not checked.
"""

from __future__ import annotations

import re
from enum import Enum


class AnswerType(Enum):
    MONEY = "amount"
    NUMBER = "number"
    DATE = "date"
    DURATION = "length of time"


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
    return None


def supplies(kind: AnswerType, sentence: str) -> bool:
    """Whether ``sentence`` contains something of ``kind`` (an amount, a number, ...)."""
    if kind is AnswerType.MONEY:
        return bool(_MONEY.search(sentence))
    if kind is AnswerType.NUMBER:
        return bool(_NUMBER.search(sentence))
    if kind is AnswerType.DATE:
        return bool(_DATE.search(sentence))
    # "How long?" is often answered with the two dates it lies between.
    return bool(_DURATION.search(sentence) or _DATE.search(sentence))
