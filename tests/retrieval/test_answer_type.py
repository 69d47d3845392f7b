"""Expected answer kinds: what a question asks for, and where a sentence states one."""

from __future__ import annotations

import pytest

from retrieval.answer_type import (
    AnswerType,
    choices,
    cue,
    expect,
    expected_type,
    holds_cue,
    kind_spans,
    supplies,
)


@pytest.mark.parametrize(("question", "kind"), [
    ("how much did the council pay for the new bridge?", AnswerType.MONEY),
    ("How much was the fine the regulator imposed?", AnswerType.MONEY),
    ("how much did the club end up paying for the striker?", AnswerType.MONEY),
    ("how much of the country's power came from the plant?", AnswerType.NUMBER),
    ("how much rain fell on Sunday?", AnswerType.NUMBER),
    ("how many people were rescued from the ferry?", AnswerType.NUMBER),
    ("what was the final death toll of the storm?", AnswerType.NUMBER),
    ("how fast was the train going when it derailed?", AnswerType.SPEED),
    ("how old was the skipper?", AnswerType.AGE),
    ("how many years old is the lighthouse keeper?", AnswerType.AGE),
    ("and how far is the new reservoir from town", AnswerType.NUMBER),
    ("when did the museum reopen?", AnswerType.DATE),
    ("so when is the launch planned now?", AnswerType.DATE),
    ("ok quick one, any idea when the bridge opens", AnswerType.DATE),
    ("whens the bridge opening", AnswerType.DATE),  # chat leaves the apostrophe out
    ("in what year did the band split up?", AnswerType.YEAR),
    ("what time did the polls close?", AnswerType.TIME),
    ("what day does the festival start?", AnswerType.DATE),
    ("how long did the strike last?", AnswerType.DURATION),
    ("how long was the driver jailed for?", AnswerType.TERM),
    ("how long after the death sentence was the appeal heard?", AnswerType.DURATION),
    ("how many years in prison did he get?", AnswerType.TERM),
    ("what prison sentence did the driver end up with?", AnswerType.TERM),
    ("was the ferry sunk by a mine or a torpedo?", None),  # no comma: not offered as choices
    ("who won the final, Leeds or Hull?", AnswerType.CHOICE),
    ("so was he found guilty at the trial, or not?", None),
    ("who won the election?", None),
    ("what happened when the storm reached the coast?", None),
    ("why did the bank collapse when it did?", None),
])
def test_expected_type(question: str, kind: AnswerType | None) -> None:
    assert expected_type(question) is kind


@pytest.mark.parametrize(("kind", "sentence", "ok"), [
    (AnswerType.MONEY, "The club paid $4.5 million for the striker.", True),
    (AnswerType.MONEY, "The fine came to 30,000 euros.", True),
    (AnswerType.MONEY, "The tickets cost 40 US dollars each.", True),
    (AnswerType.MONEY, "The court fined the company on Tuesday.", False),
    (AnswerType.NUMBER, "Forty passengers were taken to hospital.", True),
    (AnswerType.NUMBER, "Rescuers reached the ferry at dawn.", False),
    (AnswerType.NUMBER, "The party won 44 seats.", True),
    (AnswerType.NUMBER, "The bridge opened in 1998.", False),  # a year is not a count
    (AnswerType.DATE, "The museum reopened on 7 December.", True),
    (AnswerType.DATE, "The museum reopened to visitors.", False),
    (AnswerType.YEAR, "The band split up in 1998.", True),
    (AnswerType.YEAR, "The band split up in December.", False),
    (AnswerType.TIME, "The polls closed at 8 p.m. local time.", True),
    (AnswerType.TIME, "She ran the course in 2:21:40.", True),
    (AnswerType.TIME, "She won the race in 2019.", False),  # a year is not a time
    (AnswerType.DURATION, "The strike lasted eleven days.", True),
    (AnswerType.DURATION, "He was jailed for life.", True),
    (AnswerType.DURATION, "The strike ended peacefully.", False),
    (AnswerType.DURATION, "The firm is run by a 22-year old trader.", False),
    (AnswerType.TERM, "He was sentenced to six years in prison.", True),
    (AnswerType.TERM, "The court sentenced her to death.", True),
    (AnswerType.TERM, "Doctors said the next 72 hours would be crucial.", False),
    (AnswerType.TERM, "He was sentenced on Tuesday.", False),
    (AnswerType.AGE, "The skipper, 64, had sailed the route for years.", True),
    (AnswerType.AGE, "She was only fifteen years old at the time.", True),
    (AnswerType.AGE, "The skipper had sailed the route for 64 years.", False),
    (AnswerType.SPEED, "The train was doing 190 km/h on a 60 km/h curve.", True),
    (AnswerType.SPEED, "Winds reached 120 miles per hour.", True),
    (AnswerType.SPEED, "The train was carrying 190 passengers.", False),
])
def test_supplies(kind: AnswerType, sentence: str, ok: bool) -> None:
    assert supplies(kind, sentence) is ok


def test_spans_point_at_what_is_stated() -> None:
    expected = expect("how much did the council pay for the new tram line?")
    assert expected is not None
    sentence = "The line will cost 300 million euros, and fares start at €2."
    assert [sentence[a:b] for a, b in kind_spans(expected, sentence)] == [
        "300 million euros", "€2"]


def test_a_date_alone_says_when_a_thing_lasted_from_not_how_long() -> None:
    lasted = expect("how long did the ferry strike last?")
    after = expect("how long after the vote did the mayor resign?")
    assert lasted is not None and after is not None
    one_day = "Ferries stopped sailing on 2 March 2023."
    assert not kind_spans(lasted, one_day)
    assert kind_spans(after, one_day)  # the day it came, the other the vote's
    for sentence in ("The strike ran from 2 March to 19 April 2023.",
                     "No ferry has sailed since 2 March 2023.",
                     "The crews stayed out for six weeks."):
        assert kind_spans(lasted, sentence), sentence


def test_a_count_of_things_is_not_a_measure() -> None:
    riders = expect("how many riders finished the race?")
    distance = expect("how many kilometres was the race?")
    assert riders is not None and distance is not None
    measured = "The riders covered 180 kilometres in the hills; 7.5 million people watched."
    assert [measured[a:b] for a, b in kind_spans(riders, measured)] == ["7.5", "million"]
    assert [measured[a:b] for a, b in kind_spans(distance, measured)] == [
        "180", "7.5", "million"]
    assert kind_spans(riders, "Only 96 of the 176 riders finished, after nine days.") == [
        (5, 7), (15, 18)]
    assert not kind_spans(riders, "The race started on 26 July in Lille.")  # a day's date
    assert not kind_spans(riders, "The organisers spent €4 million on the race.")  # money


def test_a_day_of_the_month_is_no_measure_or_share() -> None:
    # "How tall is it?" was answered with the day the rocket flew ("on 13 October").
    flown = "The booster was caught on 13 October 2024 during the fifth test flight."
    for question in ("how tall is the starship booster?", "what percentage of the seats?",
                     "how far did the booster fly?"):
        asked = expect(question)
        assert asked is not None and not kind_spans(asked, flown), question
    # A measure or a share stated beside a date is still stated.
    tall = expect("how tall is the starship booster?")
    assert tall is not None
    measured = "On 13 October the 71-metre booster returned to the tower."
    assert [measured[a:b] for a, b in kind_spans(tall, measured)] == ["71"]


def test_the_last_one_is_not_a_verb_of_lasting() -> None:
    # "the last strike" names which strike; "ago" and "since" ask for a point in time.
    one_day = "The previous strike began on 3 May 2021."
    for question in ("how long ago was the last ferry strike?",
                     "how long since the last strike?",
                     "how long has it been since their last walkout?"):
        asked = expect(question)
        assert asked is not None and kind_spans(asked, one_day), question
    lasted = expect("how long did the last strike last?")
    assert lasted is not None and not kind_spans(lasted, one_day)


def test_a_count_asked_in_a_unit_or_a_currency_takes_that_measure() -> None:
    for question, sentence, stated in (
            ("how many light years away is the nebula?", "It lies 1,300 light years away.",
             ["1,300"]),
            ("how many billion kilometres has the probe flown?",
             "The probe has flown 24 billion kilometres.", ["24", "billion"]),
            ("how many dollars did the stadium cost?", "The stadium cost $1.2 billion.",
             ["1.2", "billion"]),
            ("how many euros is the fine?", "The fine is 40 million euros.",
             ["40", "million"])):
        asked = expect(question)
        assert asked is not None
        assert [sentence[a:b] for a, b in kind_spans(asked, sentence)] == stated, question


def test_a_unit_written_against_its_number_still_measures() -> None:
    riders = expect("how many riders started?")
    assert riders is not None
    sentence = "Over 42km, carrying 9kg packs, 154 riders started."
    assert [sentence[a:b] for a, b in kind_spans(riders, sentence)] == ["154"]


def test_a_month_and_year_is_no_day_of_the_month() -> None:
    when = expect("when did the pier close?")
    assert when is not None
    sentence = "The pier closed in March 2021 and reopened on 4 June 2023."
    assert [sentence[a:b] for a, b in kind_spans(when, sentence)] == [
        "March", "2021", "4 June", "2023"]


def test_choices_are_the_answers_an_either_or_question_offers() -> None:
    assert choices("how did the match end, a draw or a penalty shoot-out?") == (
        "a draw", "a penalty shoot-out")
    assert choices("who finished ahead: Ilse Varga or Tomas Berg?") == (
        "Ilse Varga", "Tomas Berg")
    assert choices("who won the final, Leeds or Hull") == ("Leeds", "Hull")  # chat drops the "?"
    assert choices("was the verdict guilty, or not?") == ()
    assert choices("what did the minister say?") == ()


def test_a_choice_is_stated_by_naming_one_of_the_answers() -> None:
    expected = expect("how did the match end, a draw or a penalty shoot-out?")
    assert expected is not None and expected.kind is AnswerType.CHOICE
    assert kind_spans(expected, "The final went to a penalty shoot-out after extra time.")
    assert kind_spans(expected, "It ended in a draw.")
    assert not kind_spans(expected, "The final ended on Sunday.")


def test_a_choice_cannot_be_checked_without_the_answers_offered() -> None:
    with pytest.raises(ValueError, match="choice"):
        supplies(AnswerType.CHOICE, "Either will do.")


@pytest.mark.parametrize(("question", "looks_for"), [
    ("who stole the bell from the chapel?", "who"),
    ("so where did the ferry end up?", "where"),
    ("why was the bridge shut for a week?", "why"),
    ("what did the harbour master say about the storm?", "said"),
    ("how did the council react to the vote?", "said"),
    ("which bakery announced it would close?", None),
    ("how many ferries sank?", None),
    # Chat drops the apostrophe, or keeps a contraction.
    ("whos running the harbour now", "who"),
    ("wholl pay for the new roof", "who"),
    ("wheres the ferry now", "where"),
    ("whys the bridge still shut", "why"),
    ("what'd the harbour master say", "said"),
    ("what’d she tell the crew?", "said"),
    ("how'd the council react", "said"),
    # The perfect tense asks for words said as much as the past does.
    ("what has the harbour master said about the storm?", "said"),
    ("what have the ferry owners told passengers?", "said"),
    ("how have fishermen reacted to the ban?", "said"),
    ("what has the harbour master got to say?", "said"),
    ("whose boat sank?", "who"),
    ("whatever happened to the ferry?", None),
])
def test_a_question_without_a_named_kind_may_still_look_for_one(question: str,
                                                               looks_for: str | None) -> None:
    assert cue(question) == looks_for


def test_a_sentence_holds_the_cue_only_beyond_the_questions_own_words() -> None:
    q = "who stole the bell from St Anne's chapel?"
    assert holds_cue("who", q, "Police charged Martin Okafor, a roofer, with the theft.")
    assert not holds_cue("who", q, "The bell was taken from St Anne's chapel on Monday.")
    assert not holds_cue("who", q, "Thieves took the bell overnight.")  # first word only
    w = "where did the ferry end up?"
    assert holds_cue("where", w, "The ferry drifted onto a sandbank near Port Ellis.")
    assert not holds_cue("where", w, "The ferry lost power in the storm.")
    assert holds_cue("why", "why was it shut?", "It was shut because a cable snapped.")
    assert not holds_cue("why", "why was it shut?", "It was shut on Monday.")
    assert holds_cue("said", "what did she say?", 'She said the port would reopen.')
    assert holds_cue("said", "what did she say?", "“The port will reopen,” she wrote.")
    assert not holds_cue("said", "what did she say?", "The port reopened on Monday.")


@pytest.mark.parametrize("sentence", [
    "He added that the port would reopen within a week.",
    "The harbour master warned that the pier could collapse.",
    "She replied that no ferry would sail before Friday.",
])
def test_words_said_are_found_whatever_the_verb_that_reports_them(sentence: str) -> None:
    assert holds_cue("said", "what did the harbour master say?", sentence)


def test_a_name_the_question_uses_is_no_new_name_however_it_is_written() -> None:
    q = "who stole the bell from St Anne's chapel?"
    assert not holds_cue("who", q, "The bell was taken from St Anne’s chapel on Monday.")
    # A quotation's first word is the sentence's first word.
    assert not holds_cue("who", "who won the race?", "“We did it,” the captain shouted.")
    assert not holds_cue("who", "who won the race?", '"It is over," the coach said.')
    assert holds_cue("who", "who won the race?", "“We did it,” Maria Lopez shouted.")


def test_places_and_names_may_open_a_sentence_or_be_written_with_accents() -> None:
    w = "where did the capsule come down?"
    assert holds_cue("where", w, "In Houston, the capsule came down on a barge.")
    assert holds_cue("where", w, "The capsule came down near Łódź.")
    assert not holds_cue("where", w, "In the end, the capsule came down.")
    assert holds_cue("who", "who won the contract?", "The contract went to Ørsted.")
