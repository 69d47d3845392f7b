"""Story matching: the rule, headline+lead text, and the bench's metrics on tiny data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench import stories as bench
from retrieval.stories import StoryMember, StoryRule, biggest, match_story, story_text
from tests.fakes import FakeEmbedder

T0 = datetime(2025, 4, 1, tzinfo=UTC)


def _unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_story_text_is_headline_and_two_lead_sentences() -> None:
    text = "First point here. Second point here. Third is background.\n\nMore background."
    assert story_text("Dam bursts", text) == "Dam bursts. First point here. Second point here."
    assert story_text("Is it over?", "Yes. No.") == "Is it over? Yes. No."


def test_rule_needs_both_similarity_and_closeness_in_time() -> None:
    rule = StoryRule(threshold=0.6, window_days=5)
    assert rule.same(0.7, 1.0) and rule.same(0.6, None)
    assert not rule.same(0.59, 0.0)
    assert not rule.same(0.99, 6.0)


def test_match_story_picks_the_best_member_within_the_window() -> None:
    rule = StoryRule(threshold=0.6, window_days=5)
    members = [
        StoryMember("a1", "s1", _unit(1, 0, 0), T0),
        StoryMember("a2", "s2", _unit(1, 0.3, 0), T0 + timedelta(days=2)),
        StoryMember("a3", "s3", _unit(1, 0.05, 0), T0 - timedelta(days=20)),  # too old
    ]
    found = match_story(_unit(1, 0.25, 0), T0 + timedelta(days=1), members, rule)
    assert found is not None and found[0] == "s2"
    assert match_story(_unit(0, 0, 1), T0, members, rule) is None
    old = match_story(_unit(1, 0.02, 0), T0 - timedelta(days=19), members, rule)
    assert old is not None and old[0] == "s3"


def test_bench_chooses_a_rule_on_one_half_and_checks_it_on_the_other(tmp_path: Path) -> None:
    recs = []
    for n in range(12):
        day = f"2025-04-{1 + n:02d}"
        recs.append({"id": f"x{n}", "title": f"Harbour ferry {n} strike", "published_at": day,
                     "body": f"Ferry crews walked out on day {n}. Talks resume soon."})
    (tmp_path / "articles_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    corpus = bench.load_corpus(tmp_path, FakeEmbedder())
    pairs = bench.candidates(corpus)
    assert pairs and all(p["days"] <= bench.MAX_DAYS for p in pairs)
    labels = [dict(p, same=p["days"] <= 2) for p in pairs]
    result = bench.evaluate_stories(corpus, labels)
    assert set(result) == {"rule", "tune", "check"}
    assert result["tune"]["pairs"] + result["check"]["pairs"] == len(labels)
    assert bench.prf([True, False, True], [True, True, False]) == (0.5, 0.5, 0.5)
    assert bench.half("a|b") in ("tune", "check")


def _vec(*pairs: tuple[int, float]) -> np.ndarray:
    v = np.zeros(8, dtype=np.float32)
    for i, x in pairs:
        v[i] = x
    return v / np.linalg.norm(v)


def test_biggest_puts_the_most_reported_story_first_once() -> None:
    day = 86400
    # Rows 0-2: one story reported three times early in the month; rows 3-6: four other
    # stories once each, all newer.
    vectors = np.stack([_vec((0, 1.0)), _vec((0, 1.0), (1, 0.2)), _vec((0, 1.0), (2, 0.2)),
                        _vec((3, 1.0)), _vec((4, 1.0)), _vec((5, 1.0)), _vec((6, 1.0))])
    ts = [1 * day, 2 * day, 3 * day, 10 * day, 15 * day, 20 * day, 28 * day]
    rule = StoryRule(threshold=0.9, window_days=5)
    picked = biggest(vectors, ts, 3, rule)
    # The story by its report most others go with (of equals, the newest), then the single
    # reports furthest in time from what is chosen, newest first: the month's end, its middle.
    assert picked == [2, 6, 4]
    # The same story days too far apart is two stories.
    assert sorted(biggest(vectors[:2], [0, 30 * day], 2, rule)) == [0, 1]


def test_biggest_lists_a_story_reported_day_after_day_once() -> None:
    day = 86400
    # A story reported on each of 30 days, each report close only to the next days' (a
    # story that drifts), then two single reports.
    drift = [_vec((0, 1.0), (1, 0.1 * i)) for i in range(30)]
    vectors = np.stack([*drift, _vec((5, 1.0)), _vec((6, 1.0))])
    ts = [i * day for i in range(30)] + [10 * day, 20 * day]
    picked = biggest(vectors, ts, 3, StoryRule(threshold=0.95, window_days=3))
    assert sum(i < 30 for i in picked) == 1 and picked[0] < 30
    assert sorted(picked[1:]) == [30, 31]


def test_biggest_spreads_a_quiet_period_instead_of_taking_its_last_days() -> None:
    vectors = np.eye(10, dtype=np.float32)
    ts = [d * 86400 for d in range(10)]
    # The newest, then the oldest, then the middle (of two, the newer).
    assert biggest(vectors, ts, 3, StoryRule(threshold=0.9, window_days=5)) == [9, 0, 5]
    assert sorted(biggest(vectors, ts, 20, StoryRule())) == list(range(10))
    assert biggest(vectors[:0], [], 3, StoryRule()) == []
