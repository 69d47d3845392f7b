"""``build_services(settings)``: the single place where the parts are built and wired."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.admin import AdminService, IngestReport, Progress
from bot.core.ask import AskService
from bot.core.briefs import BriefService
from bot.core.feedback import FeedbackService
from bot.core.llm import ChatModel, build_chat_model
from bot.core.models import StoreError
from bot.core.state import State
from bot.settings import Settings
from retrieval.indexer import Indexer
from retrieval.search import Retriever, SearchParams
from retrieval.store import StoreUnavailable, VectorStore

if TYPE_CHECKING:
    from retrieval.embeddings import Embedder


@dataclass(slots=True)
class Services:
    """Everything an adapter (CLI, Discord) calls. Blocking; close() when done."""

    settings: Settings
    state: State
    store: VectorStore
    embedder: Embedder
    retriever: Retriever
    ask: AskService
    admin: AdminService
    feedback: FeedbackService
    briefs: BriefService

    def close(self) -> None:
        self.store.close()
        self.state.close()

    def ensure_sample(self, progress: Progress | None = None) -> IngestReport | None:
        """Load the bundled sample articles into an empty store (first run, no set-up)."""
        if self.state.counts()[0] or self.store.count():
            return None
        return self.admin.ingest([str(sample_dir())], progress)


def sample_dir() -> Path:
    """The bundled sample articles (Markdown with front matter)."""
    return Path(str(files("bot") / "sample"))


def make_embedder(settings: Settings) -> Embedder:
    """The configured embedding model: local MiniLM by default, or an OpenAI-compatible API."""
    if settings.embedding_backend == "openai":
        from retrieval.embeddings import OpenAIEmbedder

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return OpenAIEmbedder(model=settings.embedding_model, base_url=settings.openai_base_url,
                              api_key=key or "not-needed", timeout=settings.llm_timeout_s,
                              max_retries=settings.llm_max_retries)
    from retrieval.embeddings import LocalMiniLM

    return LocalMiniLM(settings.model_cache_dir, quantized=settings.embedding_quantized,
                       batch_size=settings.embedding_batch_size)


def build_services(settings: Settings, *, embedder: Embedder | None = None,
                   model: ChatModel | None = None, check_model: bool = True) -> Services:
    """Open the state and the store and wire the services.

    ``check_model=False`` opens a store built with another embedding model (for reindex).
    Raises StoreError with a one-line reason when the store cannot be opened.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedder = embedder or make_embedder(settings)
    try:
        store = VectorStore.open(path=settings.chroma_path, url=settings.chroma_url,
                                 base=settings.collection, model_id=embedder.model_id,
                                 check_model=check_model)
    except StoreUnavailable as exc:
        raise StoreError(str(exc)) from None
    state = State(settings.state_path)
    params = SearchParams()
    if settings.abstain_threshold is not None:
        params = SearchParams(abstain_threshold=settings.abstain_threshold)
    retriever = Retriever(store, embedder, cache_dir=settings.data_dir / "lexical", params=params)
    indexer = Indexer(store, embedder)
    model = model or build_chat_model(settings)
    admin = AdminService(settings, state, store, indexer, retriever)
    return Services(
        settings=settings,
        state=state,
        store=store,
        embedder=embedder,
        retriever=retriever,
        ask=AskService(settings, retriever, model),
        admin=admin,
        feedback=FeedbackService(state),
        briefs=BriefService(state, admin, model),
    )
