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


def test_words_only_removed_chunks_held_leave_the_vocabulary(tmp_path: Path) -> None:
    """Updates drop words no chunk holds any more (once they are a fair share of the
    vocabulary), so it stays the size a build from the same chunks has, scoring the same."""
    def chunk(aid: str, n: int, text: str) -> StoredChunk:
        return StoredChunk(f"{aid}:{n}", text, {"article_id": aid, "chunk": n})

    def vectors(k: int) -> np.ndarray:
        return np.ones((k, 4), dtype=np.float32)

    common = "the ferry timetable changed after the harbour council vote"
    kept = [chunk("keep", 0, f"{common} on tram fares"), chunk("keep", 1, "storm damage")]
    gone = [chunk("gone", n, f"{common} " + " ".join(f"zorblat{n}x{w}" for w in "abcdefgh"))
            for n in range(3)]
    index = LexicalIndex.build(kept + gone)
    index.set_vectors(vectors(len(kept) + len(gone)))
    # An edit keeps one chunk of "gone" under new words, a removal drops the rest.
    edited = chunk("gone", 0, f"{common} with a new pier")
    step = index.updated({"gone": 1}, [edited], vectors(1))
    assert step is not None
    step = step.updated({}, [chunk("new", 0, "lighthouse keeper retires")], vectors(1))
    assert step is not None
    fresh = LexicalIndex.build([*kept, edited, chunk("new", 0, "lighthouse keeper retires")])
    assert step.words == fresh.words
    assert sorted(step.ids) == sorted(fresh.ids)
    order = [fresh.position[i] for i in step.ids]
    for words in ("zorblat0xa", "ferry timetable", "new pier", "lighthouse keeper", "tram"):
        q = tokenize([words])[0]
        assert np.allclose(step.scores(q), fresh.scores(q)[order], atol=1e-6), words
    step.save(tmp_path / "lex")  # and as saved
    loaded = LexicalIndex.load(tmp_path / "lex")
    assert loaded is not None and loaded.words == fresh.words
    assert np.allclose(loaded.scores(tokenize(["new pier"])[0]),
                       step.scores(tokenize(["new pier"])[0]))
