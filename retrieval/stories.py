"""One story, one brief: when two articles report the same story, and when an article matches
a topic.

Two articles tell the same story when the embeddings of their headline and lead are close and
they were published within a few days of each other. Both numbers were measured, not guessed:
``python -m bench.stories`` chooses them on one half of a hand-labelled set of article pairs
(bench/data/story_pairs.jsonl) and reports precision and recall on the other half. The topic
threshold was measured the same way (bench/data/topic_pairs.jsonl). They hold for the model
they were measured with (MINILM); another embedding model needs its own measurement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from retrieval.text import sentences

MEASURED_WITH = "minilm-l6-v2-int8"
LEAD_SENTENCES = 2
LEAD_CHARS = 600


@dataclass(frozen=True, slots=True)
class StoryRule:
    """Same story: cosine of headline+lead embeddings at least ``threshold``, published at
    most ``window_days`` apart (an undated article is compared as if published with the other)."""

    # Chosen on the tuning half of 331 labelled pairs (94 same-story); on the checking half:
    # precision 0.62, recall 0.69. Most misses are long-running stories (a war, a market
    # crash) whose daily reports drift apart; most false merges are two events of one kind
    # days apart (two primaries, two market falls).
    threshold: float = 0.58
    window_days: float = 5.0

    def same(self, similarity: float, days_apart: float | None) -> bool:
        if days_apart is not None and abs(days_apart) > self.window_days:
            return False
        return similarity >= self.threshold


# What an article must score against a topic query (cosine of the query's embedding and the
# article's headline+lead) to match a subscription to that topic. Chosen on half of 152
# labelled (topic, article) pairs over 24 topics; on the other half: precision 0.78,
# recall 0.62.
TOPIC_THRESHOLD = 0.38


def story_text(title: str, text: str) -> str:
    """The headline and lead: what a story is about, without the background paragraphs that
    make two different stories on one subject look alike."""
    lead = " ".join(sentences(text)[:LEAD_SENTENCES])[:LEAD_CHARS]
    title = title.strip()
    sep = "" if not title or re.search(r"[.!?]$", title) else "."
    return f"{title}{sep} {lead}".strip()


def days_apart(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return abs((a - b).total_seconds()) / 86400.0


@dataclass(frozen=True, slots=True)
class StoryMember:
    """An article already assigned to a story, as the matcher needs it."""

    article_id: str
    story_id: str
    vector: np.ndarray
    published_at: datetime | None


def match_story(vector: np.ndarray, published_at: datetime | None,
                members: Iterable[StoryMember], rule: StoryRule) -> tuple[str, float] | None:
    """The story the article belongs to (its id and the best similarity), or None for a new one.

    The best-matching member wins; an article joins a story through any one of its articles,
    so a story that develops over days keeps its id while each report stays within the window
    of the one before.
    """
    best: tuple[str, float] | None = None
    for m in members:
        sim = float(np.dot(vector, m.vector))
        if rule.same(sim, days_apart(published_at, m.published_at)) and (
                best is None or sim > best[1]):
            best = (m.story_id, sim)
    return best


def biggest(vectors: np.ndarray, published_ts: Sequence[int], k: int,
            rule: StoryRule) -> list[int]:
    """One row for each of ``k`` stories, in the order chosen: the most reported first, and
    among stories reported as often, each next the furthest in time from those chosen (the
    newest first), so that the first few of the list span its period. Each row is an
    article (its unit vector, or zeros when unknown, and publication time). Two articles
    report the same story when ``rule`` says so, and a story is every article linked to it
    through such pairs, as a brief's story takes in any report of one of its articles: a
    story reported daily for a month is one. It is shown by its article most others report
    along with."""
    n = len(vectors)
    if n == 0 or k <= 0:
        return []
    ts = np.asarray(published_ts, dtype=np.float64)
    same = (vectors @ vectors.T >= rule.threshold) & (
        np.abs(ts[:, None] - ts[None, :]) <= rule.window_days * 86400.0)
    np.fill_diagonal(same, False)
    story = np.full(n, -1)
    for seed in range(n):  # connected components, one breadth-first walk each
        if story[seed] >= 0:
            continue
        story[seed], todo = seed, [seed]
        while todo:
            linked = np.flatnonzero(same[todo].any(axis=0) & (story < 0))
            story[linked] = seed
            todo = linked.tolist()
    size = np.bincount(story, minlength=n)
    reports = same.sum(axis=1)
    shown: dict[int, int] = {}
    for row in sorted(range(n), key=lambda i: (-int(reports[i]), -ts[i])):
        shown.setdefault(int(story[row]), row)
    picked: list[int] = []
    for count in sorted({int(size[s]) for s in shown}, reverse=True):
        level = [row for s, row in shown.items() if size[s] == count]
        while level and len(picked) < k:
            if picked:
                gap = np.abs(ts[level][:, None] - ts[picked][None, :]).min(axis=1)
                at = max(range(len(level)), key=lambda j: (gap[j], ts[level[j]]))
            else:
                at = max(range(len(level)), key=lambda j: ts[level[j]])
            picked.append(level.pop(at))
        if len(picked) >= k:
            break
    return picked


def topic_scores(query_vector: np.ndarray, vectors: Sequence[np.ndarray]) -> list[float]:
    return [float(np.dot(query_vector, v)) for v in vectors]
