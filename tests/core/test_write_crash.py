"""A process killed in the middle of a store write: after a restart the keyword index holds
what the store holds, no more and no less, and keeps doing so as later writes update it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from retrieval.articles import Article, build_article
from retrieval.indexer import Indexer
from retrieval.lexical import LexicalIndex, tokenize
from retrieval.search import Retriever
from retrieval.store import VectorStore
from tests.fakes import FakeEmbedder
from tests.support.chroma_server import ChromaServer

ROOT = Path(__file__).resolve().parents[2]


def story(slug: str, words: str, paragraphs: int = 3) -> Article:
    body = "\n\n".join(f"Paragraph {p}: the {words} at the harbour, the ferry board said on "
                       "Monday after a long meeting about the winter timetable and its fares."
                       for p in range(paragraphs))
    return build_article(title=f"Harbour news: {slug}", text=body, outlet="Example Gazette",
                         url=f"https://gazette.example/{slug}",
                         published_at=datetime(2026, 11, 20, tzinfo=UTC))


GHOST = story("strike", "Quillbrook crews walked out")  # removed by the crashing write
EDITED = story("pier", "Marrowfen pier reopened")  # rewritten in place by the crashing write
NEW_EDIT = story("pier", "Tessaly pier stays shut")
OTHERS = [story("fares", "tram fares rose"), story("storm", "storm damage to the coast")]

# Run in a child: open the store as the service does (its saved keyword index loaded), make
# one write, and die (os._exit: no clean-up, as with kill -9 or a power cut) the moment
# Chroma has done the write the mode names.
CHILD = """
import os, sys
from pathlib import Path
from chromadb.api.models.Collection import Collection
from retrieval.indexer import Indexer
from retrieval.search import Retriever
from retrieval.store import VectorStore
from tests.core.test_write_crash import EDITED, GHOST, NEW_EDIT
from tests.fakes import FakeEmbedder

data, mode = Path(sys.argv[1]), sys.argv[2]
real = getattr(Collection, mode)

def then_die(self, *args, **kwargs):
    real(self, *args, **kwargs)
    os._exit(9)

store = VectorStore.open(path=data / "store", model_id=FakeEmbedder.model_id)
Retriever(store, FakeEmbedder(), cache_dir=data / "lexical").lexical()
setattr(Collection, mode, then_die)
indexer = Indexer(store, FakeEmbedder())
if mode == "delete":
    indexer.remove([GHOST.id])
else:
    indexer.index([NEW_EDIT], changed=[EDITED.id])
"""


def open_store(data: Path) -> tuple[VectorStore, Retriever, Indexer]:
    store = VectorStore.open(path=data / "store", model_id=FakeEmbedder.model_id)
    return (store, Retriever(store, FakeEmbedder(), cache_dir=data / "lexical"),
            Indexer(store, FakeEmbedder()))


def assert_index_is_the_store(store: VectorStore, retriever: Retriever) -> None:
    index = retriever.lexical()
    fresh = LexicalIndex.build(store.iter_chunks())
    assert sorted(index.ids) == sorted(fresh.ids)
    order = [fresh.position[i] for i in index.ids]
    for words in ("Quillbrook crews", "Marrowfen pier", "Tessaly pier", "tram fares"):
        q = tokenize([words])[0]
        assert np.allclose(index.scores(q), fresh.scores(q)[order], atol=1e-6), words


def test_a_write_killed_midway_leaves_no_stale_keyword_index_after_a_restart(
        tmp_path: Path) -> None:
    base = tmp_path / "base"
    store, retriever, indexer = open_store(base)
    try:
        indexer.index([GHOST, EDITED, *OTHERS])
        retriever.lexical()  # built and saved for this version, as a running service does
    finally:
        store.close()
    runs = {}
    for mode in ("delete", "upsert"):
        shutil.copytree(base, tmp_path / mode)
        runs[mode] = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / mode), mode],
                                      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True)
    for mode, run in runs.items():
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 9, out  # it died right after the store changed

        store, retriever, indexer = open_store(tmp_path / mode)
        try:
            quill = tokenize(["Quillbrook"])[0]
            marrow = tokenize(["Marrowfen"])[0]
            gone = quill if mode == "delete" else marrow
            assert not LexicalIndex.build(store.iter_chunks()).scores(gone).any()
            if mode == "delete":  # the service: its warm-up reads, then a poll writes
                assert not retriever.lexical().scores(gone).any()
                assert_index_is_the_store(store, retriever)
            # A later write updates the index from what it wrote (in a command run without
            # the service, the one saved before the write): still the store's.
            indexer.index([story("ferry", "new ferry ordered")])
            retriever.refresh()
            assert not retriever.lexical().scores(gone).any()
            assert_index_is_the_store(store, retriever)
        finally:
            store.close()
        store, retriever, _ = open_store(tmp_path / mode)  # and so is the one saved
        try:
            assert_index_is_the_store(store, retriever)
        finally:
            store.close()


# Dies the moment a full rebuild has made its collection live, before it drops the old one.
REBUILD_CHILD = """
import os, sys
from pathlib import Path
from chromadb.api.client import Client
from retrieval.indexer import Indexer
from retrieval.store import VectorStore
from tests.core.test_write_crash import OTHERS
from tests.fakes import FakeEmbedder

store = VectorStore.open(path=Path(sys.argv[1]) / "store", model_id=FakeEmbedder.model_id)
staging = store.begin_rebuild()
Indexer(store, FakeEmbedder()).index(OTHERS, collection=staging)
Client.delete_collection = lambda self, *args, **kwargs: os._exit(9)
store.finish_rebuild(staging)
"""


def test_a_rebuild_killed_after_its_switch_leaves_no_old_collection_behind(
        tmp_path: Path) -> None:
    """The old collection (every vector of the store, on disk) was kept until the next full
    reindex; the next start drops it, as the rebuild would have."""
    store, _, indexer = open_store(tmp_path)
    try:
        indexer.index(OTHERS)
        old, chunks = store.collection_name, store.count()
    finally:
        store.close()
    run = subprocess.run([sys.executable, "-c", REBUILD_CHILD, str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 9, run.stdout + run.stderr
    store, retriever, _ = open_store(tmp_path)
    try:
        assert store.collection_name != old and store.count() == chunks
        assert [c.name for c in store._client.list_collections()] == [store.collection_name]
        assert_index_is_the_store(store, retriever)
    finally:
        store.close()


# The same, on a Chroma server: the keeper's rebuild dies between its switch and its clean-up.
SERVER_REBUILD_CHILD = """
import os, sys
from chromadb.api.client import Client
from retrieval.indexer import Indexer
from retrieval.store import VectorStore
from tests.core.test_write_crash import OTHERS
from tests.fakes import FakeEmbedder

url, base = sys.argv[1], sys.argv[2]
store = VectorStore.open(url=url, base=base, model_id=FakeEmbedder.model_id, keeper="here")
staging = store.begin_rebuild()
Indexer(store, FakeEmbedder()).index(OTHERS, collection=staging)
Client.delete_collection = lambda self, *args, **kwargs: os._exit(9)
store.finish_rebuild(staging)
"""


@pytest.mark.integration
def test_a_rebuild_on_a_chroma_server_killed_after_its_switch_leaves_no_old_collection(
        chroma_server: ChromaServer) -> None:
    """On a server the replaced collection was left for good (only an embedded store
    dropped it at the next start): the keeper's next start drops it. Another registry's
    collection, and another base's, stay."""
    base = "crash-news"

    def open_server_store(keeper: str = "here") -> VectorStore:
        return VectorStore.open(url=chroma_server.url, base=base,
                                model_id=FakeEmbedder.model_id, keeper=keeper)

    store = open_server_store()
    try:
        Indexer(store, FakeEmbedder()).index(OTHERS)
        old, chunks = store.collection_name, store.count()
    finally:
        store.close()
    neighbour = chroma_server.client().create_collection(f"{base}-sports-1",
                                                        embedding_function=None)
    run = subprocess.run([sys.executable, "-c", SERVER_REBUILD_CHILD, chroma_server.url, base],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 9, run.stdout + run.stderr

    def ours() -> list[str]:
        return sorted(c.name for c in chroma_server.client().list_collections()
                      if c.name.startswith(f"{base}-"))

    assert old in ours()  # the crash left it (every vector of the store, on the server)
    reader = open_server_store(keeper="elsewhere")  # another data dir reading it drops nothing
    try:
        assert reader.collection_name != old and old in ours()
    finally:
        reader.close()
    store = open_server_store()
    try:
        assert store.collection_name != old and store.count() == chunks
        assert ours() == sorted([store.collection_name, neighbour.name])
        hits = store.query(FakeEmbedder().embed_query("tram fares rose"), 1)
        assert hits and "tram fares" in hits[0].text
    finally:
        store.close()
        chroma_server.client().delete_collection(neighbour.name)
