"""What a write costs the keyword index: one new article, one edited, one removed.

    python -m bench.lexical_update [--corpus DIR] [--synthetic-chunks N] [--repeat N]

For each store (the corpus ingested with ``--corpus``; a synthetic store of N chunks, built
once by ``bench.speed``'s generator and cached), prints the median over ``--repeat`` writes
of:
(a) a build from the store: what every write cost before the index followed writes (the
    path a restart without a saved index, another process's write or a reindex still takes);
(b) the update after one new article (as a feed poll writes it), after an edit that
    shortens an article, and after a removal, each saved to disk as a build is, and what
    each of those writes took in the store; and a new process's first write (``newsbot
    ingest`` without the service): the index saved before it loaded, then updated;
and checks that each updated index scores a few queries exactly as a fresh build does.

Vectors come from the project's fake hashed embedder (tests/fakes.py): the keyword index's
cost does not depend on them, and it keeps the figures free of embedding time. The articles
written are removed again, so the synthetic store stays as ``bench.speed`` built it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.articles import Article, build_article
from retrieval.indexer import Indexer
from retrieval.lexical import LexicalIndex, tokenize
from retrieval.search import Retriever
from retrieval.store import VectorStore
from tests.fakes import FakeEmbedder

QUERIES = ("harbour ferry timetable", "council budget vote", "storm damage coast")


def _article(n: int, paragraphs: int = 6) -> Article:
    body = "\n\n".join(
        f"Paragraph {p} of bench story {n}: the harbour council voted on the ferry "
        f"timetable and the storm damage budget, item {n * 31 + p}, after a long debate "
        "that ran well into the evening." for p in range(paragraphs))
    return build_article(title=f"Bench story {n} on the harbour budget", text=body,
                         url=f"https://bench.example/story/{n}", outlet="Bench Gazette",
                         published_at=datetime(2026, 11, 1, tzinfo=UTC))


def _same_scores(a: LexicalIndex, b: LexicalIndex) -> bool:
    if sorted(a.ids) != sorted(b.ids):
        return False
    order = np.array([b.position[i] for i in a.ids])
    return all(np.allclose(a.scores(q), b.scores(q)[order], rtol=1e-5, atol=1e-6)
               for q in (tokenize([text])[0] for text in QUERIES))


def _median(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:9.1f} ms"


def measure(store: VectorStore, label: str, repeat: int) -> dict[str, Any]:
    embedder = FakeEmbedder()
    indexer = Indexer(store, embedder)
    out: dict[str, Any] = {"chunks": store.count()}
    with tempfile.TemporaryDirectory(prefix="lexbench-") as tmp:
        retriever = Retriever(store, embedder, cache_dir=Path(tmp))
        builds: list[float] = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            retriever._build(store.iter_chunks(), Path(tmp) / "full")
            builds.append(time.perf_counter() - t0)
        retriever.lexical()  # the index in use, before the writes

        writes: dict[str, list[float]] = {"added": [], "edited": [], "removed": []}

        def timed(kind: str, write: Callable[[], object], check: bool) -> tuple[float, bool]:
            t0 = time.perf_counter()
            write()
            writes[kind].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            retriever.refresh()
            took = time.perf_counter() - t0
            if not check:  # a build from the store per check: once per kind of write
                return took, True
            return took, _same_scores(retriever.lexical(),
                                      LexicalIndex.build(store.iter_chunks()))

        added: list[float] = []
        edited: list[float] = []
        removed: list[float] = []
        first: list[float] = []
        same = True
        try:
            for n in range(repeat):
                story = _article(900_000 + n)
                shorter = _article(900_000 + n, paragraphs=2)
                took, ok = timed("added", partial(indexer.index, [story]), n == 0)
                added.append(took)
                took2, ok2 = timed("edited", partial(indexer.index, [shorter],
                                                     changed=[shorter.id]), n == 0)
                edited.append(took2)
                took3, ok3 = timed("removed", partial(indexer.remove, [story.id]), n == 0)
                removed.append(took3)
                same = same and ok and ok2 and ok3
            # A command run without the service: a fresh process's retriever, whose write
            # comes before any read, loads the index saved before it and updates that.
            for n in range(repeat):
                indexer.index([_article(900_000 + n)])
                t0 = time.perf_counter()
                Retriever(store, embedder, cache_dir=Path(tmp)).refresh()
                first.append(time.perf_counter() - t0)
                retriever.refresh()
        finally:
            indexer.remove([_article(900_000 + n).id for n in range(repeat)])
    out.update(build_s=statistics.median(builds), added_s=statistics.median(added),
               edited_s=statistics.median(edited), removed_s=statistics.median(removed),
               first_write_s=statistics.median(first), same_scores=same,
               **{f"write_{k}_s": statistics.median(v) for k, v in writes.items()})
    print(f"{label}: {out['chunks']:,} chunks")
    print(f"  build from the store (each write, before)   {_median(builds)}")
    print(f"  update after one new article                {_median(added)}")
    print(f"  update after an edit that shortens it       {_median(edited)}")
    print(f"  update after a removal                      {_median(removed)}")
    print(f"  a new process's first write (load, update)  {_median(first)}")
    print(f"  updated index scores as a fresh build       {'yes' if same else 'NO'}")
    print("  the store write itself (embedding included): new article "
          f"{_median(writes['added'])}, edit {_median(writes['edited'])}, removal "
          f"{_median(writes['removed'])}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path,
                        help="a folder of articles_*.jsonl to ingest (e.g. the Wikinews corpus)")
    parser.add_argument("--synthetic-chunks", type=int, default=100_000,
                        help="size of the synthetic store (0 to skip)")
    parser.add_argument("--synthetic-cache", type=Path,
                        help="where the synthetic store is (built there once when missing)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.corpus:
        from bench.common import corpus_files
        from tests.fakes import make_services

        with tempfile.TemporaryDirectory(prefix="lexbench-corpus-") as tmp:
            svc = make_services(Path(tmp) / "data", sample=False)
            try:
                svc.admin.ingest([str(p) for p in corpus_files(args.corpus)])
                measure(svc.store, "corpus", args.repeat)
            finally:
                svc.close()
    if args.synthetic_chunks:
        from bench.speed import open_synthetic

        store, _, _ = open_synthetic(args.synthetic_chunks, FakeEmbedder(),
                                     args.synthetic_cache)
        try:
            measure(store, "synthetic", args.repeat)
        finally:
            store.close()


if __name__ == "__main__":
    main()
