"""Hybrid retrieval as stages: plan -> candidates -> fuse -> group -> rerank -> judge.

- plan: the question's terms, its dense vector (pulled towards the conversation it
  continues), the period it names and the caller's hard limits (:class:`QueryPlan`);
- candidates: the best chunks of the dense query in Chroma and of BM25 over the lexical
  index, within the hard limits and again within the period;
- fuse: every candidate scored by both (cosine, and BM25 relative to the best match);
- group: chunks into articles;
- rerank: the period's articles first, the article being read, "latest" by date, the article
  about what a follow-up newly names, a second hop with the names the best article gives,
  and coverage of terms the articles above miss;
- judge: whether the best articles cover the question well enough to answer at all.

Each stage past the plan is a function of hand-built hits, testable without a store; every
number they use is a field of :class:`~retrieval.params.SearchParams`.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from retrieval.answer_type import cue, expect, story_request
from retrieval.chunking import chunk_id
from retrieval.extractive import SentenceVectors
from retrieval.lexical import (
    LexicalIndex,
    covered_share,
    missing_share,
    news_words,
    only_asides,
    tokenize,
)
from retrieval.params import SearchParams
from retrieval.store import StoredChunk, VectorStore
from retrieval.stories import StoryRule, biggest
from retrieval.timeparse import Span, TimeFilter, parse_time

if TYPE_CHECKING:
    from retrieval.embeddings import Embedder

log = logging.getLogger(__name__)

__all__ = ["ArticleHit", "ChunkHit", "QueryPlan", "Retriever", "SearchParams", "SearchResult"]


class Idf(Protocol):
    """What the stages need of the lexical index: a term's weight."""

    def idf(self, term: str) -> float: ...


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


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """What one search looks for, and within which limits."""

    query: str
    context: tuple[str, ...]
    tokens: list[str]  # the question's index terms, in order
    context_tokens: list[str]  # the earlier questions' index terms
    vector: np.ndarray  # the question's, pulled towards the conversation it continues
    time: TimeFilter
    # The caller's limits (a "since" option, the present) are hard filters...
    hard_lo: datetime | None = None
    hard_hi: datetime | None = None
    # ... a period named in the question (or "latest") is soft: searched on its own as well,
    # and its articles rank first.
    win_lo: datetime | None = None
    win_hi: datetime | None = None
    boosted: bool = False
    outlet: str | None = None
    prefer_article_id: str | None = None
    # "What's new?", "any news today?": a period (or "the latest") and no subject. Answered
    # with the newest articles, or a period's biggest stories, rather than the ones closest
    # to "news".
    digest: bool = False
    # A follow-up that points back at its conversation's story ("how fast was it going?").
    refers_back: bool = False
    # The terms of the earlier questions that named the story ("any news on the eclipse?"),
    # not those that point back at it ("how long did it last?").
    story_terms: tuple[str, ...] = ()
    # The question's own vector, before the conversation pulls it (a follow-up's only).
    own_vector: np.ndarray | None = None

    @property
    def terms(self) -> list[str]:
        return content_terms(self.tokens)

    def span(self, lo: datetime | None, hi: datetime | None) -> Span:
        """[lo, hi) as the search filters by it, with days read where the question was
        asked."""
        return Span.of(lo, hi, self.time.zone)

    @property
    def hard(self) -> Span:
        return self.span(self.hard_lo, self.hard_hi)

    @property
    def window(self) -> Span:
        return self.span(self.win_lo, self.win_hi)

    @property
    def lexical_tokens(self) -> list[str]:
        """The question's terms count double against the context's."""
        return self.tokens * 2 + self.context_tokens


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
    # The query vector searched with, and the earlier questions' terms (for answering).
    vector: np.ndarray | None = None
    context_terms: list[str] = field(default_factory=list)
    # A list of the news (see :meth:`Retriever.newest`), for a question with no subject.
    digest: bool = False
    # Answered only for being about the conversation's story (:func:`story_confidence`):
    # its best article may not state what the follow-up asks.
    on_story: bool = False
    # For a follow-up pointing back at its conversation's story, the terms that named the
    # story (:attr:`QueryPlan.story_terms`); none for any other question.
    story_terms: tuple[str, ...] = ()


class Retriever:
    """Searches one store with one embedder; safe to call from several threads."""

    def __init__(self, store: VectorStore, embedder: Embedder, cache_dir: Path | None = None,
                 params: SearchParams | None = None, zone: tzinfo = UTC) -> None:
        self.store = store
        self.embedder = embedder
        self.cache_dir = cache_dir
        self.params = params or SearchParams()
        self.zone = zone  # where "today" and "this year" begin
        # Sentence vectors of extractive answers, kept across questions.
        self.sentence_vectors = SentenceVectors(self.params.sentence_cache)
        # The index in use and the store version it was built for, published together.
        self._current: tuple[tuple[str, int], LexicalIndex] | None = None
        self._lex_lock = threading.Lock()
        # A reindex builds the next collection's index before switching (see prime); the
        # key it is building for keeps that folder from the clean-up meanwhile.
        self._primed: tuple[tuple[str, int], LexicalIndex] | None = None
        self._priming: tuple[str, int] | None = None
        # One background rebuild at a time; a request while it runs makes it go round again.
        self._refresher: threading.Thread | None = None
        self._refresh_wanted = False
        self._closing = threading.Event()
        self._refresher_lock = threading.Lock()
        self._last_refresh = 0.0  # time.monotonic() of the last background rebuild
        self._last_build_s = 0.0  # how long the last build from the store took

    # -- lexical index ---------------------------------------------------------------------
    def lexical(self) -> LexicalIndex:
        """The BM25 index for the live collection's current version."""
        return self._lexical()[0]

    def _lexical(self) -> tuple[LexicalIndex, bool]:
        """The index, and whether it is the store's current version.

        After a write to the collection, questions are answered with the index as it was
        while a thread builds the next one, rather than each waiting for the build (seconds
        at the corpus size, tens of seconds at 100,000 chunks, after every feed poll that
        adds an article). A new collection (a reindex's) or a first question waits for its
        index.
        """
        key = self._key()
        current = self._current
        if current is not None and current[0] == key:
            return current[1], True
        if current is not None and current[0][0] == key[0]:
            self.refresh_soon()
            return current[1], False
        return self._index_for(), True

    def refresh(self) -> None:
        """Bring the index up to the store now: a writer whose caller may ask next waits.

        The write is done whatever happens here: a failure (the store unavailable, a full
        disk) is logged, and the index is dropped so that the next question builds it
        rather than quote what the write took out."""
        try:
            self._index_for()
        except Exception as exc:
            log.warning("keyword index not rebuilt after a write (the next question "
                        "rebuilds it): %s", exc)
            with self._lex_lock:
                self._current = None

    def refresh_soon(self) -> None:
        """Bring the index up to the store in a background thread (at most one at a time)."""
        with self._refresher_lock:
            if self._closing.is_set():
                return
            self._refresh_wanted = True
            if self._refresher is None:
                self._refresher = threading.Thread(target=self._refresh_until_current,
                                                   name="lexical-refresh", daemon=True)
                self._refresher.start()

    def close(self, timeout: float = 15.0) -> None:
        """Start no more rebuilds, and let one under way finish before the store closes
        under it (bounded: a build at 100,000 chunks takes longer; the thread is a daemon)."""
        with self._refresher_lock:
            self._closing.set()
            refresher = self._refresher
        if refresher is not None:
            refresher.join(timeout)

    def _refresh_until_current(self) -> None:
        try:
            while True:
                # Requests that arrive meanwhile are served by the one rebuild after it.
                wait = (self._last_refresh + refresh_gap(self.params, self._last_build_s)
                        - time.monotonic())
                if wait > 0 and self._closing.wait(wait):
                    return
                with self._refresher_lock:
                    current = self._current
                    if self._closing.is_set() or (
                            not self._refresh_wanted and current is not None
                            and current[0] == self._key()):
                        self._refresher = None
                        return
                    self._refresh_wanted = False
                self._last_refresh = time.monotonic()
                self._index_for()
        except Exception as exc:  # the store unavailable: the next question tries again
            log.info("keyword index not refreshed: %s", exc)
            with self._refresher_lock:
                self._refresher = None

    def _key(self) -> tuple[str, int]:
        return (self.store.collection_name, self.store.version())

    def _index_for(self) -> LexicalIndex:
        """The index of the store as it is now: the one in use, a reindex's, the saved one,
        or a new one."""
        with self._lex_lock:
            # Read under the lock: a writer may have published a newer one meanwhile.
            key = self._key()
            current = self._current
            if (current is not None and current[0][0] == key[0]
                    and current[0][1] >= key[1]):
                return current[1]
            folder = self._folder(key)
            index = None
            if self._primed is not None and self._primed[0] == key:
                index, self._primed = self._primed[1], None
            elif folder and folder.exists():
                index = LexicalIndex.load(folder)
            # From the index in use, or (a process that wrote before it read, as a command
            # run without the service does) from the one saved before its writes.
            if index is None and (base := current if current is not None
                                  and current[0][0] == key[0] else self._saved_before(key)):
                t0 = time.perf_counter()
                index = self._updated(base, key, folder)
                if index is not None:
                    self._last_build_s = time.perf_counter() - t0
                    log.info("lexical index: %d chunks, updated in %.2fs", len(index),
                             self._last_build_s)
            if index is None:
                t0 = time.perf_counter()
                index = self._build(self.store.iter_chunks(), folder)
                self._last_build_s = time.perf_counter() - t0
                log.info("lexical index: %d chunks in %.1fs", len(index), self._last_build_s)
            if folder:
                # Every other version's folder, and a dropped collection's, is out of date;
                # not the one a reindex under way builds or has built, nor one being saved.
                building = {self._priming, self._primed[0] if self._primed else None}
                keep = {folder} | {self._folder(k) for k in building if k is not None}
                for old in folder.parent.glob("*-v*"):
                    if old not in keep and old.suffix != ".tmp":
                        shutil.rmtree(old, ignore_errors=True)
            self._current = (key, index)
            return index

    def _folder(self, key: tuple[str, int]) -> Path | None:
        return self.cache_dir / f"{key[0]}-v{key[1]}" if self.cache_dir else None

    def _build(self, chunks: Iterable[StoredChunk], folder: Path | None,
               collection: Any = None) -> LexicalIndex:
        """The BM25 index of ``chunks`` with their stored vectors beside it, saved in
        ``folder`` (an empty store has nothing worth keeping)."""
        index = LexicalIndex.build(chunks)
        vectors = self._stored_vectors(index.ids, collection=collection)
        if vectors is not None:
            index.set_vectors(vectors)
        if folder and len(index):
            index.save(folder)
        return index

    def _saved_before(self, key: tuple[str, int]) -> tuple[tuple[str, int], LexicalIndex] | None:
        """The index saved for an earlier version of ``key``'s collection that this
        process's writes lead on from (the store's journal tells what they did)."""
        if self.cache_dir is None or not self.cache_dir.exists():
            return None
        for folder in self.cache_dir.glob(f"{key[0]}-v*"):
            version = folder.name.removeprefix(f"{key[0]}-v")
            if (version.isdigit() and int(version) < key[1]
                    and self.store.changes(key[0], int(version), key[1]) is not None
                    and (saved := LexicalIndex.load(folder)) is not None):
                return (key[0], int(version)), saved
        return None

    def _updated(self, base: tuple[tuple[str, int], LexicalIndex], key: tuple[str, int],
                 folder: Path | None) -> LexicalIndex | None:
        """``base`` (an index and the key it was built for) brought to ``key`` from what the
        writes between them did, saved in ``folder``; None when the store cannot tell what
        they did (then it is built again from the store)."""
        (name, since), index = base
        changes = self.store.changes(name, since, key[1])
        if name != key[0] or changes is None:
            return None
        chunks, vectors = self.store.chunks(sorted(changes.written))
        updated = index.updated(changes.deleted, chunks, vectors)
        if updated is not None and folder and len(updated):
            updated.save(folder)
        return updated

    def _stored_vectors(self, ids: Sequence[str], page: int = 2000,
                        collection: Any = None) -> np.ndarray | None:
        """The store's vectors of ``ids``, in order; None when one is missing (the store
        changed meanwhile: the next version's index reads them again)."""
        rows: np.ndarray | None = None
        for start in range(0, len(ids), page):
            part = ids[start:start + page]
            got = self.store.embeddings(part, collection=collection)
            for j, cid in enumerate(part):
                v = got.get(cid)
                if v is None:
                    return None
                if rows is None:
                    rows = np.zeros((len(ids), len(v)), dtype=np.float32)
                rows[start + j] = v
        return rows

    def prime(self, key: tuple[str, int], collection: Any) -> None:
        """Build the BM25 index (vectors beside it, saved) of ``collection``, about to go live
        under ``key`` (a reindex's new collection), so that the first question after the
        switch does not wait for it, nor a restart."""
        with self._lex_lock:
            self._priming = key
        try:
            index = self._build(self.store.iter_chunks(collection=collection),
                                self._folder(key), collection)
        except BaseException:
            with self._lex_lock:
                self._priming = None
            raise
        with self._lex_lock:
            self._primed, self._priming = (key, index), None

    # -- stage 1: plan ---------------------------------------------------------------------
    def plan(self, query: str, *, context: Sequence[str] = (), since: datetime | None = None,
             until: datetime | None = None, outlet: str | None = None,
             now: datetime | None = None, prefer_article_id: str | None = None,
             zone: tzinfo | None = None) -> QueryPlan:
        """Dates, terms and the query vector of one search."""
        p = self.params
        if only_asides(query):
            # "thanks!" in a conversation is no follow-up: its words are all stop words, so
            # it would be judged by the story's terms and answered with the story again.
            context = ()
        local = (now or datetime.now(UTC)).astimezone(zone or self.zone)
        tf = parse_time(query, local)
        if not tf.bounded and context:
            # A follow-up ("and what did the union say?") keeps the period it continues.
            earlier = parse_time(" ".join(context), local)
            tf = replace(earlier, recency=tf.recency or earlier.recency, ordering=tf.ordering,
                         recency_phrase=tf.recency_phrase)
        hard_lo, hard_hi = since, min(filter(None, [until, now]), default=None)
        win_lo = max(filter(None, [hard_lo, tf.since]), default=None)
        win_hi = min(filter(None, [hard_hi, tf.until]), default=None)
        boosted = tf.bounded
        if tf.recency and not tf.bounded:
            # "What's the latest ...": the last weeks before now are searched on their own
            # too, so the newest report is a candidate even when older ones match better.
            ref = hard_hi or datetime.now(UTC)
            win_lo = max(filter(None, [hard_lo, ref - timedelta(days=p.recent_days)]))
            win_hi, boosted = ref, True

        tokens = tokenize([query])[0]
        if tf.recency_phrase:
            # "The latest", "what's new" say when, which the time filter reads; as terms they
            # would match "the latest version" and count against coverage where no article
            # says them.
            when = set(tokenize([tf.recency_phrase])[0])
            tokens = [t for t in tokens if t not in when]
        of_story = bool(context) and story_request(query) is not None
        if of_story:
            # "Anything else?", "source?" ask for more of the conversation's story, or where
            # it came from: their words name nothing an article must hold, nor mean anything
            # to search by.
            tokens = []
        ctx_tokens: list[str] = []
        story: list[str] = []
        for earlier_q in context:
            # An earlier "any update on the strike?" asked when as the query's own "the
            # latest" does: its "update" is in no article and would count against each.
            said = parse_time(earlier_q, local).recency_phrase
            asked_when = set(tokenize([said])[0]) if said else set()
            own = [t for t in tokenize([earlier_q])[0] if t not in asked_when]
            ctx_tokens += own
            if not points_back(earlier_q):
                # "How fast was the probe going?" named the probe: neither "fast" nor
                # "going" is in its report, nor names its story.
                story += asked_terms(earlier_q, content_terms(own))[1]
        # A follow-up's "what's new?" asks about its conversation's story, not the news.
        subject = set(content_terms(tokens)) - news_words() - set(tokenize([tf.phrase])[0])
        digest = not context and (tf.recency or tf.bounded) and not subject
        vec = own = self.embedder.embed_query(query)
        if context:
            ctx_vec = self.embedder.embed_query(" ".join(context[-2:]))
            vec = ctx_vec if of_story else vec + p.context_weight * ctx_vec
            vec = vec / (np.linalg.norm(vec) or 1.0)
        refers_back = bool(context) and points_back(query)
        return QueryPlan(query, tuple(context), tokens, ctx_tokens, vec, tf, hard_lo, hard_hi,
                         win_lo, win_hi, boosted, outlet, prefer_article_id, digest,
                         refers_back, tuple(dict.fromkeys(story)),
                         own if context else None)

    # -- stages 2 and 3: candidates, fusion ------------------------------------------------
    def candidates(self, vec: np.ndarray, lex: LexicalIndex, lex_scores: np.ndarray,
                   limits: Iterable[Span], outlet: str | None,
                   exact: bool = True) -> dict[str, ChunkHit]:
        """The best dense and lexical chunks within each set of date limits.

        Limits that leave out no chunk are no filter. Within a period of at most
        ``exact_chunks`` chunks, the dense candidates are found by comparing the question
        with each of its chunks' vectors, held beside the lexical index in order of
        publication (their cosines are computed in :meth:`fuse`): the store's metadata filter
        cost 20 to 35 ms of CPU at 10,000 chunks, several times an unfiltered query. Without
        limits the store's nearest-neighbour index answers.
        """
        p = self.params
        n = p.candidates
        hits: dict[str, ChunkHit] = {}
        for span in limits:
            mask = _mask(lex, span, outlet)
            if mask is not None and mask.all():
                mask, span, outlet = None, Span(), None
            # Only an index of the store as it is holds every chunk of the period (one being
            # rebuilt after a poll lacks its newest reports).
            if (exact and mask is not None and lex.vectors is not None
                    and lex.period_size(span) <= p.exact_chunks):
                for i in lex.period_nearest(vec, n, span, outlet):
                    cid = lex.ids[i]
                    if cid not in hits:
                        meta = lex.meta[i]
                        hits[cid] = ChunkHit(cid, meta["text"],
                                             {k: v for k, v in meta.items() if k != "text"})
            else:
                for c in (self.store.query(vec, n, _where(span, outlet, lex)) if len(lex)
                          else []):
                    if c.id not in hits:
                        hits[c.id] = ChunkHit(c.id, c.text, c.metadata,
                                              dense_sim=1.0 - c.distance)
            scores = np.where(mask, lex_scores, 0.0) if mask is not None else lex_scores
            top = np.argpartition(-scores, n)[:n] if len(scores) > n else np.arange(len(scores))
            for i in top:
                if scores[i] > 0 and lex.ids[i] not in hits:
                    meta = lex.meta[i]
                    hits[lex.ids[i]] = ChunkHit(lex.ids[i], meta["text"],
                                                {k: v for k, v in meta.items() if k != "text"})
        return hits

    def fuse(self, hits: dict[str, ChunkHit], vec: np.ndarray, lex: LexicalIndex,
             lex_scores: np.ndarray) -> None:
        """Give every candidate both scores, exactly (missing cosines from the vectors beside
        the lexical index, or else read from the store)."""
        missing = [cid for cid, h in hits.items() if h.dense_sim is None]
        known = [cid for cid in missing if cid in lex.position]
        sims = lex.cosines(vec, [lex.position[cid] for cid in known]) if known else None
        if sims is not None:
            cosines = dict(zip(known, map(float, sims), strict=True))
            missing = [cid for cid in missing if cid not in cosines]
        else:
            cosines = {}
        cosines.update({cid: float(np.dot(vec, emb))
                        for cid, emb in self.store.embeddings(missing).items()})
        fuse_scores(hits.values(), cosines, lex, lex_scores, self.params.dense_weight)

    def _articles(self, text: str, lex: LexicalIndex, plan: QueryPlan,
                  exact: bool = True) -> list[ArticleHit]:
        """A plain search for ``text`` within the plan's hard limits (for a second hop)."""
        vec = self.embedder.embed_query(text)
        lex_scores = lex.scores(tokenize([text])[0])
        hits = self.candidates(vec, lex, lex_scores, [plan.hard], plan.outlet, exact)
        self.fuse(hits, vec, lex, lex_scores)
        return group(hits.values(), self.params.second_chunk_weight)

    def newest(self, plan: QueryPlan, lex: LexicalIndex, current: bool,
               k: int) -> list[ArticleHit]:
        """``k`` dated articles, each with the chunk its text starts with, within the caller's
        limits: for "the latest", the newest of its last weeks, newest first (with nothing in
        its weeks, the newest there are, shown with their dates); for a period the question
        names (as named: no days for reporting it, a bare year alone), its most reported
        stories, the most reported first (:meth:`_stories_in`)."""
        tf = plan.time
        if tf.bounded:
            lo = max(filter(None, [plan.hard_lo, tf.named_since]), default=None)
            hi = min(filter(None, [plan.hard_hi, tf.named_until]), default=None)
            found = self._stories_in(plan.span(lo, hi), plan.outlet, lex, current, k)
        else:
            found = (self._newest_in(plan.window, plan.outlet, lex, current, k)
                     or self._newest_in(plan.hard, plan.outlet, lex, current, k))
        return [ArticleHit(c.metadata["article_id"], 1.0 / (1 + rank), [c])
                for rank, c in enumerate(found)]

    def _stories_in(self, span: Span, outlet: str | None, lex: LexicalIndex, current: bool,
                    k: int) -> list[ChunkHit]:
        """The first chunks of ``k`` articles telling the period's most reported stories
        (:func:`~retrieval.stories.biggest`), grouped from at most ``digest_pool`` of its
        articles taken evenly over it."""
        p = self.params
        rows = lex.firsts(span, outlet)
        if len(rows) > p.digest_pool:
            rows = rows[np.unique(np.linspace(0, len(rows) - 1, p.digest_pool).round()
                                  .astype(np.int64))]
        leads = [ChunkHit(lex.ids[i], lex.meta[i]["text"],
                          {key: v for key, v in lex.meta[i].items() if key != "text"})
                 for i in rows.tolist()]
        vectors: dict[str, np.ndarray] = {}
        if lex.vectors is not None:
            vectors = dict(zip((c.id for c in leads), lex.vectors[lex.time_row[rows]],
                               strict=True))
        if not current:
            # An index being rebuilt after a poll lacks its newest reports: the store's
            # first chunks of the period's articles it does not hold stand in for them.
            leads += [ChunkHit(c.id, c.text, c.metadata) for c in
                      self.store.first_chunks(_where(span, outlet, lex), skip=lex.position)]
        if len(leads) <= 1:
            return leads
        if missing := [c.id for c in leads if c.id not in vectors]:
            vectors.update(self.store.embeddings(missing))
        dim = len(next(iter(vectors.values()))) if vectors else 1
        matrix = np.stack([vectors.get(c.id, np.zeros(dim, dtype=np.float32)) for c in leads])
        ts = [int(c.metadata.get("published_ts", -1)) for c in leads]
        rule = StoryRule(threshold=p.digest_same_story, window_days=p.digest_story_days)
        return [leads[j] for j in biggest(matrix.astype(np.float32), ts, k, rule)]

    def _newest_in(self, span: Span, outlet: str | None, lex: LexicalIndex, current: bool,
                   k: int) -> list[ChunkHit]:
        if not span.bounded:
            span = Span(lo=0, day_lo=0)  # undated articles are in no period
        leads: dict[str, ChunkHit] = {}
        for i in lex.newest(span):
            aid = str(lex.article_ids[i])
            if aid in leads or (outlet and lex.outlets[i] != outlet.casefold()):
                continue
            meta = lex.meta[lex.position.get(chunk_id(aid, 0), i)]
            leads[aid] = ChunkHit(chunk_id(aid, int(meta.get("chunk", 0))), meta["text"],
                                  {key: v for key, v in meta.items() if key != "text"})
            if len(leads) >= k:
                break
        if not current:
            # An index being rebuilt after a poll lacks its newest reports: the store's
            # first chunks of the period's articles it does not hold stand in for them.
            where = _where(span, outlet, lex)
            for c in self.store.first_chunks(where, skip=lex.position):
                leads.setdefault(str(c.metadata.get("article_id")),
                                 ChunkHit(c.id, c.text, c.metadata))
        return sorted(leads.values(), key=lambda c: -int(c.metadata.get("published_ts", -1)))[:k]

    # -- the whole search ------------------------------------------------------------------
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
        zone: tzinfo | None = None,
    ) -> SearchResult:
        """The ``k`` best articles for ``query``; ``context`` holds earlier questions;
        ``zone`` is where "today" begins (the retriever's own by default)."""
        t0 = time.perf_counter()
        p = self.params
        plan = self.plan(query, context=context, since=since, until=until, outlet=outlet,
                         now=now, prefer_article_id=prefer_article_id, zone=zone)
        lex, current = self._lexical()
        if plan.digest:
            articles = self.newest(plan, lex, current, k)
            return SearchResult(
                articles=articles, time=plan.time, confidence=1.0 if articles else 0.0,
                weak=not articles, query_terms=plan.terms,
                took_ms=(time.perf_counter() - t0) * 1000,
                article_terms=token_sets(articles), vector=plan.vector, digest=True)
        lex_scores = lex.scores(plan.lexical_tokens)
        limits = [plan.hard]
        if plan.boosted:
            limits.append(plan.window)
        hits = self.candidates(plan.vector, lex, lex_scores, limits, plan.outlet, current)
        self.fuse(hits, plan.vector, lex, lex_scores)
        if plan.boosted:
            boost_window(hits.values(), plan.window, p.window_boost)

        articles = group(hits.values(), p.second_chunk_weight)
        articles = prefer_article(articles, plan.prefer_article_id, p.prefer_weight)
        if plan.time.recency and articles:
            articles = prefer_recent(articles, p.recency_margin)
        terms = plan.terms
        texts = token_sets(articles[: max(p.coverage_pool, 3)])
        def said(a: ArticleHit) -> float:
            return own_match(plan, a, lex)

        articles = new_subject(articles, texts, plan, lex, p.new_subject_margin, said,
                               p.own_match)
        articles = keep_story(articles, texts, plan, lex, said, p.own_match, p.story_hold)
        hop = second_hop(plan, articles, texts, lex, p,
                         lambda text: self._articles(text, lex, plan, current))
        if hop is not None:
            texts.update(token_sets([hop]))
            articles = place_second(articles, hop)
        if len(terms) > 1 and len(articles) > 1:
            articles = diversify(articles, texts, terms, lex, p)
        confidence = judge(articles, plan, texts, lex, hop=hop,
                           context_share=p.context_term_weight)
        # A follow-up pointing back at its story ("what was wrong with it?" of a report saying
        # "the fault"), or saying nothing another story matches ("who lost?" after an
        # election; not "who won the Super Bowl?", which no report holds), continues that
        # story: whatever its words match, it is about that story.
        continues = continues_story(articles, plan, texts, lex, said, p.own_match,
                                    p.story_hold, lex.holds)
        on_story = (confidence < p.abstain_threshold and continues
                    and story_confidence(articles, plan, texts, lex) >= p.story_share)
        return SearchResult(
            articles=articles[:k], time=plan.time, confidence=confidence,
            weak=confidence < p.abstain_threshold and not on_story, query_terms=terms,
            took_ms=(time.perf_counter() - t0) * 1000, on_story=on_story,
            joint=hop is not None and len(articles) > 1 and articles[1] is hop,
            article_terms={a.article_id: texts[a.article_id] for a in articles[:k]
                           if a.article_id in texts},
            vector=plan.vector, context_terms=content_terms(plan.context_tokens),
            story_terms=plan.story_terms if continues else (),
        )


def refresh_gap(p: SearchParams, last_build_s: float) -> float:
    """Seconds from one background rebuild of the keyword index to the next: the interval,
    or longer when builds take long enough to cost more than ``refresh_cpu_share`` of a core."""
    return max(p.refresh_interval_s, last_build_s / p.refresh_cpu_share)


# -- stage 3: fusion -----------------------------------------------------------------------------
def fuse_scores(hits: Iterable[ChunkHit], cosines: dict[str, float], lex: LexicalIndex,
                lex_scores: np.ndarray, dense_weight: float) -> None:
    """fused = w * cosine + (1 - w) * BM25 relative to the best match of the whole index."""
    best_lex = float(lex_scores.max()) if len(lex_scores) and lex_scores.max() > 0 else 1.0
    for h in hits:
        if h.dense_sim is None:
            h.dense_sim = cosines.get(h.id, 0.0)
        pos = lex.position.get(h.id)
        h.lexical = float(lex_scores[pos]) / best_lex if pos is not None else 0.0
        h.score = dense_weight * h.dense_sim + (1 - dense_weight) * h.lexical


# -- stage 4: grouping ---------------------------------------------------------------------------
def group(hits: Iterable[ChunkHit], second_weight: float) -> list[ArticleHit]:
    """Chunks into articles, best first; an article's score is its best chunk's plus
    ``second_weight`` of its second best."""
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


# -- stage 5: rerankers --------------------------------------------------------------------------
def boost_window(hits: Iterable[ChunkHit], span: Span, boost: float) -> None:
    """Chunks published inside the period the question names score ``1 + boost`` times more."""
    for h in hits:
        if in_window(h.metadata, span):
            h.score *= 1 + boost


def prefer_article(articles: list[ArticleHit], article_id: str | None,
                   weight: float) -> list[ArticleHit]:
    """The article the asker is reading (a brief's thread) scores ``weight`` times more."""
    if not article_id:
        return articles
    for a in articles:
        if a.article_id == article_id:
            a.score *= weight
    return sorted(articles, key=lambda a: -a.score)


def prefer_recent(articles: list[ArticleHit], margin: float) -> list[ArticleHit]:
    """Among articles scoring within ``margin`` of the best, put the newest first."""
    best = articles[0].score
    pool = [a for a in articles if a.score >= best * (1 - margin)]
    rest = [a for a in articles if a not in pool]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    pool.sort(key=lambda a: a.published_at or epoch, reverse=True)
    return pool + rest


def new_subject(articles: list[ArticleHit], texts: dict[str, set[str]], plan: QueryPlan,
                idf: Idf, margin: float, said: Callable[[ArticleHit], float],
                least_said: float) -> list[ArticleHit]:
    """A follow-up naming something new ("what about the eclipse?") leads with the article
    that covers what it names, when the best one by the whole conversation does not.

    The conversation pulls the search towards its story; a follow-up's own few terms weigh
    little against it. One that points back at the story ("how fast was it going?") keeps
    it. When the best article holds none of the question's own terms, the article covering
    the largest IDF share of them goes first if that share is at least ``margin`` and it
    matches the question's own words by meaning, ``said`` at least ``least_said``
    (:func:`own_match`): "who lost?" after an election shares a word with a probe that
    "lost contact", not a subject.
    """
    terms = plan.terms
    if not plan.context or plan.refers_back or not terms or len(articles) < 2:
        return articles
    pool = [a for a in articles if a.article_id in texts]
    if not pool:
        return articles

    def covers(a: ArticleHit) -> float:
        return covered_share(terms, texts[a.article_id], idf)

    top = max(pool, key=covers)
    if (top is articles[0] or covers(articles[0]) > 0 or covers(top) < margin
            or said(top) < least_said):
        return articles
    return [top, *(a for a in articles if a is not top)]


def keep_story(articles: list[ArticleHit], texts: dict[str, set[str]], plan: QueryPlan,
               idf: Idf, said: Callable[[ArticleHit], float], least_said: float,
               hold: float) -> list[ArticleHit]:
    """A follow-up stays with its conversation's story unless what it says itself matches
    another article.

    Its own few words ("how long did the work take?") can outweigh the conversation in the
    word search and put another story first (a probe's repair "work"). When the first
    article holds less than ``hold`` of the story's terms (of the earlier questions that
    named it, by IDF) and matches the follow-up's own words by meaning (``said``,
    :func:`own_match`) less than ``least_said``, the article holding most of them goes first
    instead.
    """
    if not plan.context or not plan.story_terms or len(articles) < 2:
        return articles
    pool = [a for a in articles if a.article_id in texts]
    if not pool or articles[0] not in pool:
        return articles

    def story(a: ArticleHit) -> float:
        return covered_share(plan.story_terms, texts[a.article_id], idf)

    best = max(pool, key=story)  # the first of equals: the search's order
    if (story(articles[0]) >= hold or story(best) <= story(articles[0])
            or said(articles[0]) >= least_said):
        return articles
    return [best, *(a for a in articles if a is not best)]


def continues_story(articles: Sequence[ArticleHit], plan: QueryPlan,
                    texts: dict[str, set[str]], idf: Idf, said: Callable[[ArticleHit], float],
                    least_said: float, hold: float, read: Callable[[str], bool]) -> bool:
    """Whether a follow-up continues its conversation's story: it points back at it ("how
    fast was it going?"), its best article is the story's (holding ``hold`` of the story's
    terms), or that article does not match what it says (``said`` below ``least_said``), so
    its words name no other story ("who lost?").

    A word no article holds (``read`` false: "who won the Super Bowl?", a question in
    another language) names something never read, not nothing: unless the follow-up points
    back, it is judged by its own words, and the story does not answer it.
    """
    if not plan.context or not articles:
        return False
    if plan.refers_back:
        return True
    if not all(map(read, asked_terms(plan.query, plan.terms)[1])):
        return False
    top = articles[0]
    return (said(top) < least_said
            or (top.article_id in texts
                and covered_share(plan.story_terms, texts[top.article_id], idf) >= hold))


def own_match(plan: QueryPlan, article: ArticleHit, lex: LexicalIndex) -> float:
    """The best cosine of a follow-up's own vector with ``article``'s matched chunks (1 for
    a question that is no follow-up, or a chunk the keyword index does not know yet)."""
    if plan.own_vector is None:
        return 1.0
    positions = [lex.position.get(c.id) for c in article.chunks]
    if None in positions:
        return 1.0
    cosines = lex.cosines(plan.own_vector, positions)  # type: ignore[arg-type]
    return 1.0 if cosines is None or not len(cosines) else float(cosines.max())


def second_hop(plan: QueryPlan, articles: Sequence[ArticleHit], texts: dict[str, set[str]],
               idf: Idf, p: SearchParams,
               search: Callable[[str], list[ArticleHit]]) -> ArticleHit | None:
    """Another article to go second, found by the names the best article gives.

    A question that describes someone instead of naming them ("the harbour master who
    resigned over the ferry - where does he work now?") finds the story of the description
    first, and that story lacks what is asked. When the best article matches well, leaves a
    good share of the question's terms uncovered, and names people the question does not,
    those names and the uncovered words are searched; the best other article that covers
    most of those words and names one of the people goes second.
    """
    if not articles or articles[0].article_id not in texts:
        return None
    top = articles[0]
    terms = plan.terms
    if top.dense_sim < p.hop_min_sim or len(terms) < 3:
        return None
    missing = [t for t in terms if t not in texts[top.article_id]]
    if not missing or missing_share(terms, texts[top.article_id], idf) < p.hop_min_missing:
        return None
    names = repeated_names(top, set(plan.tokens), p.hop_min_mentions)
    if not names:
        return None
    words = [w for w in re.findall(r"[\w'-]+", plan.query)
             if set(tokenize([w])[0]) & set(missing)]
    found = search(" ".join([*names, *words]))
    name_terms = [set(tokenize([n])[0]) for n in names]
    for cand in found[:5]:
        if cand.article_id == top.article_id:
            continue
        toks = token_sets([cand])[cand.article_id]
        if not any(n and n <= toks for n in name_terms):
            continue
        if covered_share(missing, toks, idf) >= p.hop_min_gain:
            if len(articles) > 1:
                # It goes second with the second score: the coverage re-ranking starts there.
                cand.score = articles[1].score
            return cand
    return None


def place_second(articles: list[ArticleHit], hop: ArticleHit) -> list[ArticleHit]:
    return [articles[0], hop, *(a for a in articles[1:] if a.article_id != hop.article_id)]


def diversify(articles: list[ArticleHit], texts: dict[str, set[str]], terms: Sequence[str],
              idf: Idf, p: SearchParams) -> list[ArticleHit]:
    """Below the best article, prefer articles that cover question terms not yet covered.

    A question about two stories ("did the mill and the mine both cut jobs?") otherwise gets
    five articles about whichever story dominates the index. The top article stays first.
    """
    weights = {t: idf.idf(t) for t in terms}
    total = sum(weights.values()) or 1.0
    pool = [a for a in articles[: p.coverage_pool] if a.article_id in texts]
    rest = [a for a in articles if a not in pool]
    if not pool:
        return articles
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


# -- stage 6: the judge ------------------------------------------------------------------------
def judge(articles: Sequence[ArticleHit], plan: QueryPlan, texts: dict[str, set[str]],
          idf: Idf, *, hop: ArticleHit | None = None, context_share: float = 0.0) -> float:
    """How well the best articles cover the question (0 when none is in a period it names).

    A question about a period with no article in it cannot be answered from them (the
    period's other hops, "what did he say in 2008 about ...", are judged as usual). With a
    second hop, the description and the question asked are judged together, and so are the
    best article and the one holding the other answer a choice offers (:func:`compared`).
    A follow-up with no terms of its own ("when was that?"), or that points back at it with
    a pronoun ("how fast was it going?"), asks about its conversation's subject: the earlier
    turns' terms count too, at ``context_share`` of their weight. One that names something else
    ("and the Mars helicopter?") is judged by what it names: the earlier story covering the
    conversation says nothing of whether it covers that. The words of :func:`asked_terms`
    that name no subject count only when they are all the question has.
    """
    if not articles:
        return 0.0
    if plan.time.bounded and not any(in_window(a.meta, plan.window) for a in articles):
        return 0.0
    kind_free, named = asked_terms(plan.query, plan.terms)
    terms = named or kind_free
    context = content_terms(plan.context_tokens) if not terms or plan.refers_back else []
    confidence = coverage_confidence(articles[:3], terms, idf, texts, context=context,
                                     context_share=context_share)
    if hop is None or len(articles) < 2 or articles[1] is not hop:
        hop = compared(articles, plan.query, texts)
    if hop is not None:
        confidence = max(confidence, coverage_confidence(
            [articles[0], hop], terms, idf, texts, jointly=True, context=context,
            context_share=context_share))
    return confidence


def compared(articles: Sequence[ArticleHit], query: str,
             texts: dict[str, set[str]]) -> ArticleHit | None:
    """The report beside the best one when a question offers a choice of two stories
    ("which came first, the eclipse or the olympics?") and the best holds only one: of the
    next two, the first holding an answer offered that the best does not."""
    expected = expect(query)
    if expected is None or len(expected.offered) < 2 or len(articles) < 2:
        return None
    best = texts.get(articles[0].article_id, set())
    missing = [o for o in expected.offered if not o <= best]
    if len(missing) == len(expected.offered):
        return None  # the best holds no answer offered: it is no report of either
    return next((a for a in articles[1:3]
                 if any(o <= texts.get(a.article_id, set()) for o in missing)), None)


def asked_terms(query: str, terms: Sequence[str]) -> tuple[list[str], list[str]]:
    """A question's ``terms`` less the word naming the kind of answer ("long" in "how long
    did it last?": an answer gives the length, not the word), and of those the ones naming
    what it asks about: not words asking for news or how things went ("what happened to the
    conservatives?", "how fast was it going?"), nor the verb asking for words said ("what
    did Sunak say?": a report writes "said", or quotes him)."""
    expected = expect(query)
    kind = expected.kind_terms if expected is not None else frozenset()
    kind_free = [t for t in terms if t not in kind]
    light = news_words() | (_SPEECH_TERMS if cue(query) == "said" else frozenset())
    return kind_free, [t for t in kind_free if t not in light]


def story_confidence(articles: Sequence[ArticleHit], plan: QueryPlan,
                     texts: dict[str, set[str]], idf: Idf) -> float:
    """How well the best article is the story the conversation named: its cosine and the
    IDF share of the story's terms (of the earlier questions that named it) it holds."""
    if not articles or not plan.story_terms:
        return 0.0
    return coverage_confidence(articles[:1], [], idf, texts, context=plan.story_terms,
                               context_share=1.0)


def coverage_confidence(articles: Sequence[ArticleHit], terms: Sequence[str], idf: Idf,
                        texts: dict[str, set[str]], *, jointly: bool = False,
                        context: Sequence[str] = (), context_share: float = 0.0) -> float:
    """0.5 * best cosine + 0.5 * the IDF share of the question's terms an article covers.

    Each article is judged alone, or with ``jointly`` the articles together, as one. The
    ``context`` terms (a follow-up's earlier turns) weigh ``context_share`` of their IDF.
    """
    weights = {t: idf.idf(t) for t in terms}
    weights.update({t: context_share * idf.idf(t) for t in context if t not in weights})
    total = sum(weights.values())
    if total <= 0:
        return articles[0].dense_sim
    groups = [list(articles)] if jointly else [[a] for a in articles]
    best = 0.0
    for g in groups:
        tokens = set().union(*(texts.get(a.article_id, set()) for a in g))
        covered = sum(w for t, w in weights.items() if t in tokens) / total
        best = max(best, 0.5 * max(a.dense_sim for a in g) + 0.5 * covered)
    return best


# -- helpers -------------------------------------------------------------------------------------
# The verbs by which a question asks for words said or a reaction ("what did she say?", "how
# did they react?"). Fewer than answer_type's _SPEECH_ASKED reads: "warn", "claim",
# "propose" ... there still name what an article must hold ("what did she warn?").
_SPEECH_TERMS = frozenset(tokenize(["say said tell told react reacted respond responded"])[0])

# Words by which a follow-up points back at the story its conversation is about.
_REFERS_BACK = frozenset(("it", "its", "he", "him", "his", "she", "her", "they", "them",
                          "their", "this", "that", "these", "those"))
# "When is the next one?", "which one won?"; not "in one day".
_ONE_OF_THEM = re.compile(r"\b(?:the|that|this|which|next|last|first|other|same)\s+one\b",
                          re.IGNORECASE)
_NAME = re.compile(r"\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)*\b")
_NOT_NAMES = frozenset((
    "The", "A", "An", "In", "On", "At", "For", "From", "By", "With", "And", "But", "Or", "Of",
    "To", "It", "He", "She", "They", "We", "His", "Her", "Their", "This", "That", "These",
    "Those", "There", "Then", "When", "While", "After", "Before", "During", "Since", "Mr", "Mrs",
    "Ms", "Dr", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
))


def points_back(question: str) -> bool:
    """Whether ``question`` points back at its conversation's story with a pronoun ("how
    fast was it going?", "when was that?"), "one" ("when is the next one?"), or asks for
    more of it or its source ("tell me more", "source?")."""
    return (not _REFERS_BACK.isdisjoint(w.lower() for w in re.findall(r"[\w']+", question))
            or _ONE_OF_THEM.search(question) is not None
            or story_request(question) is not None)


def repeated_names(article: ArticleHit, question_tokens: set[str], min_mentions: int,
                   limit: int = 2) -> list[str]:
    """The names the article's matched text repeats most that the question does not use."""
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
    return [n for n in ranked if counts[n] >= min_mentions][:limit]


def in_window(meta: dict[str, Any], span: Span) -> bool:
    ts = meta.get("published_ts")
    return ts is not None and span.contains(int(ts))


def _where(span: Span, outlet: str | None, lex: LexicalIndex) -> dict[str, Any] | None:
    """The store's metadata filter for a period and an outlet (any case of its name)."""
    clauses: list[dict[str, Any]] = []
    period = span.where()
    if period:
        clauses.append(period)
    if outlet:
        names = lex.spellings(outlet)
        clauses.append({"outlet": names[0] if len(names) == 1 else {"$in": names}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _mask(lex: LexicalIndex, span: Span, outlet: str | None) -> np.ndarray | None:
    if not (span.bounded or outlet):
        return None
    mask = span.mask(lex.published_ts)
    if outlet:
        mask &= lex.outlets == outlet.casefold()
    return mask


def content_terms(tokens: Sequence[str]) -> list[str]:
    """Stemmed, stop-worded terms longer than one letter, unique, in order."""
    return list(dict.fromkeys(t for t in tokens if len(t) > 1))


def token_sets(articles: Sequence[ArticleHit]) -> dict[str, set[str]]:
    """Each article's stemmed tokens (headline and matched chunks)."""
    return {a.article_id: set().union(_text_terms(a.title),
                                      *(_text_terms(c.text) for c in a.chunks[:3]))
            for a in articles}


@lru_cache(maxsize=20_000)
def _text_terms(text: str) -> frozenset[str]:
    # The same chunks come back question after question: each is tokenised once.
    return frozenset(tokenize([text])[0])
