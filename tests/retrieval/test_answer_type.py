"""Expected answer types: what a question asks for, and which sentences can supply it."""

from __future__ import annotations

import pytest

from retrieval.answer_type import AnswerType, expected_type, supplies


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
    ("how many years in prison did he get?", AnswerType.DURATION),
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
    (AnswerType.DATE, "The museum reopened on 7 December.", True),
    (AnswerType.DATE, "The museum reopened to visitors.", False),
    (AnswerType.DURATION, "The strike lasted eleven days.", True),
    (AnswerType.DURATION, "He was jailed for life.", True),
    (AnswerType.DURATION, "The strike ended peacefully.", False),
    (AnswerType.DURATION, "The firm is run by a 22-year old trader.", False),
])
def test_supplies(kind: AnswerType, sentence: str, ok: bool) -> None:
    assert supplies(kind, sentence) is ok
