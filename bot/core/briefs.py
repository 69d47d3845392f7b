"""News briefs written from one article: headline, a synopsis of at most two sentences, up to
four key points and the link.

Without a model the brief is extractive: the lead gives the synopsis, and the key points are
the sentences that carry the most facts (numbers, names, dates) not already given. With a
model, the reply is parsed and checked here: a point that no sentence of the article supports
is dropped, and so is any text with a link, a web address, a mention or an instruction.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ValidationError

from bot.core.llm import ChatModel, LLMError
from bot.core.models import NewsbotError
from prompts import load as load_prompt
from retrieval.articles import Article, canonical_url, make_article_id
from retrieval.lexical import tokenize
from retrieval.text import is_instruction_like, sentences, strip_instructions, urls_in

if TYPE_CHECKING:
    from bot.core.admin import AdminService
    from bot.core.state import State

log = logging.getLogger(__name__)

MAX_POINTS = 4
HEADLINE_CHARS = 200
SYNOPSIS_CHARS = 400  # the lead's second sentence joins the first only within this
POINT_CHARS = 300  # a longer sentence is not a key point: it would be a paragraph
MIN_POINT_CHARS = 30
MODEL_INPUT_CHARS = 12_000  # the article as given to the model; briefs come from the top
# A claim is supported when one sentence of the article, or two adjacent ones, hold this
# share of its content words and every number it states.
SUPPORT_SHARE = 0.6


@dataclass(slots=True)
class Brief:
    """A news brief of one article. ``to_json`` is the documented shape."""

    headline: str
    synopsis: str
    points: list[str]
    url: str | None
    published_at: datetime | None
    outlet: str | None
    article_id: str
    mode: Literal["model", "extractive"] = "extractive"
    notes: list[str] = field(default_factory=list)  # what the checks dropped, and why
    model_error: str | None = None  # why the model did not answer, when it was asked

    def to_json(self) -> dict[str, object]:
        return {
            "headline": self.headline,
            "synopsis": self.synopsis,
            "points": list(self.points),
            "url": self.url,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "outlet": self.outlet,
            "article_id": self.article_id,
        }


# --- facts ---------------------------------------------------------------------------------

_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|"
           "December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec")
_WEEKDAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_DATE = re.compile(
    rf"\b(?:(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTHS})\.?(?:\s+\d{{4}})?"
    rf"|(?:{_MONTHS})\s+\d{{4}}|{_WEEKDAYS})\b"
)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:\s?(?:%|per ?cent|million|billion|trillion|"
                     r"thousand|bn|m|km|kg|mph))?(?!\w)", re.I)
_NAME = re.compile(r"\b[A-Z][\w'’.-]*[\w](?:\s+(?:(?:of|de|del|la|van|von|bin|al|the)\s+)?"
                   r"[A-Z][\w'’.-]*[\w])*")
# Capitalised words that start sentences or name months and days, not people or places.
_NOT_NAMES_TEXT = """
A An The In On At For From By With And But Or Of To It Its He She They We I His Her Their Our
This That These Those There Then When While After Before During Since As If Once However
Meanwhile Also According Although Though Yet Still So Some Many Most Several Both Each Every
Other Another One Two Three Four Five Six Seven Eight Nine Ten No Not Mr Mrs Ms Dr Sir Today
Yesterday Tomorrow Last Next Earlier Later Now Here What Who Why How Where Which Such All Any
"""
_NOT_NAMES = (frozenset(_NOT_NAMES_TEXT.split()) | frozenset(_MONTHS.split("|"))
              | frozenset(_WEEKDAYS.split("|")))


def _norm_number(raw: str) -> str:
    """A number as digits only, so "$250,000" and "250000" state the same figure."""
    digits = re.match(r"\d+(?:[.,]\d+)*", raw)
    value = digits.group(0) if digits else raw
    # Thousands separators go; a decimal point stays ("2.5" is not "25").
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", value):
        value = value.replace(",", "")
    return value.rstrip(".")


_SPELLED = re.compile(r"\b(two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|"
                      r"thirty|forty|fifty|hundreds?|thousands?|dozens?|millions?|billions?)\b",
                      re.I)


def numbers_in(text: str) -> set[str]:
    """The figures a text states, normalised (years included: a year is a fact too)."""
    return {_norm_number(m.group(0)) for m in _NUMBER.finditer(text)}


def facts_in(sentence: str, known_names: frozenset[str] = frozenset()) -> set[tuple[str, str]]:
    """The distinct facts a sentence carries: ("number", ...), ("date", ...), ("name", ...).

    A capitalised word opening the sentence counts as a name only when the article also
    writes it capitalised mid-sentence (``known_names``): "Officials said" is not a name.
    """
    facts: set[tuple[str, str]] = set()
    dated = ""
    for m in _DATE.finditer(sentence):
        facts.add(("date", m.group(0).lower()))
        dated += " " + m.group(0)
    for num in numbers_in(sentence):
        if num not in numbers_in(dated):
            facts.add(("number", num))
    facts.update(("number", m.group(0).lower()) for m in _SPELLED.finditer(sentence))
    for m in _NAME.finditer(sentence):
        words = [w for w in m.group(0).split() if w.strip(".") not in _NOT_NAMES]
        if not words:
            continue
        name = " ".join(words)
        if m.start() == 0 and len(m.group(0).split()) == 1 and name not in known_names:
            continue
        if _DATE.fullmatch(name):
            continue
        facts.add(("name", name.lower()))
    return facts


def _mid_sentence_names(sents: list[str]) -> frozenset[str]:
    names: set[str] = set()
    for s in sents:
        for m in _NAME.finditer(s):
            if m.start() > 0:
                names.update(w for w in m.group(0).split() if w not in _NOT_NAMES)
    return frozenset(names)


# --- safety --------------------------------------------------------------------------------

_DOMAIN = re.compile(
    r"(?<![\w@.])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:com|org|net|io|gov|edu|info|"
    r"biz|co|uk|us|de|fr|ly|gg|xyz|app|dev|me|tv|news|ai|ru|cn|in|au|ca|eu|site|online|shop|"
    r"link|click|top|example)\b(?!\.\w)",
    re.I,
)
_MENTION = re.compile(r"@everyone|@here|<@[!&]?\d+>|<#\d+>|(?<![\w.])@\w{2,}")


def unsafe_reason(text: str) -> str | None:
    """Why a piece of brief text may not be shown, or None when it may."""
    if urls_in(text):
        return "a link"
    if _DOMAIN.search(text):
        return "a web address"
    if _MENTION.search(text):
        return "a mention"
    if is_instruction_like(text):
        return "instruction-like text"
    return None


def _usable(sentence: str) -> bool:
    return unsafe_reason(sentence) is None


# --- support -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Evidence:
    """The article's sentences, their tokens and figures, for support checks."""

    sents: list[str]
    tokens: list[set[str]]
    numbers: list[set[str]]

    @classmethod
    def of(cls, article: Article) -> _Evidence:
        sents = sentences(f"{article.title}.\n{article.text}")
        toks = tokenize(sents) if sents else []
        return cls(sents, [set(t) for t in toks], [numbers_in(s) for s in sents])

    def supports(self, claim: str) -> bool:
        """One sentence of the article, or two adjacent ones, state the claim."""
        claim_tokens = set(tokenize([claim])[0])
        if not claim_tokens:
            return False
        claim_numbers = numbers_in(claim)
        for i in range(len(self.sents)):
            for j in (i, i + 1):
                if j >= len(self.sents):
                    continue
                toks = self.tokens[i] | self.tokens[j]
                nums = self.numbers[i] | self.numbers[j]
                if not claim_numbers <= nums:
                    continue
                if len(claim_tokens & toks) >= SUPPORT_SHARE * len(claim_tokens):
                    return True
        return False


# --- writing -------------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.6 else cut).rstrip(" ,;:") + "…"


def _lead(sents: list[str]) -> list[str]:
    """The synopsis: the first usable sentence, and the second when both stay short."""
    usable = [s for s in sents if _usable(s)]
    if not usable:
        return []
    lead = [usable[0]]
    if len(usable) > 1 and len(usable[0]) + 1 + len(usable[1]) <= SYNOPSIS_CHARS:
        lead.append(usable[1])
    return lead


def _key_points(sents: list[str], synopsis: list[str], limit: int = MAX_POINTS) -> list[str]:
    """The sentences carrying the most facts not yet given, greedily, in article order."""
    names = _mid_sentence_names(sents)
    covered: set[tuple[str, str]] = set()
    for s in synopsis:
        covered |= facts_in(s, names)
    lead_tokens = set(tokenize([" ".join(synopsis)])[0]) if synopsis else set()
    pool: list[tuple[int, str, set[tuple[str, str]], set[str]]] = []
    for i, s in enumerate(sents):
        if s in synopsis or not (MIN_POINT_CHARS <= len(s) <= POINT_CHARS) or not _usable(s):
            continue
        toks = set(tokenize([s])[0])
        if toks and len(toks & lead_tokens) > 0.8 * len(toks):
            continue  # the synopsis says it already
        pool.append((i, s, facts_in(s, names), toks))
    chosen: list[tuple[int, str]] = []
    while pool and len(chosen) < limit:
        best = max(pool, key=lambda p: (len(p[2] - covered), -p[0]))
        if not best[2] - covered:
            break
        chosen.append((best[0], best[1]))
        covered |= best[2]
        pool.remove(best)
    return [s for _, s in sorted(chosen)]


def extractive_brief(article: Article) -> Brief:
    """A brief from the article's own sentences: the lead, then the most factual sentences."""
    sents = sentences(article.text)
    lead = _lead(sents)
    synopsis = _clip(" ".join(lead), SYNOPSIS_CHARS + 100) if lead else ""
    headline = article.title if _usable(article.title) else (lead[0] if lead else "News brief")
    return Brief(
        headline=_clip(headline, HEADLINE_CHARS),
        synopsis=synopsis,
        points=[_clip(p, POINT_CHARS) for p in _key_points(sents, lead)],
        url=article.url, published_at=article.published_at, outlet=article.outlet,
        article_id=article.id, mode="extractive",
    )


class _Reply(BaseModel):
    headline: str = ""
    synopsis: str = ""
    points: list[str] = []


def parse_reply(raw: str) -> _Reply | None:
    """The model's JSON object (a code fence or chatter around it is tolerated), or None."""
    start, end = raw.find("{"), raw.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(raw[start : end + 1])
        if isinstance(data.get("points"), list):
            data["points"] = [p for p in data["points"] if isinstance(p, str)]
        return _Reply.model_validate(data)
    except (ValueError, ValidationError, AttributeError):
        return None


def check_reply(reply: _Reply, article: Article) -> Brief:
    """The model's brief with every unsupported or unsafe part dropped or replaced."""
    evidence = _Evidence.of(article)
    fallback = extractive_brief(article)
    notes: list[str] = []

    headline = " ".join(reply.headline.split())
    why = unsafe_reason(headline) if headline else "empty"
    if why is None and not evidence.supports(headline):
        why = "not supported by the article"
    if why:
        notes.append(f"headline replaced ({why})")
        headline = fallback.headline

    kept_synopsis: list[str] = []
    for s in sentences(reply.synopsis)[:2]:
        why = unsafe_reason(s) or (None if evidence.supports(s) else "not supported")
        if why:
            notes.append(f"synopsis sentence dropped ({why}): {_clip(s, 80)}")
        else:
            kept_synopsis.append(s)
    synopsis = " ".join(kept_synopsis) if kept_synopsis else fallback.synopsis
    if not kept_synopsis:
        notes.append("synopsis taken from the article's lead")

    points: list[str] = []
    seen: set[frozenset[str]] = set()
    for p in reply.points:
        p = " ".join(p.split()).lstrip("-•* ").strip()
        if not p:
            continue
        why = unsafe_reason(p) or (None if evidence.supports(p) else "not supported")
        if why:
            notes.append(f"point dropped ({why}): {_clip(p, 80)}")
            continue
        key = frozenset(tokenize([p])[0])
        if key in seen:
            continue
        seen.add(key)
        points.append(_clip(p, POINT_CHARS))
        if len(points) == MAX_POINTS:
            break
    if not points and fallback.points:
        notes.append("key points taken from the article")
        points = fallback.points
    for note in notes:
        log.info("brief of %s: %s", article.id, note)
    return Brief(
        headline=_clip(headline, HEADLINE_CHARS), synopsis=_clip(synopsis, SYNOPSIS_CHARS + 100),
        points=points, url=article.url, published_at=article.published_at,
        outlet=article.outlet, article_id=article.id, mode="model", notes=notes,
    )


def model_brief(article: Article, model: ChatModel) -> Brief:
    """A brief written by the model from the article alone, checked against the article.

    Falls back to the extractive brief when the model fails or its reply cannot be read.
    """
    system = load_prompt("brief").format(max_points=MAX_POINTS)
    body = strip_instructions(article.text)[:MODEL_INPUT_CHARS]
    try:
        raw = model.complete([("system", system), ("human", f"{article.title}\n\n{body}")])
    except LLMError as exc:
        brief = extractive_brief(article)
        brief.notes.append("the model did not answer, so the brief is extractive")
        brief.model_error = exc.reason
        return brief
    reply = parse_reply(raw)
    if reply is None:
        brief = extractive_brief(article)
        brief.notes.append("the model's reply was not a brief, so the brief is extractive")
        return brief
    return check_reply(reply, article)


def write_brief(article: Article, model: ChatModel | None = None) -> Brief:
    """The brief of an article: by the model when one is configured, else extractive."""
    return model_brief(article, model) if model is not None else extractive_brief(article)


class BriefService:
    """Briefs of articles in the registry; a URL not yet there is ingested first."""

    def __init__(self, state: State, admin: AdminService, model: ChatModel | None = None) -> None:
        self.state = state
        self.admin = admin
        self.model = model

    def find(self, ref: str) -> Article | None:
        """The registered article with this id, or at this URL (canonical or not)."""
        ref = ref.strip()
        if not ref:
            return None
        article = self.state.get_article(ref)
        if article is None and ref.startswith(("http://", "https://")):
            link = canonical_url(ref)
            if link:
                article = self.state.get_article(make_article_id(link, "", ""))
        return article

    def resolve(self, ref: str) -> Article:
        """The article ``ref`` names; a new URL of an article page is fetched and ingested.
        NewsbotError if there is none, or if the URL is a feed."""
        article = self.find(ref)
        if article is not None:
            return article
        if not ref.strip().startswith(("http://", "https://")):
            raise NewsbotError(f"no article with id {ref.strip()!r}; give an article id from "
                               "the registry or the article's URL")
        return self._ingest_page(ref.strip())

    def _ingest_page(self, url: str) -> Article:
        """Fetch ``url`` once and record it when it is an article page. A feed is refused:
        taking in a whole feed is following a source, an admin's action, and moderators
        reach this through ``/brief post``."""
        from bot.core.admin import IngestReport, normalise_spec
        from retrieval.sources import Skipped
        from retrieval.sources.feeds import FeedError, sniff
        from retrieval.sources.web import Failure, Fetcher, NotModified, page_article

        settings = self.admin.settings
        page = Fetcher(timeout_s=settings.fetch_timeout_s, max_bytes=settings.max_feed_bytes,
                       allow_private=settings.allow_private_urls).get(url)
        if isinstance(page, Failure):
            raise NewsbotError(f"could not read an article at {url}: {page.reason}")
        if isinstance(page, NotModified) or not page.body.strip():
            raise NewsbotError(f"could not read an article at {url}: empty body")
        try:
            is_feed = sniff(page) is not None
        except FeedError:
            is_feed = True  # a feed, if a broken one: refused as one
        if is_feed:
            raise NewsbotError(f"{url} is a feed, not an article page: a brief is written "
                               "from one article. To follow the feed, an admin uses "
                               "`/feeds add` or `newsbot sources add`.")
        spec = normalise_spec(url)
        item = page_article(page, name=url, source=spec)
        if isinstance(item, Skipped):
            raise NewsbotError(f"could not read an article at {url}: {item.reason}")
        with self.admin.write_lock:
            # What `ingest` records for a page, from the response already read: a second
            # fetch could be answered with a feed.
            report = IngestReport()
            # Recorded perhaps under an id of its own (another source's text at that URL).
            (recorded,) = self.admin.record(spec, "page", [item], report)
            self.admin.note_ingest(report)
        self.admin.retriever.refresh()
        article = self.state.get_article(recorded.id)
        if article is None:  # removed by another writer in between
            raise NewsbotError(f"could not read an article at {url}: it was removed meanwhile")
        return article

    def write(self, article: Article) -> Brief:
        return write_brief(article, self.model)

    def preview(self, ref: str) -> Brief:
        return self.write(self.resolve(ref))
