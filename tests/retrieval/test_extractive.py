"""Extractive answers on hand-built search results: no store, words only or a fake model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from retrieval.answer_type import expect
from retrieval.extractive import (
    SentenceVectors,
    _asked,
    answer_with,
    asks_two_things,
    kind_evidence,
)
from retrieval.lexical import tokenize
from retrieval.params import SearchParams
from retrieval.search import ArticleHit, ChunkHit, SearchResult
from retrieval.timeparse import TimeFilter
from tests.fakes import FakeEmbedder


class _EvenIdf:
    def idf(self, term: str) -> float:
        return 1.0


def _result(question: str, *bodies: str) -> tuple[SearchResult, FakeEmbedder]:
    articles = [ArticleHit(f"a{i}", 1.0 - 0.1 * i,
                           [ChunkHit(f"a{i}:0", body, {"article_id": f"a{i}", "title": ""})])
                for i, body in enumerate(bodies)]
    embedder = FakeEmbedder()
    terms = {a.article_id: set(tokenize([a.chunks[0].text])[0]) for a in articles}
    return SearchResult(articles, TimeFilter(), 0.9, False, [], article_terms=terms,
                        vector=embedder.embed_query(question)), embedder


def test_kind_evidence_wants_the_question_terms_next_to_the_number() -> None:
    expected = expect("how many people died when the tower collapsed?")
    assert expected is not None
    predicate = {t: 1.0 for t in tokenize(["people died tower collapsed"])[0]}
    near = kind_evidence("Officials said 39 people died when the tower collapsed.", expected,
                         predicate, window=8)
    far = kind_evidence("The tower, home to 1,000 families, was famous. Nobody had warned that it "
                        "could ever come down on the people who died.", expected, predicate,
                        window=3)
    none = kind_evidence("The tower collapsed on Sunday.", expected, predicate, window=8)
    assert near == 1.0 and 0.5 <= far < near and none == 0.0


def test_the_answer_leads_with_a_sentence_stating_the_kind_asked_for() -> None:
    question = "how many passengers were rescued from the ferry?"
    result, embedder = _result(
        question,
        "The ferry ran aground in the channel on Saturday night. Rescuers brought 212 "
        "passengers ashore in lifeboats before dawn. The harbour master blamed the storm.")
    found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
    assert found.verdict == "answer"
    assert any("212 passengers" in p.sentence for p in found.picked)
    assert len(found.picked) <= SearchParams().answer_sentences


def test_a_follow_up_kept_for_its_story_is_answered_only_by_a_sentence_with_its_words() -> None:
    story = ("The ferry strike ended on Friday after nine days. The next strike vote is due "
             "in March. Crews returned to the harbour on Saturday.")
    for question, verdict in (("when is the next one?", "answer"),
                              ("who designed it?", "partial")):
        result, embedder = _result(question, story)
        result = replace(result, on_story=True)
        found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
        assert found.verdict == verdict, question
    assert len(found.picked) == 1  # the closest sentence alone
    assert found.unsure  # it may answer in other words than the question's
    # Its closest sentence was checked, not every one of the story's.
    assert found.note == "the story's closest sentence uses none of the question's words"
    # Only the story's sentences: another report's quote is not what "he" said.
    quoted = "The mayor said: \"We will talk again next week.\" Talks on the tram resumed."
    result, embedder = _result("what did they say about it?", story, quoted)
    found = answer_with("what did they say about it?", replace(result, on_story=True),
                        _EvenIdf(), embedder, SearchParams())
    assert {p.article for p in found.picked} == {0}
    same, embedder = _result("who designed it?", story)
    assert answer_with("who designed it?", same, _EvenIdf(), embedder,
                       SearchParams()).verdict == "answer"  # found by its own words


def test_a_question_asking_two_things_gets_room_for_both() -> None:
    assert asks_two_things("who closed the ferry line - and when will the line reopen?")
    assert asks_two_things("why did the ferry line close? when does the line reopen?")
    assert asks_two_things("why did it close, and who runs it now?")
    assert not asks_two_things("hey - when does the ferry line reopen?")
    assert not asks_two_things("so ok - when does the ferry line reopen?")
    assert not asks_two_things("when does the ferry line that closed in May reopen?")
    # A part may ask with its question word alone; a title's full stop ends no part.
    assert asks_two_things("who is the new harbour master, and where is she from?")
    assert not asks_two_things("what did Dr. Varga say about the ferry line?")
    assert not asks_two_things("what did the U.S. coast guard say about the ferry line?")
    assert not asks_two_things("hey - where is it?")
    reports = [" ".join(f"The ferry line {verb} {n}." for verb in ("closed", "reopens", "runs"))
               for n in ("on the coast", "at the port", "in the bay")]
    one = "why did the ferry line close?"
    two = "why did the ferry line close, and who runs the ferry line now?"
    for question, most in ((one, 4), (two, 6)):
        result, embedder = _result(question, *reports)
        found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
        assert len(found.picked) == most, question


def test_a_follow_up_kept_for_its_story_is_answered_by_the_kind_it_asks_for() -> None:
    # "how fast was it going?" of a report on a train: no sentence says "going", one
    # states a speed, and that is the answer, not the closest the story comes to one.
    story = ("The night train left the capital on time. It reached 160 km/h on the coastal "
             "stretch before the brakes failed. Nobody was hurt.")
    for question in ("how fast was it going?", "how long did it take?"):
        result, embedder = _result(question, story.replace(
            "Nobody was hurt.", "The trip took four hours. Nobody was hurt."))
        found = answer_with(question, replace(result, on_story=True), _EvenIdf(), embedder,
                            SearchParams())
        assert found.verdict == "answer", question
        assert found.picked[0].sentence.startswith(("It reached", "The trip took")), question


def test_a_follow_up_pointing_back_is_answered_from_its_story_not_by_its_own_word() -> None:
    # "when did it start?" after asking about the tram strike: the bakery report's "started"
    # and date match its one word, but the conversation is about the strike.
    question = "when did it start?"
    strike = ("The tram strike was called by the drivers' union. Drivers walked out on 3 March "
              "over pay.")
    bakery = "The bakery started selling its new loaf on 9 May at a starting price of two euros."
    result, embedder = _result(question, strike, bakery)
    strike_terms = tokenize(["what's the tram strike about?"])[0]
    about_strike = replace(result, context_terms=strike_terms, story_terms=tuple(strike_terms))
    found = answer_with(question, about_strike, _EvenIdf(), embedder, SearchParams())
    assert [p.article for p in found.picked] == [0]
    assert found.picked[0].sentence.startswith("Drivers walked out")
    # Asked without a conversation, the bakery's sentence answers.
    result, embedder = _result(question, strike, bakery)
    alone = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
    assert alone.picked[0].article == 1
    # So it does when the follow-up names the bakery, which the search then puts first.
    asked = "when did the bakery start selling it?"
    result, embedder = _result(asked, bakery, strike)
    result = replace(result, context_terms=strike_terms, story_terms=tuple(strike_terms))
    assert answer_with(asked, result, _EvenIdf(), embedder, SearchParams()).picked[0].article == 0


def test_another_storys_amount_does_not_answer_and_the_answer_is_partial() -> None:
    question = "how much will the ferry repairs cost?"
    result, embedder = _result(
        question,
        "The ferry ran aground in the channel on Saturday. The operator said repairs to the "
        "ferry would begin once it reached the dry dock.",
        "The city approved a tram line that will cost 300 million euros.")
    found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
    assert found.verdict == "partial" and found.missing == "the amount asked for"
    assert found.picked[0].article == 0 and "euros" not in found.picked[0].sentence
    assert "amount" in found.note


def test_a_partial_answer_comes_closest_with_its_own_story_not_another_storys_amount() -> None:
    question = "how much will the Aurora ferry repairs cost?"
    result, embedder = _result(
        question,
        "The Aurora ferry ran aground on Saturday and needs repairs. The operator gave no date.",
        "Repairs to the tram line will cost 300 million euros.")
    found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
    assert found.candidates[0].article == 1  # the likeliest sentence is the tram's amount
    assert found.verdict == "partial"
    assert [p.sentence for p in found.picked] == [
        "The Aurora ferry ran aground on Saturday and needs repairs."]


def test_a_follow_up_asking_only_how_much_is_about_its_conversation() -> None:
    question = "how much did it cost?"
    result, embedder = _result(
        question,
        "The rocket launch was delayed by a day. Reusing boosters lowers the cost of a launch.",
        "The headset went on sale on Friday at a price of 3,499 dollars.")
    result.context_terms = tokenize(["what headset did they launch?"])[0]
    found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
    assert found.verdict == "answer"
    assert any("3,499 dollars" in p.sentence for p in found.picked)


def test_a_question_about_the_headlines_event_leads_with_the_reports_opening() -> None:
    body = ("Dock workers returned to work on Monday after three weeks on strike over pay. "
            "The harbour strike was the longest harbour strike in the harbour's history.")
    meta = {"article_id": "a0", "title": "Harbour strike ends", "chunk": 0}
    embedder = FakeEmbedder()

    def ask(question: str) -> str:
        result = SearchResult(
            [ArticleHit("a0", 1.0, [ChunkHit("a0:0", body, meta)])], TimeFilter(), 0.9,
            False, [], article_terms={"a0": set(tokenize([body])[0])},
            vector=embedder.embed_query(question))
        found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
        assert found.candidates[0].text.startswith("The harbour strike")  # likeliest
        return found.picked[0].sentence

    assert ask("any update on the harbour strike?").startswith("Dock workers returned")
    # A term the headline lacks asks for something of its own; so does a question that
    # asks for no news, whatever words it shares with the headline.
    assert ask("why was the harbour strike so long?").startswith("The harbour strike")
    assert ask("did the harbour strike end?").startswith("The harbour strike")


def test_no_sentences_no_answer() -> None:
    for question in ("what happened?", "what happened to Mayor Varga?"):
        result, embedder = _result(question, "Too short.")
        found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
        assert found.verdict == "none" and not found.picked and found.note
        assert embedder.calls == 0  # nothing to compare: not even the question less its names


class _Counting(FakeEmbedder):
    def __init__(self, model_id: str = "fake-hash-384") -> None:
        super().__init__()
        self.model_id = model_id
        self.texts: list[str] = []

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += list(texts)
        return super().embed_documents(texts)


def test_sentence_vectors_embed_each_text_once_per_model_and_forget_the_oldest() -> None:
    cache = SentenceVectors(size=3)
    model = _Counting()
    first = cache.embed(model, ["The dam held.", "Crews worked all night."])
    again = cache.embed(model, ["Crews worked all night.", "The river fell by noon."])
    assert model.texts == ["The dam held.", "Crews worked all night.", "The river fell by noon."]
    assert np.array_equal(first[1], again[0])
    assert np.allclose(again[1], model.embed_query("The river fell by noon."))
    other = _Counting("another-model")
    cache.embed(other, ["The dam held."])  # never read from the first model's vectors
    assert other.texts == ["The dam held."] and len(cache) == 3
    cache.embed(model, ["The dam held."])  # evicted by the other model's entry
    assert model.texts[-1] == "The dam held." and (cache.hits, cache.misses) == (1, 5)


def test_sentences_past_the_embedded_ones_can_still_follow_the_lead() -> None:
    question = "how did the two towns clean up after the floods?"
    result, _ = _result(
        question,
        "Volunteers in the upper town cleared mud from the floods out of the school. "
        "The floods reached the market square on Friday.",
        "In the lower town, crews pumped the floods out of cellars and clean up went on "
        "all week.")
    counting = _Counting()
    p = replace(SearchParams(), dense_sentences=1)
    found = answer_with(question, result, _EvenIdf(), counting, p, SentenceVectors(10))
    assert len(counting.texts) == 1  # one sentence embedded, three scored
    assert found.verdict == "answer" and len(found.candidates) == 3
    assert {p.article for p in found.picked} == {0, 1}


def test_a_story_that_shares_one_word_adds_nothing_to_the_answer() -> None:
    question = "what did the Harbour Authority use drones for at Kelso?"
    result, embedder = _result(
        question,
        "The Harbour Authority used drones to survey the Kelso breakwater after the storm. "
        "The drones mapped cracks along two kilometres of the wall in one afternoon.",
        "Under a new law, the harbour authority of Dunmore will use drones to carry parcels "
        "to the islands from March, and the authority said its drones would fly twice a day. "
        "The harbour authority will use drones for mail as well.")
    found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
    assert found.verdict == "answer" and found.picked[0].article == 0
    assert {p.article for p in found.picked} == {0}
    # The other story's sentences (another authority, another place) were likelier by their
    # words than the lead's own second sentence: only the subject rule kept them out.
    p = SearchParams()
    assert sum(c.article == 1 and c.score >= p.follow_min for c in found.candidates) >= 2
    assert len(found.picked) < p.answer_sentences


def _dated(question: str, time: TimeFilter, *dated: tuple[str, str]) -> tuple[SearchResult,
                                                                           FakeEmbedder]:
    articles = [ArticleHit(f"a{i}", 1.0 - 0.1 * i,
                           [ChunkHit(f"a{i}:0", body, {"article_id": f"a{i}", "title": "",
                                                       "published_at": day})])
                for i, (day, body) in enumerate(dated)]
    embedder = FakeEmbedder()
    terms = {a.article_id: set(tokenize([a.chunks[0].text])[0]) for a in articles}
    return SearchResult(articles, time, 0.9, False, [], article_terms=terms,
                        vector=embedder.embed_query(question)), embedder


def test_the_latest_is_answered_from_the_newest_report_the_search_put_first() -> None:
    question = "what is the harbour ferry fare now?"
    # The newer report says less in the question's words than the older one does.
    result, embedder = _dated(
        question, TimeFilter(recency=True),
        ("2026-11-20T00:00:00+00:00", "The harbour ferry fare rises to 3.10 euros on "
                                      "Monday, after a council vote."),
        ("2026-03-02T00:00:00+00:00", "The harbour ferry fare is now 2.80 euros, the harbour "
                                      "ferry operator said of the fare."))
    found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
    assert found.verdict == "answer" and found.picked[0].article == 0
    assert "3.10" in found.picked[0].sentence
    # Without "the latest" the likeliest sentence leads, whichever report it is from.
    plain = replace(result, time=TimeFilter())
    assert answer_with(question, plain, _EvenIdf(), embedder,
                       SearchParams()).picked[0].article == 1


def test_a_question_naming_a_period_is_answered_from_an_article_of_that_period() -> None:
    question = "what did the harbour ferry operator do in march 2026?"
    result, embedder = _dated(
        question, TimeFilter(since=datetime(2026, 3, 1, tzinfo=UTC),
                             until=datetime(2026, 4, 3, tzinfo=UTC), phrase="march 2026"),
        ("2026-11-20T00:00:00+00:00", "The harbour ferry operator did raise the harbour "
                                      "ferry fares again, the operator said."),
        ("2026-03-12T00:00:00+00:00", "In March the harbour ferry operator cut its night "
                                      "crossings to two an hour."))
    found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
    assert found.picked[0].article == 1 and "night crossings" in found.picked[0].sentence
    # An article of that period about something else does not lead.
    other, _ = _dated(
        question, result.time, ("2026-11-20T00:00:00+00:00", result.articles[0].chunks[0].text),
        ("2026-03-12T00:00:00+00:00", "A new bakery opened on Mill Street in March, selling "
                                      "rye bread and pastries."))
    assert answer_with(question, other, _EvenIdf(), embedder,
                       SearchParams()).picked[0].article == 0


def test_the_first_article_answers_though_its_chunks_lack_a_name_the_question_uses() -> None:
    # "Kestrel" is the bridge's name in the question; the matched paragraph never repeats it.
    question = "how much did the Kestrel bridge repairs cost Brennan county?"
    result, embedder = _result(
        question,
        "Brennan county paid 2.4 million dollars for the bridge repairs, the treasurer said. "
        "The work closed the crossing for six weeks.")
    found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
    assert found.verdict == "answer"
    assert "2.4 million dollars" in found.picked[0].sentence


def test_month_names_are_not_names_another_report_of_the_story_must_hold() -> None:
    # The second report gives the amount without saying "March" or "Tuesday"; it names the
    # same council and bridge, so its amount answers.
    question = ("how much did Alder council agree to spend on the Kestrel bridge on Tuesday "
                "in March?")
    result, embedder = _result(
        question,
        "On Tuesday in March, Alder council debated the Kestrel bridge for three hours. "
        "Councillors argued over the Kestrel bridge and the council agenda in March.",
        "Alder council agreed to spend 9 million pounds on the Kestrel bridge, its leader "
        "said after the vote.")
    found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
    assert found.verdict == "answer"
    assert any("9 million pounds" in p.sentence for p in found.picked)


def test_who_is_answered_by_the_sentence_naming_someone_not_the_one_restating_the_story(
) -> None:
    # Words only: the restatement holds every term of the question, the answer one of them,
    # beside a name the question does not use.
    question = "who shot Mayor Elena Varga in Dunmore?"
    result, _ = _result(
        question,
        "Mayor Elena Varga was shot in Dunmore on Friday evening. Police say she was shot "
        "twice by Tomas Brody, a former council clerk. Varga is in a stable condition.")
    found = answer_with(question, result, _EvenIdf(), None, SearchParams())
    assert found.verdict == "answer"
    assert "Tomas Brody" in found.picked[0].sentence


def test_what_is_asked_is_compared_without_the_names_unless_nothing_else_is_left() -> None:
    embedder = FakeEmbedder()
    question = "who shot Mayor Elena Varga in Dunmore?"
    result, _ = _result(question, "Mayor Elena Varga was shot in Dunmore on Friday.")
    assert np.allclose(_asked(question, result, embedder, None),
                       embedder.embed_query("who shot in"))
    # Less its names, "who is Tomas Brody?" asks nothing, and a question typed in title case
    # has nothing but capitalised words: the question's own vector stands for what it asks.
    for question in ("who is Tomas Brody?", "Who Won The Dunmore Regatta?"):
        result, _ = _result(question, "Tomas Brody won the Dunmore regatta on Sunday.")
        assert _asked(question, result, embedder, None) is result.vector


def test_the_word_naming_the_kind_of_answer_adds_no_other_storys_sentence() -> None:
    # "How much did the headset cost?" went on with a film report's effects shot that "would
    # have cost more": "cost" names the kind of answer asked for, not the subject.
    question = "how much did the vision pro headset cost?"
    result, embedder = _result(
        question,
        "Apple began selling the Vision Pro headset on 2 February at 3,499 dollars. "
        "Reviewers praised the Vision Pro headset displays.",
        "A conventional effects shot would have cost more than the series could afford.")
    # However likely the film's sentence were.
    anything = replace(SearchParams(), follow_min=0.0)
    found = answer_with(question, result, _EvenIdf(), embedder, anything)
    assert found.verdict == "answer" and "3,499" in found.picked[0].sentence
    assert {p.article for p in found.picked} == {0}


def test_asked_what_was_said_of_reports_quoting_no_one_the_answer_is_partial() -> None:
    question = "what did the mayor say about the ferry?"
    silent = ("The ferry line closed on Monday after the mayor met the operators. The mayor "
              "cut the ribbon on the new pier in May.")
    result, embedder = _result(question, silent)
    found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
    assert found.verdict == "partial" and found.missing == "what was said"
    quoted = silent + ' "We will have boats back by June," the mayor said of the ferry.'
    result, embedder = _result(question, quoted)
    found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
    assert found.verdict == "answer"
    assert any("boats back" in p.sentence for p in found.picked)
    # A reaction is answered by a deed as well as by words.
    reacted = "how did the mayor react to the ferry closing?"
    result, embedder = _result(reacted, silent)
    assert answer_with(reacted, result, _EvenIdf(), embedder, SearchParams()).verdict == "answer"


def test_what_a_law_or_report_says_is_answered_by_what_it_states() -> None:
    # "What does the AI Act say about social scoring?" was told "the articles don't say what
    # was said": what a text says is what it states, not words someone spoke.
    silent = ("The new ferry law bans night crossings. Operators must publish timetables "
              "a month ahead under the law.")
    for question in ("what does the new ferry law say about night crossings?",
                     "what do the rules say about timetables?",
                     "what did the report say about the ferry law?"):
        result, embedder = _result(question, silent)
        found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
        assert found.verdict == "answer", question
    # What a person says is still words said.
    question = "what does the mayor say about the ferry law?"
    result, embedder = _result(question, silent + " The mayor opened the pier in May.")
    found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
    assert found.verdict == "partial" and found.missing == "what was said"



def test_words_reported_without_a_quote_answer_what_was_said() -> None:
    # "What did reviewers say?" of "reviewers praised the displays but noted the weight" was
    # answered "the articles don't say what was said".
    question = "what did reviewers say about the headset?"
    result, embedder = _result(
        question,
        "The headset went on sale in February. Reviewers praised the headset displays but "
        "noted its weight.")
    found = answer_with(question, result, _EvenIdf(), embedder, SearchParams())
    assert found.verdict == "answer"
    assert any("praised" in p.sentence for p in found.picked)
