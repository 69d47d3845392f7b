"""The lexical index: its tokenizer against the bm25s one it stands in for, and the chunk
vectors it keeps in order of publication."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import bm25s
import numpy as np

from retrieval.lexical import LexicalIndex, _stemmer, _stopwords, tokenize
from retrieval.store import StoredChunk
from retrieval.timeparse import Span


def test_tokens_are_those_bm25s_gives() -> None:
    texts = ["", "The U.S. and the US both voted; the USA abstained.",
             "Crews pumped 4,500 litres out of cellars in Zürich's old town at 3:15 pm.",
             "naïve café-owners didn't re-open", "a b c", "Élections 2019: résultats"]
    expected = bm25s.tokenize([t.replace("U.S.", "USA").replace(" US ", " USA ")
                               for t in texts], stopwords=_stopwords(), stemmer=_stemmer(),
                              return_ids=False, show_progress=False)
    assert tokenize(texts) == expected
    assert tokenize(["The US voted"]) == [["usa", "vote"]]


def _index(tmp_path: Path) -> tuple[LexicalIndex, np.ndarray]:
    rng = np.random.default_rng(7)
    days = [5, 1, -1, 3, 2, 4, 1]  # -1: no date
    chunks = [StoredChunk(f"a{i}:0", f"Harbour report number {i} on the ferry timetable.",
                          {"article_id": f"a{i}", "outlet": "Coast Post" if i % 2 else "Bay",
                           **({"published_ts": 86_400 * d} if d >= 0 else {})})
              for i, d in enumerate(days)]
    vectors = rng.standard_normal((len(chunks), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = LexicalIndex.build(chunks)
    index.set_vectors(vectors)
    index.save(tmp_path / "lex")
    loaded = LexicalIndex.load(tmp_path / "lex")
    assert loaded is not None and loaded.vectors is not None
    return loaded, vectors


def test_a_periods_nearest_chunks_are_found_by_their_vectors(tmp_path: Path) -> None:
    index, vectors = _index(tmp_path)
    q = vectors[3] + 0.1 * vectors[0]
    sims = vectors @ q
    ts = index.published_ts

    def expect(keep: np.ndarray, n: int) -> list[int]:
        order = [int(i) for i in np.argsort(-sims) if keep[i]]
        return order[:n]

    lo, hi = 86_400 * 2, 86_400 * 5

    def span(lo: int | None, hi: int | None) -> Span:
        return Span.of(*(None if t is None else datetime.fromtimestamp(t, UTC) for t in (lo, hi)))

    assert index.period_nearest(q, 2, span(lo, hi)) == expect((ts >= lo) & (ts < hi), 2)
    assert index.period_nearest(q, 9, span(None, hi)) == expect((ts >= 0) & (ts < hi), 9)
    assert index.period_nearest(q, 9, Span()) == expect(np.ones(len(ts), bool), 9)
    coast = np.array([m["outlet"] == "Coast Post" for m in index.meta])
    assert index.period_nearest(q, 9, span(lo, None), "coast post") == expect(
        (ts >= lo) & coast, 9)
    assert index.period_nearest(q, 3, span(86_400 * 9, None)) == []
    assert index.period_size(span(lo, hi)) == 3
    assert list(index.newest(span(lo, hi))) == [5, 3, 4]
    assert np.allclose(index.cosines(q, [4, 0]), sims[[4, 0]])
