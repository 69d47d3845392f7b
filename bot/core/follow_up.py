"""When a model's rewrite of a follow-up question can be trusted.

A weak model turns "How old was his daughter?" into "How old was Kobe Bryant?": fluent,
standalone and wrong. A rewrite is kept only when it keeps every content word of the new
message, names a subject from the conversation, and adds little else; otherwise the search
runs on the message itself with the conversation as context, as it does without a model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.core.models import Turn
from retrieval.answer_type import story_request
from retrieval.lexical import tokenize
from retrieval.search import points_back

# Words a rewrite may add that come from neither the message nor the conversation
# ("the", "did" are stop words already; this is for "happen", "year", ...).
MAX_NEW_TERMS = 2
_LABEL = re.compile(r"^\s*(?:standalone question|question|rewritten question)\s*:\s*", re.I)
_CITE = re.compile(r"\[\d{1,2}\]")
_EMPHASIS = re.compile(r"\*\*|__")  # markdown bold around a label: "**Question:** ..."
# A reasoning model's thinking, which some servers pass on inline before the reply; a reply
# cut inside it has no rewrite.
_REASONING = re.compile(r"^\s*<(think|thinking|reasoning)>.*?(?:</\1>|\Z)", re.I | re.S)
# ... or ended by a closing tag it never opened: all before that is thinking too.
_UNOPENED_REASONING = re.compile(r"^.*?</(?:think|thinking|reasoning)>", re.I | re.S)


def clean_rewrite(text: str, max_chars: int) -> str | None:
    """The rewrite's first line of its own: without labels, emphasis and quotes, and past a
    preface ("Here is the standalone question:"), which small models write however told
    not to; or None."""
    reply = _REASONING.sub("", text) if _REASONING.match(text) else \
        _UNOPENED_REASONING.sub("", text, count=1)
    for line in reply.splitlines():
        line = _LABEL.sub("", _EMPHASIS.sub("", line)).strip().strip('"“”\'`*').strip()
        if line and not line.endswith(":"):
            return line[:max_chars]
    return None


def keeps_follow_up(question: str, rewrite: str, turns: Sequence[Turn]) -> bool:
    """The rewrite keeps the message's content words and names a subject of the history."""
    history = " ".join(_CITE.sub(" ", t.text) for t in turns)
    q_terms, r_terms, h_terms = (set(t) for t in tokenize([question, rewrite, history]))
    if not q_terms <= r_terms:
        return False
    from_history = (r_terms - q_terms) & h_terms
    invented = r_terms - q_terms - h_terms
    return bool(from_history) and len(invented) <= MAX_NEW_TERMS


def search_context(asked: Sequence[str]) -> list[str]:
    """The earlier questions that steer a follow-up's search without a model: the last two,
    unless both point back ("what went wrong with it?", "how did they fix it?"); then the
    last one that named the story stands in for the older, or the story is lost by the
    third follow-up. "Tell me more" and "source?" add nothing to the story: they are left
    out."""
    asked = [q for q in asked if story_request(q) is None]
    recent = list(asked[-2:])
    if len(asked) > 2 and all(points_back(q) for q in recent):
        # A question that names the story has words of its own: "thanks!" or "why?" points
        # back at nothing, yet names nothing either.
        named = next((q for q in reversed(asked[:-2])
                      if not points_back(q) and tokenize([q])[0]), None)
        if named is not None:
            recent = [named, recent[-1]]
    return recent
