"""Expected answer types: what a question asks for, and which sentences can supply it."""

from __future__ import annotations

import pytest

from retrieval.answer_type import AnswerType, choices, expect, expected_type, supplies
from retrieval.lexical import tokenize


@pytest.mark.parametrize(("question", "kind"), [
    ("how much did the council pay for the new bridge?", AnswerType.MONEY),
    ("How much was the fine the regulator imposed?", AnswerType.MONEY),
    ("how much of the country's power came from the plant?", AnswerType.NUMBER),
    ("how much rain fell on Sunday?", AnswerType.NUMBER),
    ("how many people were rescued from the ferry?", AnswerType.NUMBER),
    ("what was the final death toll of the storm?", AnswerType.NUMBER),
    ("when did the museum reopen?", AnswerType.DATE),
    ("so when is the launch planned now?", AnswerType.DATE),
    ("in what year did the band split up?", AnswerType.DATE),
    ("how long did the strike last?", AnswerType.DURATION),
    ("how many years in prison did he get?", AnswerType.TERM),
    ("what prison sentence did the driver end up with?", AnswerType.TERM),
    ("how long did the trial last?", AnswerType.DURATION),
    ("was the ferry sunk by a mine or a torpedo?", None),  # no comma: not offered as choices
    ("who won the final, Leeds or Hull?", AnswerType.CHOICE),
    ("so was he found guilty at the trial, or not?", None),
    ("who won the election?", None),
    ("what happened when the storm reached the coast?", None),
    ("what did the minister say about the strike?", None),
    ("why did the bank collapse when it did?", None),
])
def test_expected_type(question: str, kind: AnswerType | None) -> None:
    assert expected_type(question) is kind


@pytest.mark.parametrize(("kind", "sentence", "ok"), [
    (AnswerType.MONEY, "The club paid $4.5 million for the striker.", True),
    (AnswerType.MONEY, "The fine came to 30,000 euros.", True),
    (AnswerType.MONEY, "The court fined the company on Tuesday.", False),
    (AnswerType.NUMBER, "Forty passengers were taken to hospital.", True),
    (AnswerType.NUMBER, "Rescuers reached the ferry at dawn.", False),
    (AnswerType.NUMBER, "The princess, 67, announced her candidacy on Friday.", False),
    (AnswerType.NUMBER, "A 22-year-old trader and his partner, aged 30, ran the firm.", False),
    (AnswerType.NUMBER, "The party won 44 seats.", True),
    (AnswerType.DATE, "The museum reopened on 7 December.", True),
    (AnswerType.DATE, "The museum reopened to visitors.", False),
    (AnswerType.DURATION, "The strike lasted eleven days.", True),
    (AnswerType.DURATION, "He was jailed for life.", True),
    (AnswerType.DURATION, "The strike ended peacefully.", False),
    (AnswerType.DURATION, "The firm is run by a 22-year old trader.", False),
    (AnswerType.TERM, "He was sentenced to six years in prison.", True),
    (AnswerType.TERM, "The court sentenced her to death.", True),
    (AnswerType.TERM, "He was jailed for life.", True),
    (AnswerType.TERM, "Doctors said the next 72 hours would be crucial.", False),
    (AnswerType.TERM, "He was sentenced on Tuesday.", False),
])
def test_supplies(kind: AnswerType, sentence: str, ok: bool) -> None:
    assert supplies(kind, sentence) is ok


def test_choices_are_the_answers_an_either_or_question_offers() -> None:
    assert choices("how was he executed, firing squad or lethal injection?") == (
        "firing squad", "lethal injection")
    assert choices("who quit the race first: Fred Thompson or Rudy Giuliani?") == (
        "Fred Thompson", "Rudy Giuliani")
    assert choices("who won the final, Leeds or Hull") == ("Leeds", "Hull")  # chat drops the "?"
    assert choices("was the verdict guilty, or not?") == ()
    assert choices("what did the minister say?") == ()


@pytest.mark.parametrize(("sentence", "ok"), [
    ("He was executed by firing squad at dawn.", True),
    ("Most states use lethal injection.", True),
    ("The injection site was closed.", True),  # half of "lethal injection": enough
    ("He was executed on Monday.", False),
])
def test_a_choice_is_supplied_by_naming_one_of_the_answers(sentence: str, ok: bool) -> None:
    expected = expect("how was he executed, firing squad or lethal injection?")
    assert expected is not None and expected.kind is AnswerType.CHOICE
    assert expected.met_by(sentence, set(tokenize([sentence])[0])) is ok


def test_a_choice_cannot_be_checked_without_the_answers_offered() -> None:
    with pytest.raises(ValueError, match="choice"):
        supplies(AnswerType.CHOICE, "Either will do.")
