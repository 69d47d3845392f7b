"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# ---------------------------------------------------------------------------------------------
# Local counterparts of outside services (tests/support). Keep other fixtures below this block.
# ---------------------------------------------------------------------------------------------
from tests.support.chroma_server import ChromaServer
from tests.support.http import StaticServer
from tests.support.openai_server import FakeOpenAIServer


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """A fresh OpenAI-compatible server (empty reply queue) for one test."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One real Chroma server for the whole run; tests must use unique collection names."""
    with ChromaServer(tmp_path_factory.mktemp("chroma-data")) as server:
        yield server


@pytest.fixture
def http() -> Iterator[StaticServer]:
    """A local HTTP server of feeds and pages for one test (see tests/support/http.py)."""
    with StaticServer() as server:
        yield server


@pytest.fixture
def allow_private_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let Settings built in this test fetch from the local servers on 127.0.0.1.

    Fetches of loopback and private addresses are refused by default; a test that serves
    feeds or pages locally opts in here (a subprocess gets NEWSBOT_ALLOW_PRIVATE_URLS itself).
    """
    monkeypatch.setenv("NEWSBOT_ALLOW_PRIVATE_URLS", "true")


# ---------------------------------------------------------------------------------------------
# End of local-counterpart fixtures.
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Core services on a temporary data dir (real state, real embedded Chroma, fake embedding).
# ---------------------------------------------------------------------------------------------
from bot.core.services import Services  # noqa: E402
from tests.fakes import make_services  # noqa: E402


@pytest.fixture
def services(tmp_path: pytest.TempPathFactory) -> Iterator[Services]:
    """Services loaded with the bundled sample articles, closed after the test."""
    svc = make_services(tmp_path / "data")  # type: ignore[operator]
    try:
        yield svc
    finally:
        svc.close()
