"""Sentence splitting and the instruction-like-text filter shared by both answer modes.

Articles are untrusted: a page can carry sentences addressed to assistants, bots or readers
("ignore your instructions", "visit this link", "ping everyone"). Such sentences are dropped
before text reaches a model and are never picked for an extractive answer.
"""

from __future__ import annotations

import re

# Abbreviations that end with a period but do not end a sentence, and a capital's initial
# ("Charles E. Grassley"). Segmenters that know these (sentencex, pysbd) keep a quotation of
# several sentences as one, which an answer cannot quote from; the second is also ten times
# slower than this.
_ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "St", "No", "vs", "U.S", "Inc", "Ltd", "Co", "Jr",
                  "Sr", "Gen", "Gov", "Sen", "Rep", "Prof", "Lt", "Col", "Sgt", "Mt", "Ft",
                  "Capt", "Cmdr", "Adm", "Rev", "Corp", "Bros", "Jan", "Feb", "Aug", "Sept",
                  "Oct", "Nov", "Dec")
_ABBREV = "".join(rf"(?<!\b{re.escape(a)}\.)" for a in _ABBREVIATIONS) + r"(?<!\b[A-Z]\.)"
_SPLIT = re.compile(_ABBREV + r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def sentences(text: str) -> list[str]:
    """Split prose into sentences (paragraph breaks always end one)."""
    out: list[str] = []
    for para in re.split(r"\n+", text):
        para = para.strip()
        if para:
            out.extend(s.strip() for s in _SPLIT.split(para) if s.strip())
    return out


# Text addressed to an assistant, a bot or the reader of a reply, or asking to alter the reply:
# never news, wherever it stands.
_ADDRESSED = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|prompts?|rules|above|"
    r"previous|system)\b"
    r"|\b(dear|attention|note to|hey|hi|to all)\s+(ai|assistants?|bots?|chat ?bots?|"
    r"language models?|newsbot|llms?|readers?)\b"
    r"|\b(ai|assistants?|bots?|chat ?bots?|language models?|llms?|gpt)\s+(reading|processing|"
    r"summari[sz]ing|answering|parsing|that (?:read|process|summari[sz]e)|who (?:read|"
    r"process|summari[sz]e))\b"
    r"|\bas an? (ai|artificial intelligence|language model|assistant)\b"
    r"|\b(system prompt|prompt injection|jailbreak|developer mode)\b"
    r"|@everyone|@here|<@[!&]?\d+>"
    r"|\b(ping|mention|tag|dm|message)\s+(everyone|everybody|all (?:members|users)|"
    r"@?here|the (?:server|channel|mods|admins))\b"
    r"|\b(click|visit|go to|check out|sign up|subscribe|download|buy|order now|"
    r"use (?:the |promo |discount )?code)\b.{0,60}(https?://|www\.|\.com\b|\.net\b|\.io\b)"
    r"|\b(respond|reply|answer|write|translate|output)\b.{0,40}\b(only|solely|exclusively|"
    r"entirely)?\s*(in|into|with|using)\s+(base\d\d|emojis?|reverse|backwards|french|spanish|"
    r"german|chinese|russian|italian|japanese|portuguese|pig latin|morse|caesar|rot13|"
    r"leetspeak|all caps|uppercase)\b"
    r"|\b(encode|encrypt|reverse|scramble)\b.{0,30}\b(your|the|this)\s+(answer|reply|"
    r"response|output)\b"
    r"|\byour (response|reply|answer|output|message)s?\b",
    re.I,
)

# Requests written as a user talking to an assistant: an imperative opening, or a question
# asking how "I" can do something. News carries such sentences too (quotes, interviews, a
# reader poll), but about its story: a request unrelated to the text around it was planted.
_REQUEST = re.compile(
    r"^(please\s+)?(write|provide|show|tell|give|help|recommend|suggest|list|explain|"
    r"describe|generate|create|compose|draft|summari[sz]e|analy[sz]e|translate|convert|"
    r"calculate|find|book|schedule|remind|send|make|plan|teach|outline|name|share|"
    r"rewrite|answer|respond|reply|include|add|append|insert|mention|start|end|always|"
    r"never|do not|don't|output|print|determine|classify|identify|render|apply|use|"
    r"integrate|enhance|modify|augment|shift|encode|decode|encrypt|reverse)\b"
    r"|^(how|what|where|which|who|when|can|could|would|should|is there)\b.{0,80}"
    r"\b(can|do|should|could|would) (i|we)\b"
    r"|\b(help|show|tell|give|teach|remind|send|book) me\b"
    r"|^(i need|i want|i'd like|i would like|can you|could you|would you|will you)\b",
    re.I,
)
# "Use of the drug rose", "Never before had ...": a noun or a narrative, not an imperative.
_NOUN_OPENING = re.compile(r"^\w+\s+(of|was|were|is|are|has|had|have)\b"
                           r"|^(never|always)\s+(before|again|since|did|does)\b", re.I)

_QUOTED = re.compile(r"^[\"“‘']|[\"”’'],? (he |she |they |it )?(said|says|added|told|asked)\b|"
                     r"\b(said|says|told|asked)\b", re.I)
# A request shares at least this share of its terms with the text around it to be part of
# the story (measured with bench/injection.py on planted attacks and labelled news).
TOPIC_SHARE = 0.5


def is_instruction_like(sentence: str, context: str | None = None) -> bool:
    """True for text that addresses an assistant, a bot or the reader with a request.

    Text addressed to an assistant or about its reply is always flagged. Quoted speech is
    news. A request-shaped sentence (an imperative opening, a question) is flagged unless
    ``context``, the text it stands in, shares at least :data:`TOPIC_SHARE` of its terms:
    an interview's question or a rhetorical one is about the story, a planted prompt is not.
    Without a context every request-shaped sentence is flagged.
    """
    s = sentence.strip()
    if not s:
        return False
    if _ADDRESSED.search(s):
        return True
    if _QUOTED.search(s):
        return False
    request = bool(_REQUEST.search(s)) and not _NOUN_OPENING.search(s)
    if not (request or s.endswith("?")):
        return False
    return context is None or not on_topic(s, context)


def on_topic(sentence: str, context: str) -> bool:
    """Whether ``context`` (without ``sentence`` itself) holds at least :data:`TOPIC_SHARE`
    of ``sentence``'s terms."""
    from retrieval.lexical import tokenize

    own, around = tokenize([sentence, context.replace(sentence, " ")])
    terms = set(own)
    if not terms:
        return False
    return len(terms & set(around)) >= TOPIC_SHARE * len(terms)


def instruction_sentences(text: str) -> list[str]:
    """The sentences of ``text`` that :func:`is_instruction_like` flags, judged in ``text``."""
    return [s for para in re.split(r"\n\s*\n", text) for s in sentences(para)
            if is_instruction_like(s, context=text)]


def strip_instructions(text: str) -> str:
    """``text`` without its instruction-like sentences (paragraphs kept)."""
    paras = []
    for para in re.split(r"\n\s*\n", text):
        kept = [s for s in sentences(para) if not is_instruction_like(s, context=text)]
        if kept:
            paras.append(" ".join(kept))
    return "\n\n".join(paras)


_URL = re.compile(r"https?://[^\s<>()\[\]]+|www\.[^\s<>()\[\]]+", re.I)


def urls_in(text: str) -> list[str]:
    return _URL.findall(text)
