"""The retrieval benchmark: its metrics on hand-made rankings, and a whole run on a tiny corpus
(fake embedding, temporary caches)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from bench import retrieval as br
from bench.common import percentile
from tests.fakes import FakeEmbedder

# -- metrics -----------------------------------------------------------------------------------


def test_hit_mrr_and_all_on_hand_made_rankings() -> None:
    assert br.mrr_at(["x", "gold"], {"gold"}, 10) == 0.5
    assert br.mrr_at(["gold", "x"], {"gold"}, 10) == 1.0
    assert br.mrr_at(["a", "b", "gold"], {"gold"}, 2) == 0.0
    assert br.mrr_at([], {"gold"}, 10) == 0.0
    assert br.hit_at(["x", "gold"], {"gold"}, 1) == 0.0
    assert br.hit_at(["x", "gold"], {"gold"}, 2) == 1.0
    assert br.all_at(["g1", "x", "g2"], {"g1", "g2"}, 3) == 1.0
    assert br.all_at(["g1", "x", "g2"], {"g1", "g2"}, 2) == 0.0
    assert br.all_at(["x"], set(), 5) == 0.0
    assert br.dedupe(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]


def test_evidence_containment_exact_and_cut_by_a_chunk_boundary() -> None:
    sentence = ("According to the harbour master, the ferry had been running without a licence "
                "for over 12 years, carrying about 40,000 passengers.")
    chunk = "Earlier text.  according to the harbour MASTER, the ferry had been running " \
            "without a licence for over 12 years,\ncarrying about 40,000 passengers. Later text."
    assert br.contains_sentence(sentence, chunk)
    # The chunk starts one word late: 21 of the 22 words in one run is above 0.9.
    cut = "to the harbour master, the ferry had been running without a licence for over 12 " \
          "years, carrying about 40,000 passengers. Next sentence."
    assert br.contains_sentence(sentence, cut)
    # Half the sentence is not enough, nor are the same words scattered.
    half = "According to the harbour master, the ferry had been running"
    assert not br.contains_sentence(sentence, half)
    scattered = " and ".join(br.words(sentence))
    assert not br.contains_sentence(sentence, scattered)
    assert br.evidence_found(["no such sentence here at all", sentence], ["x", chunk])
    assert not br.evidence_found([sentence], [])


def test_answer_sentences_and_content_words() -> None:
    answer = ("The ferry sank near Tarvo on Sunday [1]. Mr. Osei said 40 people were rescued "
              "[2][3]. \"It was chaos,\" a survivor said [1]. Capt. Ilse M. Varga agreed [2].")
    assert br.answer_sentences(answer) == [
        "The ferry sank near Tarvo on Sunday.", "Mr. Osei said 40 people were rescued.",
        "\"It was chaos,\" a survivor said.", "Capt. Ilse M. Varga agreed."]
    # Tokens of three or more letters or digits, lower-cased, once each.
    assert br.content_words("The Ferry's 40 crew, and 120 passengers!") == {
        "the", "ferry", "crew", "and", "120", "passengers"}
    evidence = "Rescuers pulled 40 people from the water near Tarvo on Sunday."
    assert br.states("Near Tarvo, rescuers pulled 40 people from the water.", evidence)
    assert not br.states("The ferry sank near Tarvo on Sunday.", evidence)


def test_answer_level_metrics() -> None:
    ev1 = "The council approved the tram line on Tuesday after a long debate."
    ev2 = "The line will cost 300 million euros and open in 2012, the mayor said."
    single = br.Question("s", "single", "q", ("a",), (ev2, ev1), evidence_ids=("a", "a"))
    lead = "Brenmoor's council approved the tram line on Tuesday after a long debate [1]."
    other = "Opponents said buses would be cheaper [1]."
    m = br.answer_metrics(single, f"{other} {lead}", abstained=False)
    assert m["ans@ev"] == 1.0 and m["ans@ev1"] == 0.0
    assert m["ans@art"] is None and m["ans@all"] is None
    m = br.answer_metrics(single, f"{lead} {other}", abstained=False)
    assert m["ans@ev"] == 1.0 and m["ans@ev1"] == 1.0
    # An abstention states nothing, whatever its text quotes.
    assert br.answer_metrics(single, lead, abstained=True)["ans@ev"] == 0.0

    multi = br.Question("m", "multi", "q", ("a", "b"), (ev1, "Ash clouds reached nine km."),
                        evidence_ids=("a", "b"))
    m = br.answer_metrics(multi, lead, abstained=False)
    assert m["ans@art"] == 0.5 and m["ans@all"] == 0.0
    m = br.answer_metrics(multi, f"{lead} Ash clouds reached nine km, officials said [2].",
                          abstained=False)
    assert m["ans@art"] == 1.0 and m["ans@all"] == 1.0
    assert br.answer_metrics(br.Question("n", "null", "q"), "x", False)["ans@ev"] is None


def test_halves_follow_the_conversation_and_files_must_not_share_qids(tmp_path: Path) -> None:
    halves = {br.half_of(f"q-{i}") for i in range(20)}
    assert halves == {"tune", "check"}
    assert br.half_of("q-1") == br.half_of("q-1")
    rows = [{"qid": f"a-{i}", "type": "followup", "question": "and then?", "gold_ids": ["g"],
             "followup_of": f"a-{i - 1}" if i else ""} for i in range(6)]
    first = tmp_path / "first.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in rows))
    qs = br.load_questions(first)
    assert {q.half for q in qs} == {br.half_of("a-0")}
    assert {q.source for q in qs} == {"first"}
    again = tmp_path / "again.jsonl"
    again.write_text(json.dumps(rows[2]) + "\n")
    with pytest.raises(SystemExit, match="a-2"):
        br.load_questions(first, again)


def test_aggregate_by_type_with_abstention() -> None:
    qs = [
        br.Question("s1", "single", "q", ("g1",), ("gold sentence one here",)),
        br.Question("s2", "single", "q", ("g2",)),
        br.Question("m1", "multi", "q", ("g1", "g2")),
        br.Question("n1", "null", "q"),
    ]
    outcomes = {
        "s1": br.Outcome("s1", ["g1", "x"], ["g1", "x"], ["a gold sentence one here."]),
        "s2": br.Outcome("s2", ["x", "g2"], ["x", "g2"], [], abstained=True),
        "m1": br.Outcome("m1", ["g1", "x", "y", "z", "w", "g2"], ["g1", "x", "y", "z"], []),
        "n1": br.Outcome("n1", ["x"], ["x"], [], abstained=True),
    }
    t = br.aggregate(qs, outcomes)
    assert t["single"]["n"] == 2
    assert t["single"]["hit@1"] == 0.5
    assert t["single"]["mrr@10"] == 0.75
    assert t["single"]["ev@5"] == 1.0  # only s1 has evidence
    assert t["single"]["all@10"] is None  # single-article questions have no all@k
    assert t["single"]["abstain"] == 0.5
    assert t["multi"]["all@5"] == 0.0 and t["multi"]["all@10"] == 1.0
    assert t["null"]["abstain"] == 1.0 and t["null"]["hit@1"] is None
    assert t[br.ANSWERABLE]["n"] == 3
    assert t[br.ANSWERABLE]["abstain"] == pytest.approx(1 / 3)
    assert t["temporal"]["n"] == 0 and t["temporal"]["hit@1"] is None

    peer = br.aggregate(qs, {k: br.Outcome(k, ["g1"], ["g1"], []) for k in outcomes})
    ratio = br.ratio_table(t, peer)
    assert ratio["single"]["hit@1"] == 1.0  # 0.5 / 0.5
    assert ratio["null"]["abstain"] is None
    targets = {(r["row"], r["metric"]): r["met"] for r in br.check_targets(t)}
    assert targets[("null", "abstain")] is True
    assert targets[("single", "hit@1")] is False
    assert targets[("temporal", "hit@1")] is None


def test_follow_ups_come_after_their_first_question() -> None:
    qs = [br.Question("b", "followup", "and then?", ("g",), followup_of="a"),
          br.Question("a", "followup", "what happened?", ("g",)),
          br.Question("c", "single", "q", ("g",), asked_at="2009-02-20")]
    assert [q.qid for q in br.parents_first(qs)] == ["a", "b", "c"]
    assert [q.qid for q in br.thread_of(qs[0], {q.qid: q for q in qs})] == ["a"]
    assert qs[2].now == datetime(2009, 2, 20, 23, 59, 59, 999999, tzinfo=UTC)
    assert qs[0].now is None


def test_percentile() -> None:
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([], 50) != percentile([], 50)  # NaN


# -- a whole run -------------------------------------------------------------------------------
ARTICLES = [
    ("t-1", "Volcano erupts on remote island", "2008-03-02",
     "A volcano erupted on the remote island of Tarvo on Sunday, forcing two thousand "
     "residents to leave their homes. Ash clouds reached a height of nine kilometres, "
     "officials said. Flights across the region were cancelled for three days."),
    ("t-2", "City council approves new tram line", "2008-05-10",
     "The city council of Brenmoor approved a new tram line on Tuesday after a long debate. "
     "The line will cost 300 million euros and open in 2012, the mayor said. Opponents "
     "argued that buses would be cheaper for the eastern districts."),
    ("t-3", "Chess champion keeps title after tiebreak", "2009-01-15",
     "The reigning chess champion Ilya Marov kept his world title after a tense rapid "
     "tiebreak against the challenger. The match had been tied after twelve classical games. "
     "Marov said the final game was the hardest of his career."),
    ("t-4", "Volcano eruption ends, residents return", "2008-03-20",
     "Residents of Tarvo island began returning home after scientists declared the eruption "
     "over. The volcano had been quiet for a week, and the ash was cleared from the harbour. "
     "Schools on the island reopen on Monday."),
    ("t-5", "Tram line construction starts in Brenmoor", "2009-06-01",
     "Construction of the Brenmoor tram line started on Monday with a ceremony at the central "
     "station. Workers will lay the first kilometre of track by the end of the summer. The "
     "council expects traffic delays on the main avenue."),
]

QUESTIONS = [
    {"qid": "s-1", "type": "single", "question": "how high did the ash clouds from the Tarvo "
     "volcano reach?", "gold_ids": ["t-1"], "asked_at": "", "followup_of": "",
     "evidence": [{"id": "t-1", "text": "Ash clouds reached a height of nine kilometres, "
                                        "officials said."}]},
    {"qid": "s-2", "type": "single", "question": "who kept the world chess title after the "
     "tiebreak?", "gold_ids": ["t-3"], "asked_at": "", "followup_of": "", "evidence": []},
    {"qid": "m-1", "type": "multi", "question": "what happened on Tarvo island during and after "
     "the volcano eruption?", "gold_ids": ["t-1", "t-4"], "asked_at": "", "followup_of": "",
     "evidence": []},
    {"qid": "t-q", "type": "temporal", "question": "what is the latest on the Brenmoor tram "
     "line?", "gold_ids": ["t-5"], "asked_at": "2009-06-30", "followup_of": "", "evidence": []},
    {"qid": "f-1", "type": "followup", "question": "what did the Brenmoor council approve?",
     "gold_ids": ["t-2"], "asked_at": "", "followup_of": "", "evidence": []},
    {"qid": "f-2", "type": "followup", "question": "how much will it cost?",
     "gold_ids": ["t-2"], "asked_at": "", "followup_of": "f-1", "evidence": []},
    {"qid": "n-1", "type": "null", "question": "who won the 2008 snooker final in Sheffield?",
     "gold_ids": [], "asked_at": "", "followup_of": "", "evidence": []},
]


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with (corpus / "articles_test.jsonl").open("w") as fh:
        for aid, title, day, body in ARTICLES:
            fh.write(json.dumps({"id": aid, "title": title, "published_at": day,
                                 "url": f"https://news.example/{aid}", "source": "Example",
                                 "body": body}) + "\n")
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return corpus, qa


def test_run_end_to_end_on_a_tiny_corpus(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    corpus, qa = tiny
    caches = {"cache": tmp_path / "ours", "peer_cache": tmp_path / "peer"}
    result = br.run(corpus, qa, embedder=FakeEmbedder(), quantized=False, log_to=io.StringIO(),
                    **caches)

    assert not result.ours_index.reused and result.ours_index.articles == len(ARTICLES)
    assert result.peer_index is not None and result.peer_index.chunks >= len(ARTICLES)
    assert set(result.ours) == set(result.peer or {}) == {q["qid"] for q in QUESTIONS}
    for o in result.ours.values():
        # Rankings name the dataset's own ids, best first, once each.
        assert o.ranked and all(a.startswith("t-") for a in o.ranked)
        assert len(o.ranked) == len(set(o.ranked)) <= 10
        assert o.top4 == o.ranked[:4]
        assert set(o.cited) <= set(o.ranked[:5])
    assert "t-1" in result.ours["s-1"].ranked[:5]
    assert result.ours_table["single"]["n"] == 2
    assert result.ours_table["single"]["ev@5"] == 1.0
    assert result.ours_table[br.ANSWERABLE]["n"] == 6
    assert result.peer_table is not None and result.peer_table["null"]["abstain"] == 0.0

    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    br.write_outputs(result, out=out, summary=summary, k=3)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["qid"] for r in lines] == [q["qid"] for q in QUESTIONS]
    for r in lines:
        assert set(r) == {"qid", "ranked_article_ids", "abstained", "answer",
                          "cited_article_ids"}
        assert len(r["ranked_article_ids"]) <= 3
    data = json.loads(summary.read_text())
    assert {"ours", "peer", "ratio", "totals", "targets"} <= set(data)

    buf = io.StringIO()
    br.print_report(result, Console(file=buf, width=160))
    text = buf.getvalue()
    assert "all answerable" in text and "MRR@10" in text and "ans@ev1" in text
    assert "tune:" in text and "check:" in text and "qa:" in text and "plain" in text
    assert set(data["slices"]) == {"tune", "check", "qa", "all"}
    # The reference pipeline answers with two sentences of its chunks.
    assert result.peer is not None
    assert all(len(br.answer_sentences(o.answer)) == 2 for o in result.peer.values())

    # A second run reuses both indexes.
    again = br.run(corpus, qa, embedder=FakeEmbedder(), quantized=False, log_to=io.StringIO(),
                   **caches)
    assert again.ours_index.reused and again.peer_index is not None and again.peer_index.reused
    assert again.ours["s-1"].ranked == result.ours["s-1"].ranked
