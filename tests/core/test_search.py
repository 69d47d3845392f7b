"""Search stages on hand-built hits, and a second hop on a corpus of its own."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from bot.core.models import Turn
from bot.core.services import Services
from retrieval.lexical import tokenize
from retrieval.params import SearchParams
from retrieval.search import (
    ArticleHit,
    ChunkHit,
    QueryPlan,
    boost_window,
    continues_story,
    coverage_confidence,
    diversify,
    group,
    judge,
    keep_story,
    new_subject,
    prefer_article,
    prefer_recent,
    refresh_gap,
    second_hop,
    story_confidence,
)
from retrieval.timeparse import Span, TimeFilter
from tests.fakes import make_services


class _EvenIdf:
    """Every term weighs the same."""

    def idf(self, term: str) -> float:
        return 1.0


def _chunk(aid: str, n: int, score: float, *, sim: float = 0.5, ts: int | None = None,
           text: str = "") -> ChunkHit:
    meta: dict[str, object] = {"article_id": aid, "title": aid, "chunk": n}
    if ts is not None:
        meta["published_ts"] = ts
    return ChunkHit(f"{aid}:{n}", text, meta, score=score, dense_sim=sim)


def _article(aid: str, score: float, *, sim: float = 0.5, ts: int | None = None,
             text: str = "") -> ArticleHit:
    return ArticleHit(aid, score, [_chunk(aid, 0, score, sim=sim, ts=ts, text=text)])


def _plan(query: str, tokens: list[str], **kw: object) -> QueryPlan:
    return QueryPlan(query, (), tokens, [], np.zeros(3, dtype=np.float32),
                     kw.pop("time", TimeFilter()), **kw)  # type: ignore[arg-type]


def test_group_scores_an_article_by_its_best_chunk_and_a_share_of_the_second() -> None:
    hits = [_chunk("a", 0, 0.5), _chunk("b", 0, 0.6), _chunk("a", 1, 0.4), _chunk("a", 2, 0.3)]
    articles = group(hits, second_weight=0.5)
    assert [a.article_id for a in articles] == ["a", "b"]
    assert articles[0].score == pytest.approx(0.5 + 0.5 * 0.4)  # the third chunk adds nothing
    assert [c.id for c in articles[0].chunks] == ["a:0", "a:1", "a:2"]


def test_rerankers_period_reading_and_recency() -> None:
    inside = _chunk("new", 0, 0.5, ts=int(datetime(2009, 3, 2, tzinfo=UTC).timestamp()))
    outside = _chunk("old", 0, 0.6, ts=int(datetime(2008, 3, 2, tzinfo=UTC).timestamp()))
    boost_window([inside, outside], Span.of(datetime(2009, 1, 1, tzinfo=UTC),
                                            datetime(2010, 1, 1, tzinfo=UTC)), boost=0.3)
    assert inside.score == pytest.approx(0.65) and outside.score == pytest.approx(0.6)

    articles = [_article("a", 1.0), _article("b", 0.9)]
    assert [a.article_id for a in prefer_article(articles, "b", 1.5)] == ["b", "a"]
    assert prefer_article(articles, None, 1.5) is articles

    older = _article("older", 1.0, ts=1_000)
    newer = _article("newer", 0.8, ts=2_000)
    far = _article("far", 0.3, ts=3_000)
    assert [a.article_id for a in prefer_recent([older, newer, far], margin=0.35)] == [
        "newer", "older", "far"]


def test_diversify_brings_up_an_article_covering_what_the_first_misses() -> None:
    articles = [_article("mill", 1.0), _article("mill2", 0.95), _article("mine", 0.8)]
    texts = {"mill": {"mill", "job"}, "mill2": {"mill", "job"}, "mine": {"mine", "job"}}
    ranked = diversify(articles, texts, ["mill", "mine", "job"], _EvenIdf(), SearchParams())
    assert [a.article_id for a in ranked] == ["mill", "mine", "mill2"]


def test_judge_reads_coverage_similarity_and_the_period() -> None:
    first, second = _article("arrest", 0.5, sim=0.5), _article("cabinet", 0.3, sim=0.3)
    terms = ["union", "leader", "arrest", "ministri", "coalit"]
    texts = {"arrest": {"union", "leader", "arrest"}, "cabinet": {"ministri", "coalit"}}
    idf = _EvenIdf()
    alone = coverage_confidence([first, second], terms, idf, texts)
    together = coverage_confidence([first, second], terms, idf, texts, jointly=True)
    assert alone == pytest.approx(0.5 * 0.5 + 0.5 * 3 / 5)
    assert together == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    plan = _plan("q", terms)
    assert judge([first, second], plan, texts, idf) == pytest.approx(alone)
    assert judge([first, second], plan, texts, idf, hop=second) == pytest.approx(together)
    # A named period with no article in it: nothing to answer from.
    period = _plan("q", terms, time=TimeFilter(datetime(2030, 1, 1, tzinfo=UTC), None),
                   win_lo=datetime(2030, 1, 1, tzinfo=UTC))
    assert judge([first, second], period, texts, idf) == 0.0


def test_a_choice_between_two_stories_is_judged_on_the_two_reports_together() -> None:
    # "Which came first, the eclipse or the olympics?": each report holds one of the
    # offered answers, so neither alone covers the question.
    eclipse, games = _article("eclipse", 0.5, sim=0.3), _article("games", 0.4, sim=0.3)
    other = _article("probe", 0.3, sim=0.3)
    terms = ["came", "first", "eclips", "olymp"]
    texts = {"eclipse": {"eclips", "first"}, "games": {"olymp", "first"},
             "probe": {"first", "came"}}
    idf = _EvenIdf()
    plan = _plan("which came first, the eclipse or the olympics?", terms)
    together = coverage_confidence([eclipse, games], terms, idf, texts, jointly=True)
    assert together == pytest.approx(0.5 * 0.3 + 0.5 * 3 / 4)
    assert judge([eclipse, games, other], plan, texts, idf) == pytest.approx(together)
    assert judge([eclipse, other, games], plan, texts, idf) == pytest.approx(together)
    # Not when no other report holds the other answer, nor when the question offers none.
    assert judge([eclipse, other], plan, texts, idf) == pytest.approx(0.5 * 0.3 + 0.5 * 2 / 4)
    plain = _plan("what came first at the eclipse and olympics?", terms)
    assert judge([eclipse, games], plain, texts, idf) == pytest.approx(0.5 * 0.3 + 0.5 * 2 / 4)


def test_a_follow_up_is_judged_with_its_conversations_terms_at_a_share() -> None:
    landing = _article("landing", 0.5, sim=0.3)
    texts = {"landing": {"india", "land", "moon", "pole", "date"}}
    idf = _EvenIdf()
    # "when was that?" has no terms of its own: the conversation's subject is all it asks.
    vague = QueryPlan("when was that?", ("who landed near the moon's pole?",), [],
                      ["land", "moon", "pole"], np.zeros(3, dtype=np.float32), TimeFilter())
    assert judge([landing], vague, texts, idf) == pytest.approx(0.3)  # the cosine alone
    assert judge([landing], vague, texts, idf, context_share=0.3) == pytest.approx(
        0.5 * 0.3 + 0.5 * 1.0)
    # One that names something is judged by it alone: the story covering the conversation
    # says nothing of whether it covers "cost".
    cost = QueryPlan("and the cost?", ("who landed near the moon's pole?",), ["cost"],
                     ["land", "moon", "pole"], np.zeros(3, dtype=np.float32), TimeFilter())
    assert judge([landing], cost, texts, idf, context_share=0.3) == pytest.approx(0.5 * 0.3)
    # One that points back at the story with a pronoun asks about it, in words the story
    # need not use ("fastest", not "fast"): the conversation's terms count too.
    back = replace(cost, query="and how fast was it going?", tokens=["fast", "go"],
                   refers_back=True)
    assert judge([landing], back, texts, idf, context_share=0.3) == pytest.approx(
        0.5 * 0.3 + 0.5 * 0.9 / 1.9)  # "fast" names the kind of answer, a speed


def test_the_word_naming_the_kind_of_answer_is_not_a_term_an_article_must_hold() -> None:
    strike = _article("strike", 0.5, sim=0.4)
    texts = {"strike": {"strike", "dock", "week"}}
    # "long" asks for a length of time; the report says "three weeks".
    plan = _plan("how long did the dock strike last?", ["long", "dock", "strike"])
    assert judge([strike], plan, texts, _EvenIdf()) == pytest.approx(0.5 * 0.4 + 0.5 * 1.0)
    # Nor the verb of lasting: "how long did it last?" is answered "for three weeks".
    lasting = _plan("how long did the dock strike last?", ["long", "dock", "strike", "last"])
    assert judge([strike], lasting, texts, _EvenIdf()) == pytest.approx(0.5 * 0.4 + 0.5 * 1.0)
    # Nor is the money word of "how much did it cost?": "at a price of $40".
    cost = _plan("how much did the dock strike cost?", ["dock", "strike", "cost"])
    assert judge([strike], cost, texts, _EvenIdf()) == pytest.approx(0.5 * 0.4 + 0.5 * 1.0)


def test_words_asking_how_things_went_are_not_terms_an_article_must_hold() -> None:
    # "What happened to the conservatives?" was refused: the report says "Conservative
    # government", never "happened"; "how fast was it going?" likewise lacked "going".
    election = _article("election", 0.5, sim=0.4)
    texts = {"election": {"labour", "won", "conserv", "govern"}}
    plan = _plan("what happened to the conservatives?", ["happen", "conserv"])
    assert judge([election], plan, texts, _EvenIdf()) == pytest.approx(0.5 * 0.4 + 0.5 * 1.0)
    # Nor is the verb asking for words said: a report writes "said", or quotes.
    said = _plan("what did the conservatives say?", ["say", "conserv"])
    assert judge([election], said, texts, _EvenIdf()) == pytest.approx(0.5 * 0.4 + 0.5 * 1.0)
    # Asked of nothing else ("what's happening?"), they are all it has.
    vague = _plan("what's happening?", ["happen"])
    assert judge([election], vague, texts, _EvenIdf()) == pytest.approx(0.5 * 0.4)


def test_a_follow_up_naming_a_new_subject_leads_with_the_article_about_it() -> None:
    story, other = _article("bridge", 1.0), _article("eclipse", 0.6)
    texts = {"bridge": {"bridge", "open", "toll"}, "eclipse": {"eclips", "sun", "moon"}}
    earlier = ("when does the new bridge open?",)
    switch = QueryPlan("what about the eclipse?", earlier, ["eclips"], ["bridg", "open"],
                       np.zeros(3, dtype=np.float32), TimeFilter())
    said = {"bridge": 0.1, "eclipse": 0.4}

    def says(a: ArticleHit) -> float:
        return said[a.article_id]

    ranked = new_subject([story, other], texts, switch, _EvenIdf(), 0.5, says, 0.3)
    assert [a.article_id for a in ranked] == ["eclipse", "bridge"]
    # Pointing back at the story, or a term the story holds, keeps it first.
    back = replace(switch, query="did the eclipse delay it?", refers_back=True)
    toll = replace(switch, query="and the toll?", tokens=["toll", "eclips"])
    for plan in (back, toll):
        assert new_subject([story, other], texts, plan, _EvenIdf(), 0.5, says, 0.3)[0] is story
    # So does an article sharing the follow-up's one word but not what it says: "who lost?"
    # is no question about a probe that "lost contact".
    said["eclipse"] = 0.05
    assert new_subject([story, other], texts, switch, _EvenIdf(), 0.5, says, 0.3)[0] is story


def _reads(term: str) -> bool:
    return True


def test_a_follow_up_keeps_its_story_unless_what_it_says_matches_another() -> None:
    election, probe = _article("election", 0.6), _article("probe", 0.9)
    texts = {"election": {"labour", "won", "uk", "elect", "defeat"},
             "probe": {"probe", "lost", "contact", "sun"}}
    lost = QueryPlan("who lost?", ("who won the uk election?",), ["lost"],
                     ["won", "uk", "elect"], np.zeros(3, dtype=np.float32), TimeFilter(),
                     story_terms=("won", "uk", "elect"))
    said = {"election": 0.18, "probe": 0.05}

    def says(a: ArticleHit) -> float:
        return said[a.article_id]

    # The probe came first by its one word; the follow-up says nothing of it.
    ranked = keep_story([probe, election], texts, lost, _EvenIdf(), says, 0.3, 0.5)
    assert [a.article_id for a in ranked] == ["election", "probe"]
    assert continues_story(ranked, lost, texts, _EvenIdf(), says, 0.3, 0.5, _reads)
    # What it says matches the first article: it names another story, which stays first.
    said["probe"] = 0.45
    assert keep_story([probe, election], texts, lost, _EvenIdf(), says, 0.3, 0.5)[0] is probe
    assert not continues_story([probe, election], lost, texts, _EvenIdf(), says, 0.3, 0.5, _reads)
    # A first article holding the story's terms is the story (another report of it).
    report = _article("report", 0.9)
    texts["report"] = {"uk", "elect", "turnout"}
    assert keep_story([report, election], texts, lost, _EvenIdf(), says, 0.3, 0.5)[0] is report
    # No conversation, no story to keep.
    alone = replace(lost, context=(), story_terms=())
    assert keep_story([probe, election], texts, alone, _EvenIdf(), says, 0.3, 0.5)[0] is probe
    assert not continues_story([probe], alone, texts, _EvenIdf(), says, 0.3, 0.5, _reads)


def test_a_follow_up_naming_what_no_article_holds_does_not_continue_the_story() -> None:
    # "Who won the Super Bowl?" after the election matched no report by meaning, which was
    # taken for naming no other story: the election report answered it, "Labour won".
    election = _article("election", 0.6)
    texts = {"election": {"labour", "won", "uk", "elect", "defeat"}}
    read = {"labour", "won", "uk", "elect", "defeat", "lost", "contact"}.__contains__
    bowl = QueryPlan("who won the super bowl?", ("who won the uk election?",),
                     ["won", "super", "bowl"], ["won", "uk", "elect"],
                     np.zeros(3, dtype=np.float32), TimeFilter(),
                     story_terms=("won", "uk", "elect"))

    def says(a: ArticleHit) -> float:
        return 0.1

    assert not continues_story([election], bowl, texts, _EvenIdf(), says, 0.3, 0.5, read)
    # So is one in another language ("¿y quién perdió?"): no report holds its words.
    other = replace(bowl, query="¿y quién perdió?", tokens=["quién", "perdió"])
    assert not continues_story([election], other, texts, _EvenIdf(), says, 0.3, 0.5, read)
    # Words all read somewhere ("who lost?") continue it, and so does pointing back.
    lost = replace(bowl, query="who lost?", tokens=["lost"])
    back = replace(bowl, query="did they watch the super bowl?",
                   tokens=["watch", "super", "bowl"], refers_back=True)
    for plan in (lost, back):
        assert continues_story([election], plan, texts, _EvenIdf(), says, 0.3, 0.5, read)
    # The word naming the kind of answer and the verb asking for words said name no story.
    tall = replace(bowl, query="how tall is labour's leader?", tokens=["tall", "labour"])
    said = replace(bowl, query="what did labour say?", tokens=["labour", "say"])
    for plan in (tall, said):
        assert continues_story([election], plan, texts, _EvenIdf(), says, 0.3, 0.5, read)


def test_the_story_is_named_by_what_the_earlier_questions_ask_about(
        services: Services) -> None:
    # "How fast was the probe going?" named the probe: its "fast", the kind of answer, was
    # taken for a word of the story its report lacks ("fastest"), and "how hot did it get?"
    # was refused as not about the story.
    retriever = services.retriever
    for earlier, story in (("how fast was the parker probe going?", ("parker", "probe")),
                           ("what did rishi sunak say?", ("rishi", "sunak"))):
        plan = retriever.plan("how hot did it get?", context=(earlier,))
        assert plan.story_terms == story, earlier
    first = "how fast was the parker probe going?"
    history = [Turn("user", first), Turn("assistant", services.ask.ask(first).text)]
    hot = services.ask.ask("how hot did it get?", history=history)
    assert not hot.abstained and "1,000 degrees" in hot.text


def test_a_follow_up_points_back_by_a_pronoun(services: Services) -> None:
    retriever = services.retriever
    earlier = ("who landed near the moon's pole?",)
    assert retriever.plan("how fast was it going?", context=earlier).refers_back
    assert not retriever.plan("and the cost?", context=earlier).refers_back
    assert retriever.plan("when is the next one?", context=earlier).refers_back
    assert not retriever.plan("did anyone land in one go?", context=earlier).refers_back
    assert not retriever.plan("how fast was it going?").refers_back  # no conversation


def test_an_earlier_question_asking_for_news_lends_its_subject_not_its_news_words(
        services: Services) -> None:
    # "update" and "latest" are in no report: as the conversation's terms they counted
    # against every article, and the follow-up was refused.
    for earlier in ("any update on the ferry strike?", "what's the latest on the ferry strike?"):
        plan = services.retriever.plan("how long did it last?", context=(earlier,))
        assert plan.context_tokens == tokenize(["ferry strike"])[0], earlier


def test_the_story_is_what_the_earlier_questions_named_not_what_they_asked_of_it(
        services: Services) -> None:
    earlier = ("any news on the ferry strike?", "how long did it last?")
    plan = services.retriever.plan("when is the next one?", context=earlier)
    assert plan.refers_back
    assert plan.story_terms == tuple(tokenize(["ferry strike"])[0])
    strike = _article("strike", 0.5, sim=0.4)
    other = _article("other", 0.5, sim=0.4)
    texts = {"strike": {"ferri", "strike", "crew"}, "other": {"tram", "strike"}}
    assert story_confidence([strike], plan, texts, _EvenIdf()) == pytest.approx(0.7)
    assert story_confidence([other], plan, texts, _EvenIdf()) == pytest.approx(0.45)
    assert story_confidence([strike], replace(plan, story_terms=()), texts, _EvenIdf()) == 0
    # Chat's "what's up with ...?" asks for news of the story as "any news on ...?" does.
    plan = services.retriever.plan("what went wrong with it?",
                                   context=("what's up with the ferry strike?",))
    assert plan.story_terms == tuple(tokenize(["ferry strike"])[0])


def test_second_hop_needs_a_strong_first_article_that_misses_terms_and_names_people() -> None:
    story = ("Harbour master Ilse Varga resigned after the ferry grounding. Ilse Varga had run "
             "the port for nine years.")
    top = _article("grounding", 1.0, sim=0.7, text=story)
    other = _article("other", 0.5, sim=0.4)
    found = _article("museum", 0.2, sim=0.3,
                     text="Ilse Varga now works as director of the maritime museum.")
    searched: list[str] = []

    def search(text: str) -> list[ArticleHit]:
        searched.append(text)
        return [top, found]

    texts = {"grounding": {"harbour", "master", "resign", "ferri", "ground", "ilse", "varga"},
             "other": {"ferri"}}
    tokens = ["harbour", "master", "resign", "ferri", "ground", "work", "museum", "director"]
    plan = _plan("the harbour master who resigned over the ferry grounding - does she work at "
                 "a museum as director now?", tokens)
    hop = second_hop(plan, [top, other], texts, _EvenIdf(), SearchParams(), search)
    assert hop is found and hop.score == other.score
    assert searched and searched[0].startswith("Ilse Varga") and "museum" in searched[0]

    # A first article that covers the question: no second search.
    covered = {"grounding": set(tokens) | {"ilse", "varga"}, "other": set()}
    searched.clear()
    assert second_hop(plan, [top, other], covered, _EvenIdf(), SearchParams(), search) is None
    assert not searched
    # A weak first article: no second search either.
    weak = _article("grounding", 1.0, sim=0.2, text=story)
    assert second_hop(plan, [weak, other], texts, _EvenIdf(), SearchParams(), search) is None


_STORIES = [
    ("Harbour master resigns after ferry grounding",
     "The harbour master of Kessel resigned on Tuesday after the ferry Nordlys ran aground in "
     "the outer channel. Ilse Varga had run the port for nine years. Ilse Varga said the "
     "grounding happened on her watch and that she took responsibility for it.",
     "2024-03-05"),
    ("New director for the maritime museum",
     "Ilse Varga becomes director of the maritime museum in Kessel, the museum board said. "
     "The board praised the experience Ilse Varga brings from the port.",
     "2024-06-10"),
    ("Ferry Nordlys back in service",
     "The ferry Nordlys returned to service after repairs to its hull in the Kessel dry dock.",
     "2024-04-08"),
    ("Science museum names a new director",
     "The science museum named a new director on Monday. The museum director will start in "
     "the autumn, when the museum reopens its director's gallery.",
     "2024-05-20"),
    ("Art museum director retires",
     "The art museum director retired after thirty years. The museum thanked its director, "
     "and a new museum director will be chosen by the board.",
     "2024-02-11"),
    ("Ferry fares frozen for the summer",
     "The harbour authority froze ferry fares for the summer season after complaints from "
     "island residents about the cost of the crossing.",
     "2024-05-02"),
]


def test_a_described_person_is_found_again_by_name(tmp_path: Path) -> None:
    path = tmp_path / "stories.jsonl"
    path.write_text("\n".join(json.dumps({
        "title": title, "body": body, "published_at": date, "source": "Example Gazette",
        "url": f"https://news.example.org/{n}"}) for n, (title, body, date) in enumerate(_STORIES)
    ) + "\n")
    svc = make_services(tmp_path / "data", sample=False)
    try:
        svc.admin.ingest([str(path)])
        question = ("the harbour master who resigned after the ferry grounding - is she "
                    "director of the maritime museum now?")
        result = svc.retriever.search(question, k=3)
        titles = [a.title for a in result.articles]
        # The museum story never mentions the ferry or the harbour: the name the harbour
        # story gives links them, and the two answer together ("now" puts the newer first).
        assert titles[:2] == ["New director for the maritime museum",
                              "Harbour master resigns after ferry grounding"]
        assert result.joint
        before = svc.retriever.search(question.replace(" now?", "?"), k=3)
        assert [a.title for a in before.articles][:2] == titles[1::-1]
    finally:
        svc.close()


def _stories(tmp_path: Path, exact_chunks: int,
             stories: list[tuple[str, str, str, str]]) -> Services:
    """Services holding ``stories`` (title, body, date, outlet) alone. ``exact_chunks`` 0
    sends every filtered search to the store's metadata filter, which compares exactly; the
    index beside it reads periods and outlets itself."""
    path = tmp_path / "stories.jsonl"
    path.write_text("\n".join(json.dumps({
        "title": title, "body": body, "published_at": when, "source": outlet,
        "url": f"https://news.example.org/{n}"})
        for n, (title, body, when, outlet) in enumerate(stories)) + "\n")
    svc = make_services(tmp_path / "data", sample=False)
    svc.admin.ingest([str(path)])
    svc.retriever.params = replace(svc.retriever.params, exact_chunks=exact_chunks)
    return svc


@pytest.mark.parametrize("exact_chunks", [20_000, 0], ids=["index", "store filter"])
def test_an_outlet_is_matched_in_any_case(tmp_path: Path, exact_chunks: int) -> None:
    svc = _stories(tmp_path, exact_chunks, [
        ("Ferry fares frozen", "The harbour authority froze ferry fares for summer.",
         "2024-03-05", "Coast Courier"),
        ("Ferry timetable changes", "The ferry timetable changes for the summer season.",
         "2024-03-05", "Harbour Daily")])
    try:
        lex = svc.retriever.lexical()
        vec = svc.retriever.embedder.embed_query("ferry summer")
        for spelling in ("Coast Courier", "coast courier", "COAST COURIER"):
            result = svc.retriever.search("ferry summer", k=3, outlet=spelling)
            assert [a.title for a in result.articles] == ["Ferry fares frozen"], spelling
            # The dense candidates alone (no keyword scores) honour it too.
            dense = svc.retriever.candidates(vec, lex, np.zeros(len(lex)), [Span()],
                                             spelling)
            assert {h.metadata["title"] for h in dense.values()} == {"Ferry fares frozen"}
        assert not svc.retriever.search("ferry summer", k=3, outlet="Coast").articles
    finally:
        svc.close()


@pytest.mark.parametrize("exact_chunks", [20_000, 0], ids=["index", "store filter"])
def test_days_are_read_where_the_question_is_asked(tmp_path: Path, exact_chunks: int) -> None:
    # Two reports give a date alone (stored at 00:00 UTC), two a time. In New York, 02:00
    # UTC on 5 March is the evening of the 4th, and the report dated the 5th is the 5th's.
    svc = _stories(tmp_path, exact_chunks, [
        (title, f"{title}: the dock strike in the harbour.", when, "Coast Courier")
        for title, when in [("Day one", "2025-03-04"), ("Talks", "2025-03-05"),
                            ("Late vote", "2025-03-05T02:00:00Z"),
                            ("Deal", "2025-03-05T15:00:00Z")]])
    try:
        lex = svc.retriever.lexical()
        vec = svc.retriever.embedder.embed_query("dock strike")
        york = ZoneInfo("America/New_York")

        def titles(lo: datetime, hi: datetime | None) -> set[str]:
            hits = svc.retriever.candidates(vec, lex, np.zeros(len(lex)),
                                            [Span.of(lo, hi, lo.tzinfo or UTC)], None)
            return {h.metadata["title"] for h in hits.values()}

        fourth, fifth = (datetime(2025, 3, d, tzinfo=york) for d in (4, 5))
        assert titles(fourth, fifth) == {"Day one", "Late vote"}
        assert titles(fifth, None) == {"Talks", "Deal"}
        assert titles(fourth, None) == {"Day one", "Talks", "Late vote", "Deal"}
        # In UTC the late vote is the 5th's news.
        utc4, utc5 = (datetime(2025, 3, d, tzinfo=UTC) for d in (4, 5))
        assert titles(utc4, utc5) == {"Day one"}
        assert titles(utc5, utc5 + timedelta(days=1)) == {"Talks", "Late vote", "Deal"}
    finally:
        svc.close()


def test_an_article_date_is_read_from_new_and_older_stores() -> None:
    # Chunks now carry only the timestamp; stores written earlier carry the ISO date too.
    new = ArticleHit("a", 1.0, [ChunkHit("a:0", "", {"published_ts": 1721001600})])
    old = ArticleHit("b", 1.0, [ChunkHit("b:0", "", {"published_at": "2024-07-15T00:00:00+00:00"})])
    undated = ArticleHit("c", 1.0, [ChunkHit("c:0", "", {})])
    assert new.published_at == old.published_at == datetime(2024, 7, 15, tzinfo=UTC)
    assert undated.published_at is None


def test_background_rebuilds_of_a_slow_index_space_out_to_a_share_of_a_core() -> None:
    p = SearchParams(refresh_interval_s=30, refresh_cpu_share=0.25)
    assert refresh_gap(p, 0.0) == 30  # nothing built yet
    assert refresh_gap(p, 2.0) == 30  # a corpus-sized build: the interval
    assert refresh_gap(p, 20.0) == 80  # 100,000 chunks: a quarter of a core at most
