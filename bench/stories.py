"""What counts as the same story, and when an article matches a topic: measured, not guessed.

    python -m bench.stories candidates --corpus ../shared/data/wikinews > /tmp/pairs.jsonl
    python -m bench.stories evaluate --corpus ../shared/data/wikinews

``candidates`` proposes article pairs for labelling: pairs published within a month of each
other, sampled across the whole range of headline+lead similarity (most pairs are far apart, so
a uniform sample would hold almost no same-story pairs). Each pair was then labelled by reading
both articles, with a one-line reason, into bench/data/story_pairs.jsonl.

``evaluate`` splits the labelled pairs into two halves by a hash of the pair, chooses the rule
(similarity threshold and date window, best F1) on the tuning half and reports precision and
recall on the checking half; then the same for topic queries against articles
(bench/data/topic_pairs.jsonl, threshold only).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import corpus_files, make_bench_embedder, read_jsonl
from retrieval.articles import article_from_record
from retrieval.chunking import Chunker, indexed_text
from retrieval.stories import StoryRule, story_text

DATA = Path(__file__).resolve().parent / "data"
PAIRS = DATA / "story_pairs.jsonl"
TOPICS = DATA / "topic_pairs.jsonl"
MAX_DAYS = 30
BINS = (0.0, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 1.01)
PER_BIN = (12, 16, 30, 30, 40, 40, 40, 40, 40, 40, 40)
WINDOWS = (1, 2, 3, 4, 5, 7, 10, 14, 21, 30)


@dataclass(slots=True)
class Corpus:
    ids: list[str]
    records: dict[str, dict[str, Any]]
    dates: np.ndarray  # days since the epoch
    vectors: np.ndarray  # headline+lead embeddings, unit rows


def load_corpus(folder: Path, embedder: Any = None, *, first_chunk: bool = False) -> Corpus:
    """The corpus with each article's headline+lead embedded (what briefs compare), or with
    ``first_chunk`` its first chunk as the index embeds it (what a period's list compares)."""
    records = {r["id"]: r for f in corpus_files(folder) for r in read_jsonl(f)}
    ids = sorted(records)
    if first_chunk:
        chunker = Chunker()
        texts = [indexed_text(records[i]["title"],
                              chunker.split(article_from_record(
                                  {"title": records[i]["title"],
                                   "text": records[i]["body"]}))[0].text)
                 for i in ids]
    else:
        texts = [story_text(records[i]["title"], records[i]["body"]) for i in ids]
    embedder = embedder or make_bench_embedder(quantized=True)
    what = "first chunks" if first_chunk else "headlines and leads"
    print(f"embedding {len(texts)} {what} with {embedder.model_id}...", file=sys.stderr)
    vectors = embedder.embed_documents(texts)
    epoch = datetime(1970, 1, 1)
    dates = np.array([(datetime.fromisoformat(records[i]["published_at"][:10]) - epoch).days
                      for i in ids], dtype=np.float64)
    return Corpus(ids, records, dates, vectors)


def half(key: str) -> str:
    """"tune" or "check", fixed by a hash of the key."""
    return "tune" if hashlib.sha256(key.encode()).digest()[0] % 2 == 0 else "check"


# -- candidates ------------------------------------------------------------------------------
def candidates(corpus: Corpus, seed: int = 7) -> list[dict[str, Any]]:
    """Pairs within MAX_DAYS of each other, sampled per similarity bin."""
    sims = corpus.vectors @ corpus.vectors.T
    gap = np.abs(corpus.dates[:, None] - corpus.dates[None, :])
    upper = np.triu(np.ones_like(sims, dtype=bool), k=1)
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for (lo, hi), n in zip(itertools.pairwise(BINS), PER_BIN, strict=True):
        ii, jj = np.nonzero(upper & (gap <= MAX_DAYS) & (sims >= lo) & (sims < hi))
        picks = rng.sample(range(len(ii)), min(n, len(ii)))
        for p in picks:
            a, b = corpus.ids[ii[p]], corpus.ids[jj[p]]
            out.append({"pair": f"{a}|{b}", "a": a, "b": b,
                        "sim": round(float(sims[ii[p], jj[p]]), 4),
                        "days": int(gap[ii[p], jj[p]])})
    out.sort(key=lambda r: r["pair"])
    return out


# -- evaluation ------------------------------------------------------------------------------
def prf(pred: Sequence[bool], gold: Sequence[bool]) -> tuple[float, float, float]:
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
    fn = sum(g and not p for p, g in zip(pred, gold, strict=True))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def choose_rule(rows: Sequence[tuple[float, float, bool]]) -> tuple[StoryRule, float]:
    """The threshold and window with the best F1 on ``rows`` of (sim, days, same)."""
    best: tuple[float, float, float] = (-1.0, 0.0, 0.0)
    gold = [g for _, _, g in rows]
    for window in WINDOWS:
        for t in np.arange(0.30, 0.96, 0.01):
            rule = StoryRule(threshold=round(float(t), 2), window_days=window)
            f1 = prf([rule.same(s, d) for s, d, _ in rows], gold)[2]
            # Ties go to the stricter threshold and the narrower window.
            if f1 > best[0] + 1e-9:
                best = (f1, rule.threshold, window)
    return StoryRule(threshold=best[1], window_days=best[2]), best[0]


def choose_threshold(rows: Sequence[tuple[float, bool]]) -> tuple[float, float]:
    gold = [g for _, g in rows]
    best = (-1.0, 0.0)
    for t in np.arange(0.10, 0.90, 0.01):
        f1 = prf([s >= t for s, _ in rows], gold)[2]
        if f1 > best[0] + 1e-9:
            best = (f1, round(float(t), 2))
    return best[1], best[0]


def evaluate_stories(corpus: Corpus, labels: list[dict[str, Any]]) -> dict[str, Any]:
    index = {i: n for n, i in enumerate(corpus.ids)}
    rows: dict[str, list[tuple[float, float, bool]]] = {"tune": [], "check": []}
    for r in labels:
        a, b = index[r["a"]], index[r["b"]]
        sim = float(corpus.vectors[a] @ corpus.vectors[b])
        days = float(abs(corpus.dates[a] - corpus.dates[b]))
        rows[half(r["pair"])].append((sim, days, bool(r["same"])))
    rule, _ = choose_rule(rows["tune"])
    out: dict[str, Any] = {"rule": {"threshold": rule.threshold, "window_days": rule.window_days}}
    for name, part in rows.items():
        p, r, f = prf([rule.same(s, d) for s, d, _ in part], [g for _, _, g in part])
        out[name] = {"pairs": len(part), "same": sum(g for *_, g in part),
                     "precision": round(p, 3), "recall": round(r, 3), "f1": round(f, 3)}
    return out


def evaluate_topics(corpus: Corpus, labels: list[dict[str, Any]], embedder: Any) -> dict[str, Any]:
    index = {i: n for n, i in enumerate(corpus.ids)}
    queries = sorted({r["topic"] for r in labels})
    qvec = dict(zip(queries, (embedder.embed_query(q) for q in queries), strict=True))
    rows: dict[str, list[tuple[float, bool]]] = {"tune": [], "check": []}
    for r in labels:
        sim = float(qvec[r["topic"]] @ corpus.vectors[index[r["article"]]])
        # Split by topic: a threshold tuned on a topic's own articles would flatter it.
        rows[half(r["topic"])].append((sim, bool(r["match"])))
    threshold, _ = choose_threshold(rows["tune"])
    out: dict[str, Any] = {"threshold": threshold}
    for name, part in rows.items():
        p, r, f = prf([s >= threshold for s, _ in part], [g for _, g in part])
        out[name] = {"pairs": len(part), "match": sum(g for _, g in part),
                     "precision": round(p, 3), "recall": round(r, 3), "f1": round(f, 3)}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stories", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["candidates", "topic-candidates", "evaluate"])
    parser.add_argument("--corpus", type=Path, required=True,
                        help="folder with articles_*.jsonl (the Wikinews corpus)")
    parser.add_argument("--pairs", type=Path, default=PAIRS, help="labelled story pairs")
    parser.add_argument("--topics", type=Path, default=TOPICS, help="labelled topic pairs")
    parser.add_argument("--topic-file", type=Path,
                        help="topic-candidates: one topic query a line")
    parser.add_argument("--qa", type=Path,
                        help="topic-candidates: draw articles only from these questions' "
                             "gold articles (the development questions, JSON lines)")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"no corpus at {args.corpus}: give --corpus (the Wikinews folder)", file=sys.stderr)
        return 2
    embedder = make_bench_embedder(quantized=True)
    corpus = load_corpus(args.corpus, embedder)
    if args.mode == "candidates":
        for row in candidates(corpus):
            print(json.dumps(row))
        return 0
    if args.mode == "topic-candidates":
        pool = ({g for q in read_jsonl(args.qa) for g in q.get("gold_ids", [])}
                if args.qa else None)
        topics = args.topic_file.read_text().splitlines()
        for row in topic_candidates(corpus, topics, embedder, pool=pool):
            print(json.dumps(row))
        return 0
    result = {"embedding": embedder.model_id,
              "stories": evaluate_stories(corpus, read_jsonl(args.pairs)),
              # The same pairs by the index's first-chunk vectors (SearchParams.digest_*).
              "stories_first_chunk": evaluate_stories(
                  load_corpus(args.corpus, embedder, first_chunk=True),
                  read_jsonl(args.pairs))}
    if args.topics.exists():
        result["topics"] = evaluate_topics(corpus, read_jsonl(args.topics), embedder)
    print(json.dumps(result, indent=2))
    return 0


def topic_candidates(corpus: Corpus, topics: list[str], embedder: Any, *,
                     pool: set[str] | None = None, seed: int = 11) -> list[dict[str, Any]]:
    """For each topic, articles spread over its similarity range (the best few included)."""
    rng = random.Random(seed)
    allowed = np.array([pool is None or i in pool for i in corpus.ids])
    out: list[dict[str, Any]] = []
    for topic in (t.strip() for t in topics):
        if not topic:
            continue
        sims = np.where(allowed, corpus.vectors @ embedder.embed_query(topic), -2.0)
        order = np.argsort(-sims)
        picks = [int(i) for i in order[:4]]  # the best matches: the positives are rare
        for lo, hi, n in ((0.45, 1.01, 2), (0.35, 0.45, 2), (0.25, 0.35, 1), (0.15, 0.25, 1)):
            band = [int(i) for i in np.nonzero((sims >= lo) & (sims < hi))[0] if i not in picks]
            picks += rng.sample(band, min(len(band), n))
        for i in picks:
            out.append({"topic": topic, "article": corpus.ids[i],
                        "sim": round(float(sims[i]), 4)})
    return out


if __name__ == "__main__":
    sys.exit(main())
