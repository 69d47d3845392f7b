"""Prompt templates, kept as reviewed files in the repository and loaded from here."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def load(name: str) -> str:
    """The text of ``prompts/<name>.md``."""
    return (files(__package__) / f"{name}.md").read_text(encoding="utf-8")
