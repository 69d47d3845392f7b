"""Fixtures shared by the core's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.openai_server import FakeOpenAIServer


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    """The local OpenAI-compatible server, fresh for each test."""
    with FakeOpenAIServer() as s:
        yield s
