"""Sentence splitting and the instruction-like-text filter shared by both answer modes.

Articles are untrusted: a page can carry sentences addressed to assistants, bots or readers
("ignore your instructions", "visit this link", "ping everyone"). Such sentences are dropped
before text reaches a model and are never picked for an extractive answer.
"""

from __future__ import annotations

import re

# Abbreviations that end with a period but do not end a sentence.
_ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "St", "No", "vs", "U.S", "Inc", "Ltd", "Co", "Jr",
                  "Sr", "Gen", "Gov", "Sen", "Rep", "Prof", "Lt", "Col", "Sgt", "Mt", "Ft")
_ABBREV = "".join(rf"(?<!\b{re.escape(a)}\.)" for a in _ABBREVIATIONS)
_SPLIT = re.compile(_ABBREV + r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def sentences(text: str) -> list[str]:
    """Split prose into sentences (paragraph breaks always end one)."""
    out: list[str] = []
    for para in re.split(r"\n+", text):
        para = para.strip()
        if para:
            out.extend(s.strip() for s in _SPLIT.split(para) if s.strip())
    return out


_ADDRESSED = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|prompts?|rules|above|"
    r"previous|system)\b"
    r"|\b(as an? )?(ai|artificial intelligence|language model|llm|chat ?bot|assistant|"
    r"gpt|bot|newsbot)s?\b.{0,60}\b(must|should|will|shall|need to|are required to|"
    r"are instructed to|please|reply|respond|answer|say|write|include|tell|append|add)\b"
    r"|\b(dear|attention|note to|hey|hi)\s+(ai|assistant|bot|chat ?bot|language model|"
    r"newsbot|llm|reader|readers)\b"
    r"|\b(system prompt|prompt injection|jailbreak|developer mode)\b"
    r"|@everyone|@here|<@[!&]?\d+>"
    r"|\b(ping|mention|tag|dm|message)\s+(everyone|everybody|all (?:members|users)|"
    r"@?here|the (?:server|channel|mods|admins))\b"
    r"|\b(click|visit|go to|check out|sign up|subscribe|download|buy|order now|"
    r"use (?:the |promo |discount )?code)\b.{0,60}(https?://|www\.|\.com\b|\.net\b|\.io\b|"
    r"\blink\b|\bhere\b|\bnow\b|\btoday\b)"
    r"|\b(respond|reply|answer|write|translate|output)\b.{0,40}\b(only|solely|exclusively|"
    r"entirely)?\s*(in|into|with|using)\s+(base64|emojis?|reverse|backwards|french|spanish|"
    r"german|chinese|russian|italian|japanese|pig latin|morse|caesar|rot13|leetspeak|"
    r"all caps|uppercase)\b"
    r"|\b(encode|encrypt|reverse|scramble)\b.{0,30}\b(your|the|this)\s+(answer|reply|"
    r"response|output)\b"
    r"|\byour (response|reply|answer|output|message)s?\b",
    re.I,
)

# Requests written as a user talking to an assistant: news prose almost never reads so.
_REQUEST = re.compile(
    r"^(please\s+)?(write|provide|show|tell|give|help|recommend|suggest|list|explain|"
    r"describe|generate|create|compose|draft|summari[sz]e|analy[sz]e|translate|convert|"
    r"calculate|find|book|schedule|remind|send|make|plan|teach|outline|name|share|"
    r"rewrite|answer|respond|reply|include|add|append|insert|mention|start|end|always|"
    r"never|do not|don't|output|print|determine|classify|identify|render|apply|use|"
    r"integrate|enhance|modify|augment|shift|encode|decode|encrypt|reverse|respond)\b"
    r"|^(how|what|where|which|who|when|can|could|would|should|is there)\b.{0,80}"
    r"\b(can|do|should|could|would) (i|we)\b"
    r"|\b(help|show|tell|give|teach|remind|send|book) me\b"
    r"|^(i need|i want|i'd like|i would like|can you|could you|would you|will you)\b",
    re.I,
)


_QUOTED = re.compile(r"^[\"“‘']|[\"”’'],? (he |she |they |it )?(said|says|added|told|asked)\b|"
                     r"\b(said|says|told|asked)\b", re.I)


def is_instruction_like(sentence: str) -> bool:
    """True for text that addresses an assistant, a bot or the reader with a request.

    Quoted speech is news, so the request patterns only apply outside quotes; a stray
    question that nobody in the story asks is treated as a planted prompt.
    """
    s = sentence.strip()
    if not s:
        return False
    if _ADDRESSED.search(s):
        return True
    if _QUOTED.search(s):
        return False
    return bool(_REQUEST.search(s) or s.endswith("?"))


def strip_instructions(text: str) -> str:
    """``text`` without its instruction-like sentences (paragraphs kept)."""
    paras = []
    for para in re.split(r"\n\s*\n", text):
        kept = [s for s in sentences(para) if not is_instruction_like(s)]
        if kept:
            paras.append(" ".join(kept))
    return "\n\n".join(paras)


_URL = re.compile(r"https?://[^\s<>()\[\]]+|www\.[^\s<>()\[\]]+", re.I)


def urls_in(text: str) -> list[str]:
    return _URL.findall(text)
