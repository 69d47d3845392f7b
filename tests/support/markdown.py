"""Which masked links a Discord client would render in a text: the link rule of
simple-markdown, the parser Discord's markdown is built on, read left to right with
backslash escapes consumed first as the client does.

Wider than the common ``[label](url)``: a label may hold balanced brackets or a line break,
a target parentheses, and a quoted title may follow it.
"""

from __future__ import annotations

import re

_INSIDE = r"(?:\[[^\]]*\]|[^\[\]]|\](?=[^\[]*\]))*"
_HREF_AND_TITLE = r"\s*<?((?:\([^)]*\)|[^\s\\])*?)>?(?:\s+['\"]([\s\S]*?)['\"])?\s*"
_LINK = re.compile(r"\[(" + _INSIDE + r")\]\(" + _HREF_AND_TITLE + r"\)")


def masked_links(text: str) -> list[tuple[str, str]]:
    """The (label, target) of every http(s) masked link ``text`` renders."""
    found: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and not text[i + 1].isalnum() \
                and not text[i + 1].isspace():
            i += 2  # an escaped character is shown as it is
            continue
        m = _LINK.match(text, i)
        if m and m.group(2).lower().startswith(("http://", "https://")):
            found.append((m.group(1), m.group(2)))
            i = m.end()
            continue
        i += 1
    return found
