"""The model's side of an answer: the prompt, and every check its reply must pass.

The reply is read sentence by sentence as it streams. A sentence is shown (handed to the
adapter's ``on_token``) only once it is complete and has passed the checks the final answer
applies: its citations normalised and in range, no link, bare domain or mention, nothing
instruction-like, and its numbers and names found in the article it cites. A sentence that
cites the wrong article is moved to the one that supports it; an uncited sentence is
attributed to its clearly best-supporting article; anything else is dropped, and the
answer's note says so. The final answer is exactly the sentences that were shown.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal

from bot.core.llm import ChatModel, LLMError, StopStreaming
from prompts import load as load_prompt
from retrieval.lexical import tokenize
from retrieval.search import ArticleHit, SearchResult
from retrieval.text import is_instruction_like, sentences, strip_instructions, urls_in
from retrieval.timeparse import local_date

log = logging.getLogger(__name__)

NOT_FOUND = "NOT_IN_ARTICLES"
MAX_SENTENCES = 4  # asked for in the prompt
MAX_KEPT = 6  # past this many good sentences the stream is closed: the rest is a runaway
# A cited sentence must share at least this much of its content with the article it cites.
SUPPORT_SHARE = 0.5
# An uncited sentence is attributed only to an article that supports it clearly: this much
# shared content, and this much more than the next best article.
ATTRIBUTE_SHARE = 0.6
ATTRIBUTE_MARGIN = 0.15
FULL_SUPPORT = 0.9

CITE = re.compile(r"\[(\d{1,2})\]")
_CITE_GROUP = re.compile(r"^\s*((?:\[\d{1,2}\]\s*)+)")
# A bracketed citation in any of the forms models write: [1, 2], [1-3], [Article 1],
# [source: 2], [^1], 【1】, 【1†source】, (1), (Articles 1 and 2).
_LABEL = r"(?:articles?|sources?|refs?\.?|art\.?|n\s*=|#|\^)\s*:?\s*"
_NUMS = (rf"(?:{_LABEL})?\d{{1,2}}(?:\s*(?:,|;|&|/|and|-|–|—)\s*(?:{_LABEL})?\d{{1,2}})*"
         r"(?:\s*†[^\]】)]*)?")
_BRACKETED = re.compile(rf"\[\s*{_NUMS}\s*\]|【\s*{_NUMS}\s*】|\(\s*{_NUMS}\s*\)", re.I)
_RANGE = re.compile(r"(\d{1,2})\s*[-–—]\s*(\d{1,2})")

_MENTION = re.compile(r"@everyone|@here|<@[!&]?\d+>|<#\d+>|<@&\d+>")
# A bare domain: "evil.example", "tickets.example.com". The last label is lower case so that
# two sentences run together ("ended.The") are not taken for one.
_DOMAIN = re.compile(r"\b(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[a-z]{2,24}\b")
# A quotation must be the article's own words; straight marks open or close by their place.
_QUOTE_MARK = re.compile(r'["“”„«»]')
_FLAT_WORD = re.compile(r"\w+")
_ELISION = re.compile(r"\.\.\.|…|\[[^\]]*\]")  # an ellipsis, or words the writer put in
# A line of a list of sources: its heading, or an article's headline with at most this many
# words besides its outlet and date ("published by", "via"); "The headline is: ..." is an
# answer.
_LIST_HEADINGS = frozenset(("sources", "source", "references", "reference", "citations",
                            "sources used", "articles", "articles used"))
LIST_EXTRA_WORDS = 2
_LIST_NUMBER = re.compile(r"\s*\(?\d{1,2}[.)]\s*")
# The model saying in its own words that the articles do not answer: "The articles do not
# say ...", "None of the sources mention ...", "I could not find ... in the provided articles".
_THEM = r"(?:articles?|sources?|texts?|context)"
_NOT = r"(?:do(?:es)?\s*n[o'’]t|did\s*n[o'’]t|do(?:es)?\s+not|did\s+not|never|fail\s+to)"
_TELL = (r"(?:say|state|mention|specify|give|provide|include|contain|report|answer|address"
         r"|cover|discuss|indicate|reveal|disclose|name)")
_SAYS_NOT_FOUND = re.compile(
    rf"\b(?:the|these|those|provided|given|available)\s+(?:provided\s+|given\s+)?{_THEM}\b"
    rf"[^.!?]*?\b{_NOT}\s+(?:\w+\s+)?{_TELL}"
    rf"|\bnone of the\s+(?:provided\s+|given\s+)?{_THEM}\b[^.!?]*?\b{_TELL}"
    rf"|\b(?:could\s*n[o'’]t|could not|cannot|can[o'’]?t|(?:was|am) unable to)\s+"
    rf"(?:find|locate|see|determine)\b[^.!?]*\b{_THEM}\b"
    rf"|\bno information\b[^.!?]*\b{_THEM}\b", re.I)
# A reasoning block a reply may open with (DeepSeek-R1, Qwen3 and others, served inline).
_REASONING_TAGS = ("<think>", "<thinking>", "<reasoning>")
_REASONING_OPEN = re.compile(r"\s*<(think|thinking|reasoning)>", re.I)
# Its end, in a reply that never opened it (some models, and chat templates that put the
# opening tag in the prompt, leave it out): all before it was reasoning too.
_REASONING_CLOSE = re.compile(r"</(?:think|thinking|reasoning)>", re.I)
_CLOSE_TAIL = len("</reasoning>") - 1  # kept from a delta, for a tag split between two
_FENCE = re.compile(r"</?article\b|\bn=\"\d|^\s*(?:rules|how to answer)\s*:", re.I)
_LEAD = re.compile(r"^\s*(?:[-*•]\s+|\d{1,2}[.)]\s+|#+\s*|\*\*)?(?:answer\s*:\s*)?", re.I)

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SCALES = {"thousand": 10**3, "million": 10**6, "mn": 10**6, "billion": 10**9, "bn": 10**9,
           "trillion": 10**12}
_SCALED = re.compile(rf"\b(\d{{1,3}}(?:,\d{{3}})+|\d+(?:\.\d+)?)\s*({'|'.join(_SCALES)})\b",
                     re.I)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_SMALL = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
          "eighteen", "nineteen")
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_NUMBER_WORDS = {w: n for n, w in enumerate(_SMALL)} | {
    w: 10 * n for n, w in enumerate(_TENS, 2)} | {"dozen": 12}
# Capitalised words that are not names: a sentence may start with them.
_NOT_NAMES = frozenset((
    "a", "an", "the", "he", "she", "it", "its", "they", "them", "their", "there", "this",
    "that", "these", "those", "his", "her", "hers", "we", "our", "i", "you", "in", "on", "at",
    "by", "for", "from", "to", "of", "as", "after", "before", "during", "since", "until",
    "when", "while", "where", "why", "how", "what", "which", "who", "whom", "whose",
    "according", "however", "but", "and", "or", "also", "both", "some", "many", "most", "much",
    "more", "no", "not", "yes", "one", "two", "three", "four", "five", "six", "seven", "eight",
    "nine", "ten", "first", "second", "third", "last", "if", "so", "then", "than", "though",
    "although", "because", "despite", "earlier", "later", "meanwhile", "overall", "today",
    "yesterday", "tomorrow", "each", "every", "all", "another", "other", "such", "only",
    "just", "still", "yet", "even", "about", "over", "under", "between", "into", "onto",
    "upon", "with", "without", "within", "among", "again", "once", "here", "now",
))

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Words models open a sentence with, beyond those above: capitalised there, not names.
_OPENERS = frozenset((
    "additionally", "furthermore", "moreover", "besides", "instead", "thus", "therefore",
    "hence", "nevertheless", "nonetheless", "likewise", "similarly", "indeed", "rather",
    "based", "following", "throughout", "amid", "along", "across", "against", "around",
    "beyond", "unlike", "like", "including", "regarding", "concerning", "per", "due", "given",
    "prior", "together", "next", "several", "few", "either", "neither", "any", "everyone",
    "nobody", "someone", "anyone", "my", "your", "sure", "great", "note", "overall",
))


# -- citations -------------------------------------------------------------------------------
def normalise_citations(text: str) -> str:
    """Every bracketed citation form as ``[n]`` markers: ``[1, 2]`` -> ``[1][2]``."""

    def one(m: re.Match[str]) -> str:
        inner = re.sub(r"†.*", "", m.group(0)[1:-1])
        numbers: list[int] = []
        for part in re.split(r"\s*(?:,|;|&|/|\band\b)\s*", inner):
            r = _RANGE.search(part)
            if r:
                lo, hi = int(r.group(1)), int(r.group(2))
                numbers.extend(range(lo, hi + 1) if 0 < hi - lo < 10 else (lo, hi))
            else:
                numbers.extend(int(d) for d in re.findall(r"\d{1,2}", part))
        return "".join(f"[{n}]" for n in dict.fromkeys(numbers))

    return _BRACKETED.sub(one, text)


def is_marker_line(line: str) -> bool:
    """The not-found marker alone on a line (quotes, emphasis and a full stop tolerated)."""
    return line.strip().strip("`*_\"'“”.:!").strip() == NOT_FOUND


def cited_numbers(text: str) -> list[int]:
    return [int(n) for n in CITE.findall(text)]


# -- the sources as the model saw them -----------------------------------------------------
def _numbers(text: str, *, keep_scaled: bool = False) -> set[str]:
    """Numbers in a text, normalised ("4,000" -> "4000", "07" -> "7", "1.2 million" ->
    "1200000"), with number words; ``keep_scaled`` keeps "1.2" too (an article's numbers,
    which a sentence may write "1.2m")."""
    found: set[str] = set()

    def scaled(m: re.Match[str]) -> str:
        # "1.2 million" is the article's "1,200,000", and asks for no "1.2" of its own.
        value = Decimal(m.group(1).replace(",", "")) * _SCALES[m.group(2).lower()]
        found.add(str(int(value)) if value == value.to_integral_value() else str(value))
        return m.group(0) if keep_scaled else " "

    text = _SCALED.sub(scaled, text)
    for raw in _NUMBER.findall(text):
        value = raw.replace(",", "")
        if re.fullmatch(r"\d+\.\d+", raw) is None and "." in value:
            value = value.replace(".", "")  # "4.000" written as a thousands separator
        found.add(value.lstrip("0") or "0")
    for word in re.findall(r"[a-z]+(?:-[a-z]+)?", text.lower()):
        parts = word.split("-")
        if all(p in _NUMBER_WORDS for p in parts):
            found.add(str(sum(_NUMBER_WORDS[p] for p in parts)))
    return found


@dataclass(slots=True)
class SourceText:
    """One numbered article as given to the model, with what the checks compare against."""

    n: int
    title: str
    outlet: str
    date: str
    body: str
    words: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    terms: set[str] = field(default_factory=set)
    flat: str = ""  # the title and text as quotations are looked up in them

    def __post_init__(self) -> None:
        text = f"{self.title}\n{self.outlet}\n{self.date}\n{self.body}"
        dated = _date_words(self.date)
        self.words = {_fold(w) for w in _WORD.findall(text)} | dated
        self.numbers = _numbers(text, keep_scaled=True)
        self.terms = set(tokenize([f"{text}\n{' '.join(sorted(dated))}"])[0])
        self.flat = _flat(f"{self.title}\n{self.body}")

    def holds(self, quotation: str) -> bool:
        """The article has these words in this order (``quotation`` as ``_flat`` gives it)."""
        return quotation in self.flat

    def block(self) -> str:
        return (f'<article n="{self.n}" outlet="{_attr(self.outlet)}" date="{self.date}" '
                f'title="{_attr(self.title)}">\n{self.body}\n</article>')


def _date_words(iso: str) -> set[str]:
    """The month and weekday of an article's date: the model is told "2025-04-02" and asked
    to give dates, and writes "Wednesday, 2 April"."""
    try:
        day = date.fromisoformat(iso)
    except ValueError:
        return set()  # undated
    month = _MONTHS[day.month - 1]
    return {month, month[:3], _WEEKDAYS[day.weekday()]} | ({"sept"} if day.month == 9 else set())


def _fold(word: str) -> str:
    """A word as names are compared: lower case, no possessive, no dangling hyphen
    ("Mendez's" -> "mendez", "COVID-19" -> "covid")."""
    return re.sub(r"['’]s$", "", word.lower().strip("'’-")).strip("'’-")


def _flat(text: str) -> str:
    """Words only, lower case, space-separated and padded, so that a quotation is found
    whatever its punctuation, quotation marks or line breaks."""
    return " " + " ".join(_FLAT_WORD.findall(text.lower())) + " "


def _quotations(text: str) -> list[str]:
    """The passages of a sentence in quotation marks, as ``_flat`` gives them. A quotation
    of several sentences reaches the checks cut in pieces: a mark opened and not closed runs
    to the end of the piece, a mark closed and not opened from its start."""
    out: list[str] = []
    start: int | None = None
    for m in _QUOTE_MARK.finditer(text):
        i, mark = m.start(), m.group()
        before = text[i - 1] if i else " "
        if mark in "“„«" or (mark == '"' and (before.isspace() or before in "([{:—–-")):
            if start is None:
                start = i + 1
        else:
            out.append(text[start or 0 : i])
            start = None
    if start is not None:
        out.append(text[start:])
    # "the crossing ... takes 35 minutes": each part the article's own words.
    parts = (p for q in out for p in _ELISION.split(q))
    return [q for q in map(_flat, parts) if q.strip()]


# The article fence's tags as a model may read them: "</article>", "< /article>", "</ article >".
_FENCE_TAG = re.compile(r"<\s*/?\s*article\b[^>]*>", re.I)


def _attr(value: str) -> str:
    """A title or outlet as an attribute of the fence: it cannot end the attribute or the tag."""
    return re.sub(r"[<>]", "", value.replace('"', "'").replace("\n", " "))[:200]


def _article_text(art: ArticleHit) -> str:
    """The article's matching chunks in reading order, without instruction-like sentences."""
    chunks = sorted(art.chunks[:3], key=lambda c: int(c.metadata.get("chunk", 0)))
    body = strip_instructions("\n\n".join(c.text for c in chunks))
    return _FENCE_TAG.sub("", body)  # keep the fence intact


def sources_of(result: SearchResult) -> list[SourceText]:
    return [SourceText(n=n, title=art.title, outlet=art.meta.get("outlet") or "unknown outlet",
                       date=_local_date(art.published_at, result.time.zone),
                       body=_article_text(art))
            for n, art in enumerate(result.articles, 1)]


def _local_date(when: datetime | None, zone: tzinfo) -> str:
    """An article's date where the question is asked, as the model is told today's."""
    return local_date(when, zone).isoformat() if when is not None else "undated"


def answer_messages(question: str, sources: Sequence[SourceText],
                    now: datetime | None = None) -> list[tuple[str, str]]:
    """The system prompt (rules and fenced articles) and the question."""
    system = load_prompt("answer").format(
        max_sentences=MAX_SENTENCES, not_found=NOT_FOUND,
        today=(now or datetime.now(UTC)).date().isoformat(),
        sources="\n\n".join(s.block() for s in sources),
    )
    # Small models follow the format best when it is restated next to the question.
    human = (f"Question: {question}\n\nAnswer in at most {MAX_SENTENCES} sentences, each "
             f"ending with its article number like [1], or reply {NOT_FOUND}.")
    return [("system", system), ("human", human)]


# -- one sentence ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Kept:
    text: str  # with [n] citations in the sources' numbering
    cites: tuple[int, ...]
    moved: bool = False  # re-attributed, or attributed when uncited


@dataclass(frozen=True, slots=True)
class Dropped:
    sentence: str
    reason: str


# Short phrases for the answer's note, by reason.
REASONS = {
    "uncited": "no citation and no clearly supporting article",
    "unsupported": "not supported by the articles",
    "misquote": "a quotation no article holds",
    "reference": "a list of the sources",
    "link": "a link, web address or mention",
    "instruction": "instruction-like text",
    "prompt": "a repeat of the instructions",
    "marker": "the not-found marker inside other text",
    "incomplete": "cut off",
    "repeat": "a repeat of an earlier sentence",
}


# Why a model's reply ended, in a member's words, for the reasons that say nothing to one
# (the rest, "timed out" or "HTTP 500", are shown as they are). "closed": the chat client was
# closed under the reply because the bot was stopping.
REASONS_SAID = {"closed": "the bot was shutting down"}


def said(reason: str) -> str:
    """A model error's reason as a footer tells it to members."""
    return REASONS_SAID.get(reason, reason)


# A reply sentence sharing this much of its words with a sentence of the instructions is a
# repeat of them (small models echo their prompt).
ECHO_SHARE = 0.7
ECHO_SENTENCES = 2  # this many repeated instructions and the reply is an echo
# This many repeats of its own sentences and a reply is looping: a small model that starts
# over rarely stops before its token limit, which a slow one reaches in a minute.
LOOP_REPEATS = 3


def _instruction_sentences() -> list[set[str]]:
    """Word sets of the prompt's own sentences (the template without the articles)."""
    system = load_prompt("answer").format(max_sentences=MAX_SENTENCES, not_found=NOT_FOUND,
                                          today="", sources="")
    human = answer_messages("", [])[1][1]
    return [w for s in sentences(f"{system}\n{human}") if len(w := set(_same(s).split())) >= 4]


class SentenceChecker:
    """Checks one sentence of a reply against the numbered sources."""

    def __init__(self, sources: Sequence[SourceText]) -> None:
        self.sources = list(sources)
        self._instructions = _instruction_sentences()

    def _echoes(self, sentence: str) -> bool:
        words = set(_same(sentence).split())
        return bool(words) and any(len(words & w) >= ECHO_SHARE * max(len(w), len(words))
                                   for w in self._instructions)

    def check(self, raw: str) -> Kept | Dropped:
        sentence = _LEAD.sub("", raw).replace("**", "").strip()
        if not sentence:
            return Dropped(raw, "prompt")
        if _FENCE.search(sentence) or self._echoes(sentence):
            return Dropped(raw, "prompt")
        if NOT_FOUND in sentence:
            return Dropped(raw, "marker")
        body = re.sub(r"\s+", " ", CITE.sub(" ", sentence)).strip()
        if self._lists_a_source(body):
            return Dropped(raw, "reference")
        if urls_in(sentence) or _DOMAIN.search(body) or _MENTION.search(sentence):
            return Dropped(raw, "link")
        if is_instruction_like(body):
            return Dropped(raw, "instruction")
        quotations = _quotations(body)
        if any(not any(s.holds(q) for s in self.sources) for q in quotations):
            return Dropped(raw, "misquote")  # words put in someone's mouth
        cites = [n for n in dict.fromkeys(cited_numbers(sentence))
                 if 1 <= n <= len(self.sources)]
        needs_n = _numbers(body) - {"0", "1"}
        names = _names(body)
        terms = set(tokenize([body])[0]) if body else set()
        # The word a sentence opens with is capitalised by its place: "Crossings now take ..."
        # names nothing when the article speaks of a crossing.
        first = _WORD.findall(body)[:1]
        opener = (set(tokenize(first)[0]) if first and names[:1] == [first[0].strip("'’-")]
                  else set())

        def fits(srcs: Sequence[SourceText]) -> float:
            """The share of the sentence's terms found, or -1 when a number or name is not."""
            words = set().union(*(s.words for s in srcs))
            numbers = set().union(*(s.numbers for s in srcs))
            have = set().union(*(s.terms for s in srcs))
            if not needs_n <= numbers or any(
                    _fold(n) not in words and not (i == 0 and opener and opener <= have)
                    for i, n in enumerate(names)):
                return -1.0
            if any(not any(s.holds(q) for s in srcs) for q in quotations):
                return -1.0
            if not terms:
                return 1.0
            return len(terms & have) / len(terms)

        if cites and fits([self.sources[n - 1] for n in cites]) >= SUPPORT_SHARE:
            cites = self._needed(cites, fits)
            return Kept(_render(sentence, keep=set(cites)), tuple(cites))
        # Best support first; between equals, the article ranked higher by the search.
        scores = sorted((-fits([s]), s.n) for s in self.sources)
        best, n_best = (-scores[0][0], scores[0][1]) if scores else (-1.0, 0)
        second = -scores[1][0] if len(scores) > 1 else -1.0
        need = SUPPORT_SHARE if cites else ATTRIBUTE_SHARE
        # Any of several articles that all support it fully will do as its source.
        clear = best - second >= ATTRIBUTE_MARGIN or best >= FULL_SUPPORT
        if best >= need and clear and terms:
            return Kept(_render(sentence, force=n_best), (n_best,), moved=True)
        if _SAYS_NOT_FOUND.search(body):  # the marker, in words (checked last: an article
            return Dropped(raw, "not found")  # may report that "the sources did not say")
        return Dropped(raw, "unsupported" if cites else "uncited")

    def _lists_a_source(self, body: str) -> bool:
        """A line of the list of sources models add after an answer ("Sources:", "[1] Its
        headline (Outlet, date)"): the answer's sources are shown beside it anyway."""
        flat = _flat(body)
        if flat.strip() in _LIST_HEADINGS:
            return True
        for src in self.sources:
            title = _flat(src.title)
            if len(title.split()) >= 3 and title in flat:
                rest = flat.replace(title, " ")
                for known in (_flat(src.outlet), _flat(src.date)):
                    rest = rest.replace(known, " ") if known.strip() else rest
                heading = re.sub(r"^\s*(?:sources?|references?)\b", " ", rest)
                return len(heading.split()) <= LIST_EXTRA_WORDS
        return False

    def _needed(self, cites: list[int],
                fits: Callable[[Sequence[SourceText]], float]) -> list[int]:
        """The cited articles the sentence rests on: each supports it alone, or holds
        something of it the others lack. Small models cite every article on every sentence;
        a citation of an article that says none of it would send the reader to the wrong
        story."""
        def of(ns: Sequence[int]) -> list[SourceText]:
            return [self.sources[n - 1] for n in ns]

        alone = {n: fits(of([n])) for n in cites}
        keep = list(cites)
        for n in sorted(cites, key=lambda n: (alone[n], -n)):  # the weakest first
            rest = [m for m in keep if m != n]
            if alone[n] < SUPPORT_SHARE and rest and fits(of(rest)) >= fits(of(keep)):
                keep = rest
        return keep


def _names(body: str) -> list[str]:
    """Capitalised words that are not sentence-opening function words: names, places."""
    out = []
    for i, w in enumerate(_WORD.findall(body)):
        w = w.strip("'’-")
        if len(w) >= 2 and w[0].isupper() and w.lower() not in _NOT_NAMES:
            if i == 0 and _opens_sentence(w.lower()):
                continue
            out.append(w)
    return out


def _opens_sentence(word: str) -> bool:
    """A word models open sentences with that is no name ("Additionally, ...", "Based on
    the articles, ..."): capitalised only by its place, the article need not hold it."""
    return word in _OPENERS or (len(word) > 5 and word.endswith("ly"))


def _render(sentence: str, *, keep: set[int] | None = None, force: int | None = None) -> str:
    """The sentence with only the kept citations, placed before its final punctuation."""
    if force is not None:
        text = CITE.sub("", sentence)
        trailing = f"[{force}]"
    else:
        text = CITE.sub(lambda m: m.group(0) if keep and int(m.group(1)) in keep else "",
                        sentence)
        trailing = ""
        m = re.search(r"((?:\s*\[\d{1,2}\])+)\s*$", text)
        if m and re.search(r"[.!?…][\"'”’)]*$", text[: m.start()].rstrip()):
            trailing = m.group(1).replace(" ", "")
            text = text[: m.start()]
    text = re.sub(r"(\[\d{1,2}\])(?:\s*\1)+", r"\1", text)
    text = re.sub(r"\s+", " ", text).strip()
    if trailing:
        end = re.search(r"[.!?…]+[\"'”’)]*$", text)
        head, tail = (text[: end.start()], end.group(0)) if end else (text, "")
        text = f"{head.rstrip()} {trailing}{tail}"
    return re.sub(r"\s+([.,;:!?])", r"\1", text).strip()


# -- the stream ------------------------------------------------------------------------------
class AnswerGate:
    """Reads the reply as it streams and releases whole sentences that passed every check.

    ``on_text`` gets each kept sentence (renumbered 1..m in order of first citation, as the
    final answer numbers its sources), with a space before all but the first.
    """

    def __init__(self, checker: SentenceChecker,
                 on_text: Callable[[str], None] | None = None,
                 max_kept: int = MAX_KEPT) -> None:
        self.checker = checker
        self.on_text = on_text
        self.max_kept = max_kept
        self.kept: list[Kept] = []
        self.dropped: list[Dropped] = []
        self.marker = False
        self.echo = False  # the reply repeats the instructions: nothing more of it is read
        self.first_shown: float | None = None  # time.monotonic() of the first sentence shown
        self._line = ""  # the open line, raw
        self._released = 0  # sentences of the open line already checked
        self._numbering: dict[int, int] = {}
        self._seen: set[str] = set()
        # A reasoning block the reply opens with: None until the reply's start is read, then
        # the tag that closes it while inside, "" past it (or when there is none).
        self._reasoning: str | None = None
        self._head = ""  # the reply's start, held back until it is known to be no reasoning
        self.reasoning_cut = False  # the reply ended inside its reasoning block
        # A reply that opened with no tag is watched for a closing one until it comes.
        self._unopened = False
        self._tail = ""
        self._shown = False  # a sentence was handed on (the next gets a space before it)

    @property
    def looping(self) -> bool:
        return sum(d.reason == "repeat" for d in self.dropped) >= LOOP_REPEATS

    @property
    def full(self) -> bool:
        return self.echo or self.looping or len(self.kept) >= self.max_kept

    def feed(self, delta: str) -> None:
        """Take a delta; raises StopStreaming once enough sentences were kept."""
        if self._reasoning != "":
            delta = self._past_reasoning(delta)
            if not delta:
                return
        if self._unopened:
            delta = self._past_unopened_reasoning(delta)
        *done, self._line = (self._line + delta).split("\n")
        for i, line in enumerate(done):
            self._close_line(line, from_open=i == 0)
        pieces = _pieces(self._line)
        for piece in pieces[self._released : -1]:
            if not self.full:
                self._take(piece)
        self._released = max(self._released, len(pieces) - 1)
        # Reasoning that never opened its tag often restates the instructions: an echo is
        # known only once no closing tag can follow, so the reply is read on.
        if (len(self.kept) >= self.max_kept or self.looping
                or (self.echo and not self._unopened)):
            raise StopStreaming

    def _past_reasoning(self, delta: str) -> str:
        """What of the reply follows a reasoning block it opens with (``<think>...</think>``,
        which some servers pass on inline): that block is the model's working, not its
        answer, and never shown, whatever the articles say of its sentences."""
        self._head += delta
        if self._reasoning is None:
            start = self._head.lstrip().lower()
            if any(tag.startswith(start) for tag in _REASONING_TAGS):
                return ""  # the start could still be a tag
            m = _REASONING_OPEN.match(self._head)
            if m is None:
                self._reasoning, text, self._head = "", self._head, ""
                self._unopened = True
                return text
            self._reasoning = f"</{m.group(1).lower()}>"
        end = self._head.lower().find(self._reasoning)
        if end < 0:
            return ""
        text, self._head = self._head[end + len(self._reasoning):].lstrip(), ""
        self._reasoning = ""
        return text

    def _past_unopened_reasoning(self, delta: str) -> str:
        """``delta``, or, once a closing tag the reply never opened arrives, what follows it:
        all read before was reasoning, so it is forgotten (nothing of it kept, nor counted
        as left out) and the reply starts again after the tag."""
        window = self._tail + delta
        m = _REASONING_CLOSE.search(window)
        if m is None:
            self._tail = window[-_CLOSE_TAIL:]
            return delta
        self._unopened, self._tail = False, ""
        self.kept, self.dropped = [], []
        self.marker = self.echo = False
        self.first_shown = None
        self._line, self._released = "", 0
        self._numbering, self._seen = {}, set()
        return window[m.end():].lstrip()

    def finish(self, complete: bool) -> None:
        """The stream ended; ``complete`` is False when it was cut (cap, time, error), and
        then an unfinished last sentence is dropped."""
        if self._reasoning is None:  # too short to tell: the text is the reply
            self._line, self._head, self._reasoning = self._line + self._head, "", ""
        elif self._reasoning:
            self.reasoning_cut, self._head = True, ""
            return
        line, self._line = self._line, ""
        start, self._released = self._released, 0
        if is_marker_line(line):
            self.marker = True
            return
        rest = _pieces(line)[start:]
        for i, piece in enumerate(rest):
            last = i == len(rest) - 1
            if last and not complete and not _ends_sentence(piece):
                self.dropped.append(Dropped(piece, "incomplete"))
            elif not self.full:
                self._take(piece)

    def _close_line(self, line: str, *, from_open: bool) -> None:
        start = self._released if from_open else 0
        self._released = 0
        if is_marker_line(line):
            self.marker = True
            return
        for piece in _pieces(line)[start:]:
            if not self.full:
                self._take(piece)

    def _take(self, piece: str) -> None:
        outcome = self.checker.check(piece)
        if isinstance(outcome, Kept) and _same(outcome.text) in self._seen:
            outcome = Dropped(piece, "repeat")  # a small model looping on itself
        if isinstance(outcome, Dropped) and outcome.reason == "not found":
            self.marker = True  # what the articles do not say is no sentence left out
            return
        if isinstance(outcome, Dropped):
            self.dropped.append(outcome)
            log.debug("held back %r: %s", piece, outcome.reason)
            self.echo = sum(d.reason == "prompt" for d in self.dropped) >= ECHO_SENTENCES
            return
        self.kept.append(outcome)
        self._seen.add(_same(outcome.text))
        for n in outcome.cites:
            self._numbering.setdefault(n, len(self._numbering) + 1)
        if self.on_text is not None:
            shown = CITE.sub(lambda m: f"[{self._numbering[int(m.group(1))]}]", outcome.text)
            if self.first_shown is None:
                self.first_shown = time.monotonic()
            self.on_text(" " + shown if self._shown else shown)
            self._shown = True

    @property
    def text(self) -> str:
        return " ".join(k.text for k in self.kept)

    @property
    def cited(self) -> list[int]:
        """Sources cited by the kept sentences, in order of first citation."""
        return list(self._numbering)


def _pieces(line: str) -> list[str]:
    """The sentences of one line, citations normalised, a leading citation group moved to
    the sentence before it ("... was 78. [1] He ..." cites [1] for "was 78")."""
    out: list[str] = []
    for s in sentences(normalise_citations(line)):
        m = _CITE_GROUP.match(s)
        if m and out:
            out[-1] = f"{out[-1]} {m.group(1).strip()}"
            s = s[m.end():].strip()
        # Not a stray full stop left after a citation, nor a list's number ("1."), which the
        # splitter reads as a sentence of its own.
        if re.search(r"\w", s) and not _LIST_NUMBER.fullmatch(s):
            out.append(s)
    return out


def _same(text: str) -> str:
    return " ".join(re.findall(r"\w+", CITE.sub(" ", text).lower()))


def _ends_sentence(piece: str) -> bool:
    return bool(re.search(r"[.!?…][\"'”’)]*(?:\s*\[\d{1,2}\])*\s*$", piece))


# -- the whole model answer ------------------------------------------------------------------
@dataclass(slots=True)
class ModelReply:
    """What the model's side produced: sentences to show, an abstention, or a failure.

    ``text`` is empty when nothing of the reply may be shown; ``note`` then says why, for
    the extractive answer's note.
    """

    text: str = ""
    cited: list[int] = field(default_factory=list)
    abstained: bool = False
    note: str | None = None
    dropped: list[Dropped] = field(default_factory=list)
    finish: str | None = None  # how the stream ended: stop, length, stopped, or an error
    first_shown_s: float | None = None
    chunks: int = 0


def answer_with_model(model: ChatModel, question: str, result: SearchResult, *,
                      deadline: float, now: datetime | None = None,
                      on_token: Callable[[str], None] | None = None) -> ModelReply:
    """Ask the model, gate its reply sentence by sentence, and say what became of it."""
    start = time.monotonic()
    sources = sources_of(result)
    gate = AnswerGate(SentenceChecker(sources), on_token)
    messages = answer_messages(question, sources, now)
    error: LLMError | None = None
    finish: str | None = None
    chunks = 0
    try:
        completion = model.generate(messages, on_token=gate.feed, deadline=deadline)
        finish, chunks = completion.finish_reason, completion.chunks
    except LLMError as exc:
        error, finish = exc, exc.reason
    gate.finish(complete=error is None and finish != "length")
    reply = ModelReply(dropped=gate.dropped, finish=finish, chunks=chunks,
                       first_shown_s=(gate.first_shown - start) if gate.first_shown else None)
    if not gate.kept:
        if gate.echo:
            reply.note = "the language model repeated its instructions instead of answering"
        elif gate.reasoning_cut:
            reply.note = ("the language model was still reasoning when its reply ended"
                          + (f" ({said(error.reason)})" if error is not None else ""))
        elif error is not None:
            reply.note = f"the language model did not answer ({said(error.reason)})"
        elif gate.marker:
            reply.abstained = True
            reply.note = "the language model found no answer in the articles"
        else:
            reply.note = _nothing_kept(gate.dropped)
        return reply
    reply.text, reply.cited = gate.text, gate.cited
    notes = []
    # A list of the sources is not part of the answer: leaving it out leaves nothing out.
    left_out = [d for d in gate.dropped if d.reason != "reference"]
    if left_out:
        reasons = Counter(REASONS.get(d.reason, d.reason) for d in left_out)
        n = len(left_out)
        notes.append(f"{n} sentence{'s' if n > 1 else ''} of the model's answer left out "
                     f"({'; '.join(reasons)})")
    if error is not None and error.reason in REASONS_SAID:
        notes.append(f"the answer was cut short because {said(error.reason)}, so it may be "
                     "incomplete")
    elif error is not None:
        notes.append(f"the language model stopped early ({error.reason}), so the answer may "
                     "be incomplete")
    elif finish == "length":
        notes.append("the answer reached its length limit and may be incomplete")
    if gate.marker:
        notes.append("the model also said the articles may not answer all of it")
    reply.note = "; ".join(notes) or None
    return reply


def _nothing_kept(dropped: Sequence[Dropped]) -> str:
    if not dropped:
        return "the language model's reply was empty"
    reasons = Counter(d.reason for d in dropped)
    if reasons.keys() == {"reference"}:
        return "the language model's reply was only a list of sources"
    if reasons.keys() <= {"uncited", "prompt", "marker", "incomplete", "reference"}:
        return "the model's answer cited no article"
    top = REASONS.get(reasons.most_common(1)[0][0], "failed checks")
    return f"no sentence of the model's answer passed the checks ({top})"
