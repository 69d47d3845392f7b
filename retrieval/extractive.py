"""The answer built from the articles' own sentences, when no language model writes one.

The candidates are the sentences of the best articles' matched chunks. Each gets a chance of
stating the answer from meaning and words together (the weights are fitted, see
:class:`~retrieval.params.SearchParams`):

- the cosine between the question's vector (the search's, pulled towards the conversation a
  follow-up continues) and the sentence's, from the embedding model already loaded, all the
  sentences of one answer in one batch; and the cosine with the question less its names,
  which is what it asks rather than whom about: "who shot Minister Varga?" is answered by
  the sentence naming the gunman, not the one restating that Varga was shot (names are the
  capitalised words inside the question: one typed in lower case keeps them);
- the IDF-weighted share of the question's terms the sentence holds (an earlier turn's terms
  count less), of its terms other than names, and how many terms it adds;
- for "who", "where", "why" and "what did she say?", whether the sentence holds a name or a
  place the question does not use, a reason, or words said;
- for a question that asks for a kind of answer (an amount, a number, a date, a year, a
  time, a length of time, a prison term), whether the sentence states one, and whether the
  question's own terms stand next to it: "how many died" is not answered by a count of
  residents, nor "what time" by a year;
- its article's and chunk's ranks, and its length.

The answer leads with the most likely sentence (of an article from the period the question
names, or of the newest report for "the latest") and adds up to three more, five for a
question asking two things. When the question asks for a kind of answer that none of the
likeliest sentences states, the answer is partial: the articles cover the story, not the fact
asked for.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np

from retrieval.answer_type import (
    Expected,
    asks_for_more,
    asks_what_was_said,
    asks_with_question_word,
    cue,
    expect,
    holds_cue,
    kind_spans,
    reports_words,
)
from retrieval.lexical import covered_share, news_words, tokenize
from retrieval.params import SearchParams
from retrieval.text import is_instruction_like, sentences

if TYPE_CHECKING:
    from retrieval.embeddings import Embedder
    from retrieval.search import Idf, Retriever, SearchResult

Verdict = Literal["answer", "partial", "none"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A sentence of a matched chunk, with what it is scored on."""

    text: str
    article: int  # rank of its article in the search result
    chunk: int  # rank of its chunk within the article
    terms: frozenset[str]
    lexical: float = 0.0
    dense: float = 0.0
    kind: float = 0.0
    score: float = 0.0


@dataclass(frozen=True, slots=True)
class Picked:
    sentence: str
    article: int  # index into the search result's articles
    score: float


@dataclass(slots=True)
class Extract:
    """The sentences picked, and whether they answer, answer in part, or not at all."""

    picked: list[Picked]
    verdict: Verdict
    expected: Expected | None = None
    missing: str = ""  # what the articles do not state, for the partial wording
    took_ms: float = 0.0
    candidates: list[Candidate] = field(default_factory=list)
    # A partial answer's closest sentence may answer in words the question does not use ("what
    # was wrong with it?": "engineers traced the fault to a failed chip"): said less firmly.
    unsure: bool = False
    # "Tell me more" when every sentence of the story found has been given already.
    exhausted: bool = False

    @property
    def note(self) -> str:
        """Why there is no full answer, for the answer's footer."""
        if self.exhausted:
            return "every sentence found about the story had been given already"
        if self.verdict == "none":
            return "no sentence of the articles matched the question well enough"
        if self.verdict == "partial" and self.unsure:
            return "the story's closest sentence uses none of the question's words"
        if self.verdict == "partial":
            return f"no sentence of the articles about it states {self.missing}"
        return ""


class SentenceVectors:
    """The vectors of sentences already embedded, most recently used kept.

    A story people ask about draws question after question answered from the same sentences;
    each is embedded once. Keyed by the model and a hash of the text, so a model change never
    reads an old vector. Safe to use from several threads.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._vectors: OrderedDict[tuple[str, bytes], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._vectors)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()

    def embed(self, embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
        """One row per text: cached rows as they are, the others embedded in one batch."""
        model = str(getattr(embedder, "model_id", type(embedder).__name__))
        keys = [(model, hashlib.blake2b(t.encode(), digest_size=16).digest()) for t in texts]
        rows: list[np.ndarray | None] = []
        with self._lock:
            for k in keys:
                v = self._vectors.get(k)
                if v is not None:
                    self._vectors.move_to_end(k)
                rows.append(v)
        todo = [i for i, v in enumerate(rows) if v is None]
        if todo:
            fresh = embedder.embed_documents([texts[i] for i in todo])
            for i, v in zip(todo, fresh, strict=True):
                rows[i] = v
        with self._lock:
            self.hits += len(texts) - len(todo)
            self.misses += len(todo)
            if self.size > 0:
                for i in todo:
                    self._vectors[keys[i]] = rows[i]  # type: ignore[assignment]
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack(rows).astype(np.float32, copy=False)  # type: ignore[arg-type]


def candidates(result: SearchResult, p: SearchParams) -> list[Candidate]:
    """The distinct sentences of the best articles' matched chunks, in rank order."""
    out: list[Candidate] = []
    seen: set[str] = set()
    texts: list[tuple[str, int, int]] = []
    for ai, art in enumerate(result.articles[: p.answer_articles]):
        around = " ".join(c.text for c in art.chunks[: p.answer_chunks])
        for ci, chunk in enumerate(art.chunks[: p.answer_chunks]):
            for s in sentences(chunk.text):
                if s in seen or not 25 <= len(s) <= 600 or is_instruction_like(s, around):
                    continue
                seen.add(s)
                texts.append((s, ai, ci))
    if not texts:
        return out
    for (s, ai, ci), toks in zip(texts, tokenize([t[0] for t in texts]), strict=True):
        out.append(Candidate(s, ai, ci, frozenset(toks)))
    return out


def term_weights(question: str, context_terms: Sequence[str], idf: Idf,
                 p: SearchParams) -> dict[str, float]:
    """IDF of the question's terms, and a share of it for the earlier turns' terms."""
    q_terms = [t for t in dict.fromkeys(tokenize([question])[0]) if len(t) > 1]
    weights = {t: idf.idf(t) for t in q_terms}
    for t in context_terms:
        if t not in weights:
            weights[t] = p.context_term_weight * idf.idf(t)
    return weights


@lru_cache(maxsize=20000)
def _stem(word: str) -> str:
    toks = tokenize([word])[0]
    return toks[0] if toks else ""


_WORD = re.compile(r"[\w'$£€¥%-]+")


def kind_evidence(sentence: str, expected: Expected, predicate: dict[str, float],
                  window: int) -> float:
    """How well ``sentence`` states the kind of answer asked for, next to the question's terms.

    0 when it states none; else one half for stating one, plus half the best, over what it
    states, of the IDF share of the question's ``predicate`` terms within ``window`` words
    (1 when the question has no such terms: "when did the strike start?" asks for a date).
    """
    spans = kind_spans(expected, sentence)
    if not spans:
        return 0.0
    total = sum(predicate.values())
    if total <= 0:
        return 1.0
    words = [(m.start(), _stem(m.group(0).lower())) for m in _WORD.finditer(sentence)]
    best = 0.0
    for start, end in spans:
        at = [i for i, (pos, _) in enumerate(words) if start <= pos < end] or [
            min(range(len(words)), key=lambda i: abs(words[i][0] - start))] if words else []
        if not at:
            continue
        lo, hi = max(0, at[0] - window), min(len(words), at[-1] + window + 1)
        near = {w for _, w in words[lo:hi]}
        best = max(best, sum(v for t, v in predicate.items() if t in near) / total)
    return 0.5 + 0.5 * best


def score(cands: list[Candidate], weights: dict[str, float], vector: np.ndarray | None,
          embedder: Embedder | None, expected: Expected | None, predicate: dict[str, float],
          p: SearchParams, cache: SentenceVectors | None = None, question: str = "",
          asked: np.ndarray | None = None) -> list[Candidate]:
    """Every candidate with its chance of stating the answer, most likely first.

    Only the likeliest by words are embedded (``cache`` keeps their vectors); the others are
    given the mean cosines of those, so a sentence of another article can still follow.
    Besides the cosine with the question's ``vector``, they are compared with ``asked``, the
    vector of the question less its names: what is asked, not whom about. A sentence that
    restates the story the question names shares its names; the one that answers is closer
    to what it asks. ``question`` gives the cue of a question that expects no kind of answer
    (:func:`~retrieval.answer_type.cue`): without it, no sentence is scored on one.
    """
    if not cands:
        return []
    total = sum(weights.values()) or 1.0
    predicate_total = sum(predicate.values())
    looks_for = cue(question) if expected is None and question else None
    rows = []
    for c in cands:
        lexical = sum(w for t, w in weights.items() if t in c.terms) / total
        kind = kind_evidence(c.text, expected, predicate, p.kind_window) if expected else 0.0
        new = sum(1 for t in c.terms if t not in weights)
        held = (sum(w for t, w in predicate.items() if t in c.terms) / predicate_total
                if predicate_total else 0.0)  # of the question's terms other than names
        hint = float(looks_for is not None and holds_cue(looks_for, question, c.text))
        logit = (p.sentence_lexical * lexical + p.sentence_kind * kind
                 + p.sentence_predicate * held + p.sentence_cue * hint
                 + p.sentence_novelty * min(new, 20) / 20
                 + p.sentence_length * len(c.text) / 300 + p.article_rank * c.article
                 + p.chunk_rank * c.chunk + p.sentence_bias)
        rows.append((logit, lexical, kind, c))
    # Only the likeliest by words are embedded: the model's time is most of an answer's.
    rows.sort(key=lambda r: -r[0])
    dense = np.zeros(len(rows), dtype=np.float32)
    meaning = np.zeros(len(rows), dtype=np.float32)
    n = min(p.dense_sentences, len(rows))
    if vector is not None and embedder is not None and n:
        texts = [r[3].text for r in rows[:n]]
        vectors = _embed(embedder, texts, cache)
        dense[:n] = vectors @ vector
        dense[n:] = float(dense[:n].mean())
        if asked is not None:
            meaning[:n] = vectors @ asked
            meaning[n:] = float(meaning[:n].mean())
    out = []
    for (logit, lexical, kind, c), d, m in zip(rows, dense, meaning, strict=True):
        chance = 1.0 / (1.0 + float(np.exp(-(logit + p.sentence_dense * float(d)
                                              + p.sentence_unnamed * float(m)))))
        out.append(Candidate(c.text, c.article, c.chunk, c.terms, lexical, float(d), kind,
                             chance))
    out.sort(key=lambda c: -c.score)
    return out


def _embed(embedder: Embedder, texts: Sequence[str],
           cache: SentenceVectors | None) -> np.ndarray:
    return cache.embed(embedder, texts) if cache is not None else np.asarray(
        embedder.embed_documents(list(texts)), dtype=np.float32)


def _asked(question: str, result: SearchResult, embedder: Embedder | None,
           cache: SentenceVectors | None) -> np.ndarray | None:
    """The vector of the question less its names; the search's own when it has none and is
    not pulled towards a conversation (the same vector: no second embedding), or when
    nothing but names is asked: "who is Tomas Brody?" less its names is "who is ?", and a
    question typed in title case ("Who Won The Final?") is all capitalised words."""
    if embedder is None or result.vector is None:
        return None
    unnamed = _CAPITALISED.sub("", question)
    if unnamed == question and not result.context_terms:
        return result.vector
    if not any(len(t) > 1 for t in tokenize([unnamed])[0]):
        return result.vector
    return _embed(embedder, [unnamed], cache)[0]


def answer(question: str, result: SearchResult, retriever: Retriever, *,
           earlier: str = "") -> Extract:
    """The sentences that answer ``question`` from ``result``'s articles, best first, scored
    with the retriever's index weights, embedding model and parameters. ``earlier``: what
    the conversation has said already, which "tell me more" does not repeat."""
    return answer_with(question, result, retriever.lexical(), retriever.embedder,
                       retriever.params, retriever.sentence_vectors, earlier=earlier)


def answer_with(question: str, result: SearchResult, idf: Idf, embedder: Embedder | None,
                p: SearchParams, cache: SentenceVectors | None = None, *,
                earlier: str = "") -> Extract:
    """:func:`answer` with its parts given (``embedder`` None: words only)."""
    t0 = time.perf_counter()
    if result.digest:
        # "What's new?": each of the newest articles by the sentence it starts with.
        leads: dict[int, Picked] = {}
        for c in candidates(result, p):
            leads.setdefault(c.article, Picked(c.text, c.article, 1.0))
        picked = list(leads.values())[: p.answer_sentences]
        return Extract(picked, "answer" if picked else "none", None, _missing(None),
                       (time.perf_counter() - t0) * 1000, [])
    expected = expect(question)
    weights = term_weights(question, result.context_terms, idf, p)
    predicate = _predicate(question, weights, expected)
    cands = candidates(result, p)
    asked = _asked(question, result, embedder, cache) if cands else None
    scored = score(cands, weights, result.vector, embedder, expected, predicate, p, cache,
                   question, asked)
    if result.on_story:
        # Answered for being the conversation's story, not for its words: only that story's
        # sentences answer, however likely another's ("what did he say?" is no quote of it).
        scored = [c for c in scored if c.article == 0]
    if not scored:
        return Extract([], "none", expected, _missing(expected),
                       (time.perf_counter() - t0) * 1000, scored)
    lead = (_lede(question, result, scored) if expected is None else None) or _lead(
        scored, result, p.lead_share)
    # The search's first article counts as on the subject, whatever names and terms its
    # matched chunks hold: they are a few of its paragraphs, and the search, which weighed
    # the whole question, put it first.
    about = _about(question, result, weights, expected, p.subject_share,
                   p.subject_missing_names, p.story_hold, idf) | {0}
    if result.story_terms and lead.article not in about:
        # "When did it start?" of the conversation's story: another report's "starting
        # price" and date match its one word, not its subject.
        lead = next((c for c in scored if c.article in about), lead)
    on_subject = [c for c in scored if c.article in about]
    if result.story_terms and asks_for_more(question):
        # "Tell me more": the story's sentences not given yet, likeliest first.
        return _more(on_subject, earlier, p, time.perf_counter() - t0, scored)
    if expected is not None and not any(c.kind > 0 for c in on_subject[: p.kind_sentences]):
        # The story is there, the kind of answer asked for is not: the closest it comes is
        # its likeliest sentence (another story's amount or date does not answer).
        closest = on_subject[0] if on_subject else lead
        return Extract([Picked(closest.text, closest.article, closest.score)], "partial",
                       expected, _missing(expected), (time.perf_counter() - t0) * 1000,
                       scored)
    if (expected is None and asks_what_was_said(question)
            and not any(reports_words(c.text)
                        for c in on_subject[: p.kind_sentences])):
        # "What did the pope say?" of reports quoting no one, their likeliest sentences
        # reporting no words: there is nothing said to give.
        closest = on_subject[0] if on_subject else lead
        return Extract([Picked(closest.text, closest.article, closest.score)], "partial",
                       expected, "what was said", (time.perf_counter() - t0) * 1000, scored)
    if result.on_story and not predicate.keys() & lead.terms and not lead.kind:
        # A follow-up about the conversation's story whose words neither its articles nor
        # this sentence hold ("who designed it?"): the closest the story comes, said so. A
        # sentence stating the kind asked for ("how fast was it going?": "160 km/h") is
        # the answer, whatever its words.
        return Extract([Picked(lead.text, lead.article, lead.score)], "partial", expected,
                       _missing(expected), (time.perf_counter() - t0) * 1000, scored,
                       unsure=True)
    # Another story's sentence, however likely by its words, is not part of this answer.
    follow = _about(question, result, weights, expected, p.follow_subject_share,
                    p.subject_missing_names, p.story_hold, idf,
                    kind_words=False) | {lead.article}
    picked = [Picked(lead.text, lead.article, lead.score)]
    per_article = {lead.article: 1}
    most = p.answer_sentences + (p.two_part_sentences if asks_two_things(question) else 0)
    for c in scored:
        if len(picked) >= most or c.score < p.follow_min:
            break
        if (c is lead or per_article.get(c.article, 0) >= p.per_article
                or c.article not in follow):
            continue
        picked.append(Picked(c.text, c.article, c.score))
        per_article[c.article] = per_article.get(c.article, 0) + 1
    return Extract(picked, "answer", expected, _missing(expected),
                   (time.perf_counter() - t0) * 1000, scored)


def _more(on_subject: list[Candidate], earlier: str, p: SearchParams, took_s: float,
          scored: list[Candidate]) -> Extract:
    """"Tell me more": the sentences about the story not in ``earlier``, likeliest first."""
    picked: list[Picked] = []
    per_article: dict[int, int] = {}
    for c in on_subject:
        if len(picked) >= p.answer_sentences:
            break
        if c.text in earlier or per_article.get(c.article, 0) >= p.per_article:
            continue
        picked.append(Picked(c.text, c.article, c.score))
        per_article[c.article] = per_article.get(c.article, 0) + 1
    return Extract(picked, "answer" if picked else "none", None, _missing(None),
                   took_s * 1000, scored, exhausted=not picked)


# Where a question's parts meet: "the ferry line shut in May - when will the line reopen?",
# "why did the ferry stop? when will the line reopen?", "what did the repairs cost, and who
# paid for the work?".
# A title's or an initial's full stop ("Dr. Varga", "the U.S. coast guard") ends no part.
_PARTS = re.compile(r"\s+[-\u2013\u2014]+\s+|;\s+|[?!]\s+(?=\w)"
                    r"|(?<!\b[A-Z])(?<!\b(?:Dr|Mr|Ms|St|Jr|Sr|No))(?<!\b(?:Mrs|Gen|Gov|Sen|Rev))"
                    r"(?<!\bProf)\.\s+(?=\w)"
                    r"|,?\s+and\s+(?=(?:who|what|when|where|why|how|which|did|was|were|is|are"
                    r"|do|does)\b)|,\s+(?=(?:who|what|when|where|why|how|which)\b)",
                    re.IGNORECASE)


def asks_two_things(question: str) -> bool:
    """Whether ``question`` has two parts that each ask or name something: a question word
    ("and where is she from?"), or two terms ("so ok - when does the line reopen?" has
    one). Its answer may need a sentence for each, often from two reports."""
    def asks(part: str) -> bool:
        terms = sum(len(w) > 1 for w in tokenize([part])[0])
        return terms >= 2 or asks_with_question_word(part)
    return sum(map(asks, _PARTS.split(question))) > 1


def _lede(question: str, result: SearchResult, scored: list[Candidate]) -> Candidate | None:
    """The first article's opening sentence, when the question asks for news ("any update
    on the strike?", "what's the latest on the pope?") of a subject whose terms are all in
    its headline: such a question asks about the headline's event, and a report's first
    sentence states it (who, what, when, where), where its likeliest may only repeat the
    subject ("Born in Chicago, he is the first pope from the United States"). A question of
    its own ("is the pope from the US?") keeps its likeliest sentence. None when the opening
    sentence is not a candidate (its chunk was not matched)."""
    asked = set(tokenize([question])[0])
    if not (asked & news_words() or result.time.recency):
        return None  # a question of its own ("is the pope from the US?"), not for news
    top = result.articles[0]
    headline = set(tokenize([top.chunks[0].metadata.get("title", "")])[0])
    own = asked - news_words()
    if not own or not own <= headline:
        return None
    opening = next((c for c in top.chunks if c.metadata.get("chunk") == 0), None)
    first = sentences(opening.text)[:1] if opening is not None else []
    return next((c for c in scored if c.article == 0 and [c.text] == first), None)


def _lead(scored: list[Candidate], result: SearchResult, share: float) -> Candidate:
    """The sentence the answer leads with: the likeliest of an article from the period the
    question names, or, for "the latest", of the article the search put first for being the
    newest, if it is at least ``share`` as likely as the likeliest of all (an article of the
    period about something else does not lead); else the likeliest of all.

    The sentence scores know nothing of dates: an older report can state the figure asked
    about in more of the question's words ("the unemployment rate now" answered with last
    quarter's), or a story from another year name the person more often."""
    tf = result.time
    if tf.bounded:
        def allowed(rank: int) -> bool:
            return tf.covers(result.articles[rank].published_at)
    elif tf.recency:
        def allowed(rank: int) -> bool:
            return rank == 0
    else:
        return scored[0]
    least = share * scored[0].score
    return next((c for c in scored if c.score >= least and allowed(c.article)), scored[0])


_CAPITALISED = re.compile(r"(?<=[\w,;:'\"()-] )[A-Z][\w'-]*")
# Capitalised, but a date's words, not a name: "in Sept 2007" is found by the period, and an
# article dates the same events "on 12 September" or not at all.
_CALENDAR = frozenset(tokenize([" ".join((*calendar.month_name[1:], *calendar.month_abbr[1:],
                                           *calendar.day_name, "Sept"))])[0])


def _predicate(question: str, weights: dict[str, float],
               expected: Expected | None) -> dict[str, float]:
    """The question's terms that say what is asked about its subject: its own terms, less the
    names in it (capitalised words inside the question) and the words naming the kind of
    answer ("year", "how long")."""
    words = _CAPITALISED.findall(question)
    drop = set(tokenize([" ".join(words)])[0]) if words else set()
    if expected is not None:
        drop |= expected.kind_terms
    own = set(tokenize([question])[0])
    return {t: w for t, w in weights.items() if t in own and t not in drop}


def _names(question: str) -> list[frozenset[str]]:
    """The names ``question`` uses: runs of capitalised words inside it ("the Harbour
    Authority at Kelso" has two), each as its index terms; a run of month and day names
    alone ("on Tuesday in March") is a date, not a name ("Theresa May" is a name)."""
    runs: list[list[str]] = []
    end = -1
    for m in _CAPITALISED.finditer(question):
        if m.start() == end + 1 and runs:
            runs[-1].append(m.group(0))
        else:
            runs.append([m.group(0)])
        end = m.end()
    names = (frozenset(t) for t in tokenize([" ".join(r) for r in runs]))
    return [n for n in names if n and not n <= _CALENDAR]


def _about(question: str, result: SearchResult, weights: dict[str, float],
           expected: Expected | None, share: float, missing_names: float,
           story_hold: float, idf: Idf, *, kind_words: bool = True) -> set[int]:
    """The articles (ranks) about the question's subject: those holding the names it uses
    (:func:`_names`), all but at most ``missing_names`` of them, that cover its terms,
    IDF-weighted, at least ``share`` as well as the article covering them best. Another
    story's amount or date does not answer.
    A follow-up pointing back at its story ("when did it start?") is about the terms that
    named the story too (``result.story_terms``), at their full weight.
    A follow-up with no terms of its own ("when was that?"), or only words naming the kind
    of answer ("how much did it cost?"), is about its conversation's subject: the earlier
    turns' terms in ``weights`` then stand for it, less those words (a report states a price
    without the word "cost"). Without ``kind_words`` those words never count: a film's
    effects "cost" is not about the headset's price (for a further sentence; for the
    answer-kind check, leaving them out lost a checking-half multi-article answer's article
    and raised false abstention there, 2.7% -> 3.4%).
    """
    names = _names(question)
    own = set(tokenize([question])[0])
    kind = expected.kind_terms if expected is not None else frozenset()
    if own - kind:
        keep = own if kind_words else own - kind
        weights = {t: w for t, w in weights.items() if t in keep} or weights
        # A follow-up pointing back ("when did it start?") is about the story the
        # conversation named as much as about its own words.
        weights |= {t: idf.idf(t) for t in result.story_terms if t not in weights}
    else:
        weights = {t: w for t, w in weights.items() if t not in kind} or weights
    covers: dict[int, float] = {}
    for i, a in enumerate(result.articles):
        terms = result.article_terms.get(a.article_id)
        if terms is None:
            covers[i] = 0.0
        elif sum(not n <= terms for n in names) <= missing_names * len(names):
            covers[i] = sum(w for t, w in weights.items() if t in terms)
    best = max(covers.values(), default=0.0)
    # Another story holding the follow-up's own word ("started selling") and few of the
    # conversation's terms is not what it continues (``story_hold`` of theirs, by IDF).
    story = result.story_terms

    def on_story(i: int) -> bool:
        terms = result.article_terms.get(result.articles[i].article_id, set())
        return covered_share(story, terms, idf) >= story_hold

    return {i for i, c in covers.items() if c >= share * best and (not story or on_story(i))}


def _missing(expected: Expected | None) -> str:
    if expected is None:
        return "that"
    return f"the {expected.kind.value} asked for"
