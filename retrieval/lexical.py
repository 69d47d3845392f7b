"""BM25 lexical index (bm25s) over the chunks of the live collection.

It is derived data: built from the store's own documents, so every process that shares a
store can build the same index, and cached on disk per collection version so a cold start
loads it instead of re-tokenising the corpus.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.chunking import indexed_text
from retrieval.store import StoredChunk

log = logging.getLogger(__name__)

_FORMAT = 3  # bump when what is indexed changes

# "US" would lower-case into the stop word "us"; news writes the country both ways.
_US = re.compile(r"\bU\.?S\.?(?=\W|$)(?!\.\w)")


@cache
def _stopwords() -> list[str]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    # Words that carry news meaning ("who won", "votes against", "before the vote") stay in.
    keep = {"won", "against", "no", "not", "nor", "up", "down", "off", "out", "over", "under",
            "after", "before", "between", "during", "until"}
    return sorted((set(STOPWORDS_EN_PLUS) - keep) | {"many", "much", "would", "could", "also",
                                                     "ever", "us"})


@cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-worded, stemmed tokens (the same for chunks and queries)."""
    import bm25s

    # bm25s sets its own logger to DEBUG on import; its progress chatter is not ours to print.
    logging.getLogger("bm25s").setLevel(logging.WARNING)

    texts = [_US.sub("USA", t) for t in texts]
    return bm25s.tokenize(texts, stopwords=_stopwords(), stemmer=_stemmer(), return_ids=False,
                          show_progress=False)


class LexicalIndex:
    """BM25 scores over chunks, with the per-chunk fields that filters need."""

    def __init__(self, bm25: Any, ids: list[str], meta: list[dict[str, Any]]) -> None:
        self._bm25 = bm25
        self.ids = ids
        self.meta = meta
        self.position = {cid: i for i, cid in enumerate(ids)}
        self.article_ids = np.array([m["article_id"] for m in meta], dtype=object)
        self.published_ts = np.array([m.get("published_ts", -1) for m in meta], dtype=np.int64)
        self.outlets = np.array([(m.get("outlet") or "").casefold() for m in meta], dtype=object)
        self._vocab: dict[str, int] = dict(bm25.vocab_dict) if ids else {}
        n = max(len(ids), 1)
        # Document frequencies give IDF weights for query terms (coverage and sentence scores).
        self._df: dict[str, int] = {}
        if ids:
            counts = np.diff(bm25.scores["indptr"])
            inv = {v: k for k, v in self._vocab.items()}
            self._df = {inv[i]: int(c) for i, c in enumerate(counts) if i in inv}
        self._n = n

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, chunks: Iterable[StoredChunk]) -> LexicalIndex:
        import bm25s

        ids: list[str] = []
        meta: list[dict[str, Any]] = []
        texts: list[str] = []
        for c in chunks:
            ids.append(c.id)
            m = dict(c.metadata)
            m["text"] = c.text
            meta.append(m)
            texts.append(indexed_text(str(m.get("title", "")), c.text))
        bm25 = bm25s.BM25()
        if texts:
            bm25.index(tokenize(texts), show_progress=False)
        return cls(bm25, ids, meta)

    def idf(self, term: str) -> float:
        """BM25-style IDF of a (stemmed) term; unknown terms get the highest weight."""
        df = self._df.get(term, 0)
        return float(np.log(1 + (self._n - df + 0.5) / (df + 0.5)))

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
        (tmp / "chunks.json").write_text(json.dumps({"format": _FORMAT, "ids": self.ids,
                                                     "meta": self.meta}))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex | None:
        import bm25s

        try:
            data = json.loads((folder / "chunks.json").read_text())
            if data.get("format") != _FORMAT:
                return None
            bm25 = bm25s.BM25.load(str(folder / "bm25")) if data["ids"] else bm25s.BM25()
            return cls(bm25, data["ids"], data["meta"])
        except (OSError, ValueError, KeyError) as exc:
            log.info("lexical cache at %s not usable (%s); rebuilding", folder, exc)
            return None
