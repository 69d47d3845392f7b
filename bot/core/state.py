"""SQLite state: the articles registry (source of truth), sources, answers and feedback.

The vector store can always be rebuilt from the registry, so every article's full text lives
here. One connection is shared across threads behind a lock: the Discord side calls services
from worker threads, and SQLite serialises writers anyway.

An article belongs to every source that delivered it (``article_sources``); it leaves the
registry, and the store, only when its last source is removed. Feed items are remembered by
their GUID per source, so a later poll knows an item it has seen even when its link changed,
and by the link they were listed under, when their article has the address that link
redirects to.
"""

from __future__ import annotations

import json
import posixpath
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bot.core.models import source_label
from retrieval.articles import Article, canonical_url

SCHEMA_VERSION = 2

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
    id             INTEGER PRIMARY KEY,
    spec           TEXT NOT NULL UNIQUE,   -- URL, or an absolute path
    kind           TEXT NOT NULL,          -- feed | page | file
    name           TEXT,
    watch          INTEGER NOT NULL DEFAULT 0,  -- polled by the feed watcher
    every_min      INTEGER,                -- NULL: NEWSBOT_POLL_MINUTES
    backfill       INTEGER NOT NULL DEFAULT 0,
    added_at       TEXT NOT NULL,
    last_fetch     TEXT,
    last_ok        TEXT,
    next_poll      TEXT,
    polls          INTEGER NOT NULL DEFAULT 0,  -- successful fetches; 0: the first is to come
    failures       INTEGER NOT NULL DEFAULT 0,  -- in a row
    status         TEXT NOT NULL DEFAULT 'ok',  -- ok | failing | disabled
    last_error     TEXT,
    etag           TEXT,
    last_modified  TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS sources_name ON sources(name) WHERE name IS NOT NULL;
CREATE TABLE IF NOT EXISTS article_sources (
    article_id  TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    source_id   INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    guid        TEXT,
    item_hash   TEXT,            -- the feed's hash of the item's own text, to spot edits
    link        TEXT,            -- the item's link as the feed lists it (the article's URL
                                 -- may be the page it redirects to)
    first_seen  TEXT NOT NULL,
    PRIMARY KEY (article_id, source_id)
);
CREATE INDEX IF NOT EXISTS article_sources_source ON article_sources(source_id, guid);
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
    created_at  TEXT NOT NULL,
    guild_id    INTEGER          -- the server asked in; NULL for answers kept before it was
);
-- Answers a model is writing, shown as they are written ("Writing…"): noted before their
-- first words are sent, given their message once Discord returns it, removed once the
-- finished answer (or a line saying why there is none) replaced them. A row found at a start
-- is an answer the process died writing: the bot says so in its message.
CREATE TABLE IF NOT EXISTS answers_writing (
    id          INTEGER PRIMARY KEY,
    channel_id  INTEGER NOT NULL,   -- the channel or thread it is shown in
    message_id  INTEGER,            -- NULL until Discord returned the message
    question    TEXT NOT NULL,
    started_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS votes (
    message_id  INTEGER NOT NULL REFERENCES answers(message_id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL,
    value       INTEGER NOT NULL CHECK (value IN (-1, 1)),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
"""


# Briefs: subscriptions, the stories articles belong to, and the posted log. The posted log is
# also the outbox: a row is written (pending) before its message is sent and confirmed with
# the message id after, so a crash in between is found and reconciled on the next start.
_BRIEFS_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id        INTEGER,
    channel_id      INTEGER NOT NULL,
    source_id       INTEGER,
    topic           TEXT,
    keywords        TEXT NOT NULL DEFAULT '[]',
    daily_cap       INTEGER CHECK (daily_cap IS NULL OR daily_cap > 0),
    mode            TEXT NOT NULL DEFAULT 'immediate' CHECK (mode IN ('immediate', 'digest')),
    digest_hour     INTEGER NOT NULL DEFAULT 8 CHECK (digest_hour BETWEEN 0 AND 23),
    tz              TEXT NOT NULL DEFAULT 'UTC',
    created_by      TEXT,
    created_at      TEXT NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    last_digest     TEXT,
    CHECK ((source_id IS NULL) <> (topic IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS subscriptions_target
    ON subscriptions(channel_id, COALESCE(source_id, -1), COALESCE(topic, ''));
CREATE TABLE IF NOT EXISTS stories (
    article_id    TEXT PRIMARY KEY,
    story_id      TEXT NOT NULL,
    vector        BLOB NOT NULL,
    published_at  TEXT,
    title         TEXT NOT NULL,
    assigned_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stories_story ON stories(story_id);
CREATE INDEX IF NOT EXISTS stories_published ON stories(published_at);
CREATE TABLE IF NOT EXISTS posts (
    channel_id      INTEGER NOT NULL,
    item_key        TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('brief', 'update', 'digest', 'notice')),
    story_id        TEXT,
    article_id      TEXT,
    subscription_id INTEGER,
    nonce           TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent',
                                                                      'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    message_id      INTEGER,
    payload         TEXT NOT NULL,
    error           TEXT,
    retry_at        TEXT,            -- after a failed attempt: not tried again before this
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    PRIMARY KEY (channel_id, item_key)
);
CREATE INDEX IF NOT EXISTS posts_status ON posts(status, created_at);
CREATE TABLE IF NOT EXISTS guild_settings (
    guild_id    INTEGER PRIMARY KEY,
    tz          TEXT NOT NULL DEFAULT 'UTC',
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS posts_story ON posts(channel_id, story_id);
-- Threads opened to ask about one story of a list (a brief posted alone has its own, on its
-- message, sharing its id): the article their questions are answered from first.
CREATE TABLE IF NOT EXISTS story_threads (
    thread_id   INTEGER PRIMARY KEY,
    channel_id  INTEGER NOT NULL,
    article_id  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS story_threads_story ON story_threads(channel_id, article_id);
-- New and changed articles of a poll, waiting for the brief desk to plan them. Written in the
-- transaction that records the articles, removed once planned: a crash in between leaves
-- them here for the next start (or poll) to plan, never lost.
CREATE TABLE IF NOT EXISTS brief_queue (
    article_id   TEXT PRIMARY KEY,
    source_id    INTEGER NOT NULL,
    changed      INTEGER NOT NULL DEFAULT 0,
    first_fetch  INTEGER NOT NULL DEFAULT 0,
    backfill     INTEGER NOT NULL DEFAULT 0,
    version      INTEGER NOT NULL DEFAULT 0,  -- bumped when queued again before planned
    queued_at    TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class AnswerScope:
    """One server's answers: its id, and its channels and threads (for answers kept before
    answers named their server)."""

    guild_id: int
    channel_ids: frozenset[int] = frozenset()


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class BriefIntake:
    """A poll's articles to be planned as briefs: which source, whether this is its first
    fetch (and its backfill), and which of the articles changed rather than arrived."""

    source_id: int
    first_fetch: bool = False
    backfill: int = 0
    changed: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A source the bot has loaded or follows."""

    id: int
    spec: str  # URL or absolute path
    kind: str  # feed | page | file
    name: str | None
    watch: bool  # polled by the feed watcher
    every_min: int | None  # None: the default interval
    backfill: int
    added_at: datetime
    last_fetch: datetime | None
    last_ok: datetime | None
    next_poll: datetime | None
    polls: int
    failures: int
    status: str  # ok | failing | disabled
    last_error: str | None
    etag: str | None
    last_modified: str | None

    @property
    def label(self) -> str:
        """Its name, else its address with any key or password in it hidden."""
        return source_label(self.name, self.spec)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SourceRecord:
        return cls(
            id=int(row["id"]), spec=row["spec"], kind=row["kind"], name=row["name"],
            watch=bool(row["watch"]), every_min=row["every_min"], backfill=int(row["backfill"]),
            added_at=_dt(row["added_at"]) or utcnow(), last_fetch=_dt(row["last_fetch"]),
            last_ok=_dt(row["last_ok"]), next_poll=_dt(row["next_poll"]),
            polls=int(row["polls"]), failures=int(row["failures"]), status=row["status"],
            last_error=row["last_error"], etag=row["etag"], last_modified=row["last_modified"],
        )


def _migrate_sources_v1(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2: sources get ids; each article belongs to the source that loaded it."""
    db.execute(
        """INSERT OR IGNORE INTO sources (spec, kind, added_at, last_fetch, last_ok, polls,
               last_error)
           SELECT spec, CASE kind WHEN 'url' THEN 'page' WHEN 'feed' THEN
                      CASE WHEN spec LIKE 'http%' THEN 'feed' ELSE 'file' END
                  ELSE 'file' END,
                  added_at, last_ingest, last_ingest, 1, last_error FROM sources_v1""")
    db.execute(
        """INSERT OR IGNORE INTO article_sources (article_id, source_id, guid, first_seen)
           SELECT a.id, s.id, a.ext_id, a.ingested_at FROM articles a
           JOIN sources s ON s.spec = a.source""")
    db.execute("DROP TABLE sources_v1")


def source_url(spec: str) -> str | None:
    """The form a source's URL is recorded in: canonical (scheme and host in lower case, no
    fragment, default port, trailing slash or tracking parameters), no ``..`` in its path,
    its query's order kept (the server may need it); None when ``spec`` is no usable http(s)
    URL."""
    try:
        parts = urlsplit(spec.strip())
        parts.port  # noqa: B018  (raises on a port out of range)
    except ValueError:
        return None
    path = posixpath.normpath(parts.path) if parts.path not in ("", "/") else parts.path
    return canonical_url(urlunsplit(parts._replace(path=path)), sort_query=False)


def _canonical_source_urls(db: sqlite3.Connection) -> None:
    """Sources recorded before their URLs were kept in canonical form get that form, so
    adding the feed again finds them. One whose canonical form another source has already
    (added since) is merged into the older of the two. Idempotent: canonical specs are left
    as they are."""
    rows = db.execute("SELECT id, spec FROM sources WHERE spec LIKE 'http%' ORDER BY id")
    for row in rows.fetchall():
        url = source_url(row["spec"])
        if url is None or url == row["spec"]:
            continue
        db.execute("UPDATE articles SET source = ? WHERE source = ?", (url, row["spec"]))
        twin = db.execute("SELECT id FROM sources WHERE spec = ?", (url,)).fetchone()
        if twin is None:
            db.execute("UPDATE sources SET spec = ? WHERE id = ?", (url, row["id"]))
        else:
            keep, gone = sorted((int(row["id"]), int(twin["id"])))
            _merge_source(db, keep, gone, url)


def _merge_source(db: sqlite3.Connection, keep: int, gone: int, spec: str) -> None:
    """Source ``gone`` is the same as ``keep``: its articles (with the items it has seen),
    subscriptions and queued briefs go to ``keep``, which takes ``spec``."""
    db.execute(
        """INSERT OR IGNORE INTO article_sources (article_id, source_id, guid, item_hash, link,
               first_seen)
           SELECT article_id, ?, guid, item_hash, link, first_seen FROM article_sources
           WHERE source_id = ?""", (keep, gone))
    for sub in db.execute("SELECT id, channel_id, topic FROM subscriptions WHERE source_id = ?",
                          (gone,)).fetchall():
        same = db.execute("SELECT id FROM subscriptions WHERE source_id = ? AND channel_id = ?",
                          (keep, sub["channel_id"])).fetchone()
        if same is None:
            db.execute("UPDATE subscriptions SET source_id = ? WHERE id = ?", (keep, sub["id"]))
        else:  # the channel follows it twice: one subscription, with both's posts
            db.execute("UPDATE posts SET subscription_id = ? WHERE subscription_id = ?",
                       (same["id"], sub["id"]))
            db.execute("DELETE FROM subscriptions WHERE id = ?", (sub["id"],))
    db.execute("UPDATE brief_queue SET source_id = ? WHERE source_id = ?", (keep, gone))
    other = db.execute("SELECT * FROM sources WHERE id = ?", (gone,)).fetchone()
    db.execute("DELETE FROM sources WHERE id = ?", (gone,))
    db.execute(
        """UPDATE sources SET spec = ?, name = COALESCE(name, ?), watch = MAX(watch, ?),
               every_min = COALESCE(every_min, ?), backfill = MAX(backfill, ?),
               polls = MAX(polls, ?), next_poll = COALESCE(next_poll, ?)
           WHERE id = ?""",
        (spec, other["name"], other["watch"], other["every_min"], other["backfill"],
         other["polls"], other["next_poll"], keep))


def _add_source(db: sqlite3.Connection, spec: str, kind: str, *, name: str | None,
                watch: bool, every_min: int | None, backfill: int) -> SourceRecord:
    now = _iso(utcnow())
    row = db.execute("SELECT id FROM sources WHERE spec = ?", (spec,)).fetchone()
    if row is None:
        # Ids are never reused: a subscription or a log line naming a removed source must
        # not come to mean the next one added.
        seq = db.execute("SELECT value FROM meta WHERE key = 'source_seq'").fetchone()
        top = db.execute("SELECT COALESCE(MAX(id), 0) FROM sources").fetchone()[0]
        new_id = max(int(seq[0]) if seq else 0, int(top)) + 1
        db.execute(
            """INSERT INTO sources (id, spec, kind, name, watch, every_min, backfill,
                   added_at, next_poll) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (new_id, spec, kind, name, int(watch), every_min, backfill, now,
             now if watch else None))
        db.execute("INSERT INTO meta(key, value) VALUES ('source_seq', ?) "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(new_id),))
    else:
        db.execute(
            """UPDATE sources SET kind = ?, name = COALESCE(?, name),
                   watch = MAX(watch, ?), every_min = COALESCE(?, every_min)
               WHERE spec = ?""", (kind, name, int(watch), every_min, spec))
    return SourceRecord.from_row(
        db.execute("SELECT * FROM sources WHERE spec = ?", (spec,)).fetchone())


def _upsert_articles(db: sqlite3.Connection, items: Iterable[tuple[Article, int]]) -> None:
    now = _iso(utcnow())
    db.executemany(
        """INSERT INTO articles (id, ext_id, source, url, title, outlet, author,
               published_at, text, content_hash, n_chunks, ingested_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET ext_id = excluded.ext_id,
               source = COALESCE(articles.source, excluded.source),
               url = excluded.url, title = excluded.title,
               outlet = excluded.outlet, author = excluded.author,
               published_at = excluded.published_at, text = excluded.text,
               content_hash = excluded.content_hash, n_chunks = excluded.n_chunks,
               updated_at = excluded.updated_at""",
        [(a.id, a.ext_id, a.source, a.url, a.title, a.outlet, a.author,
          _iso(a.published_at), a.text, a.content_hash, n, now, now) for a, n in items],
    )


def _link_articles(db: sqlite3.Connection, source_id: int,
                   items: Iterable[tuple[str, str | None]]) -> None:
    now = _iso(utcnow())
    db.executemany(
        """INSERT INTO article_sources (article_id, source_id, guid, first_seen)
           VALUES (?, ?, ?, ?)
           ON CONFLICT(article_id, source_id) DO UPDATE
           SET guid = COALESCE(excluded.guid, article_sources.guid)""",
        [(aid, source_id, guid, now) for aid, guid in items],
    )


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class State:
    """Thread-safe access to the SQLite state file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # see services
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        with self._lock:
            old_sources = self._columns("sources")
            if old_sources and "id" not in old_sources:
                # Schema 1 keyed sources by spec; its rows are carried over below.
                self._db.execute("ALTER TABLE sources RENAME TO sources_v1")
            # executescript commits on its own; every statement in it is idempotent.
            self._db.executescript(_SCHEMA)
            self._db.executescript(_BRIEFS_SCHEMA)
            if "item_hash" not in self._columns("article_sources"):
                self._db.execute("ALTER TABLE article_sources ADD COLUMN item_hash TEXT")
            if "link" not in self._columns("article_sources"):
                self._db.execute("ALTER TABLE article_sources ADD COLUMN link TEXT")
            if "retry_at" not in self._columns("posts"):
                self._db.execute("ALTER TABLE posts ADD COLUMN retry_at TEXT")
            if "guild_id" not in self._columns("answers"):
                self._db.execute("ALTER TABLE answers ADD COLUMN guild_id INTEGER")
        with self.transaction() as db:
            if self._columns("sources_v1"):
                _migrate_sources_v1(db)
            _canonical_source_urls(db)
            db.execute("INSERT INTO meta(key, value) VALUES ('schema', ?) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       (str(SCHEMA_VERSION),))

    def _columns(self, table: str) -> set[str]:
        return {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}

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

    def registry_id(self) -> str:
        """This registry's own id, made once: it names the data dir that keeps a store
        shared on a Chroma server (see VectorStore's ``keeper``)."""
        with self.transaction() as db:
            db.execute("INSERT INTO meta(key, value) VALUES ('registry_id', ?) "
                       "ON CONFLICT(key) DO NOTHING", (uuid.uuid4().hex,))
        value = self.get_meta("registry_id")
        assert value is not None
        return value

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
        with self.transaction() as db:
            _upsert_articles(db, items)

    def record_articles(self, items: Iterable[tuple[Article, int]], source_id: int,
                        links: Iterable[tuple[str, str | None]], *,
                        briefs: BriefIntake | None = None) -> None:
        """Articles (after their chunks are in the store) and the (article id, GUID) pairs a
        source delivered, in one transaction: an article never lands without its source.
        With ``briefs``, the articles are queued for planning in that transaction too."""
        items, links = list(items), list(links)
        with self.transaction() as db:
            queued = [(a.id, int(a.id in briefs.changed)) for a, _ in items] if briefs else []
            if briefs is not None:
                # An article another source delivered first is new to this source's
                # channels: queued too, as new (their channels have not had it; one that
                # has is not posted it twice, every post being keyed by channel and story).
                seen = {aid for aid, _ in queued}
                for aid in dict.fromkeys(aid for aid, _ in links):
                    if aid not in seen and db.execute(
                            "SELECT 1 FROM article_sources WHERE article_id = ? AND "
                            "source_id = ?", (aid, source_id)).fetchone() is None:
                        queued.append((aid, 0))
            _upsert_articles(db, items)
            _link_articles(db, source_id, links)
            if briefs is not None:
                # An article still queued keeps how it came (it is new until planned); the
                # version tells a planning pass under way that it changed meanwhile.
                db.executemany(
                    """INSERT INTO brief_queue (article_id, source_id, changed, first_fetch,
                           backfill, queued_at) VALUES (?, ?, ?, ?, ?, ?)
                       ON CONFLICT(article_id) DO UPDATE SET version = version + 1""",
                    [(aid, briefs.source_id, changed, int(briefs.first_fetch),
                      briefs.backfill, _iso(utcnow())) for aid, changed in queued])

    def set_chunk_counts(self, counts: dict[str, int]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE articles SET n_chunks = ? WHERE id = ?",
                           [(n, aid) for aid, n in counts.items()])

    def delete_articles(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        with self.transaction() as db:
            return sum(db.execute("DELETE FROM articles WHERE id = ?", (i,)).rowcount for i in ids)

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

    def set_item_hashes(self, source_id: int, hashes: dict[str, str | None],
                        links: dict[str, str | None] | None = None) -> None:
        """Record the feed's hash of each delivered item, to tell an edit from a repeat, and
        the link it listed (when given), to know the item again at that link."""
        links = links or {}
        with self.transaction() as db:
            db.executemany("UPDATE article_sources SET item_hash = ?, link = COALESCE(?, link) "
                           "WHERE article_id = ? AND source_id = ?",
                           [(h, links.get(aid), aid, source_id) for aid, h in hashes.items()])

    def source_items(self, source_id: int,
                     ) -> dict[str, tuple[str | None, str | None, str | None]]:
        """Article id -> (GUID, item hash, link) of everything this source delivered."""
        rows = self._query("SELECT article_id, guid, item_hash, link FROM article_sources "
                           "WHERE source_id = ?", (source_id,))
        return {r["article_id"]: (r["guid"], r["item_hash"], r["link"]) for r in rows}

    def item_links(self, article_id: str) -> dict[int, str | None]:
        """Source id -> the link each feed listed this article under (None for a page, a
        file, or an item recorded before links were kept)."""
        rows = self._query("SELECT source_id, link FROM article_sources WHERE article_id = ?",
                           (article_id,))
        return {int(r["source_id"]): r["link"] for r in rows}

    def chunk_counts(self) -> dict[str, int]:
        """Article id -> how many chunks the store should hold for it."""
        return {r["id"]: int(r["n_chunks"])
                for r in self._query("SELECT id, n_chunks FROM articles")}

    def memberships(self) -> dict[str, list[dict[str, str | None]]]:
        """Article id -> the sources (spec, GUID) that delivered it, for an export."""
        out: dict[str, list[dict[str, str | None]]] = {}
        for r in self._query("SELECT m.article_id, s.spec, m.guid FROM article_sources m "
                             "JOIN sources s ON s.id = m.source_id ORDER BY s.id"):
            out.setdefault(r["article_id"], []).append({"spec": r["spec"], "guid": r["guid"]})
        return out

    def counts(self) -> tuple[int, int]:
        row = self._query("SELECT COUNT(*) AS a, COALESCE(SUM(n_chunks), 0) AS c FROM articles")[0]
        return int(row["a"]), int(row["c"])

    def outlet_summary(self) -> list[sqlite3.Row]:
        return self._query(
            """SELECT COALESCE(outlet, '') AS outlet, COUNT(*) AS articles,
                      MAX(published_at) AS newest
               FROM articles GROUP BY outlet ORDER BY articles DESC, outlet"""
        )

    @staticmethod
    def _article(row: sqlite3.Row) -> Article:
        return Article(
            id=row["id"], title=row["title"], text=row["text"], url=row["url"],
            outlet=row["outlet"], author=row["author"], published_at=_dt(row["published_at"]),
            ext_id=row["ext_id"], source=row["source"],
        )

    # -- sources ---------------------------------------------------------------------------
    def add_source(self, spec: str, kind: str, *, name: str | None = None, watch: bool = False,
                   every_min: int | None = None, backfill: int = 0) -> SourceRecord:
        """Record a source, or return the one already recorded under ``spec`` (updating how
        it is followed when ``watch`` is asked for)."""
        with self.transaction() as db:
            return _add_source(db, spec, kind, name=name, watch=watch, every_min=every_min,
                               backfill=backfill)

    def import_records(self, sources: list[dict[str, Any]],
                       articles: list[tuple[Article, list[dict[str, Any]]]]) -> int:
        """Restore exported sources and articles (these with no chunks yet) in one
        transaction; a name another source holds is dropped. Returns how many articles were
        new or changed."""
        with self.transaction() as db:
            ids: dict[str, int] = {}
            for rec in sources:
                name = rec.get("name")
                # An export written before URLs were recorded in canonical form.
                spec = source_url(rec["spec"]) or rec["spec"]
                taken = name and db.execute("SELECT 1 FROM sources WHERE name = ? AND spec != ?",
                                            (name, spec)).fetchone()
                ids[rec["spec"]] = _add_source(
                    db, spec, rec["kind"], name=None if taken else name,
                    watch=bool(rec.get("watch")), every_min=rec.get("every_min"),
                    backfill=int(rec.get("backfill") or 0)).id
            known = {r["id"]: r["content_hash"] for r in db.execute(
                "SELECT id, content_hash FROM articles")}
            fresh = [(a, 0) for a, _ in articles if known.get(a.id) != a.content_hash]
            _upsert_articles(db, fresh)
            for a, members in articles:
                for m in members:
                    if m.get("spec") in ids:
                        _link_articles(db, ids[m["spec"]], [(a.id, m.get("guid"))])
        return len(fresh)

    def ever_had_sources(self) -> bool:
        """Whether any source was ever recorded here (removed ones count)."""
        return bool(self.get_meta("source_seq")) or bool(
            self._query("SELECT 1 FROM sources LIMIT 1"))

    def get_source(self, source_id: int) -> SourceRecord | None:
        rows = self._query("SELECT * FROM sources WHERE id = ?", (source_id,))
        return SourceRecord.from_row(rows[0]) if rows else None

    def find_source(self, spec: str) -> SourceRecord | None:
        """The source named by id, name or spec (URL or absolute path)."""
        spec = spec.strip()
        rows = self._query(
            "SELECT * FROM sources WHERE spec = ? OR name = ? OR CAST(id AS TEXT) = ? "
            "ORDER BY spec = ? DESC, name = ? DESC LIMIT 1", (spec, spec, spec, spec, spec))
        return SourceRecord.from_row(rows[0]) if rows else None

    def list_sources(self) -> list[SourceRecord]:
        return [SourceRecord.from_row(r) for r in self._query("SELECT * FROM sources ORDER BY id")]

    def source_article_counts(self) -> dict[int, int]:
        rows = self._query("SELECT source_id, COUNT(*) AS n FROM article_sources "
                           "GROUP BY source_id")
        return {int(r["source_id"]): int(r["n"]) for r in rows}

    def due_sources(self, now: datetime) -> list[SourceRecord]:
        """Watched, enabled sources whose next poll has come."""
        rows = self._query(
            "SELECT * FROM sources WHERE watch = 1 AND status != 'disabled' "
            "AND (next_poll IS NULL OR next_poll <= ?) ORDER BY next_poll", (_iso(now),))
        return [SourceRecord.from_row(r) for r in rows]

    def update_source(self, source_id: int, **fields: Any) -> None:
        """Set columns of one source (datetimes are stored as ISO text)."""
        allowed = {"name", "watch", "every_min", "backfill", "last_fetch", "last_ok",
                   "next_poll", "polls", "failures", "status", "last_error", "etag",
                   "last_modified", "kind"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown source fields: {sorted(unknown)}")
        values = [_iso(v) if isinstance(v, datetime) else v for v in fields.values()]
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction() as db:
            db.execute(f"UPDATE sources SET {sets} WHERE id = ?", (*values, source_id))

    def delete_source(self, source_id: int) -> list[str]:
        """Forget a source, its subscriptions, and the articles no other source holds, in one
        transaction; returns those articles' ids (for the store to drop their chunks)."""
        with self.transaction() as db:
            orphans = [r["article_id"] for r in db.execute(
                """SELECT article_id FROM article_sources WHERE source_id = ? AND article_id
                   NOT IN (SELECT article_id FROM article_sources WHERE source_id != ?)""",
                (source_id, source_id))]
            subs = [r[0] for r in db.execute("SELECT id FROM subscriptions WHERE source_id = ?",
                                             (source_id,))]
            if subs:
                marks = ",".join("?" * len(subs))
                db.execute(f"UPDATE posts SET status = 'failed', error = 'its source was "
                           f"removed' WHERE status = 'pending' AND subscription_id IN ({marks})",
                           subs)
                db.execute(f"DELETE FROM subscriptions WHERE id IN ({marks})", subs)
            db.execute("DELETE FROM sources WHERE id = ?", (source_id,))
            for i in range(0, len(orphans), 500):
                part = orphans[i : i + 500]
                db.execute(f"DELETE FROM articles WHERE id IN ({','.join('?' * len(part))})",
                           part)
        return orphans

    def drop_unloaded_sources(self) -> list[SourceRecord]:
        """Forget the one-off sources (a file, page or feed given to ingest) whose first load
        was killed before any article landed: never fetched, holding nothing. Returns them.
        Only for a process that holds the data dir alone: another's load may be under way."""
        rows = self._query(
            "SELECT * FROM sources WHERE watch = 0 AND last_fetch IS NULL AND id NOT IN "
            "(SELECT source_id FROM article_sources)")
        dropped = [SourceRecord.from_row(r) for r in rows]
        for source in dropped:
            self.delete_source(source.id)
        return dropped

    def link_articles(self, source_id: int, items: Iterable[tuple[str, str | None]]) -> None:
        """Record that the source delivered these (article id, GUID) pairs."""
        with self.transaction() as db:
            _link_articles(db, source_id, items)

    def known_guids(self, source_id: int) -> dict[str, str]:
        """GUID -> article id of the items this source has delivered."""
        rows = self._query("SELECT guid, article_id FROM article_sources "
                           "WHERE source_id = ? AND guid IS NOT NULL", (source_id,))
        return {r["guid"]: r["article_id"] for r in rows}

    def article_ids_for_source(self, source_id: int) -> list[str]:
        return [r["article_id"] for r in self._query(
            "SELECT article_id FROM article_sources WHERE source_id = ?", (source_id,))]

    def source_articles_at(self, source_id: int, url: str) -> list[str]:
        """The articles this source holds under ``url``."""
        return [r["article_id"] for r in self._query(
            "SELECT m.article_id FROM article_sources m JOIN articles a ON a.id = m.article_id "
            "WHERE m.source_id = ? AND a.url = ?", (source_id, url))]

    def release_articles(self, source_id: int, article_ids: Iterable[str]) -> list[str]:
        """Take these articles from what the source holds, in one transaction; those no
        other source holds leave the registry. Returns their ids (for the store to drop
        their chunks)."""
        ids = list(article_ids)
        with self.transaction() as db:
            db.executemany("DELETE FROM article_sources WHERE source_id = ? AND article_id = ?",
                           [(source_id, i) for i in ids])
            orphans = [i for i in ids if db.execute(
                "SELECT 1 FROM article_sources WHERE article_id = ?", (i,)).fetchone() is None]
            db.executemany("DELETE FROM articles WHERE id = ?", [(i,) for i in orphans])
        return orphans

    def orphan_article_ids(self) -> list[str]:
        """Articles no source holds (left by an import, or a crash mid-removal)."""
        return [r["id"] for r in self._query(
            "SELECT id FROM articles WHERE id NOT IN (SELECT article_id FROM article_sources)")]

    # -- answers and feedback --------------------------------------------------------------
    def record_answer(self, *, message_id: int, channel_id: int, user_id: int, question: str,
                      answer: str, sources: list[dict[str, Any]], abstained: bool,
                      mode: str, guild_id: int | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                """INSERT OR REPLACE INTO answers (message_id, channel_id, user_id, question,
                       answer, sources, abstained, mode, created_at, guild_id)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (message_id, channel_id, user_id, question, answer, json.dumps(sources),
                 int(abstained), mode, _iso(utcnow()), guild_id),
            )

    def begin_answer(self, *, channel_id: int, question: str) -> int:
        """Note an answer about to be shown while it is written; its row id."""
        with self.transaction() as db:
            cur = db.execute("INSERT INTO answers_writing (channel_id, question, started_at) "
                             "VALUES (?, ?, ?)", (channel_id, question, _iso(utcnow())))
            return int(cur.lastrowid)

    def answer_shown(self, row_id: int, *, channel_id: int, message_id: int) -> None:
        """The message an answer being written is shown in."""
        with self.transaction() as db:
            db.execute("UPDATE answers_writing SET channel_id = ?, message_id = ? WHERE id = ?",
                       (channel_id, message_id, row_id))

    def end_answer(self, row_id: int) -> None:
        """The answer no longer shows "Writing…": finished, or replaced by a line."""
        with self.transaction() as db:
            db.execute("DELETE FROM answers_writing WHERE id = ?", (row_id,))

    def answers_writing(self) -> list[sqlite3.Row]:
        """The answers noted as being written, oldest first."""
        return self._query("SELECT * FROM answers_writing ORDER BY id")

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

    @staticmethod
    def _in_guild(scope: AnswerScope | None) -> tuple[str, tuple[Any, ...]]:
        """The condition on ``answers a`` for one server's answers (every answer when None):
        those recorded in it, and those kept before answers named their server whose channel
        is one of its own."""
        if scope is None:
            return "1", ()
        return ("(a.guild_id = ? OR (a.guild_id IS NULL AND a.channel_id IN "
                "(SELECT value FROM json_each(?))))",
                (scope.guild_id, json.dumps(sorted(scope.channel_ids))))

    def vote_totals(self, scope: AnswerScope | None = None) -> tuple[int, int, int]:
        where, args = self._in_guild(scope)
        row = self._query(
            f"""SELECT (SELECT COUNT(*) FROM answers a WHERE {where}) AS answers,
                       COALESCE(SUM(v.value = 1), 0) AS up, COALESCE(SUM(v.value = -1), 0)
                       AS down
                FROM votes v JOIN answers a ON a.message_id = v.message_id WHERE {where}""",
            args + args,
        )[0]
        return int(row["up"]), int(row["down"]), int(row["answers"])

    def unanswered_questions(self, limit: int = 10,
                             scope: AnswerScope | None = None) -> list[tuple[str, int]]:
        where, args = self._in_guild(scope)
        rows = self._query(
            f"""SELECT question, COUNT(*) AS n FROM answers a WHERE abstained = 1 AND {where}
                GROUP BY lower(question) ORDER BY n DESC, MAX(created_at) DESC LIMIT ?""",
            (*args, limit),
        )
        return [(r["question"], int(r["n"])) for r in rows]

    def most_downvoted(self, limit: int = 10,
                       scope: AnswerScope | None = None) -> list[tuple[str, str, int]]:
        where, args = self._in_guild(scope)
        rows = self._query(
            f"""SELECT a.question, a.answer, SUM(v.value = -1) AS down
                FROM answers a JOIN votes v ON v.message_id = a.message_id WHERE {where}
                GROUP BY a.message_id HAVING down > 0 ORDER BY down DESC, a.created_at DESC
                LIMIT ?""",
            (*args, limit),
        )
        return [(r["question"], r["answer"], int(r["down"])) for r in rows]

    # -- briefs: subscriptions, stories, the posted log -------------------------------------
    def add_subscription(self, *, channel_id: int, guild_id: int | None, source_id: int | None,
                         topic: str | None, keywords: list[str], daily_cap: int | None,
                         mode: str, digest_hour: int, tz: str, created_by: str | None,
                         created_at: datetime) -> int | None:
        """The new subscription's id, or None when the channel already follows that."""
        with self.transaction() as db:
            cur = db.execute(
                """INSERT OR IGNORE INTO subscriptions (guild_id, channel_id, source_id, topic,
                       keywords, daily_cap, mode, digest_hour, tz, created_by, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (guild_id, channel_id, source_id, topic, json.dumps(keywords), daily_cap, mode,
                 digest_hour, tz, created_by, _iso(created_at)))
            return int(cur.lastrowid) if cur.rowcount else None

    def subscriptions(self, *, channel_ids: Iterable[int] | None = None,
                      guild_id: int | None = None,
                      guild_channels: Iterable[int] | None = None) -> list[sqlite3.Row]:
        """Subscriptions, of ``channel_ids`` and of ``guild_id``: those it made, and those
        made with no server that post to one of its channels ``guild_channels``."""
        rows = self._query("SELECT * FROM subscriptions ORDER BY id")
        if channel_ids is not None:
            wanted = set(channel_ids)
            rows = [r for r in rows if r["channel_id"] in wanted]
        if guild_id is not None:
            mine = set(guild_channels or ())
            rows = [r for r in rows if r["guild_id"] == guild_id
                    or (r["guild_id"] is None and r["channel_id"] in mine)]
        return rows

    def claim_subscriptions(self, guild_id: int, channel_ids: Iterable[int]) -> int:
        """Give ``guild_id`` the subscriptions made with no server (on the command line)
        that post to its channels ``channel_ids``; how many."""
        ids = list(dict.fromkeys(int(c) for c in channel_ids))
        claimed = 0
        with self.transaction() as db:
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                claimed += db.execute(
                    f"UPDATE subscriptions SET guild_id = ? WHERE guild_id IS NULL AND "
                    f"channel_id IN ({','.join('?' * len(part))})", (guild_id, *part)).rowcount
        return claimed

    def get_subscription(self, sub_id: int) -> sqlite3.Row | None:
        rows = self._query("SELECT * FROM subscriptions WHERE id = ?", (sub_id,))
        return rows[0] if rows else None

    def delete_subscriptions(self, ids: Iterable[int]) -> int:
        with self.transaction() as db:
            return sum(db.execute("DELETE FROM subscriptions WHERE id = ?", (i,)).rowcount
                       for i in ids)

    def set_subscription_enabled(self, sub_id: int, enabled: bool,
                                 reason: str | None = None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE subscriptions SET enabled = ?, disabled_reason = ? WHERE id = ?",
                       (int(enabled), None if enabled else reason, sub_id))

    def guild_tz(self, guild_id: int) -> str | None:
        rows = self._query("SELECT tz FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return rows[0]["tz"] if rows else None

    def set_guild_tz(self, guild_id: int, tz: str) -> int:
        """Set the guild's time zone, and its subscriptions'; how many subscriptions."""
        with self.transaction() as db:
            db.execute("INSERT INTO guild_settings (guild_id, tz, updated_at) VALUES (?, ?, ?) "
                       "ON CONFLICT(guild_id) DO UPDATE SET tz = excluded.tz, "
                       "updated_at = excluded.updated_at", (guild_id, tz, _iso(utcnow())))
            return db.execute("UPDATE subscriptions SET tz = ? WHERE guild_id = ?",
                              (tz, guild_id)).rowcount

    def set_last_digest(self, sub_id: int, local_date: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE subscriptions SET last_digest = ? WHERE id = ?",
                       (local_date, sub_id))

    def story_of(self, article_id: str) -> str | None:
        rows = self._query("SELECT story_id FROM stories WHERE article_id = ?", (article_id,))
        return rows[0]["story_id"] if rows else None

    def story_members(self, lo: datetime | None, hi: datetime | None) -> list[sqlite3.Row]:
        """Articles with a story, published in [lo, hi] (undated ones always included)."""
        return self._query(
            "SELECT * FROM stories WHERE published_at IS NULL OR (published_at >= ? AND "
            "published_at <= ?)", (_iso(lo) or "", _iso(hi) or "9999"))

    def add_story_member(self, article_id: str, story_id: str, vector: bytes,
                         published_at: datetime | None, title: str) -> None:
        with self.transaction() as db:
            db.execute(
                """INSERT INTO stories (article_id, story_id, vector, published_at, title,
                       assigned_at) VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT(article_id) DO UPDATE SET vector = excluded.vector,
                       published_at = excluded.published_at, title = excluded.title""",
                (article_id, story_id, vector, _iso(published_at), title, _iso(utcnow())))

    def recent_titles(self, limit: int) -> list[tuple[str, str]]:
        rows = self._query("SELECT id, title FROM articles ORDER BY "
                           "COALESCE(published_at, ingested_at) DESC LIMIT ?", (limit,))
        return [(r["id"], r["title"]) for r in rows]

    def article_of_message(self, message_id: int) -> str | None:
        """The article a posted brief (or update) is about, by its message id."""
        rows = self._query("SELECT article_id FROM posts WHERE message_id = ? AND kind IN "
                           "('brief', 'update') AND status = 'sent'", (message_id,))
        return rows[0]["article_id"] if rows else None

    def article_of_thread(self, thread_id: int) -> str | None:
        """The article questions in a thread are about: the brief it was opened on (it shares
        the brief's id), or the story of a list it was opened for."""
        found = self.article_of_message(thread_id)
        if found is not None:
            return found
        rows = self._query("SELECT article_id FROM story_threads WHERE thread_id = ?",
                           (thread_id,))
        return rows[0]["article_id"] if rows else None

    def story_thread(self, channel_id: int, article_id: str) -> int | None:
        """The thread opened in a channel to ask about a story of a list, if any."""
        rows = self._query("SELECT thread_id FROM story_threads WHERE channel_id = ? AND "
                           "article_id = ?", (channel_id, article_id))
        return int(rows[0]["thread_id"]) if rows else None

    def record_story_thread(self, *, thread_id: int, channel_id: int, article_id: str) -> None:
        """A thread opened for a story of a list (replacing one found gone)."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO story_threads (thread_id, channel_id, article_id, "
                       "created_at) VALUES (?, ?, ?, ?)",
                       (thread_id, channel_id, article_id, _iso(utcnow())))

    def source_ids_of(self, article_id: str) -> set[int]:
        rows = self._query("SELECT source_id FROM article_sources WHERE article_id = ?",
                           (article_id,))
        return {int(r["source_id"]) for r in rows}

    def article_first_seen(self, article_id: str) -> datetime | None:
        rows = self._query("SELECT ingested_at FROM articles WHERE id = ?", (article_id,))
        return _dt(rows[0]["ingested_at"]) if rows else None

    def queued_briefs(self) -> list[sqlite3.Row]:
        """Articles waiting to be planned as briefs, oldest first."""
        return self._query("SELECT * FROM brief_queue ORDER BY queued_at, rowid")

    def unqueue_briefs(self, planned: Iterable[tuple[str, int]]) -> None:
        """Take planned (article id, version) off the queue. One queued again since was
        changed after it was planned: it stays, to be planned as a change."""
        planned = list(planned)
        with self.transaction() as db:
            db.executemany("DELETE FROM brief_queue WHERE article_id = ? AND version = ?",
                           planned)
            db.executemany("UPDATE brief_queue SET changed = 1, first_fetch = 0, backfill = 0 "
                           "WHERE article_id = ?", [(a,) for a, _ in planned])

    def add_post(self, *, channel_id: int, item_key: str, kind: str, story_id: str | None,
                 article_id: str | None, subscription_id: int | None, nonce: str,
                 payload: dict[str, Any]) -> bool:
        """Record the intent to post; False when (channel, item) was already recorded."""
        with self.transaction() as db:
            cur = db.execute(
                """INSERT OR IGNORE INTO posts (channel_id, item_key, kind, story_id,
                       article_id, subscription_id, nonce, payload, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (channel_id, item_key, kind, story_id, article_id, subscription_id, nonce,
                 json.dumps(payload), _iso(utcnow())))
            return bool(cur.rowcount)

    def get_post(self, channel_id: int, item_key: str) -> sqlite3.Row | None:
        rows = self._query("SELECT * FROM posts WHERE channel_id = ? AND item_key = ?",
                           (channel_id, item_key))
        return rows[0] if rows else None

    def pending_posts(self, limit: int = 1000, *,
                      due: datetime | None = None) -> list[sqlite3.Row]:
        """Posts not sent yet; with ``due``, only those whose retry time has come by then.
        A disabled subscription's posts are held back (see ``held_posts``), whatever their
        number: they never take the place of others."""
        held = ("(subscription_id IS NULL OR subscription_id NOT IN "
                "(SELECT id FROM subscriptions WHERE enabled = 0))")
        if due is None:
            return self._query(f"SELECT * FROM posts WHERE status = 'pending' AND {held} "
                               "ORDER BY created_at, rowid LIMIT ?", (limit,))
        return self._query(f"SELECT * FROM posts WHERE status = 'pending' AND {held} AND "
                           "(retry_at IS NULL OR retry_at <= ?) ORDER BY created_at, rowid "
                           "LIMIT ?", (_iso(due), limit))

    def drop_pending_posts(self, subscription_id: int, reason: str) -> int:
        """Give up the subscription's posts not sent yet; how many. (One a crash left
        unconfirmed may be in its channel: it stays there, unconfirmed, never sent twice.)"""
        with self.transaction() as db:
            return db.execute("UPDATE posts SET status = 'failed', error = ? WHERE "
                              "subscription_id = ? AND status = 'pending'",
                              (reason, subscription_id)).rowcount

    def trim_held(self, subscription_id: int, keep: int) -> int:
        """Give up all but the newest ``keep`` posts the subscription holds that were never
        tried; how many."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE posts SET status = 'failed', error = 'held while paused; newer ones "
                "took its place' WHERE rowid IN (SELECT rowid FROM posts WHERE "
                "subscription_id = ? AND status = 'pending' AND attempts = 0 ORDER BY "
                "created_at DESC, rowid DESC LIMIT -1 OFFSET ?)",
                (subscription_id, keep)).rowcount

    def held_posts(self, subscription_ids: Iterable[int]) -> list[sqlite3.Row]:
        """The posts of these subscriptions that wait, unsent."""
        ids = list(subscription_ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return self._query(f"SELECT * FROM posts WHERE status = 'pending' AND "
                           f"subscription_id IN ({marks}) ORDER BY created_at, rowid", ids)

    def list_lines(self, channel_id: int, list_key: str) -> list[sqlite3.Row]:
        """The pending posts a list carries (marked with its key), each with whether its
        subscription is enabled (``sub_enabled``: 1, 0, or None when it has none)."""
        return self._query(
            "SELECT p.*, s.enabled AS sub_enabled FROM posts p LEFT JOIN subscriptions s ON "
            "s.id = p.subscription_id WHERE p.channel_id = ? AND p.status = 'pending' AND "
            "json_extract(p.payload, '$.burst') = ? ORDER BY p.created_at, p.rowid",
            (channel_id, list_key))

    def settle_list(self, channel_id: int, list_key: str, *, status: str,
                    message_id: int | None = None, sent_at: datetime | None = None,
                    error: str | None = None) -> None:
        """A list's outcome (sent or failed), and its pending posts' with it, in one
        transaction. Its posts keep no message id: the message is the list's."""
        with self.transaction() as db:
            db.execute("UPDATE posts SET status = ?, message_id = ?, sent_at = ?, error = ? "
                       "WHERE channel_id = ? AND item_key = ?",
                       (status, message_id, _iso(sent_at), error, channel_id, list_key))
            db.execute("UPDATE posts SET status = ?, sent_at = ?, error = ? WHERE "
                       "channel_id = ? AND status = 'pending' AND "
                       "json_extract(payload, '$.burst') = ?",
                       (status, _iso(sent_at), error, channel_id, list_key))

    def update_post(self, channel_id: int, item_key: str, **fields: Any) -> None:
        allowed = {"status", "attempts", "message_id", "payload", "error", "sent_at",
                   "retry_at"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"cannot update posts.{set(fields) - allowed}")
        values = [json.dumps(v) if k == "payload" else _iso(v) if isinstance(v, datetime)
                  else v for k, v in fields.items()]
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction() as db:
            db.execute(f"UPDATE posts SET {sets} WHERE channel_id = ? AND item_key = ?",
                       (*values, channel_id, item_key))

    def count_posts(self, *, subscription_id: int, kind: str, since: datetime) -> int:
        row = self._query(
            "SELECT COUNT(*) AS n FROM posts WHERE subscription_id = ? AND kind = ? AND "
            "created_at >= ? AND status != 'failed'", (subscription_id, kind, _iso(since)))[0]
        return int(row["n"])

    def posts_of_story(self, channel_id: int, story_id: str) -> list[sqlite3.Row]:
        return self._query("SELECT * FROM posts WHERE channel_id = ? AND story_id = ? "
                           "ORDER BY created_at, rowid", (channel_id, story_id))
