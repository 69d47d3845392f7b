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
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.core.answer_model import answer_with_model
from bot.core.follow_up import clean_rewrite, keeps_follow_up
from bot.core.llm import ChatModel, LLMError
from bot.core.models import Answer, QuestionError, Source, Turn
from bot.settings import Settings
from prompts import load as load_prompt
from retrieval.answer_type import AnswerType, Expected, expect
from retrieval.lexical import tokenize
from retrieval.search import ArticleHit, Retriever, SearchResult
from retrieval.text import is_instruction_like, sentences
from retrieval.timeparse import parse_since

log = logging.getLogger(__name__)

ABSTAIN_TEXT = "The articles I have read don't answer that."
_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff\u00ad]")
_CITATION = re.compile(r"\[(\d{1,2})\](?:\[(\d{1,2})\])*")
_CITE_ANY = re.compile(r"\[(\d{1,2})\]")
# Time kept back from the model for building the extractive answer when it fails.
FALLBACK_RESERVE_S = 0.5


@dataclass(frozen=True, slots=True)
class _Picked:
    sentence: str
    article: int  # index into the search result's articles
    score: float


class AskService:
    """Answers questions from the store; blocking (adapters run it in a worker thread)."""

    def __init__(self, settings: Settings, retriever: Retriever,
                 model: ChatModel | None = None) -> None:
        self.settings = settings
        self.retriever = retriever
        self.model = model

    # -- input -----------------------------------------------------------------------------
    def validate(self, question: str) -> str:
        """The normalised question, or QuestionError saying what is wrong. Touches nothing."""
        q = unicodedata.normalize("NFKC", question or "")
        q = _ZERO_WIDTH.sub("", q)
        q = re.sub(r"\s+", " ", q).strip()
        if not q or not any(ch.isalnum() for ch in q):
            raise QuestionError("Please ask a question: the message had no words in it.")
        limit = self.settings.max_question_chars
        if len(q) > limit:
            raise QuestionError(f"That question is {len(q)} characters long; the limit is "
                                f"{limit}. Please shorten it.")
        return q

    @staticmethod
    def parse_since(value: str, now: datetime | None = None) -> datetime:
        try:
            return parse_since(value, now)
        except ValueError as exc:
            raise QuestionError(str(exc)) from None

    # -- answering -------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        *,
        history: Sequence[Turn] = (),
        since: datetime | None = None,
        outlet: str | None = None,
        now: datetime | None = None,
        prefer_article_id: str | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> Answer:
        q = self.validate(question)
        cap = self.settings.history_turns
        turns = list(history)[-cap:] if cap else []
        history_cut = len(history) > len(turns)

        # One budget for the model's whole part: the rewrite, the answer and their retries.
        start = time.monotonic()
        budget = self.settings.answer_budget_s
        deadline = start + budget - min(FALLBACK_RESERVE_S, 0.1 * budget)
        model_ok = True
        standalone = q
        context: list[str] = []
        if turns:
            rewrite, model_ok = self._condense(q, turns, min(deadline, start + 0.4 * budget))
            standalone = rewrite or q
            if standalone == q:
                # Without a model, earlier questions steer the search instead.
                context = [t.text for t in turns if t.role == "user"][-2:]

        result = self.retriever.search(
            standalone, k=self.settings.top_k, context=context, since=since, until=None,
            outlet=outlet, now=now, prefer_article_id=prefer_article_id,
        )
        base = {"question": q, "standalone_question": standalone, "history_cut": history_cut}
        if not result.articles or result.weak:
            return self._abstain(result, note="the closest articles match the question too "
                                 "weakly to answer from" if result.articles else
                                 "no article matched", **base)

        note = None
        if self.model is not None and model_ok:
            reply = answer_with_model(self.model, standalone, result, deadline=deadline,
                                      now=now, on_token=on_token)
            if reply.abstained:
                return self._abstain(result, note=reply.note, **base)
            if reply.text:
                return self._build(reply.text, reply.cited, result, mode="model",
                                   note=reply.note, **base)
            note = reply.note
        elif self.model is not None:
            note = "the language model did not answer, so this one is extractive"
        return self._extractive(standalone, result, note=note, context=context, **base)

    def _condense(self, question: str, turns: Sequence[Turn],
                  deadline: float) -> tuple[str | None, bool]:
        """A standalone rewrite of a follow-up, when it can be trusted; and whether the model
        answered at all (a model that cannot rewrite in time will not answer in time)."""
        if self.model is None:
            return None, True
        history = "\n".join(f"{t.role}: {t.text[:600]}" for t in turns)
        prompt = load_prompt("condense").format(history=history, question=question)
        try:
            text = self.model.complete([("human", prompt)], deadline=deadline)
        except LLMError:
            return None, False
        rewrite = clean_rewrite(text, self.settings.max_question_chars)
        if rewrite is None or not keeps_follow_up(question, rewrite, turns):
            log.info("follow-up rewrite %r of %r not kept", rewrite, question)
            return None, True
        return rewrite, True

    # -- extractive mode -------------------------------------------------------------------
    def _extractive(self, query: str, result: SearchResult, *, note: str | None,
                    context: Sequence[str] = (), **base: object) -> Answer:
        expected = expect(query)
        picked = _pick_sentences(query, context, result, self.retriever, expected=expected)
        if not picked:
            why = _missing(expected)
            return self._abstain(result, note=f"{note}; {why}" if note else why, **base)
        if result.time.ordering:
            epoch = datetime(1970, 1, 1, tzinfo=UTC)
            picked.sort(key=lambda p: result.articles[p.article].published_at or epoch)
        parts = [f"{p.sentence} [{p.article + 1}]" for p in picked]
        text, cited = _check_citations(" ".join(parts), len(result.articles))
        return self._build(text, cited, result, mode="extractive", note=note, **base)

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

    def _abstain(self, result: SearchResult, *, note: str | None, **base: object) -> Answer:
        closest = [_source(n, a) for n, a in enumerate(result.articles[:3], 1)]
        # The text is ours, never the model's, whoever decided to abstain.
        return Answer(text=ABSTAIN_TEXT, sources=[], abstained=True,
                      mode="extractive", note=note, closest=closest,
                      ranked_article_ids=[a.article_id for a in result.articles],
                      **base)  # type: ignore[arg-type]


def _missing(expected: Expected | None) -> str:
    """Why no sentence was picked, for the abstention's note."""
    if expected is None:
        return "no sentence of the articles matched"
    if expected.kind is AnswerType.CHOICE:
        return "no sentence of the articles about it names one of the answers offered"
    return f"no sentence of the articles about it states the {expected.kind.value} asked for"


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


# A sentence that states the kind of answer asked for (an amount, a date) must match the
# question at least this well, against the best-matching sentence, to be answered from...
TYPED_SHARE = 0.3
# ... and come from an article about the question's subject: one covering the question's
# terms at least this well against the article that covers them best. "How many seats did
# the party win?" is not answered by another party's seats, found in another article.
SUBJECT_SHARE = 0.7
# The names in a question say what it is about more than its other words do.
NAME_WEIGHT = 3.0


def _pick_sentences(question: str, context: Sequence[str], result: SearchResult,
                    retriever: Retriever, max_sentences: int = 3,
                    expected: Expected | None = None) -> list[_Picked]:
    """The sentences that best cover the question's terms, at most two per article.

    When the question asks for a kind of answer (``expected``), the answer leads with the
    best sentence that states one, and there is no answer when no well-matching sentence of
    an article about the question's subject does.
    """
    lex = retriever.lexical()
    q_terms = set(tokenize([question])[0])
    ctx_terms = set(tokenize([" ".join(context)])[0]) - q_terms if context else set()
    weights = {t: lex.idf(t) for t in q_terms}
    weights.update({t: 0.3 * lex.idf(t) for t in ctx_terms})
    total = sum(weights.values()) or 1.0

    candidates: list[tuple[float, int, str, set[str]]] = []
    n_articles = min(len(result.articles), 3)
    for ai, art in enumerate(result.articles[:n_articles]):
        seen: set[str] = set()
        for ci, chunk in enumerate(art.chunks[:3]):
            sents = [s for s in sentences(chunk.text) if 30 <= len(s) <= 600]
            tokens = tokenize(sents) if sents else []
            for s, toks in zip(sents, tokens, strict=True):
                if s in seen or is_instruction_like(s):
                    continue
                seen.add(s)
                tset = set(toks)
                cover = sum(w for t, w in weights.items() if t in tset) / total
                # Earlier articles and chunks ranked higher; a sentence still has to match.
                score = cover * (1.0 - 0.12 * ai) * (1.0 - 0.05 * ci)
                candidates.append((score, ai, s, tset))
    candidates.sort(key=lambda c: -c[0])
    if not candidates or candidates[0][0] <= 0:
        return []
    best = candidates[0][0]
    picked: list[_Picked] = []
    covered: set[str] = set()
    per_article: dict[int, int] = {}
    if expected is not None:
        article_terms = [result.article_terms.get(a.article_id, set())
                         for a in result.articles[:n_articles]]
        about = _about_subject(article_terms, weights, _name_terms(question),
                               set().union(*expected.offered), result.joint)
        lead = next((c for c in candidates if c[1] in about and expected.met_by(c[2], c[3])),
                    None)
        if lead is None or lead[0] < TYPED_SHARE * best:
            return []
        candidates.remove(lead)
        picked.append(_Picked(lead[2], lead[1], lead[0]))
        covered |= lead[3]
        per_article[lead[1]] = 1
    for score, ai, s, tset in candidates:
        if score < 0.5 * best or len(picked) >= max_sentences:
            break
        if per_article.get(ai, 0) >= 2:
            continue
        if picked:
            # A further sentence must say more about the question: cover terms the picked
            # ones do not, or continue the best article's own account.
            new = sum(w for t, w in weights.items() if t in tset and t not in covered) / total
            if new < 0.15 and not (ai == picked[0].article and score >= 0.6 * best):
                continue
            if len(tset & covered) > 0.9 * len(tset):
                continue  # says again what is already picked
        picked.append(_Picked(s, ai, score))
        covered |= tset
        per_article[ai] = per_article.get(ai, 0) + 1
    return picked


def _about_subject(article_terms: Sequence[set[str]], weights: dict[str, float],
                   names: set[str], offered: set[str], joint: bool) -> set[int]:
    """The articles (indexes) that cover the question's terms nearly as well as the best.

    The terms of the answers a choice offers do not count: an article about lethal injection
    is not about the prisoner whose execution the question asks about. When the first two
    articles answer together, both count.
    """
    subject = {t: w * (NAME_WEIGHT if t in names else 1.0) for t, w in weights.items()
               if t not in offered}
    covers = [sum(w for t, w in subject.items() if t in terms) for terms in article_terms]
    top = max(covers, default=0.0)
    about = {ai for ai, c in enumerate(covers) if c >= SUBJECT_SHARE * top}
    return about | {0, 1} if joint else about


_CAPITALISED = re.compile(r"(?<=[\w,;:'\"()-] )[A-Z][\w'-]*")


def _name_terms(question: str) -> set[str]:
    """Index terms of the capitalised words inside the question: the names it is about."""
    words = _CAPITALISED.findall(question)
    return set(tokenize([" ".join(words)])[0]) if words else set()
