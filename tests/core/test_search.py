"""Search behaviour that needs a corpus of its own: questions that describe someone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from retrieval.search import ArticleHit, ChunkHit, _confidence
from tests.fakes import make_services

_STORIES = [
    ("Dockworkers' leader held after port blockade",
     "Police arrested the leader of the dockworkers' union at the port blockade on Tuesday. "
     "Dana Whitlock was taken to the central station with four stewards. Dana Whitlock had "
     "led the blockade for nine days over the closure of the container terminal.",
     "2024-03-05"),
    ("New cabinet sworn in at the capital",
     "The coalition's new cabinet was sworn in on Monday. Dana Whitlock becomes labour "
     "minister, a post the coalition agreement reserved for the smaller partner.",
     "2024-06-10"),
    ("Port blockade ends as terminal talks resume",
     "The blockade of the port ended after nine days when the operator agreed to reopen "
     "talks on the container terminal. Stewards said the union would watch the talks.",
     "2024-03-08"),
    ("Ferry fares frozen for the summer",
     "The harbour authority froze ferry fares for the summer season after complaints from "
     "island residents about the cost of the crossing.",
     "2024-05-02"),
]


def test_a_described_person_is_searched_again_by_name(tmp_path: Path) -> None:
    path = tmp_path / "stories.jsonl"
    path.write_text("\n".join(json.dumps({
        "title": title, "body": body, "published_at": date, "source": "Example Gazette",
        "url": f"https://news.example.org/{n}"}) for n, (title, body, date) in enumerate(_STORIES)
    ) + "\n")
    svc = make_services(tmp_path / "data", sample=False)
    svc.admin.ingest([str(path)])
    question = "the union leader who was arrested at the port blockade - what did she do next?"
    titles = [a.title for a in svc.retriever.search(question, k=3).articles]
    assert titles[0].startswith("Dockworkers' leader held")
    # The cabinet story never mentions the union or the blockade; only the name links it.
    assert titles[1] == "New cabinet sworn in at the capital"
    svc.close()


class _EvenIdf:
    """Every term weighs the same."""

    def idf(self, term: str) -> float:
        return 1.0


def test_confidence_of_two_articles_together_covers_both_halves() -> None:
    def article(aid: str, sim: float) -> ArticleHit:
        return ArticleHit(aid, sim, [ChunkHit(f"{aid}:0", "", {}, dense_sim=sim)])

    first, second = article("arrest", 0.5), article("cabinet", 0.3)
    terms = ["union", "leader", "arrest", "ministri", "coalit"]
    texts = {"arrest": {"union", "leader", "arrest"}, "cabinet": {"ministri", "coalit"}}
    lex = _EvenIdf()
    alone = _confidence([first, second], terms, lex, texts)  # type: ignore[arg-type]
    together = _confidence([first, second], terms, lex, texts, jointly=True)  # type: ignore[arg-type]
    assert alone == pytest.approx(0.5 * 0.5 + 0.5 * 3 / 5)
    assert together == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)


def test_an_article_date_is_read_from_new_and_older_stores() -> None:
    # Chunks now carry only the timestamp; stores written earlier carry the ISO date too.
    new = ArticleHit("a", 1.0, [ChunkHit("a:0", "", {"published_ts": 1721001600})])
    old = ArticleHit("b", 1.0, [ChunkHit("b:0", "", {"published_at": "2024-07-15T00:00:00+00:00"})])
    undated = ArticleHit("c", 1.0, [ChunkHit("c:0", "", {})])
    assert new.published_at == old.published_at == datetime(2024, 7, 15, tzinfo=UTC)
    assert undated.published_at is None
