"""Questions in, grounded and cited answers out (language model, or extractive fallback).

The flow: validate -> condense a follow-up -> hybrid search -> abstain when the evidence is
weak -> answer from numbered sources -> check every cited number -> renumber the sources
actually cited. With no model, or when the model fails, the answer is built from the
best-matching sentences of the articles, with the same citations.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo

from bot.core.answer_model import answer_with_model, said
from bot.core.follow_up import clean_rewrite, keeps_follow_up, search_context
from bot.core.language import ENGLISH_ONLY, not_english
from bot.core.llm import ChatModel, LLMError
from bot.core.models import Answer, QuestionError, Source, StoreError, Turn
from bot.settings import Settings
from prompts import load as load_prompt
from retrieval import extractive
from retrieval.answer_type import story_request
from retrieval.search import ArticleHit, Retriever, SearchResult
from retrieval.store import StoreUnavailable
from retrieval.timeparse import parse_since, spoken, zone_named

log = logging.getLogger(__name__)

ABSTAIN_TEXT = "The articles I have read don't answer that."
# "Tell me more" once every sentence found about the story has been given.
ALL_SAID_TEXT = "That is all the articles I have read say about it."
_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff\u00ad]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_WORD = re.compile(r"[^\W\d_]+")
_CITATION = re.compile(r"\[(\d{1,2})\](?:\[(\d{1,2})\])*")
_CITE_ANY = re.compile(r"\[(\d{1,2})\]")
# Time kept back from the model for building the extractive answer when it fails.
FALLBACK_RESERVE_S = 1.0


def latin_lookalikes(text: str) -> str:
    """Letters of another script standing in for Latin ones inside a Latin word ("Nеtflix"
    with a Cyrillic е), written as the Latin letters they imitate; a word wholly in one
    script is left as it is."""
    if text.isascii():
        return text
    from confusable_homoglyphs import categories, confusables

    def latin(word: str) -> str:
        scripts = {categories.alias(ch) for ch in word}
        if "LATIN" not in scripts or scripts <= {"LATIN", "COMMON"}:
            return word
        out: list[str] = []
        for ch in word:
            if categories.alias(ch) not in ("LATIN", "COMMON"):
                found = confusables.is_confusable(ch, preferred_aliases=["latin"])
                glyphs = [g["c"] for g in found[0]["homoglyphs"]] if found else []
                glyph = next((g for g in glyphs if len(g) == 1 and g.isascii()), None)
                if glyph is not None:
                    # Unicode's prototype of the upright stroke is "l"; a capital stands for I.
                    ch = "I" if glyph == "l" and ch.isupper() else glyph
            out.append(ch)
        return "".join(out)

    return _WORD.sub(lambda m: latin(m.group(0)), text)


def validate_question(question: str, limit: int) -> str:
    """The normalised question, or QuestionError saying what is wrong; needs no store, so
    a command line can refuse bad input before it opens anything."""
    if _SURROGATE.search(question or ""):
        # What Python makes of bytes that are not UTF-8 (a terminal set to Latin-1); no
        # tokenizer or database takes it.
        raise QuestionError("That question is not UTF-8 text; please type it again.")
    q = unicodedata.normalize("NFKC", question or "")
    q = latin_lookalikes(_ZERO_WIDTH.sub("", q))
    q = re.sub(r"\s+", " ", q).strip()
    if not q or not any(ch.isalnum() for ch in q):
        raise QuestionError("Please ask a question: the message had no words in it.")
    if len(q) > limit:
        raise QuestionError(f"That question is {len(q)} characters long; the limit is "
                            f"{limit}. Please shorten it.")
    return q


class AskService:
    """Answers questions from the store; blocking (adapters run it in a worker thread)."""

    def __init__(self, settings: Settings, retriever: Retriever,
                 model: ChatModel | None = None,
                 guild_zones: Callable[[int], str | None] | None = None) -> None:
        self.settings = settings
        self.retriever = retriever
        self.model = model
        self.guild_zones = guild_zones  # a server's time zone name, if it set one

    # -- input -----------------------------------------------------------------------------
    def validate(self, question: str) -> str:
        """The normalised question, or QuestionError saying what is wrong. Touches nothing."""
        return validate_question(question, self.settings.max_question_chars)

    def zone(self, guild_id: int | None = None) -> tzinfo:
        """Where "today" begins for a question: the server's time zone (``/brief
        timezone``) when it has set one, else NEWSBOT_TIMEZONE."""
        name = self.guild_zones(guild_id) if guild_id is not None and self.guild_zones else None
        # A zone name this machine no longer knows reads as the default.
        return (zone_named(name) if name else None) or self.settings.zone

    def parse_since(self, value: str, now: datetime | None = None,
                    zone: tzinfo | None = None) -> datetime:
        """A since option read in ``zone`` (default NEWSBOT_TIMEZONE), or QuestionError.
        Touches nothing: adapters check it before answering."""
        try:
            return parse_since(value, (now or datetime.now(UTC)).astimezone(
                zone or self.settings.zone))
        except ValueError as exc:
            raise QuestionError(str(exc)) from None

    # -- answering -------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        *,
        history: Sequence[Turn] = (),
        since: datetime | str | None = None,
        outlet: str | None = None,
        now: datetime | None = None,
        prefer_article_id: str | None = None,
        on_token: Callable[[str], None] | None = None,
        guild_id: int | None = None,
    ) -> Answer:
        """``guild_id``: the server asked in, whose time zone says where "today" begins (and
        a ``since`` given as the member typed it, "today" or "2025-05-01")."""
        q = self.validate(question)
        zone = self.zone(guild_id)
        if isinstance(since, str):
            since = self.parse_since(since, now, zone)
        cap = self.settings.history_turns
        turns = list(history)[-cap:] if cap else []
        history_cut = len(history) > len(turns)

        if story_request(q) == "source" and any(
                t.role == "user" and story_request(t.text) != "source" for t in turns):
            return self._sources_of_last(q, turns, history_cut=history_cut, since=since,
                                         outlet=outlet, now=now, zone=zone,
                                         prefer_article_id=prefer_article_id)

        # One budget for the model's whole part: the rewrite, the answer and their retries.
        start = time.monotonic()
        budget = self.settings.answer_budget_s
        deadline = start + budget - min(FALLBACK_RESERVE_S, 0.1 * budget)
        model_error: str | None = None
        standalone = q
        context: list[str] = []
        if turns:
            rewrite, model_error = self._condense(q, turns,
                                                  min(deadline, start + 0.4 * budget))
            standalone = rewrite or q
            if standalone == q:
                # Without a model, earlier questions steer the search instead.
                context = search_context([t.text for t in turns if t.role == "user"])

        try:
            result = self.retriever.search(
                standalone, k=self.settings.top_k, context=context, since=since, until=None,
                outlet=outlet, now=now, prefer_article_id=prefer_article_id, zone=zone,
            )
        except StoreUnavailable as exc:  # e.g. the Chroma server went away: no model call
            raise StoreError(str(exc)) from None
        base = {"question": q, "standalone_question": standalone, "history_cut": history_cut}
        if result.digest and not result.articles:
            # "What's new?" with a since option names no period of its own: the option is it.
            when = (f"from {spoken(result.time.phrase)}" if result.time.phrase
                    else f"since {since.astimezone(zone):%Y-%m-%d}" if since
                    else "from the time asked about")
            if outlet:
                # The period may have news; not from the source asked for.
                when = f"by {outlet} {when}"
            return self._abstain(result, note=f"no dated article {when}",
                                 text=f"I have read no article {when} yet.", **base)
        if not result.articles or result.weak:
            return self._abstain(result, note="the closest articles match the question too "
                                 "weakly to answer from" if result.articles else
                                 "no article matched", **base)

        note = None
        if result.digest:
            pass  # "what's new?": the newest articles by their leads; a model adds nothing
        elif self.model is not None and model_error is None:
            # The model is told today's date where the question is asked.
            reply = answer_with_model(self.model, standalone, result, deadline=deadline,
                                      now=(now or datetime.now(UTC)).astimezone(zone),
                                      on_token=on_token)
            if reply.abstained:
                return self._abstain(result, note=reply.note, **base)
            if reply.text:
                return self._build(reply.text, reply.cited, result, mode="model",
                                   note=reply.note, **base)
            note = reply.note
        elif self.model is not None:
            note = f"the language model did not answer ({said(model_error)})"
        earlier = "\n".join(t.text for t in turns if t.role == "assistant")
        return self._extractive(standalone, result, note=note, now=now, since=since,
                                earlier=earlier, **base)

    def _condense(self, question: str, turns: Sequence[Turn],
                  deadline: float) -> tuple[str | None, str | None]:
        """A standalone rewrite of a follow-up, when it can be trusted; and why the model did
        not answer at all, if it did not (a model that cannot rewrite in time will not answer
        in time)."""
        if self.model is None:
            return None, None
        history = "\n".join(f"{t.role}: {t.text[:600]}" for t in turns)
        prompt = load_prompt("condense").format(history=history, question=question)
        try:
            text = self.model.complete([("human", prompt)], deadline=deadline)
        except LLMError as exc:
            return None, exc.reason
        rewrite = clean_rewrite(text, self.settings.max_question_chars)
        if rewrite is None or not keeps_follow_up(question, rewrite, turns):
            log.info("follow-up rewrite %r of %r not kept", rewrite, question)
            return None, None
        return rewrite, None

    # -- extractive mode -------------------------------------------------------------------
    def _extractive(self, query: str, result: SearchResult, *, note: str | None,
                    now: datetime | None = None, since: datetime | None = None,
                    earlier: str = "", **base: object) -> Answer:
        found = extractive.answer(query, result, self.retriever, earlier=earlier)
        if found.verdict == "none":
            return self._abstain(result, note=f"{note}; {found.note}" if note else found.note,
                                 text=ALL_SAID_TEXT if found.exhausted else ABSTAIN_TEXT,
                                 **base)
        if found.verdict == "partial":
            # The story is there but not what was asked: say so, and quote the closest
            # sentence, cited by its number among the closest articles. Less firmly when that
            # sentence may answer in other words.
            lead = found.picked[0]
            opening = ("The articles may not say that in so many words" if found.unsure
                       else f"The articles don't say {found.missing}")
            text = f"{opening}; the closest they come: {lead.sentence} [{lead.article + 1}]"
            return self._abstain(result, note=f"{note}; {found.note}" if note else found.note,
                                 text=text, **base)
        picked = list(found.picked)
        tf = result.time
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        # "Which came first?", and the stories of a past week, month or year, read as a
        # timeline; the news of a day, or of a period still going on, newest first.
        past = (tf.named_since is not None and tf.named_until is not None
                and tf.named_until <= (now or datetime.now(UTC))
                and tf.named_until - tf.named_since > timedelta(days=2))
        if tf.ordering or (result.digest and past):
            picked.sort(key=lambda p: result.articles[p.article].published_at or epoch)
        elif result.digest:
            picked.sort(key=lambda p: result.articles[p.article].published_at or epoch,
                        reverse=True)
        if result.digest:  # a list of stories, one line each
            text = "\n".join(f"- {p.sentence} [{p.article + 1}]" for p in picked)
            days = self.retriever.params.recent_days
            newest = result.articles[0].published_at
            # Asked since a date, the list is that period's, however old.
            if (not result.time.bounded and since is None and newest is not None
                    and newest < (now or datetime.now(UTC)) - timedelta(days=days)):
                text = f"Nothing in the last {days} days; the newest I have read:\n{text}"
        else:
            text = " ".join(f"{p.sentence} [{p.article + 1}]" for p in picked)
        text, cited = _check_citations(text, len(result.articles))
        return self._build(text, cited, result, mode="extractive", note=note, **base)

    def _sources_of_last(self, q: str, turns: Sequence[Turn], *, history_cut: bool,
                         since: datetime | None, outlet: str | None, now: datetime | None,
                         zone: tzinfo, prefer_article_id: str | None) -> Answer:
        """"Source?": the reports the last answer quoted. The question it answered is
        searched again as it was asked (with its own conversation), and the articles holding
        the answer's sentences are given; the best one when it quoted none (a model's own
        words)."""
        # The question answered last ("source?" twice: the question before the first), and
        # its answer.
        at = max(i for i, t in enumerate(turns)
                 if t.role == "user" and story_request(t.text) != "source")
        asked = [t.text for t in turns[: at + 1] if t.role == "user"]
        last = next((t.text for t in turns[at + 1:] if t.role == "assistant"), "")
        base = {"question": q, "standalone_question": asked[-1], "history_cut": history_cut}
        try:
            result = self.retriever.search(
                asked[-1], k=self.settings.top_k, context=search_context(asked[:-1]),
                since=since, until=None, outlet=outlet, now=now,
                prefer_article_id=prefer_article_id, zone=zone)
        except StoreUnavailable as exc:
            raise StoreError(str(exc)) from None
        if not result.articles:
            return self._abstain(result, note="no article matched", **base)
        quoted = sorted({c.article for c in extractive.candidates(result, self.retriever.params)
                         if c.text in last}) or [0]
        text = "That came from " + "; ".join(
            f"\u201c{result.articles[i].title}\u201d [{i + 1}]" for i in quoted) + "."
        return self._build(text, [i + 1 for i in quoted], result, mode="extractive", note=None,
                           **base)

    # -- shared ----------------------------------------------------------------------------
    def _build(self, text: str, cited: list[int], result: SearchResult, *, mode: str,
               note: str | None, **base: object) -> Answer:
        """Renumber the cited sources 1..m in order of first citation."""
        renumber = {old: new for new, old in enumerate(cited, 1)}
        text = _CITE_ANY.sub(lambda m: f"[{renumber[int(m.group(1))]}]", text)
        sources = [_source(new, result.articles[old - 1]) for old, new in renumber.items()]
        return Answer(text=text, sources=sources, abstained=False, mode=mode,  # type: ignore[arg-type]
                      note=note, ranked_article_ids=[a.article_id for a in result.articles],
                      **base)  # type: ignore[arg-type]

    def _abstain(self, result: SearchResult, *, note: str | None, text: str = ABSTAIN_TEXT,
                 **base: object) -> Answer:
        closest = [_source(n, a) for n, a in enumerate(result.articles[:3], 1)]
        if text == ABSTAIN_TEXT and not_english(str(base.get("question") or "")):
            text = f"{text} {ENGLISH_ONLY}"  # say so when the language may be why
        # The text is ours, never the model's, whoever decided to abstain.
        return Answer(text=text, sources=[], abstained=True,
                      mode="extractive", note=note, closest=closest,
                      ranked_article_ids=[a.article_id for a in result.articles],
                      **base)  # type: ignore[arg-type]




def _source(n: int, art: ArticleHit) -> Source:
    m = art.meta
    return Source(n=n, article_id=art.article_id, title=art.title, outlet=m.get("outlet"),
                  url=m.get("url"), published_at=art.published_at)


def _check_citations(text: str, n_sources: int) -> tuple[str, list[int]]:
    """Remove citations of sources that do not exist; list the valid ones in order."""
    cited: list[int] = []

    def keep(m: re.Match[str]) -> str:
        out = []
        for num in re.findall(r"\d+", m.group(0)):
            k = int(num)
            if 1 <= k <= n_sources:
                out.append(f"[{k}]")
                if k not in cited:
                    cited.append(k)
        return "".join(dict.fromkeys(out))

    text = _CITATION.sub(keep, text)
    text = re.sub(r"\s+([.,;:])", r"\1", re.sub(r"[ \t]{2,}", " ", text)).strip()
    return text, cited
