"""Answers posted to Discord and members' votes on them."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.models import Answer
from bot.core.state import AnswerScope, State


@dataclass(frozen=True, slots=True)
class FeedbackStats:
    up: int
    down: int
    answers: int
    unanswered: list[tuple[str, int]]  # abstained questions, how often asked
    most_downvoted: list[tuple[str, str, int]]  # question, answer excerpt, downvotes


class FeedbackService:
    """Remembers posted answers so that 👍/👎 still count after a restart."""

    def __init__(self, state: State) -> None:
        self.state = state

    def record_answer(self, *, message_id: int, channel_id: int, user_id: int,
                      answer: Answer, guild_id: int | None = None) -> None:
        self.state.record_answer(
            message_id=message_id, channel_id=channel_id, user_id=user_id,
            question=answer.question, answer=answer.text,
            sources=[s.to_json() for s in answer.sources], abstained=answer.abstained,
            mode=answer.mode, guild_id=guild_id,
        )

    def vote(self, *, message_id: int, user_id: int, value: int) -> bool:
        """Record +1/-1 (a second vote replaces the first); False for an unknown message."""
        if value not in (1, -1):
            raise ValueError("a vote is +1 or -1")
        return self.state.record_vote(message_id=message_id, user_id=user_id, value=value)

    def stats(self, limit: int = 5, *, scope: AnswerScope | None = None) -> FeedbackStats:
        """Votes and answers of one server (``scope``), or of all when None."""
        up, down, answers = self.state.vote_totals(scope)
        return FeedbackStats(
            up=up, down=down, answers=answers,
            unanswered=self.state.unanswered_questions(limit, scope),
            most_downvoted=[(q, a[:200], n)
                            for q, a, n in self.state.most_downvoted(limit, scope)],
        )
