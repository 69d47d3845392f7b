"""The Chroma vector store: embedded (PersistentClient) by default, a server (HttpClient) to scale.

Collections are named ``{base}-{stamp}``. The live one is the newest whose metadata says
``complete``; a reindex fills a new collection and marks it complete only once verified, so a
crash mid-rebuild leaves the old collection serving, and the next start or rebuild clears the
debris (a collection the crash left replaced but not dropped included, on a server too).
The embedding model is recorded on the collection: opening it with another model is refused
with a message that says to reindex.

An embedded store allows one process at a time (two writers on one path lose vectors), so
opening one takes an exclusive file lock, and a second process is told who holds it.

An embedded store keeps chunk texts in a SQLite file of its own rather than as Chroma
documents: Chroma's embedded backend builds a trigram full-text index over every document,
which nothing here reads (keyword search is BM25 in :mod:`retrieval.lexical`) and which cost
a third of the store's share of an ingest. A server keeps them as documents, so every
process that shares it can read them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Container, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
from filelock import FileLock, Timeout

from retrieval.chunking import Chunk

log = logging.getLogger(__name__)

# HNSW search breadth. Chroma's default (100) returned 97.8% of the exact 50 nearest chunks
# on the Wikinews corpus, and as few as 80% for some questions; 400 returns 99.9%, for a
# fraction of a millisecond per query.
EF_SEARCH = 400


class StoreUnavailable(RuntimeError):
    """The store cannot be used as configured; the message says what to do."""


class StoreReadOnly(StoreUnavailable):
    """The store on a Chroma server is kept by another registry: this process only reads it."""


SEARCH_UNAVAILABLE = "Search is unavailable right now; please try again in a few minutes."


@contextmanager
def _answering(location: str) -> Iterator[None]:
    """A Chroma server that stops answering mid-run: one line a member can be shown (the
    details go to the log) instead of a transport error from deep inside the client."""
    try:
        yield
    except httpx.TransportError as exc:
        log.warning("the Chroma server at %s does not answer: %s", location, exc)
        raise StoreUnavailable(SEARCH_UNAVAILABLE) from exc


# Chunk ids and deleted articles the write journal holds at most (see VectorStore.changes):
# past this, an index older than the journal's first entry is built again from the store.
JOURNAL_MAX = 50_000


@dataclass(frozen=True, slots=True)
class Changes:
    """What writes to the live collection did between two of its versions."""

    written: frozenset[str]
    """Chunk ids upserted (read them again: later writes may have changed or deleted them)."""
    deleted: dict[str, int]
    """Article id -> the first chunk number deleted from it (0: all its chunks)."""


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as read back from the store."""

    id: str
    text: str
    metadata: dict[str, Any]
    distance: float = 0.0

    @property
    def article_id(self) -> str:
        return str(self.metadata["article_id"])


class StoreLock:
    """An exclusive, process-level lock on an embedded store path, naming its holder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.owner_path = self.path.with_suffix(".owner")
        self._lock = FileLock(str(self.path))

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            holder = "another process"
            try:
                info = json.loads(self.owner_path.read_text())
                holder = f"pid {info['pid']} ({info['cmd']})"
            except (OSError, ValueError, KeyError):
                pass
            raise StoreUnavailable(
                f"the store at {self.path.parent} is in use by {holder}; one process at a time "
                "may open an embedded store. Stop it, or run a Chroma server (NEWSBOT_CHROMA_URL) "
                "to share one store between processes."
            ) from None
        cmd = " ".join([Path(sys.argv[0]).name, *sys.argv[1:3]]) if sys.argv else "python"
        self.owner_path.write_text(json.dumps({"pid": os.getpid(), "cmd": cmd}))

    def release(self) -> None:
        if self._lock.is_locked:
            self.owner_path.unlink(missing_ok=True)
            self._lock.release()


class ChunkTexts:
    """Chunk texts of an embedded store, per collection, beside the Chroma files."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS chunk_text (collection TEXT NOT NULL, id TEXT NOT NULL,"
            " article_id TEXT NOT NULL, chunk INTEGER NOT NULL, text TEXT NOT NULL,"
            " PRIMARY KEY (collection, id)) WITHOUT ROWID")
        self._db.execute("CREATE INDEX IF NOT EXISTS chunk_text_article"
                         " ON chunk_text (collection, article_id, chunk)")
        self._lock = threading.Lock()  # the bot reads from worker threads

    def put(self, collection: str, chunks: Sequence[Chunk]) -> None:
        rows = [(collection, c.id, c.article_id, c.n, c.text) for c in chunks]
        with self._lock, self._db:
            # One transaction: in autocommit mode every row would be committed on its own.
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO chunk_text VALUES (?, ?, ?, ?, ?)",
                                 rows)

    def get(self, collection: str, ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        with self._lock:
            for i in range(0, len(ids), 500):  # SQLite caps bound parameters
                part = list(ids[i : i + 500])
                marks = ",".join("?" * len(part))
                out.update(self._db.execute(
                    f"SELECT id, text FROM chunk_text WHERE collection = ? AND id IN ({marks})",
                    [collection, *part]).fetchall())
        return out

    def delete_articles(self, collection: str, article_id: str, keep_below: int = 0) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM chunk_text WHERE collection = ? AND article_id = ?"
                             " AND chunk >= ?", (collection, article_id, keep_below))

    def keep_only(self, collections: Sequence[str]) -> None:
        """Drop the texts of every other collection (dropped, or left by a crash)."""
        marks = ",".join("?" * len(collections))
        with self._lock, self._db:
            self._db.execute(f"DELETE FROM chunk_text WHERE collection NOT IN ({marks})",
                             list(collections))

    def close(self) -> None:
        with self._lock:
            self._db.close()


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _remove_orphan_segments(path: Path) -> int:
    """Delete segment folders of an embedded Chroma store that no segment row names."""
    db_path = path / "chroma.sqlite3"
    if not db_path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            live = {row[0] for row in db.execute("SELECT id FROM segments")}
        finally:
            db.close()
    except sqlite3.Error:
        return 0  # a schema we do not know: leave the folders alone
    removed = 0
    for child in path.iterdir():
        if child.is_dir() and _UUID.match(child.name) and child.name not in live:
            shutil.rmtree(child, ignore_errors=True)
            removed += 1
    return removed


def _client(path: Path | None, url: str | None) -> Any:
    import chromadb  # heavy: imported only when a store is opened
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False)
    if url:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        try:
            client = chromadb.HttpClient(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or (443 if parts.scheme == "https" else 8000),
                ssl=parts.scheme == "https",
                settings=settings,
            )
            client.heartbeat()
        except Exception as exc:
            raise StoreUnavailable(f"cannot reach the Chroma server at {url}: {exc}") from exc
        return client
    assert path is not None
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=settings)


class VectorStore:
    """Chunks and their embeddings in the live Chroma collection."""

    def __init__(self, client: Any, *, base: str, model_id: str, location: str,
                 lock: StoreLock | None = None, check_model: bool = True,
                 texts: ChunkTexts | None = None, keeper: str | None = None,
                 may_claim: bool = False) -> None:
        self._client = client
        self._texts = texts
        self.path = Path(location) if lock is not None else None  # embedded store folder
        self._readers: dict[str, int] = {}
        self._readers_cv = threading.Condition()
        self.base = base
        self.model_id = model_id
        self.location = location
        self._lock = lock
        # A shared server can be written by other processes; the embedded store cannot.
        self.shared = lock is None
        # On a server, the registry (data dir) that keeps the store: the only one that
        # writes to it. Another registry lacks the keeper's articles, so its sync would
        # delete them; it reads the store as it is.
        self.keeper = keeper if self.shared else None
        self._checked = time.monotonic()
        # What each write to the live collection did, by the version it gave it, so that
        # the keyword index can follow a write without reading the whole store. Only an
        # embedded store keeps one: other processes write to a shared server unseen.
        self._journal: list[tuple[int, frozenset[str], dict[str, int]]] = []
        self._journal_size = 0
        # What writes under way (or ones that failed part way) have touched; it goes into
        # the entry of the next version, so nothing written unversioned is missed.
        self._touched: set[str] = set()
        self._cut: dict[str, int] = {}
        self._journal_lock = threading.Lock()
        self._in_flight = 0  # writes to the live collection begun and not yet ended
        self.max_batch = int(client.get_max_batch_size())
        self._collection = self._open_live(check_model)
        if not self.shared:
            self._settle(self._collection)
        else:
            self._claim(may_claim)
        self.drop_superseded()
        self._forget_dropped()

    @classmethod
    def open(cls, *, path: Path | None = None, url: str | None = None, base: str = "news",
             model_id: str, check_model: bool = True, keeper: str | None = None,
             may_claim: bool = False) -> VectorStore:
        """Open the embedded store at ``path`` (locked) or the server at ``url``. On a
        server, ``keeper`` names the registry opening it: the one that made the live
        collection (or claims one made before keepers were recorded: ``may_claim`` when its
        registry holds articles, or any registry while the collection is empty) writes to
        it, any other only reads it."""
        lock = None
        if not url:
            if path is None:
                raise ValueError("a store needs a path or a server URL")
            lock = StoreLock(Path(path).parent / f"{Path(path).name}.lock")
            lock.acquire()
        texts = None
        try:
            client = _client(path, url)
            if path is not None and not url:
                texts = ChunkTexts(Path(path) / "chunk_texts.sqlite3")
            return cls(client, base=base, model_id=model_id, location=url or str(path),
                       lock=lock, check_model=check_model, texts=texts, keeper=keeper,
                       may_claim=may_claim)
        except BaseException:
            if texts:
                texts.close()
            if lock:
                lock.release()
            raise

    def close(self) -> None:
        # Chroma keeps a client's system (its SQLite connections, segment files and worker
        # runtime) alive until the client is closed: each store opened and dropped would
        # otherwise hold its files open for the life of the process.
        with suppress(Exception):  # closing is best effort, as the process may be ending
            self._client.close()
        if self._texts:
            self._texts.close()
            self._texts = None
        if self._lock:
            self._lock.release()
            self._lock = None

    # -- collections -----------------------------------------------------------------------
    def _ours(self) -> list[Any]:
        # Exactly {base}-{stamp}: another base that starts with this one ("news-sports"
        # beside "news" on one Chroma server) is another bot's, never taken or dropped here.
        ours = re.compile(rf"{re.escape(self.base)}-\d+")
        return sorted(
            (c for c in self._client.list_collections() if ours.fullmatch(c.name)),
            key=lambda c: c.name,
        )

    def _create(self, *, complete: bool, model_id: str | None = None) -> Any:
        # Millisecond stamps sort by creation time; two rebuilds in one millisecond cannot
        # happen under the lock.
        name = f"{self.base}-{int(time.time() * 1000)}"
        meta: dict[str, Any] = {"model": model_id or self.model_id, "complete": complete,
                                "version": 0}
        if self.keeper:
            meta["keeper"] = self.keeper
        return self._client.create_collection(
            name,
            configuration={"hnsw": {"space": "cosine", "ef_search": EF_SEARCH}},
            metadata=meta,
            embedding_function=None,
        )

    def drop_superseded(self) -> int:
        """Drop the complete collections the live one replaced: a rebuild that died between
        its switch and its clean-up left them, each as big as the store; returns how many.
        On a server only the keeper drops them, and only its own (or ones made before
        keepers were recorded): a reader elsewhere moves to the live one at its next look,
        as it does after a rebuild that finished."""
        if not self.writable:
            return 0
        dropped = 0
        for c in self._ours():
            if (c.name != self._collection.name and (c.metadata or {}).get("complete")
                    and self._droppable(c)):
                log.info("dropping %s, replaced by %s before a crash", c.name,
                         self._collection.name)
                self._delete(c.name)
                dropped += 1
        return dropped

    def _delete(self, name: str) -> None:
        """Delete a collection; one already gone (another process of this keeper dropped
        it first) is no matter."""
        try:
            self._client.delete_collection(name)
        except Exception as exc:
            if name in {c.name for c in self._client.list_collections()}:
                raise
            log.debug("collection %s was already dropped: %s", name, exc)

    def _claim(self, may_claim: bool) -> None:
        """Record this registry as the keeper of a live collection that names none (made
        before keepers were recorded), if it may: see :meth:`open`."""
        meta = dict(self._collection.metadata or {})
        if not self.keeper or meta.get("keeper"):
            return
        if may_claim or not self._collection.count():
            meta["keeper"] = self.keeper
            self._collection.modify(metadata=meta)

    def _kept_here(self, collection: Any) -> bool:
        keeper = (collection.metadata or {}).get("keeper")
        return self.keeper is None or keeper == self.keeper

    def _droppable(self, collection: Any) -> bool:
        """This keeper's, or one made before keepers were recorded: never another's."""
        return self._kept_here(collection) or not (collection.metadata or {}).get("keeper")

    @property
    def writable(self) -> bool:
        """Whether this process may write to the store (see :meth:`open`)."""
        return self._kept_here(self._collection)

    def check_writable(self) -> None:
        if not self.writable:
            raise StoreReadOnly(
                f"the store on the Chroma server at {self.location} ({self.collection_name}) "
                "is kept by another newsbot data dir, whose registry holds its articles: "
                "this one only reads it. Run the command with that NEWSBOT_DATA_DIR, or give "
                "this one a store of its own with NEWSBOT_COLLECTION")

    def _open_live(self, check_model: bool) -> Any:
        complete = [c for c in self._ours() if (c.metadata or {}).get("complete")]
        if not complete:
            return self._create(complete=True)
        live = self._client.get_collection(complete[-1].name, embedding_function=None)
        if (live.configuration_json.get("hnsw") or {}).get("ef_search") != EF_SEARCH:
            live.modify(configuration={"hnsw": {"ef_search": EF_SEARCH}})  # an older store
        built_with = (live.metadata or {}).get("model")
        if check_model and built_with != self.model_id:
            raise StoreUnavailable(
                f"the store was built with the embedding model {built_with!r} but this "
                f"configuration uses {self.model_id!r}; run `newsbot reindex` to rebuild it."
            )
        return live

    @property
    def collection_name(self) -> str:
        return str(self._collection.name)

    @property
    def built_with(self) -> str:
        return str((self._collection.metadata or {}).get("model"))

    def version(self, *, max_age_s: float = 30.0) -> int:
        """Write counter of the live collection (changes whenever its contents change).

        On a shared server, another process may have written or switched the live
        collection: it is looked up again when the last look is older than ``max_age_s``.
        """
        if self.shared and time.monotonic() - self._checked > max_age_s:
            self._checked = time.monotonic()
            with _answering(self.location):
                self._collection = self._open_live(check_model=False)
        return int((self._collection.metadata or {}).get("version", 0))

    def retag(self, model_id: str) -> None:
        """Record another embedding model on the live collection; only while it is empty."""
        if self.count():
            raise ValueError("a collection holding vectors cannot change its model")
        self.check_writable()
        meta = dict(self._collection.metadata or {})
        meta["model"] = model_id
        self._collection.modify(metadata=meta)

    def _settle(self, collection: Any) -> None:
        """After a crash mid-write, give the live collection a version no index was made of.

        A write marks the collection ``writing`` before it changes anything and clears the
        mark with its version bump; the journal of what writes did lives only in memory. A
        mark found on opening means a process died in between: the collection may differ
        from what its version says, so a keyword index saved for that version (or updated
        from it) could hold chunks the store no longer holds, or miss some it does. A new
        version makes the next index a build from the store.
        """
        meta = dict(collection.metadata or {})
        if not meta.get("writing"):
            return
        log.warning("the store %s was left mid-write by a process that stopped; its keyword "
                    "index is built again from the store", collection.name)
        meta.update(version=int(meta.get("version", 0)) + 1, writing=False)
        collection.modify(metadata=meta)

    @contextmanager
    def _write(self, collection: Any) -> Iterator[None]:
        """One write to the live collection: marked unfinished before it changes anything
        (see :meth:`_settle`), its version bumped (and the mark cleared) once it is done.
        A write that fails leaves the mark, and its changes for the next version's entry."""
        self.check_writable()
        with self._journal_lock:
            self._in_flight += 1
            meta = dict(collection.metadata or {})
            if not self.shared and not meta.get("writing"):
                meta["writing"] = True
                try:
                    collection.modify(metadata=meta)
                except BaseException:
                    self._in_flight -= 1
                    raise
        try:
            yield
            self._bump(collection)
        finally:
            with self._journal_lock:
                self._in_flight -= 1

    def _bump(self, collection: Any) -> None:
        meta = dict(collection.metadata or {})
        meta["version"] = int(meta.get("version", 0)) + 1
        if self._in_flight <= 1:  # another write under way keeps the collection marked
            meta["writing"] = False
        # Under the lock: whoever sees the new version and asks what changed waits for it.
        with self._journal_lock:
            collection.modify(metadata=meta)
            if collection.name != self._collection.name:
                return
            entry = (meta["version"], frozenset(self._touched), self._cut)
            self._touched, self._cut = set(), {}
            self._journal.append(entry)
            self._journal_size += len(entry[1]) + len(entry[2])
            while self._journal_size > JOURNAL_MAX and self._journal:
                _, written, deleted = self._journal.pop(0)
                self._journal_size -= len(written) + len(deleted)

    def _touch(self, ids: Sequence[str] = (), deleted: dict[str, int] | None = None) -> None:
        """Note what a write to the live collection is about to change (see :meth:`changes`)."""
        with self._journal_lock:
            self._touched.update(ids)
            for aid, first in (deleted or {}).items():
                self._cut[aid] = min(first, self._cut.get(aid, first))

    def changes(self, collection: str, since: int, until: int) -> Changes | None:
        """What the writes to ``collection`` from version ``since`` (excluded) to ``until``
        (included) did; None when this store cannot tell (a shared server, another
        collection since, or writes older than the journal keeps)."""
        with self._journal_lock:
            if self.shared or collection != self._collection.name:
                return None
            entries = [e for e in self._journal if since < e[0] <= until]
            if [e[0] for e in entries] != list(range(since + 1, until + 1)):
                return None
            written: set[str] = set()
            deleted: dict[str, int] = {}
            for _, ids, cut in entries:
                written |= ids
                for aid, first in cut.items():
                    deleted[aid] = min(first, deleted.get(aid, first))
            return Changes(frozenset(written), deleted)

    # -- writing ---------------------------------------------------------------------------
    def upsert(self, chunks: Sequence[Chunk], embeddings: np.ndarray, *,
               collection: Any = None) -> None:
        """Insert or replace chunks (ids are deterministic, so this is idempotent)."""
        if collection is not None:  # a rebuild's collection: not live, no version to keep
            self._upsert(collection, chunks, embeddings)
            return
        col = self._collection
        with self._write(col):
            self._touch([c.id for c in chunks])
            self._upsert(col, chunks, embeddings)

    def _upsert(self, col: Any, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        if self._texts:
            # Texts first: a crash before the vectors leaves only rows the retry rewrites.
            self._texts.put(col.name, chunks)
        for i in range(0, len(chunks), self.max_batch):
            part = chunks[i : i + self.max_batch]
            col.upsert(
                ids=[c.id for c in part],
                embeddings=np.asarray(embeddings[i : i + len(part)], dtype=np.float32),
                documents=None if self._texts else [c.text for c in part],
                metadatas=[c.metadata for c in part],
            )

    def delete_articles(self, article_ids: Sequence[str], *, keep_below: dict[str, int] | None
                        = None) -> None:
        """Remove every chunk of these articles (or those numbered >= keep_below[id])."""
        if not article_ids:
            return
        col = self._collection
        with self._write(col):
            self._touch(deleted={aid: (keep_below or {}).get(aid, 0) for aid in article_ids})
            for i in range(0, len(article_ids), 100):
                part = list(article_ids[i : i + 100])
                if keep_below is None:
                    col.delete(where={"article_id": {"$in": part}})
                else:
                    for aid in part:
                        col.delete(where={"$and": [{"article_id": aid},
                                                   {"chunk": {"$gte": keep_below.get(aid, 0)}}]})
                if self._texts:
                    for aid in part:
                        self._texts.delete_articles(col.name, aid,
                                                    (keep_below or {}).get(aid, 0))

    # -- reading ---------------------------------------------------------------------------
    def count(self) -> int:
        with _answering(self.location):
            return int(self._collection.count())

    @contextmanager
    def _reading(self, collection: Any = None) -> Iterator[Any]:
        """The collection to read, kept from being dropped until the read is done: a
        reindex switching collections waits for reads of the old one (texts included)."""
        with self._readers_cv:
            col = collection or self._collection
            self._readers[col.name] = self._readers.get(col.name, 0) + 1
        try:
            yield col
        finally:
            with self._readers_cv:
                self._readers[col.name] -= 1
                self._readers_cv.notify_all()

    def query(self, embedding: np.ndarray, n: int, where: dict[str, Any] | None = None,
              *, collection: Any = None) -> list[StoredChunk]:
        with self._reading(collection) as col, _answering(self.location):
            return self._query(col, embedding, n, where)

    def _query(self, col: Any, embedding: np.ndarray, n: int,
               where: dict[str, Any] | None) -> list[StoredChunk]:
        res = col.query(
            query_embeddings=[np.asarray(embedding, dtype=np.float32)],
            n_results=n,
            where=where or None,
            include=["documents", "metadatas", "distances"],
        )
        ids = res["ids"][0]
        docs = self._documents(col, ids, res["documents"][0])
        return [
            StoredChunk(id=i, text=d, metadata=dict(m or {}), distance=float(dist))
            for i, d, m, dist in zip(ids, docs, res["metadatas"][0], res["distances"][0],
                                     strict=True)
        ]

    def first_chunks(self, where: dict[str, Any] | None, *,
                     skip: Container[str] = ()) -> list[StoredChunk]:
        """The first chunk of every article whose chunks match ``where`` (a metadata
        filter), except the ids in ``skip``; texts are read for the rest only."""
        first: dict[str, Any] = {"chunk": 0}
        with self._reading() as col, _answering(self.location):
            res = col.get(where={"$and": [first, where]} if where else first,
                          include=["metadatas"])
            keep = [(i, m) for i, m in zip(res["ids"], res["metadatas"], strict=True)
                    if i not in skip]
            if not keep:
                return []
            got = col.get(ids=[i for i, _ in keep], include=["documents"])
            texts = dict(zip(got["ids"], self._documents(col, got["ids"], got["documents"]),
                             strict=True))
        return [StoredChunk(id=i, text=texts.get(i, ""), metadata=dict(m or {}))
                for i, m in keep]

    def _documents(self, col: Any, ids: Sequence[str], docs: Sequence[str | None]) -> list[str]:
        """Chunk texts of ``ids``: this store's own text file, else Chroma's documents."""
        own = self._texts.get(col.name, ids) if self._texts and ids else {}
        return [own.get(i) or d or "" for i, d in zip(ids, docs, strict=True)]

    def embeddings(self, ids: Sequence[str], *, collection: Any = None) -> dict[str, np.ndarray]:
        """Stored vectors of these chunk ids (those that exist)."""
        if not ids:
            return {}
        with self._reading(collection) as col, _answering(self.location):
            res = col.get(ids=list(ids), include=["embeddings"])
        return {i: np.asarray(e, dtype=np.float32)
                for i, e in zip(res["ids"], res["embeddings"], strict=True)}

    def chunks(self, ids: Sequence[str], page: int = 2000
               ) -> tuple[list[StoredChunk], np.ndarray | None]:
        """The live collection's chunks of ``ids`` that exist, and their vectors in the same
        order (None when there are none)."""
        found: list[StoredChunk] = []
        vectors: list[np.ndarray] = []
        ids = list(ids)
        for start in range(0, len(ids), page):
            with self._reading() as col, _answering(self.location):
                res = col.get(ids=ids[start:start + page],
                              include=["documents", "metadatas", "embeddings"])
                docs = self._documents(col, res["ids"], res["documents"])
            for i, d, m, e in zip(res["ids"], docs, res["metadatas"], res["embeddings"],
                                  strict=True):
                found.append(StoredChunk(id=i, text=d, metadata=dict(m or {})))
                vectors.append(np.asarray(e, dtype=np.float32))
        return found, np.stack(vectors) if vectors else None

    def chunk_numbers(self, page: int = 5000) -> dict[str, set[int]]:
        """Article id -> the chunk numbers the live collection holds (metadata only)."""
        out: dict[str, set[int]] = {}
        offset = 0
        while True:
            res = self._collection.get(limit=page, offset=offset, include=["metadatas"])
            if not res["ids"]:
                return out
            for m in res["metadatas"]:
                out.setdefault(str(m["article_id"]), set()).add(int(m["chunk"]))
            offset += len(res["ids"])

    def iter_chunks(self, page: int = 2000, *, collection: Any = None) -> Iterator[StoredChunk]:
        """Every chunk of the live collection, or of ``collection`` (for a lexical index)."""
        offset = 0
        while True:
            with self._reading(collection) as col:
                res = col.get(limit=page, offset=offset, include=["documents", "metadatas"])
                if not res["ids"]:
                    return
                docs = self._documents(col, res["ids"], res["documents"])
            for i, d, m in zip(res["ids"], docs, res["metadatas"], strict=True):
                yield StoredChunk(id=i, text=d, metadata=dict(m or {}))
            offset += len(res["ids"])

    # -- rebuilding ------------------------------------------------------------------------
    def begin_rebuild(self, model_id: str | None = None) -> Any:
        """A fresh, not yet live collection for a reindex (earlier unfinished ones dropped),
        for vectors of ``model_id`` (default: the configured model)."""
        self.check_writable()
        self.drop_unfinished()
        staging = self._create(complete=False, model_id=model_id)
        return staging

    def drop_unfinished(self) -> int:
        """Drop collections a crashed rebuild left behind; returns how many."""
        dropped = 0
        if not self.writable:
            return 0  # the keeper's rebuild may be under way
        for c in self._ours():
            if not (c.metadata or {}).get("complete") and self._droppable(c):
                self._delete(c.name)
                dropped += 1
        dropped += self.drop_superseded()
        self._forget_dropped()
        return dropped

    def version_after_switch(self, staging: Any) -> int:
        """The write counter ``staging`` will have once :meth:`finish_rebuild` makes it live."""
        return int((staging.metadata or {}).get("version", 0)) + 1

    def finish_rebuild(self, staging: Any) -> None:
        """Make ``staging`` live, then drop the collections it replaces."""
        meta = dict(staging.metadata or {})
        meta.update(complete=True, version=self.version_after_switch(staging))
        staging.modify(metadata=meta)  # the switch: one metadata write
        old = [c.name for c in self._ours() if c.name != staging.name and self._droppable(c)]
        with self._readers_cv:
            with self._journal_lock:  # the journal tells of the collection it replaces
                self._collection = self._client.get_collection(staging.name,
                                                               embedding_function=None)
                self._journal, self._journal_size = [], 0
                self._touched, self._cut = set(), {}
            # Reads that began on the old collection finish on it (bounded: a stuck reader
            # only delays the clean-up, which the next start repeats).
            self._readers_cv.wait_for(lambda: not any(self._readers.get(n) for n in old),
                                      timeout=30)
        for name in old:
            self._delete(name)
        self._forget_dropped()

    def abort_rebuild(self, staging: Any) -> None:
        self._client.delete_collection(staging.name)
        self._forget_dropped()

    def _forget_dropped(self) -> None:
        """Drop what deleted collections leave behind: their chunk texts, and on disk the
        vector segment folders Chroma's embedded backend does not remove itself (chroma-core
        issues 5259 and 5520: deletion is left to a garbage collector it does not run)."""
        if self._texts:
            # Every collection's, this base's or another's (NEWSBOT_COLLECTION changed back).
            self._texts.keep_only([c.name for c in self._client.list_collections()])
        if self.path is not None:
            _remove_orphan_segments(self.path)
