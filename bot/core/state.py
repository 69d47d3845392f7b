"""SQLite state: the articles registry (source of truth), sources, answers and feedback.

The vector store can always be rebuilt from the registry, so every article's full text lives
here. One connection is shared across threads behind a lock: the Discord side calls services
from worker threads, and SQLite serialises writers anyway.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrieval.articles import Article

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    id            TEXT PRIMARY KEY,
    ext_id        TEXT,
    source        TEXT,
    url           TEXT,
    title         TEXT NOT NULL,
    outlet        TEXT,
    author        TEXT,
    published_at  TEXT,
    text          TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    n_chunks      INTEGER NOT NULL DEFAULT 0,
    ingested_at   TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
CREATE INDEX IF NOT EXISTS articles_ext_id ON articles(ext_id);
CREATE TABLE IF NOT EXISTS sources (
    spec          TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    added_at      TEXT NOT NULL,
    last_ingest   TEXT,
    last_error    TEXT
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    message_id  INTEGER PRIMARY KEY,
    channel_id  INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    question    TEXT NOT NULL,
    answer      TEXT NOT NULL,
    sources     TEXT NOT NULL,
    abstained   INTEGER NOT NULL,
    mode        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS votes (
    message_id  INTEGER NOT NULL REFERENCES answers(message_id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL,
    value       INTEGER NOT NULL CHECK (value IN (-1, 1)),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
"""


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class State:
    """Thread-safe access to the SQLite state file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        with self._lock:
            # executescript commits on its own; every statement in it is idempotent.
            self._db.executescript(_SCHEMA)
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)",
                       (str(SCHEMA_VERSION),))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work; rolled back on any error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # -- meta ------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    # -- articles --------------------------------------------------------------------------
    def article_hashes(self, ids: Iterable[str]) -> dict[str, str]:
        """Content hashes of the given article ids that are registered."""
        ids = list(ids)
        out: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            for row in self._query(
                f"SELECT id, content_hash FROM articles WHERE id IN ({marks})", part
            ):
                out[row["id"]] = row["content_hash"]
        return out

    def upsert_articles(self, items: Iterable[tuple[Article, int]]) -> None:
        """Record articles with their chunk counts (after their chunks are in the store)."""
        now = _iso(utcnow())
        with self.transaction() as db:
            db.executemany(
                """INSERT INTO articles (id, ext_id, source, url, title, outlet, author,
                       published_at, text, content_hash, n_chunks, ingested_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET ext_id = excluded.ext_id,
                       source = excluded.source, url = excluded.url, title = excluded.title,
                       outlet = excluded.outlet, author = excluded.author,
                       published_at = excluded.published_at, text = excluded.text,
                       content_hash = excluded.content_hash, n_chunks = excluded.n_chunks,
                       updated_at = excluded.updated_at""",
                [
                    (a.id, a.ext_id, a.source, a.url, a.title, a.outlet, a.author,
                     _iso(a.published_at), a.text, a.content_hash, n, now, now)
                    for a, n in items
                ],
            )

    def set_chunk_counts(self, counts: dict[str, int]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE articles SET n_chunks = ? WHERE id = ?",
                           [(n, aid) for aid, n in counts.items()])

    def delete_articles(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        with self.transaction() as db:
            return sum(db.execute("DELETE FROM articles WHERE id = ?", (i,)).rowcount for i in ids)

    def article_ids_for_source(self, source: str) -> list[str]:
        return [r["id"] for r in self._query("SELECT id FROM articles WHERE source = ?", (source,))]

    def get_article(self, article_id: str) -> Article | None:
        rows = self._query("SELECT * FROM articles WHERE id = ?", (article_id,))
        return self._article(rows[0]) if rows else None

    def iter_articles(self, batch: int = 500) -> Iterator[Article]:
        """Every registered article, in id order, without loading them all at once."""
        last = ""
        while True:
            rows = self._query("SELECT * FROM articles WHERE id > ? ORDER BY id LIMIT ?",
                               (last, batch))
            if not rows:
                return
            for row in rows:
                yield self._article(row)
            last = rows[-1]["id"]

    def ext_ids(self) -> dict[str, str]:
        """Map article id -> the source's own id (for evaluation against dataset ids)."""
        rows = self._query("SELECT id, ext_id FROM articles WHERE ext_id IS NOT NULL")
        return {r["id"]: r["ext_id"] for r in rows}

    def counts(self) -> tuple[int, int]:
        row = self._query("SELECT COUNT(*) AS a, COALESCE(SUM(n_chunks), 0) AS c FROM articles")[0]
        return int(row["a"]), int(row["c"])

    def outlet_summary(self) -> list[sqlite3.Row]:
        return self._query(
            """SELECT COALESCE(outlet, '') AS outlet, COALESCE(source, '') AS source,
                      COUNT(*) AS articles, MAX(published_at) AS newest
               FROM articles GROUP BY outlet, source ORDER BY articles DESC"""
        )

    @staticmethod
    def _article(row: sqlite3.Row) -> Article:
        return Article(
            id=row["id"], title=row["title"], text=row["text"], url=row["url"],
            outlet=row["outlet"], author=row["author"], published_at=_dt(row["published_at"]),
            ext_id=row["ext_id"], source=row["source"],
        )

    # -- sources ---------------------------------------------------------------------------
    def record_source(self, spec: str, kind: str, *, error: str | None = None) -> None:
        now = _iso(utcnow())
        with self.transaction() as db:
            db.execute(
                """INSERT INTO sources (spec, kind, added_at, last_ingest, last_error)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT(spec) DO UPDATE SET kind = excluded.kind,
                       last_ingest = excluded.last_ingest, last_error = excluded.last_error""",
                (spec, kind, now, now, error),
            )

    def forget_source(self, spec: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM sources WHERE spec = ?", (spec,))

    def sources(self) -> list[sqlite3.Row]:
        return self._query("SELECT * FROM sources ORDER BY spec")

    # -- answers and feedback --------------------------------------------------------------
    def record_answer(self, *, message_id: int, channel_id: int, user_id: int, question: str,
                      answer: str, sources: list[dict[str, Any]], abstained: bool,
                      mode: str) -> None:
        with self.transaction() as db:
            db.execute(
                """INSERT OR REPLACE INTO answers (message_id, channel_id, user_id, question,
                       answer, sources, abstained, mode, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (message_id, channel_id, user_id, question, answer, json.dumps(sources),
                 int(abstained), mode, _iso(utcnow())),
            )

    def record_vote(self, *, message_id: int, user_id: int, value: int) -> bool:
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM answers WHERE message_id = ?",
                              (message_id,)).fetchone():
                return False
            db.execute(
                """INSERT INTO votes (message_id, user_id, value, created_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT(message_id, user_id) DO UPDATE SET value = excluded.value,
                       created_at = excluded.created_at""",
                (message_id, user_id, value, _iso(utcnow())),
            )
            return True

    def vote_totals(self) -> tuple[int, int, int]:
        row = self._query(
            """SELECT (SELECT COUNT(*) FROM answers) AS answers,
                      COALESCE(SUM(value = 1), 0) AS up, COALESCE(SUM(value = -1), 0) AS down
               FROM votes"""
        )[0]
        return int(row["up"]), int(row["down"]), int(row["answers"])

    def unanswered_questions(self, limit: int = 10) -> list[tuple[str, int]]:
        rows = self._query(
            """SELECT question, COUNT(*) AS n FROM answers WHERE abstained = 1
               GROUP BY lower(question) ORDER BY n DESC, MAX(created_at) DESC LIMIT ?""",
            (limit,),
        )
        return [(r["question"], int(r["n"])) for r in rows]

    def most_downvoted(self, limit: int = 10) -> list[tuple[str, str, int]]:
        rows = self._query(
            """SELECT a.question, a.answer, SUM(v.value = -1) AS down
               FROM answers a JOIN votes v ON v.message_id = a.message_id
               GROUP BY a.message_id HAVING down > 0 ORDER BY down DESC, a.created_at DESC
               LIMIT ?""",
            (limit,),
        )
        return [(r["question"], r["answer"], int(r["down"])) for r in rows]
