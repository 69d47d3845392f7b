"""``build_services(settings)``: the single place where the parts are built and wired."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.admin import AdminService, IngestReport, Progress, normalise_spec
from bot.core.ask import AskService
from bot.core.briefs import BriefService
from bot.core.delivery import Desk
from bot.core.feedback import FeedbackService
from bot.core.llm import ChatModel, build_chat_model
from bot.core.models import StoreError
from bot.core.sources import SourceService
from bot.core.state import State
from bot.settings import Settings
from retrieval.indexer import Indexer
from retrieval.search import Retriever, SearchParams
from retrieval.store import StoreUnavailable, VectorStore

if TYPE_CHECKING:
    from retrieval.embeddings import Embedder

log = logging.getLogger(__name__)


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
    sources: SourceService
    feedback: FeedbackService
    briefs: BriefService
    desk: Desk

    def close(self) -> None:
        if self.ask.model is not None:
            self.ask.model.close()
        self.retriever.close()
        self.store.close()
        self.state.close()

    def ensure_sample(self, progress: Progress | None = None) -> IngestReport | None:
        """Load the bundled sample articles into a new data dir (first run, no set-up)."""
        if not self._wants_sample():
            return None
        with self.admin.write_lock:
            if not self._wants_sample():
                return None  # another caller loaded it meanwhile
            if progress:
                progress.start("sample", None)
            self.state.set_meta(_SAMPLE_LOAD, self.state.get_meta("source_seq") or "0")
            report = self.admin.ingest([str(sample_dir())], progress)
            # Named, so that `newsbot sources remove sample` takes the examples out once
            # the community follows its own sources (the path is the installed package's).
            source = self.state.find_source(normalise_spec(str(sample_dir())))
            if (source is not None and source.name is None
                    and self.state.find_source(SAMPLE_NAME) is None):
                self.state.update_source(source.id, name=SAMPLE_NAME)
            self.state.set_meta(_SAMPLE_LOAD, "done")
            return report

    def _wants_sample(self) -> bool:
        if not self.store.writable:
            return False  # a store another data dir keeps: its articles, not examples
        started = self.state.get_meta(_SAMPLE_LOAD)
        if started is not None and started != "done":
            # A first load that was stopped (Ctrl-C, an embedding endpoint down) recorded
            # the sample's source id: it is tried again unless another source came since.
            seq = int(self.state.get_meta("source_seq") or 0)
            return self.state.counts()[0] == 0 and seq <= int(started) + 1
        # Only a data dir that never had a source: one whose sources were all removed stays
        # empty rather than filling up with examples.
        return not (self.state.ever_had_sources() or self.store.count())


SAMPLE_NAME = "sample"  # the bundled articles' source
# The source id before the sample's first load began, until it ends ("done").
_SAMPLE_LOAD = "sample_load"


def sample_dir() -> Path:
    """The bundled sample articles (Markdown with front matter)."""
    return Path(str(files("bot") / "sample"))


def make_embedder(settings: Settings) -> Embedder:
    """The configured embedding model: local MiniLM by default, or an OpenAI-compatible API."""
    embedder = embedder_for(settings.embedding_model_id, settings)
    assert embedder is not None  # the configured id is always one of ours
    return embedder


def embedder_for(model_id: str, settings: Settings) -> Embedder | None:
    """The embedder that produced vectors recorded as ``model_id``, or None if unknown."""
    if model_id.startswith("openai:"):
        from retrieval.embeddings import OpenAIEmbedder

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return OpenAIEmbedder(model=model_id.removeprefix("openai:"),
                              base_url=settings.openai_base_url, api_key=key or "not-needed",
                              timeout=settings.llm_timeout_s, max_retries=settings.llm_max_retries)
    if model_id in ("minilm-l6-v2", "minilm-l6-v2-int8"):
        from retrieval.embeddings import LocalMiniLM

        return LocalMiniLM(settings.model_cache_dir, quantized=model_id.endswith("-int8"),
                           batch_size=settings.embedding_batch_size)
    return None


def build_services(settings: Settings, *, embedder: Embedder | None = None,
                   model: ChatModel | None = None, check_model: bool = True,
                   previous_embedder: Callable[[str], Embedder | None] | None = None,
                   ) -> Services:
    """Open the state and the store and wire the services.

    When the store was built with another embedding model than the configured one, it keeps
    serving with the model it was built with (``previous_embedder`` builds it) until a full
    reindex switches; vectors of two models are never mixed. When that model cannot be
    built, a StoreError says to reindex (``check_model=False`` opens the store anyway, to
    rebuild it). Raises StoreError with a one-line reason when the store cannot be opened.
    """
    try:
        # The state holds members' questions and their user ids, and sources' addresses
        # (a paid feed's key among them): a new data folder is the bot user's alone. One
        # that exists is left as its owner made it.
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        why = ("it is a file; set NEWSBOT_DATA_DIR to a folder" if settings.data_dir.is_file()
               else exc.strerror or str(exc))
        raise StoreError(f"cannot use the data folder {settings.data_dir}: {why}") from None
    configured = embedder or make_embedder(settings)
    # A store on a server is kept by one registry (see VectorStore.open): it is named first.
    state = State(settings.state_path) if settings.chroma_url else None
    try:
        store = VectorStore.open(path=settings.chroma_path, url=settings.chroma_url,
                                 base=settings.collection, model_id=configured.model_id,
                                 check_model=False,
                                 keeper=state.registry_id() if state else None,
                                 may_claim=bool(state and state.counts()[0]))
    except StoreUnavailable as exc:
        if state:
            state.close()
        raise StoreError(str(exc)) from None
    except BaseException:
        if state:
            state.close()
        raise
    serving = configured
    try:
        if store.built_with != configured.model_id:
            if store.count() == 0 and store.writable:
                store.retag(configured.model_id)  # nothing to rebuild: adopt the new model
            else:
                build_old = previous_embedder or (lambda mid: embedder_for(mid, settings))
                old = build_old(store.built_with)
                if old is not None:
                    serving = old
                    log.warning(
                        "the store was built with the embedding model %s but %s is configured: "
                        "answering with %s until `newsbot reindex --full` rebuilds it",
                        store.built_with, configured.model_id, store.built_with)
                elif check_model:
                    raise StoreError(
                        f"the store was built with the embedding model {store.built_with!r} "
                        f"but this configuration uses {configured.model_id!r}; run "
                        "`newsbot reindex --full` to rebuild it.")
        state = state or State(settings.state_path)
        if not settings.chroma_url:
            # The embedded store is held by this process alone (see VectorStore.open): no
            # load is under way, so a new source that one killed left empty is dropped.
            for source in state.drop_unloaded_sources():
                log.info("source %s (%s) dropped: its first load was stopped before any "
                         "article landed", source.id, source.label)
    except BaseException:
        store.close()
        if state:
            state.close()
        raise
    params = SearchParams()
    if settings.abstain_threshold is not None:
        params = SearchParams(abstain_threshold=settings.abstain_threshold)
    retriever = Retriever(store, serving, cache_dir=settings.data_dir / "lexical", params=params,
                          zone=settings.zone)
    indexer = Indexer(store, serving)
    model = model or build_chat_model(settings)
    admin = AdminService(settings, state, store, indexer, retriever, target_embedder=configured)
    sources = SourceService(settings, state, admin)
    admin.feed_ingest = sources.ingest_feed
    return Services(
        settings=settings,
        state=state,
        store=store,
        embedder=serving,
        retriever=retriever,
        ask=AskService(settings, retriever, model, guild_zones=state.guild_tz),
        admin=admin,
        sources=sources,
        feedback=FeedbackService(state),
        briefs=BriefService(state, admin, model),
        desk=Desk(state, serving, model=model, mod_channel_id=settings.mod_channel_id,
                  default_tz=settings.timezone,
                  send_rate=settings.brief_send_rate, burst=settings.brief_burst),
    )
