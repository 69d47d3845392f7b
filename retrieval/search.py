"""Hybrid retrieval: BM25 and dense results fused, grouped by article, time-aware.

One search takes the best chunks of the dense query in Chroma and of BM25 over the lexical
index, scores every candidate on both (cosine, and BM25 relative to the best match), fuses the
two scores, groups chunks by article, applies date filters and recency, and judges whether
the evidence is strong enough to answer at all.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrieval.lexical import LexicalIndex, tokenize
from retrieval.store import VectorStore
from retrieval.timeparse import TimeFilter, parse_time

if TYPE_CHECKING:
    from retrieval.embeddings import Embedder

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SearchParams:
    """Tunable knobs, measured with bench/retrieval.py on the development questions."""

    candidates: int = 50  # chunks taken from each retriever (and each period) before fusion
    dense_weight: float = 0.5  # fused = w * cosine + (1 - w) * BM25 / best BM25
    second_chunk_weight: float = 0.1  # an article with several matching chunks ranks higher
    window_boost: float = 0.3  # a chunk inside a period the question names scores this more
    recency_margin: float = 0.35  # "latest": the newest article scoring within this of the best
    abstain_threshold: float = 0.42  # confidence below this: the articles do not say
    coverage_pool: int = 20  # articles re-ranked for coverage of the question's terms
    coverage_weight: float = 0.5  # bonus for covering terms the articles above did not
    context_weight: float = 0.6  # weight of earlier turns in a follow-up's query vector
    recent_days: int = 30  # "latest" questions also search this many days before now


@dataclass(slots=True)
class ChunkHit:
    id: str
    text: str
    metadata: dict[str, Any]
    score: float = 0.0
    dense_sim: float | None = None
    lexical: float = 0.0


@dataclass(slots=True)
class ArticleHit:
    """An article with its best-matching chunks, best first."""

    article_id: str
    score: float
    chunks: list[ChunkHit] = field(default_factory=list)

    @property
    def meta(self) -> dict[str, Any]:
        return self.chunks[0].metadata

    @property
    def title(self) -> str:
        return str(self.meta.get("title", ""))

    @property
    def published_at(self) -> datetime | None:
        ts = self.meta.get("published_ts")
        if ts is not None:
            return datetime.fromtimestamp(int(ts), UTC)
        value = self.meta.get("published_at")  # stores written before published_ts alone
        return datetime.fromisoformat(value) if value else None

    @property
    def dense_sim(self) -> float:
        return max((c.dense_sim for c in self.chunks if c.dense_sim is not None), default=0.0)


@dataclass(slots=True)
class SearchResult:
    articles: list[ArticleHit]
    time: TimeFilter
    confidence: float
    weak: bool
    query_terms: list[str]
    took_ms: float = 0.0
    # The first two articles answer together: one names whom the question describes, the
    # other holds what it asks about them.
    joint: bool = False
    # Each article's index terms (headline and matched chunks), by article id.
    article_terms: dict[str, set[str]] = field(default_factory=dict)


class Retriever:
    """Searches one store with one embedder; safe to call from several threads."""

    def __init__(self, store: VectorStore, embedder: Embedder, cache_dir: Path | None = None,
                 params: SearchParams | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.cache_dir = cache_dir
        self.params = params or SearchParams()
        self._lex: LexicalIndex | None = None
        self._lex_key: tuple[str, int] | None = None
        self._lex_lock = threading.Lock()

    # -- lexical index ---------------------------------------------------------------------
    def lexical(self) -> LexicalIndex:
        """The BM25 index for the live collection's current version (built or loaded once)."""
        key = (self.store.collection_name, self.store.version())
        if self._lex is not None and self._lex_key == key:
            return self._lex
        with self._lex_lock:
            if self._lex is not None and self._lex_key == key:
                return self._lex
            folder = self.cache_dir / f"{key[0]}-v{key[1]}" if self.cache_dir else None
            index = LexicalIndex.load(folder) if folder and folder.exists() else None
            if index is None:
                t0 = time.perf_counter()
                index = LexicalIndex.build(self.store.iter_chunks())
                log.info("lexical index: %d chunks in %.1fs", len(index),
                         time.perf_counter() - t0)
                if folder:
                    for old in folder.parent.glob(f"{key[0]}-v*"):
                        if old != folder:
                            import shutil

                            shutil.rmtree(old, ignore_errors=True)
                    index.save(folder)
            self._lex, self._lex_key = index, key
            return index

    def _candidates(self, lex: LexicalIndex, vec: np.ndarray, lex_scores: np.ndarray,
                    lo: datetime | None, hi: datetime | None, outlet: str | None,
                    hits: dict[str, ChunkHit]) -> None:
        """Add the best dense and lexical chunks within one set of filters to ``hits``."""
        n = self.params.candidates
        for c in self.store.query(vec, n, _where(lo, hi, outlet)) if len(lex) else []:
            if c.id not in hits:
                hits[c.id] = ChunkHit(c.id, c.text, c.metadata, dense_sim=1.0 - c.distance)
        mask = _mask(lex, lo, hi, outlet)
        scores = np.where(mask, lex_scores, 0.0) if mask is not None else lex_scores
        top = np.argpartition(-scores, n)[:n] if len(scores) > n else np.arange(len(scores))
        for i in top:
            if scores[i] > 0 and lex.ids[i] not in hits:
                meta = lex.meta[i]
                hits[lex.ids[i]] = ChunkHit(lex.ids[i], meta["text"],
                                            {k: v for k, v in meta.items() if k != "text"})

    def _fuse(self, hits: dict[str, ChunkHit], vec: np.ndarray, lex: LexicalIndex,
              lex_scores: np.ndarray) -> None:
        """Score every candidate by both retrievers, exactly, so their finds share one scale."""
        missing = [cid for cid, h in hits.items() if h.dense_sim is None]
        for cid, emb in self.store.embeddings(missing).items():
            hits[cid].dense_sim = float(np.dot(vec, emb))
        best_lex = float(lex_scores.max()) if len(lex_scores) and lex_scores.max() > 0 else 1.0
        w = self.params.dense_weight
        for h in hits.values():
            pos = lex.position.get(h.id)
            h.lexical = float(lex_scores[pos]) / best_lex if pos is not None else 0.0
            h.score = w * (h.dense_sim or 0.0) + (1 - w) * h.lexical

    def _second_hop(self, query: str, q_tokens: Sequence[str], articles: list[ArticleHit],
                    lex: LexicalIndex, lo: datetime | None, hi: datetime | None,
                    outlet: str | None) -> ArticleHit | None:
        """A question that describes someone instead of naming them ("the union leader who
        ... - what did he say in 2009?") is searched again with the names the best article
        gives; the best other article found that way, to go second."""
        names = _names(articles[0], set(q_tokens))
        if not names:
            return None
        # The part after the description asks the question ("... in 2007 - what job did he
        # get in 2009?"); the description itself would find the first story again.
        asked = re.split(r"\s[-\u2013\u2014]\s|;\s", query)[-1]
        hop = f"{' '.join(names)} {asked}"
        vec = self.embedder.embed_query(hop)
        lex_scores = lex.scores(tokenize([hop])[0])
        hits: dict[str, ChunkHit] = {}
        self._candidates(lex, vec, lex_scores, lo, hi, outlet, hits)
        self._fuse(hits, vec, lex, lex_scores)
        first = articles[0].article_id
        found = next((a for a in _group(hits.values(), self.params.second_chunk_weight)
                      if a.article_id != first), None)
        if found is None:
            return None
        # It goes second, with the second score: the coverage re-ranking starts from scores.
        if len(articles) > 1:
            found.score = articles[1].score
        return found

    def invalidate(self) -> None:
        """Forget the cached lexical index (the store changed in this process)."""
        with self._lex_lock:
            self._lex = None
            self._lex_key = None

    # -- search ----------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        k: int = 5,
        context: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        outlet: str | None = None,
        now: datetime | None = None,
        prefer_article_id: str | None = None,
    ) -> SearchResult:
        """The ``k`` best articles for ``query``; ``context`` holds earlier questions."""
        t0 = time.perf_counter()
        p = self.params
        tf = parse_time(query, now)
        if not tf.bounded and context:
            # A follow-up ("and what did the union say?") keeps the period it continues.
            earlier = parse_time(" ".join(context), now)
            tf = TimeFilter(earlier.since, earlier.until, tf.recency or earlier.recency,
                            tf.ordering, earlier.phrase)
        # The caller's limits (a "since" option, an outlet, the present) are hard filters.
        # A period named in the question is soft: articles inside it rank first, but a
        # question that names one period ("what did he say in 2008 about the deal he made
        # earlier?") still reaches the story outside it.
        hard_lo, hard_hi = since, min(filter(None, [until, now]), default=None)
        win_lo = max(filter(None, [hard_lo, tf.since]), default=None)
        win_hi = min(filter(None, [hard_hi, tf.until]), default=None)

        lex = self.lexical()
        q_tokens = tokenize([query])[0]
        ctx_tokens = tokenize([" ".join(context)])[0] if context else []
        # Dense: the question, pulled towards the conversation it continues.
        vec = self.embedder.embed_query(query)
        if context:
            ctx_vec = self.embedder.embed_query(" ".join(context[-2:]))
            vec = vec + p.context_weight * ctx_vec
            vec = vec / (np.linalg.norm(vec) or 1.0)
        # Lexical: the question's terms count double against the context's.
        lex_scores = lex.scores(q_tokens * 2 + ctx_tokens)

        boosted = tf.bounded
        if tf.recency and not tf.bounded:
            # "What's the latest ...": the last weeks before now are searched on their own
            # too, so the newest report is a candidate even when older ones match better.
            ref = hard_hi or datetime.now(UTC)
            win_lo, win_hi, boosted = ref - timedelta(days=p.recent_days), ref, True

        hits: dict[str, ChunkHit] = {}
        self._candidates(lex, vec, lex_scores, hard_lo, hard_hi, outlet, hits)
        if boosted:
            self._candidates(lex, vec, lex_scores, win_lo, win_hi, outlet, hits)
        self._fuse(hits, vec, lex, lex_scores)
        if boosted:
            for h in hits.values():
                if _chunk_in_window(h.metadata, win_lo, win_hi):
                    h.score *= 1 + p.window_boost

        articles = _group(hits.values(), p.second_chunk_weight)
        if prefer_article_id:
            for a in articles:
                if a.article_id == prefer_article_id:
                    a.score *= 1.5
            articles.sort(key=lambda a: -a.score)
        if tf.recency and articles:
            articles = _prefer_recent(articles, p)

        hop = None
        if articles and _BRIDGE.search(query):
            hop = self._second_hop(query, q_tokens, articles, lex, hard_lo, hard_hi, outlet)
            if hop is not None:
                articles = [articles[0], hop,
                            *(a for a in articles[1:] if a.article_id != hop.article_id)]

        terms = _content_terms(q_tokens)
        texts = _token_sets(articles[: max(p.coverage_pool, 3)])
        if len(terms) > 1 and len(articles) > 1:
            articles = _diversify(articles, texts, terms, lex, p)
        # Nothing published in the period the question names: the articles cannot answer it
        # (the period's other hops, "what did he say in 2008 about ...", are judged as usual).
        in_period = not tf.bounded or any(_in_window(a, win_lo, win_hi) for a in articles)
        confidence = _confidence(articles[:3], terms, lex, texts) if in_period and articles else 0.0
        if hop is not None and in_period:
            # The description and the question asked are answered by the two articles together
            # (each one's similarity is to the query it was found by).
            confidence = max(confidence, _confidence([articles[0], hop], terms, lex, texts,
                                                     jointly=True))
        weak = confidence < p.abstain_threshold
        return SearchResult(
            articles=articles[:k], time=tf, confidence=confidence, weak=weak,
            query_terms=terms, took_ms=(time.perf_counter() - t0) * 1000,
            joint=hop is not None and len(articles) > 1 and articles[1] is hop,
            article_terms={a.article_id: texts[a.article_id] for a in articles[:k]
                           if a.article_id in texts},
        )


# "The minister who resigned in 2007 - what ...": a person or body described, not named.
_BRIDGE = re.compile(r"^\W*the\s+[^?]{3,80}?\b(?:who|whose|that|which|behind)\b", re.I)
_NAME = re.compile(r"\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)*\b")
_NOT_NAMES = frozenset((
    "The", "A", "An", "In", "On", "At", "For", "From", "By", "With", "And", "But", "Or", "Of",
    "To", "It", "He", "She", "They", "We", "His", "Her", "Their", "This", "That", "These",
    "Those", "There", "Then", "When", "While", "After", "Before", "During", "Since", "Mr", "Mrs",
    "Ms", "Dr", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
))


def _names(article: ArticleHit, question_tokens: set[str], limit: int = 2) -> list[str]:
    """The names the article's matched text mentions most that the question does not."""
    counts: dict[str, int] = {}
    for chunk in article.chunks[:3]:
        for m in _NAME.finditer(chunk.text):
            words = [w for w in re.split(r"[ -]", m.group(0)) if w not in _NOT_NAMES]
            if not words:
                continue
            name = " ".join(words)
            if set(tokenize([name])[0]) & question_tokens:
                continue
            counts[name] = counts.get(name, 0) + 1
    ranked = sorted(counts, key=lambda n: (-counts[n], -len(n.split())))
    return [n for n in ranked if counts[n] > 1][:limit]


def _in_window(a: ArticleHit, lo: datetime | None, hi: datetime | None) -> bool:
    return _chunk_in_window(a.meta, lo, hi)


def _chunk_in_window(meta: dict[str, Any], lo: datetime | None, hi: datetime | None) -> bool:
    ts = meta.get("published_ts")
    if ts is None:
        return False
    return (lo is None or ts >= lo.timestamp()) and (hi is None or ts < hi.timestamp())


def _where(lo: datetime | None, hi: datetime | None, outlet: str | None) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    if lo:
        clauses.append({"published_ts": {"$gte": int(lo.timestamp())}})
    if hi:
        clauses.append({"published_ts": {"$lt": int(hi.timestamp())}})
    if outlet:
        clauses.append({"outlet": outlet})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _mask(lex: LexicalIndex, lo: datetime | None, hi: datetime | None,
          outlet: str | None) -> np.ndarray | None:
    if not (lo or hi or outlet):
        return None
    mask = np.ones(len(lex), dtype=bool)
    if lo:
        mask &= lex.published_ts >= int(lo.timestamp())
    if hi:
        mask &= (lex.published_ts >= 0) & (lex.published_ts < int(hi.timestamp()))
    if outlet:
        mask &= lex.outlets == outlet.casefold()
    return mask


def _group(hits: Sequence[ChunkHit] | Any, second_weight: float) -> list[ArticleHit]:
    by_article: dict[str, ArticleHit] = {}
    for h in sorted(hits, key=lambda h: -h.score):
        aid = str(h.metadata["article_id"])
        art = by_article.get(aid)
        if art is None:
            by_article[aid] = ArticleHit(aid, h.score, [h])
        else:
            if len(art.chunks) == 1:
                art.score += second_weight * h.score
            art.chunks.append(h)
    return sorted(by_article.values(), key=lambda a: -a.score)


def _prefer_recent(articles: list[ArticleHit], p: SearchParams) -> list[ArticleHit]:
    """Among articles nearly as relevant as the best, put the newest first."""
    best = articles[0].score
    pool = [a for a in articles if a.score >= best * (1 - p.recency_margin)]
    rest = [a for a in articles if a not in pool]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    pool.sort(key=lambda a: a.published_at or epoch, reverse=True)
    return pool + rest


def _content_terms(tokens: Sequence[str]) -> list[str]:
    """The question's stemmed, stop-worded terms longer than one letter, unique, in order."""
    return list(dict.fromkeys(t for t in tokens if len(t) > 1))


def _token_sets(articles: Sequence[ArticleHit]) -> dict[str, set[str]]:
    """Each article's stemmed tokens (headline and matched chunks), tokenised in one call."""
    docs = [" ".join([a.title, *(c.text for c in a.chunks[:3])]) for a in articles]
    return {a.article_id: set(toks) for a, toks in zip(articles, tokenize(docs), strict=True)}


def _diversify(articles: list[ArticleHit], texts: dict[str, set[str]], terms: Sequence[str],
               lex: LexicalIndex, p: SearchParams) -> list[ArticleHit]:
    """Below the best article, prefer articles that cover question terms not yet covered.

    A question about two stories ("did GM and Ford both cut jobs?") otherwise gets five
    articles about whichever story dominates the index. The top article stays first.
    """
    weights = {t: lex.idf(t) for t in terms}
    total = sum(weights.values()) or 1.0
    pool = [a for a in articles[: p.coverage_pool] if a.article_id in texts]
    rest = [a for a in articles if a not in pool]
    best = pool[0].score or 1.0
    chosen = [pool.pop(0)]
    covered = {t for t in terms if t in texts[chosen[0].article_id]}
    while pool:
        open_terms = {t: w for t, w in weights.items() if t not in covered}
        nxt = max(pool, key=lambda a: a.score / best + p.coverage_weight * sum(
            w for t, w in open_terms.items() if t in texts[a.article_id]) / total)
        pool.remove(nxt)
        chosen.append(nxt)
        covered |= {t for t in terms if t in texts[nxt.article_id]}
    return chosen + rest


def _confidence(articles: Sequence[ArticleHit], terms: Sequence[str], lex: LexicalIndex,
                texts: dict[str, set[str]], *, jointly: bool = False) -> float:
    """How well the best articles cover the question: dense similarity and term coverage.

    Each article is judged alone, or with ``jointly`` the articles together, as one.
    """
    if not terms:
        return articles[0].dense_sim
    total = sum(lex.idf(t) for t in terms) or 1.0
    groups = [list(articles)] if jointly else [[a] for a in articles]
    best = 0.0
    for group in groups:
        tokens = set().union(*(texts.get(a.article_id, set()) for a in group))
        covered = sum(lex.idf(t) for t in terms if t in tokens) / total
        best = max(best, 0.5 * max(a.dense_sim for a in group) + 0.5 * covered)
    return best
