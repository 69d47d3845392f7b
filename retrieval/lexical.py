"""BM25 lexical index (bm25s) over the chunks of the live collection.

It is derived data: built from the store's own documents, so every process that shares a
store can build the same index, and cached on disk per collection version so a cold start
loads it instead of re-tokenising the corpus.

Each chunk's token counts are kept beside the scores, so that a write of a few articles
updates the index (:meth:`LexicalIndex.updated`) by tokenising only their chunks and
re-scoring the counts in a few vectorised passes, as ``bm25s`` would score them from
scratch: IDF and the average length change with every chunk, so every score is computed
again, but from counts in memory rather than from the store's texts (at 100,000 chunks, a
fraction of a second rather than the tens of seconds a build from the store takes).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrieval.chunking import indexed_text
from retrieval.store import StoredChunk
from retrieval.timeparse import Span

if TYPE_CHECKING:
    from retrieval.search import Idf

log = logging.getLogger(__name__)

_FORMAT = 8  # bump when what is indexed changes

# bm25s's defaults (BM25(), method "lucene"), with which every index here is scored.
_K1 = 1.5
_B = 0.75

# The share of an updated index's vocabulary that words no chunk holds may reach before
# they are dropped (see _compacted): a pass over the postings, once in many updates.
_DEAD_SHARE = 0.25

# "US" would lower-case into the stop word "us"; news writes the country both ways.
_US = re.compile(r"\bU\.?S\.?(?=\W|$)(?!\.\w)")


# Chat's asides ("hey, can anyone tell me ...", "pretty sure ...") and hedges ("where
# exactly?", "ok, so what actually happened?") ask for nothing an article says: stop words.
CHAT_ASIDES = frozenset({"hey", "hi", "hello", "anyone", "anybody", "tell", "know", "pretty",
                         "sure", "please", "pls", "thanks", "lol", "btw", "wondering",
                         "curious", "remind", "ok", "okay", "yeah", "guys", "really",
                         "actually", "exactly", "precisely", "basically", "literally",
                         "anyway"})


def only_asides(text: str) -> bool:
    """Whether ``text`` is nothing but chat's asides ("thanks!", "hi", "lol"): it asks
    nothing, of the news or of a conversation's story."""
    words = re.findall(r"[^\W\d_]+", text.casefold())
    return bool(words) and all(w in CHAT_ASIDES for w in words)


@cache
def _stopwords() -> list[str]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    # Words that carry news meaning ("who won", "votes against", "before the vote") stay in.
    keep = {"won", "against", "no", "not", "nor", "up", "down", "off", "out", "over", "under",
            "after", "before", "between", "during", "until"}
    # Chat drops the apostrophe: "whats" is "what's", which the token pattern splits into
    # the stop word "what" and a letter; unknown to the index, it would weigh most.
    bare = {"whats", "hows", "wheres", "whens", "whos", "whys", "thats", "theres", "heres",
            "dont", "didnt", "doesnt", "isnt", "wasnt", "arent", "werent", "hasnt", "havent",
            "hadnt", "cant", "couldnt", "wouldnt", "shouldnt", "im", "ive", "youre", "theyre"}
    return sorted((set(STOPWORDS_EN_PLUS) - keep) | bare | CHAT_ASIDES
                  | {"many", "much", "would", "could", "also", "ever", "us"})


@cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


# bm25s's default token pattern (scikit-learn's): words of two or more characters.
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


@cache
def _stopset() -> frozenset[str]:
    return frozenset(_stopwords())


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-worded, stemmed tokens (the same for chunks and queries).

    The tokens ``bm25s.tokenize`` gives with these stop words and stemmer, computed here:
    it builds a stop-word set and progress bars on every call, which made a question's
    hundreds of short calls (sentences, names, headlines) cost more than its search.
    """
    stop = _stopset()
    stem = _stemmer().stemWords
    out: list[list[str]] = []
    for text in texts:
        words = [w for w in _TOKEN.findall(_US.sub("USA", text).lower()) if w not in stop]
        out.append(stem(words) if words else [])
    return out


@cache
def news_words() -> frozenset[str]:
    """Index terms that ask for news without naming a subject ("any updates?", "what's
    up with the strike?")."""
    return frozenset(tokenize(["news newest latest new headlines stories story happened "
                               "happening updates recent going on up anything lately"])[0])


def missing_share(terms: Sequence[str], covered: set[str], idf: Idf) -> float:
    """The IDF share of ``terms`` not in ``covered``."""
    total = sum(idf.idf(t) for t in terms) or 1.0
    return sum(idf.idf(t) for t in terms if t not in covered) / total


def covered_share(terms: Sequence[str], covered: set[str], idf: Idf) -> float:
    """The IDF share of ``terms`` in ``covered`` (all of none): how much of a question's,
    or a conversation's story's, terms an article holds."""
    return 1.0 - missing_share(terms, covered, idf)


def _quiet_bm25s() -> None:
    # bm25s sets its own logger to DEBUG on import; its progress chatter is not ours to print.
    logging.getLogger("bm25s").setLevel(logging.WARNING)


class Postings:
    """Each chunk's distinct token ids and how often it holds them, chunk after chunk
    (``indptr[i]:indptr[i + 1]`` are chunk ``i``'s): what the scores are computed from."""

    def __init__(self, indptr: np.ndarray, tokens: np.ndarray, counts: np.ndarray) -> None:
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.tokens = np.asarray(tokens, dtype=np.int32)
        self.counts = np.asarray(counts, dtype=np.float32)

    @classmethod
    def of(cls, token_lists: Sequence[Sequence[str]], vocab: dict[str, int]) -> Postings:
        """The postings of tokenised chunks; tokens new to ``vocab`` are added to it."""
        lens = np.fromiter((len(t) for t in token_lists), dtype=np.int64,
                           count=len(token_lists))
        ids = np.fromiter((vocab.setdefault(w, len(vocab)) for t in token_lists for w in t),
                          dtype=np.int64, count=int(lens.sum()))
        doc = np.repeat(np.arange(len(token_lists), dtype=np.int64), lens)
        pairs, counts = np.unique((doc << 32) | ids, return_counts=True)
        indptr = np.zeros(len(token_lists) + 1, dtype=np.int64)
        np.cumsum(np.bincount(pairs >> 32, minlength=len(token_lists)), out=indptr[1:])
        return cls(indptr, pairs & 0xFFFFFFFF, counts)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def select(self, keep: np.ndarray) -> Postings:
        """The postings of the chunks where ``keep`` (a mask over chunks) is true."""
        lens = np.diff(self.indptr)
        rows = np.repeat(keep, lens)
        indptr = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
        np.cumsum(lens[keep], out=indptr[1:])
        return Postings(indptr, self.tokens[rows], self.counts[rows])

    def then(self, other: Postings) -> Postings:
        """These chunks followed by ``other``'s."""
        return Postings(np.concatenate([self.indptr, other.indptr[1:] + self.indptr[-1]]),
                        np.concatenate([self.tokens, other.tokens]),
                        np.concatenate([self.counts, other.counts]))

    def bm25(self, vocab: dict[str, int]) -> Any:
        """A ``bm25s.BM25`` scoring these chunks, with the scores ``BM25().index`` computes
        for the same tokens (Lucene's BM25), computed here in whole-array passes."""
        import bm25s

        _quiet_bm25s()
        n, n_vocab = len(self), max(len(vocab), 1)
        doc = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.indptr))
        doc_len = np.bincount(doc, weights=self.counts, minlength=n)
        avg = float(doc_len.mean()) if n and doc_len.any() else 1.0
        df = np.bincount(self.tokens, minlength=n_vocab)
        idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        tfc = self.counts / (_K1 * ((1 - _B) + _B * doc_len[doc] / np.float64(avg))
                             + self.counts)
        data = (idf[self.tokens] * tfc).astype(np.float32)
        order = _by_token(self.tokens)  # then by chunk, as bm25s stores them
        indptr = np.zeros(n_vocab + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.tokens, minlength=n_vocab), out=indptr[1:])
        bm25 = bm25s.BM25()
        bm25.scores = {"data": data[order], "indices": doc[order].astype(np.int32),
                       "indptr": indptr, "num_docs": n}
        bm25.vocab_dict = dict(vocab)
        bm25.unique_token_ids_set = set(vocab.values())
        bm25.nonoccurrence_array = None
        return bm25


def _compacted(postings: Postings, vocab: dict[str, int]) -> tuple[Postings, dict[str, int]]:
    """``postings`` and ``vocab`` without the words no chunk holds any more, once they are
    more than ``_DEAD_SHARE`` of it: updates only ever add words, and those of deleted or
    edited chunks would otherwise stay, and be saved and scored over, until a build."""
    live = np.bincount(postings.tokens, minlength=len(vocab)) > 0
    if len(vocab) - int(live.sum()) <= _DEAD_SHARE * len(vocab):
        return postings, vocab
    new_id = np.cumsum(live) - 1  # ids stay in order, so each chunk's stay sorted
    return (Postings(postings.indptr, new_id[postings.tokens], postings.counts),
            {w: int(new_id[i]) for w, i in vocab.items() if live[i]})


def _by_token(tokens: np.ndarray) -> np.ndarray:
    """The stable order of ``tokens``, sorted 16 bits at a time: NumPy sorts 16-bit keys by
    radix, six times as fast as a comparison sort of 32-bit ones on millions of postings."""
    order = np.argsort((tokens & 0xFFFF).astype(np.uint16), kind="stable")
    high = (tokens[order] >> 16).astype(np.uint16)
    return order[np.argsort(high, kind="stable")] if high.any() else order


def _dot(rows: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """Each row's dot product with ``vec``, on this thread: the BLAS behind ``@`` spreads a
    product this small over threads that spin, six times the CPU on a busy machine."""
    return np.einsum("ij,j->i", rows, np.asarray(vec, dtype=np.float32))


class LexicalIndex:
    """BM25 scores over chunks, with the per-chunk fields that filters need, and (when the
    store gave them) the chunks' vectors in order of publication, so that the chunks of a
    period are one slice to compare a question with (see :meth:`period_nearest`)."""

    def __init__(self, bm25: Any, ids: list[str], meta: list[dict[str, Any]],
                 vectors: np.ndarray | None = None, postings: Postings | None = None) -> None:
        self._bm25 = bm25
        self.postings = postings
        self.ids = ids
        self.meta = meta
        self.position = {cid: i for i, cid in enumerate(ids)}
        self.article_ids = np.array([m["article_id"] for m in meta], dtype=object)
        self.published_ts = np.array([m.get("published_ts", -1) for m in meta], dtype=np.int64)
        self.outlets = np.array([(m.get("outlet") or "").casefold() for m in meta], dtype=object)
        self.first = np.array([int(m.get("chunk", 0)) == 0 for m in meta], dtype=bool)
        # Outlets are matched regardless of case ("bbc" is "BBC"); the store's metadata filter
        # is exact, so it is given every spelling the index holds.
        self._spellings: dict[str, set[str]] = {}
        for m in meta:
            name = m.get("outlet") or ""
            self._spellings.setdefault(name.casefold(), set()).add(name)
        self._vocab: dict[str, int] = dict(bm25.vocab_dict) if ids else {}
        n = max(len(ids), 1)
        # Document frequencies give IDF weights for query terms (coverage and sentence scores).
        self._df: dict[str, int] = {}
        if ids:
            counts = np.diff(bm25.scores["indptr"])
            inv = {v: k for k, v in self._vocab.items()}
            self._df = {inv[i]: int(c) for i, c in enumerate(counts) if i in inv}
        self._n = n
        # Positions by publication time (undated chunks first), and the vectors in that order.
        self.by_time = np.argsort(self.published_ts, kind="stable")
        self.ts_by_time = self.published_ts[self.by_time]
        self.time_row = np.empty_like(self.by_time)
        self.time_row[self.by_time] = np.arange(len(self.by_time))
        self.vectors: np.ndarray | None = None
        if vectors is not None and len(vectors) == len(ids) and vectors.dtype == np.float32:
            self.vectors = vectors  # already in time order (as saved)

    def set_vectors(self, vectors: np.ndarray) -> None:
        """The chunks' vectors, in the order of ``ids``."""
        self.vectors = np.ascontiguousarray(vectors[self.by_time], dtype=np.float32)

    def cosines(self, vec: np.ndarray, positions: Sequence[int]) -> np.ndarray | None:
        """Cosines of ``vec`` with the chunks at ``positions`` (None without vectors)."""
        if self.vectors is None:
            return None
        rows = self.time_row[np.asarray(positions, dtype=np.int64)]
        return _dot(self.vectors[rows], vec)

    def period_size(self, span: Span) -> int:
        start, end = self._period(span)
        return end - start

    def _period(self, span: Span) -> tuple[int, int]:
        """The slice of the time order holding every chunk of ``span`` (and, at its ends,
        some that are not: see :meth:`Span.mask`); undated chunks fall in no period."""
        ts = self.ts_by_time
        lo, hi = span.outer
        if not span.bounded:
            return 0, len(ts)
        start = int(np.searchsorted(ts, max(lo or 0, 0), side="left"))
        end = int(np.searchsorted(ts, hi, side="left")) if hi is not None else len(ts)
        return start, max(start, end)

    def newest(self, span: Span) -> Iterator[int]:
        """Positions of the chunks of ``span``, newest first."""
        start, end = self._period(span)
        inside = span.mask(self.ts_by_time[start:end])
        for row in range(end - 1, start - 1, -1):
            if inside[row - start]:
                yield int(self.by_time[row])

    def firsts(self, span: Span, outlet: str | None = None) -> np.ndarray:
        """Positions of the first chunks (one an article) of ``span``, and by ``outlet``,
        oldest first."""
        start, end = self._period(span)
        rows = self.by_time[start:end]
        keep = span.mask(self.ts_by_time[start:end]) & self.first[rows]
        if outlet:
            keep &= self.outlets[rows] == outlet.casefold()
        return rows[keep]

    def spellings(self, outlet: str) -> list[str]:
        """Every spelling of ``outlet`` the chunks use, and ``outlet`` as given (an index
        being rebuilt may not hold a new source's yet)."""
        return sorted(self._spellings.get(outlet.casefold(), set()) | {outlet})

    def period_nearest(self, vec: np.ndarray, n: int, span: Span,
                       outlet: str | None = None) -> list[int]:
        """Positions of the ``n`` chunks of ``span`` (and by ``outlet``) whose vectors are
        closest to ``vec``, by comparing it with each; [] without vectors."""
        if self.vectors is None:
            return []
        start, end = self._period(span)
        if end <= start:
            return []
        sims = _dot(self.vectors[start:end], vec)
        mine = span.mask(self.ts_by_time[start:end])
        if outlet:
            mine &= self.outlets[self.by_time[start:end]] == outlet.casefold()
        sims = np.where(mine, sims, -np.inf)
        k = min(n, len(sims))
        top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        top = top[np.argsort(-sims[top], kind="stable")]
        return [int(self.by_time[start + j]) for j in top if np.isfinite(sims[j])]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def words(self) -> int:
        """How many distinct (stemmed) words the index knows."""
        return len(self._vocab)

    @classmethod
    def build(cls, chunks: Iterable[StoredChunk]) -> LexicalIndex:
        import bm25s

        _quiet_bm25s()
        ids, meta, texts = _read(chunks)
        if not texts:
            return cls(bm25s.BM25(), [], [])
        vocab: dict[str, int] = {}
        postings = Postings.of(tokenize(texts), vocab)
        return cls(postings.bm25(vocab), ids, meta, postings=postings)

    def updated(self, deleted: dict[str, int], chunks: Sequence[StoredChunk],
                vectors: np.ndarray | None) -> LexicalIndex | None:
        """This index after a write: without the chunks of the articles in ``deleted``
        numbered from its value on, and with ``chunks`` (new ones, or new versions of
        chunks it holds; ``vectors`` are theirs, in order). None when it keeps no token
        counts to update, or no vectors (the store changed while they were read): then
        build it again."""
        if self.postings is None or self.vectors is None:
            return None
        written = {c.id for c in chunks}
        keep = np.ones(len(self.ids), dtype=bool)
        if deleted:
            for pos in np.flatnonzero(np.isin(self.article_ids, list(deleted))):
                if int(self.meta[pos].get("chunk", 0)) >= deleted[self.article_ids[pos]]:
                    keep[pos] = False
        for cid in written:
            if (pos := self.position.get(cid)) is not None:
                keep[pos] = False
        kept = np.flatnonzero(keep)
        new_ids, new_meta, texts = _read(chunks)
        ids = [self.ids[i] for i in kept] + new_ids
        if not ids:
            return LexicalIndex.build([])
        vocab = dict(self._vocab)  # the index in use keeps its own
        postings, vocab = _compacted(
            self.postings.select(keep).then(Postings.of(tokenize(texts), vocab)), vocab)
        index = LexicalIndex(postings.bm25(vocab), ids,
                             [self.meta[i] for i in kept] + new_meta, postings=postings)
        if not chunks or (vectors is not None and len(vectors) == len(chunks)):
            # Each row of the new time order, gathered once: from this index's rows (already
            # in time order), or from the new vectors (a handful, written after).
            source = np.concatenate([self.time_row[kept],
                                     -1 - np.arange(len(chunks), dtype=np.int64)])
            source = source[index.by_time]
            new = source < 0
            rows = np.empty((len(ids), self.vectors.shape[1]), dtype=np.float32)
            np.take(self.vectors, np.where(new, 0, source), axis=0, out=rows)
            if chunks:
                rows[new] = np.asarray(vectors, dtype=np.float32)[-1 - source[new]]
            index.vectors = rows
        return index

    def idf(self, term: str) -> float:
        """BM25-style IDF of a (stemmed) term; unknown terms get the highest weight."""
        df = self._df.get(term, 0)
        return float(np.log(1 + (self._n - df + 0.5) / (df + 0.5)))

    def holds(self, term: str) -> bool:
        """Whether a chunk holds ``term`` (a stemmed term)."""
        return self._df.get(term, 0) > 0

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every chunk for the query tokens (zeros when nothing matches)."""
        known = [t for t in query_tokens if t in self._vocab]
        if not known or not self.ids:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    # -- persistence -----------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write atomically: a half-written cache must never be loaded."""
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self._bm25.save(str(tmp / "bm25"))
        if self.vectors is not None:
            np.save(tmp / "vectors.npy", self.vectors)  # in time order
        if self.postings is not None:
            np.savez(tmp / "postings.npz", indptr=self.postings.indptr,
                     tokens=self.postings.tokens, counts=self.postings.counts)
        (tmp / "chunks.json").write_text(json.dumps({"format": _FORMAT, "ids": self.ids,
                                                     "meta": self.meta}))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex | None:
        import bm25s

        _quiet_bm25s()
        try:
            data = json.loads((folder / "chunks.json").read_text())
            if data.get("format") != _FORMAT:
                return None
            bm25 = bm25s.BM25.load(str(folder / "bm25")) if data["ids"] else bm25s.BM25()
            path = folder / "vectors.npy"
            # Mapped, not read: only the rows a period's search touches are paged in.
            vectors = np.load(path, mmap_mode="r") if path.exists() else None
            postings = None
            if (folder / "postings.npz").exists():
                with np.load(folder / "postings.npz") as p:
                    postings = Postings(p["indptr"], p["tokens"], p["counts"])
            return cls(bm25, data["ids"], data["meta"], vectors, postings)
        except (OSError, ValueError, KeyError) as exc:
            log.info("lexical cache at %s not usable (%s); rebuilding", folder, exc)
            return None


def _read(chunks: Iterable[StoredChunk]) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """Ids, metadata (the text included) and indexed texts of ``chunks``."""
    ids: list[str] = []
    meta: list[dict[str, Any]] = []
    texts: list[str] = []
    for c in chunks:
        ids.append(c.id)
        m = dict(c.metadata)
        m["text"] = c.text
        meta.append(m)
        texts.append(indexed_text(str(m.get("title", "")), c.text))
    return ids, meta, texts
