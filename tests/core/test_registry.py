"""Sources and the registry: shared articles, store sync, rebuild debris, backups, model change."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from bot.core.admin import normalise_spec
from bot.core.models import NewsbotError
from bot.core.services import Services, build_services
from bot.core.state import AnswerScope, State
from retrieval.articles import Article
from tests.fakes import FakeEmbedder, make_services, make_settings


def _jsonl(path: Path, stories: list[int]) -> Path:
    path.write_text("\n".join(json.dumps({
        "title": f"Lock keeper story {n}", "body": f"The lock keeper on canal {n} retired after "
        f"{n + 20} years of opening the gates for barges. " * 3,
        "url": f"https://news.example.org/locks/{n}", "published_at": f"2025-05-{n:02d}",
        "source": "Canal Weekly"}) for n in stories) + "\n")
    return path


@pytest.fixture
def empty(tmp_path: Path) -> Services:
    svc = make_services(tmp_path / "data", sample=False)
    yield svc
    svc.close()


def _stored_articles(svc: Services) -> set[str]:
    return set(svc.store.chunk_numbers())


def test_an_article_stays_while_any_source_holds_it(empty: Services, tmp_path: Path) -> None:
    a = _jsonl(tmp_path / "a.jsonl", [1, 2])
    b = _jsonl(tmp_path / "b.jsonl", [2, 3])  # story 2 comes from both files
    empty.admin.ingest([str(a), str(b)])
    assert empty.state.counts()[0] == 3
    _, gone = empty.admin.remove_source(str(a))
    assert gone == 1  # story 1; story 2 is still held by b
    titles = {art.title for art in empty.state.iter_articles()}
    assert titles == {"Lock keeper story 2", "Lock keeper story 3"}
    assert len(_stored_articles(empty)) == 2
    # By id, then by name: the same lookups the CLI and Discord offer.
    source_b = empty.state.find_source(str(b.resolve()))
    assert source_b is not None
    assert empty.admin.remove_source(str(source_b.id))[1] == 2
    assert empty.state.counts() == (0, 0) and empty.store.count() == 0


def test_incremental_reindex_repairs_what_a_crash_leaves(empty: Services,
                                                        tmp_path: Path) -> None:
    empty.admin.ingest([str(_jsonl(tmp_path / "a.jsonl", [1, 2, 3, 4]))])
    ids = sorted(_stored_articles(empty))
    # A crash mid-removal: registry rows gone, chunks left; mid-ingest: a row without chunks.
    empty.state.delete_articles([ids[0]])
    empty.store.delete_articles([ids[1]])
    dry = empty.admin.reindex(dry_run=True)
    assert (dry.added, dry.updated, dry.deleted) == (1, 0, 1)
    assert ids[0] in _stored_articles(empty)  # the dry run wrote nothing
    report = empty.admin.reindex()
    assert (report.added, report.deleted) == (1, 1)
    assert _stored_articles(empty) == set(ids[1:])
    assert empty.store.count() == empty.state.counts()[1]
    again = empty.admin.reindex()
    assert (again.added, again.updated, again.deleted) == (0, 0, 0)
    assert "matches the registry" in again.summary()


def test_a_full_reindex_leaves_one_collection_on_disk(tmp_path: Path) -> None:
    svc = make_services(tmp_path / "data")
    chroma = tmp_path / "data" / "chroma"

    def segment_dirs() -> set[str]:
        return {p.name for p in chroma.iterdir() if p.is_dir()}

    def named_segments() -> set[str]:
        db = sqlite3.connect(chroma / "chroma.sqlite3")
        try:
            return {r[0] for r in db.execute("SELECT id FROM segments")}
        finally:
            db.close()

    for _ in range(2):
        svc.admin.reindex(full=True)
    assert segment_dirs() <= named_segments()
    assert len(svc.store._ours()) == 1
    # A crashed rebuild's staging collection is dropped at the next start.
    staging = svc.store.begin_rebuild()
    staging.upsert(ids=["x"], embeddings=[[0.1] * 384], metadatas=[{"article_id": "x",
                                                                      "chunk": 0}])
    svc.close()
    svc = make_services(tmp_path / "data", sample=False)
    assert svc.store.drop_unfinished() == 1
    assert len(svc.store._ours()) == 1 and segment_dirs() <= named_segments()
    svc.close()


def test_export_then_import_restores_sources_and_store(empty: Services, tmp_path: Path) -> None:
    a = _jsonl(tmp_path / "a.jsonl", [1, 2])
    b = _jsonl(tmp_path / "b.jsonl", [2, 3])
    empty.admin.ingest([str(a), str(b)])
    backup = tmp_path / "backup.jsonl"
    assert empty.admin.export(backup) == {"sources": 2, "articles": 3}

    other = make_services(tmp_path / "other", sample=False)
    try:
        result = other.admin.import_(backup)
        assert (result["sources"], result["articles"], result["restored"]) == (2, 3, 3)
        assert other.state.counts()[0] == 3 and other.store.count() == empty.store.count()
        # A second import changes nothing.
        again = other.admin.import_(backup)
        assert again["restored"] == 0 and again["reindex"]["added"] == 0
        # Memberships came along: removing one file keeps the shared story.
        assert other.admin.remove_source(str(a.resolve()))[1] == 1
        found = other.retriever.search("lock keeper story 3 canal 3", k=3).articles
        assert found[0].title == "Lock keeper story 3"
    finally:
        other.close()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "article", "title": "no text"}\n')
    with pytest.raises(NewsbotError, match=r"^bad.jsonl:1 is not a newsbot export record \(\w+"):
        empty.admin.import_(bad)


def test_an_import_keeps_names_already_taken_here(empty: Services, tmp_path: Path) -> None:
    a = _jsonl(tmp_path / "a.jsonl", [1])
    empty.admin.ingest([str(a)])
    empty.state.update_source(empty.state.find_source(str(a.resolve())).id, name="canal")
    backup = tmp_path / "backup.jsonl"
    empty.admin.export(backup)
    other = make_services(tmp_path / "other", sample=False)
    try:
        b = _jsonl(tmp_path / "b.jsonl", [2])
        other.admin.ingest([str(b)])
        other.state.update_source(other.state.find_source(str(b.resolve())).id, name="canal")
        assert other.admin.import_(backup)["restored"] == 1
        names = {s.spec: s.name for s in other.state.list_sources()}
        assert names == {str(b.resolve()): "canal", str(a.resolve()): None}
    finally:
        other.close()


def test_removing_a_source_takes_its_subscriptions_and_its_id_is_not_reused(
        empty: Services, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    a = _jsonl(tmp_path / "a.jsonl", [1, 2])
    empty.admin.ingest([str(a)])
    first = empty.state.find_source(str(a.resolve()))
    sub = empty.state.add_subscription(
        channel_id=7, guild_id=1, source_id=first.id, topic=None, keywords=[], daily_cap=None,
        mode="immediate", digest_hour=8, tz="UTC", created_by="mod", created_at=datetime.now(UTC))
    assert sub is not None
    article = next(iter(_stored_articles(empty)))
    assert empty.state.add_post(channel_id=7, item_key="a1", kind="brief", story_id=None,
                                article_id=article, subscription_id=sub, nonce="n1",
                                payload={})
    empty.admin.remove_source(str(first.id))
    assert empty.state.subscriptions() == []
    assert empty.state.get_post(7, "a1")["status"] == "failed"  # never sent after all
    assert empty.state.counts()[0] == 0 and empty.store.count() == 0
    again = _jsonl(tmp_path / "c.jsonl", [3])
    empty.admin.ingest([str(again)])
    assert empty.state.find_source(str(again.resolve())).id > first.id


def test_an_empty_name_is_refused_and_urls_are_recorded_once(empty: Services) -> None:
    report = empty.admin.ingest(["  "])
    assert [f.reason for f in report.failed] == ["an empty name is not a file, folder or URL"]
    assert empty.state.list_sources() == []
    assert (normalise_spec("HTTPS://News.Example.org/a/../feed.xml#top")
            == normalise_spec("https://news.example.org/feed.xml"))


def test_articles_no_source_holds_are_swept_by_a_reindex(empty: Services,
                                                        tmp_path: Path) -> None:
    empty.admin.ingest([str(_jsonl(tmp_path / "a.jsonl", [1, 2]))])
    stray = next(a for a in empty.state.iter_articles() if a.title.endswith("story 1"))
    # What an older version's crash between its two steps of a removal could leave.
    with empty.state.transaction() as db:
        db.execute("DELETE FROM article_sources WHERE article_id = ?", (stray.id,))
    assert empty.admin.reindex(dry_run=True).deleted == 1
    report = empty.admin.reindex()
    assert report.deleted == 1 and stray.id not in _stored_articles(empty)
    assert empty.state.counts()[0] == 1


def test_the_sample_is_not_loaded_again_once_its_source_is_removed(tmp_path: Path) -> None:
    svc = make_services(tmp_path / "data", sample=False)
    try:
        assert svc.ensure_sample() is not None and svc.state.counts()[0] > 0
        [sample] = svc.state.list_sources()
        svc.admin.remove_source(str(sample.id))
        assert svc.ensure_sample() is None and svc.state.counts()[0] == 0
    finally:
        svc.close()


def test_a_new_embedding_model_waits_for_a_full_reindex(tmp_path: Path) -> None:
    make_services(tmp_path / "data").close()

    class NewModel(FakeEmbedder):
        model_id = "new-model"

    old = FakeEmbedder()
    svc = build_services(make_settings(tmp_path / "data"), embedder=NewModel(),
                         previous_embedder=lambda mid: old if mid == old.model_id else None)
    try:
        status = svc.admin.status()
        assert status["embedding_model"] == "fake-hash-384"
        assert status["full_reindex_needed"] is True
        # Still answering, with the old model's vectors and the old model's queries.
        assert not svc.ask.ask("what did Netflix use AI for in The Eternaut?").abstained
        # An ingest meanwhile embeds with the old model too: never mixed vectors.
        story = tmp_path / "s.jsonl"
        svc.admin.ingest([str(_jsonl(story, [7]))])
        assert svc.store.built_with == "fake-hash-384"
        svc.admin.reindex(full=True)
        status = svc.admin.status()
        assert status["embedding_model"] == "new-model" and not status["full_reindex_needed"]
        assert svc.retriever.embedder.model_id == "new-model"
    finally:
        svc.close()


def test_schema_one_state_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE articles (id TEXT PRIMARY KEY, ext_id TEXT, source TEXT, url TEXT,
            title TEXT NOT NULL, outlet TEXT, author TEXT, published_at TEXT, text TEXT NOT NULL,
            content_hash TEXT NOT NULL, n_chunks INTEGER NOT NULL DEFAULT 0,
            ingested_at TEXT NOT NULL, updated_at TEXT NOT NULL);
        CREATE TABLE sources (spec TEXT PRIMARY KEY, kind TEXT NOT NULL, added_at TEXT NOT NULL,
            last_ingest TEXT, last_error TEXT);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '1');
        INSERT INTO sources VALUES ('/srv/news.jsonl', 'jsonl', '2025-01-01T00:00:00+00:00',
            '2025-01-01T00:00:00+00:00', NULL);
        INSERT INTO sources VALUES ('https://example.org/rss', 'url', '2025-01-01T00:00:00+00:00',
            NULL, NULL);
        INSERT INTO articles VALUES ('a1', 'g1', '/srv/news.jsonl', NULL, 'T', NULL, NULL, NULL,
            'text', 'h', 1, '2025-01-01T00:00:00+00:00', '2025-01-01T00:00:00+00:00');
    """)
    db.close()
    state = State(path)
    try:
        sources = {s.spec: s for s in state.list_sources()}
        assert sources["/srv/news.jsonl"].kind == "file"
        assert sources["https://example.org/rss"].kind == "page"
        assert state.article_ids_for_source(sources["/srv/news.jsonl"].id) == ["a1"]
        assert state.get_meta("schema") == "2"
    finally:
        state.close()


def test_searches_during_collection_switches_always_find_text(tmp_path: Path) -> None:
    import threading

    svc = make_services(tmp_path / "data")
    vec = svc.embedder.embed_query("Netflix generative AI building collapse")
    stop = threading.Event()
    bad: list[str] = []

    def search() -> None:
        while not stop.is_set():
            hits = svc.store.query(vec, 5)
            if not hits or not all(h.text for h in hits):
                bad.append(f"{len(hits)} hits, {sum(not h.text for h in hits)} without text")

    reader = threading.Thread(target=search)
    reader.start()
    try:
        for _ in range(8):
            svc.admin.reindex(full=True)
    finally:
        stop.set()
        reader.join()
        svc.close()
    assert not bad, bad[:3]


def test_a_full_reindex_has_the_keyword_index_ready_at_the_switch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retrieval.lexical import LexicalIndex

    svc = make_services(tmp_path / "data")
    try:
        svc.ask.ask("what did Netflix use AI for in The Eternaut?")
        built: list[int] = []
        real = LexicalIndex.build.__func__  # type: ignore[attr-defined]

        def counting(cls: type[LexicalIndex], chunks):  # type: ignore[no-untyped-def]
            index = real(cls, chunks)
            built.append(len(index))
            return index

        monkeypatch.setattr(LexicalIndex, "build", classmethod(counting))
        loaded: list[Path] = []
        real_load = LexicalIndex.load.__func__  # type: ignore[attr-defined]

        def loading(cls: type[LexicalIndex], folder: Path):  # type: ignore[no-untyped-def]
            loaded.append(folder)
            return real_load(cls, folder)

        monkeypatch.setattr(LexicalIndex, "load", classmethod(loading))
        finish = svc.store.finish_rebuild

        def asked_at_the_switch(staging: object) -> None:
            finish(staging)
            svc.ask.ask("who won the UK general election?")  # a question right after it

        monkeypatch.setattr(svc.store, "finish_rebuild", asked_at_the_switch)
        svc.admin.reindex(full=True)
        assert built == [svc.store.count()]  # built once, from the new collection
        answer = svc.ask.ask("what did Netflix use AI for in The Eternaut?")
        assert not answer.abstained and built == [svc.store.count()]  # not built again
        assert not loaded  # nor read back from disk: the one built serves
        # The vectors that serve dated questions are beside it, and it is on disk for the
        # next start: the old collection's folder, and only it, is gone.
        live = svc.retriever.lexical()
        assert live.vectors is not None and len(live.vectors) == len(live)
        folders = sorted(p.name for p in (tmp_path / "data" / "lexical").iterdir())
        assert folders == [f"{svc.store.collection_name}-v{svc.store.version()}"]
    finally:
        svc.close()
    # A reindex run alone (no question after it in that process) leaves one folder too.
    svc = make_services(tmp_path / "data", sample=False)
    svc.admin.reindex(full=True)
    svc.close()
    folders = sorted(p.name for p in (tmp_path / "data" / "lexical").iterdir())
    assert len(folders) == 1, folders
    built.clear()
    loaded.clear()
    svc = make_services(tmp_path / "data", sample=False)
    try:
        monkeypatch.setattr(LexicalIndex, "build", classmethod(counting))
        assert not svc.ask.ask("what did Netflix use AI for in The Eternaut?").abstained
        assert not built and len(loaded) == 1  # loaded, not built
    finally:
        svc.close()


def test_questions_after_a_write_use_the_index_as_it_was_until_the_next_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from retrieval.articles import article_from_record
    from retrieval.lexical import LexicalIndex

    svc = make_services(tmp_path / "data")
    try:
        before = svc.retriever.lexical()
        release = threading.Event()
        real = LexicalIndex.build.__func__  # type: ignore[attr-defined]

        def slow(cls: type[LexicalIndex], chunks):  # type: ignore[no-untyped-def]
            assert release.wait(30)
            return real(cls, chunks)

        monkeypatch.setattr(LexicalIndex, "build", classmethod(slow))
        real_update = LexicalIndex.updated

        def slow_update(self: LexicalIndex, *args):  # type: ignore[no-untyped-def]
            assert release.wait(30)
            return real_update(self, *args)

        monkeypatch.setattr(LexicalIndex, "updated", slow_update)
        # A write the service did not make through a command (a feed poll's, say).
        story = article_from_record({
            "title": "Lighthouse keeper retires", "source": "Example Gazette",
            "body": "The last lighthouse keeper on Skerry Point retired after forty years, "
                    "the harbour board said on Friday.", "published_at": "2026-11-27"})
        again = article_from_record({
            "title": "Skerry Point lighthouse keeper retires after forty years",
            "source": "Example Gazette",
            "body": "The last lighthouse keeper on Skerry Point has retired after forty years, "
                    "the harbour board said.", "published_at": "2026-11-28"})
        svc.admin.indexer.index([story, again])
        # Answered at once with the index as it was, while the next one is being built.
        assert svc.retriever.lexical() is before
        assert not any(i.startswith(story.id) for i in before.ids)
        # "What's new?" meanwhile reads the period's newest from the store.
        newest = svc.retriever.search("what's new?").articles
        assert newest and newest[0].article_id in (story.id, again.id)
        # A month's stories too, grouped by the store's vectors: the two reports are one.
        month = svc.retriever.search("what happened in november 2026?",
                                     now=datetime(2026, 12, 1, tzinfo=UTC)).articles
        assert len(month) == 1 and month[0].article_id in (story.id, again.id)
        release.set()
        for _ in range(600):  # the thread puts the new one in place once built
            if svc.retriever.lexical() is not before:
                break
            time.sleep(0.05)
        after = svc.retriever.lexical()
        assert after is not before and any(i.startswith(story.id) for i in after.ids)
        # Another write soon after: its rebuild waits out the interval (one rebuild in that
        # time however many polls store articles), and closing does not wait for it.
        svc.retriever.params = replace(svc.retriever.params, refresh_interval_s=3600)
        second = article_from_record({
            "title": "Ferry timetable changes", "source": "Example Gazette",
            "body": "The winter ferry timetable starts on Monday with two fewer sailings.",
            "published_at": "2026-11-28"})
        svc.admin.indexer.index([second])
        assert svc.retriever.lexical() is after
        refresher = svc.retriever._refresher
        assert refresher is not None
        time.sleep(0.2)  # time enough to build so small an index, were it not waiting
        assert svc.retriever.lexical() is after and refresher.is_alive()
    finally:
        svc.close()
    assert not refresher.is_alive()


def test_the_keyword_index_follows_writes_from_what_they_wrote(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write (new, edited, shortened, removed articles) updates the index from the chunks
    it wrote, never by reading the whole store again (tens of seconds at 100,000 chunks),
    and the result scores as a build from the store would; so does the index saved before
    a process's first write."""
    from retrieval.articles import article_from_record
    from retrieval.lexical import LexicalIndex, tokenize

    def story(words: str, paragraphs: int) -> Article:
        return article_from_record({
            "title": "Skerry Point lighthouse", "source": "Example Gazette",
            "url": "https://gazette.example/lighthouse", "published_at": "2026-11-27",
            "body": "\n\n".join(f"Paragraph {p}: the {words} at Skerry Point, the harbour "
                                 "board said, after a long season of repairs to the tower "
                                 "and the keeper's cottage beside it." * 3
                                 for p in range(paragraphs))})

    def same_as_a_build(svc: Services) -> None:
        index = svc.retriever.lexical()
        fresh = LexicalIndex.build(svc.store.iter_chunks())
        assert sorted(index.ids) == sorted(fresh.ids)
        order = [fresh.position[i] for i in index.ids]
        for words in ("lighthouse keeper", "foghorn tower", "Netflix Eternaut"):
            q = tokenize([words])[0]
            assert np.allclose(index.scores(q), fresh.scores(q)[order], atol=1e-6)
        stored = svc.store.embeddings(index.ids)
        assert index.vectors is not None
        assert np.allclose(index.vectors[index.time_row], [stored[i] for i in index.ids])

    built: list[int] = []
    real = LexicalIndex.build.__func__  # type: ignore[attr-defined]
    svc = make_services(tmp_path / "data")
    try:
        svc.retriever.lexical()
        monkeypatch.setattr(LexicalIndex, "build", classmethod(
            lambda cls, chunks: built.append(1) or real(cls, chunks)))
        long = story("old lighthouse keeper Gannetwatch", 6)
        svc.admin.indexer.index([long])
        svc.retriever.refresh()
        assert any(i.startswith(long.id) for i in svc.retriever.lexical().ids)
        short = story("new foghorn sounded", 2)  # edited in place, fewer chunks
        svc.admin.indexer.index([short], changed=[short.id])
        svc.retriever.refresh()
        netflix = next(a.id for a in svc.state.iter_articles() if "Netflix" in a.text)
        svc.admin.indexer.remove([netflix])
        svc.retriever.refresh()
        assert not built
        monkeypatch.undo()
        same_as_a_build(svc)
        q = tokenize(["Gannetwatch"])[0]
        assert not svc.retriever.lexical().scores(q).any()  # the old text is gone
    finally:
        svc.close()
    # A command run without the service writes before it reads: the index saved before its
    # write is loaded and follows it.
    svc = make_services(tmp_path / "data", sample=False)
    try:
        monkeypatch.setattr(LexicalIndex, "build", classmethod(
            lambda cls, chunks: built.append(1) or real(cls, chunks)))
        svc.admin.indexer.index([story("old lighthouse keeper retired", 4)],
                                changed=[short.id])
        svc.retriever.refresh()
        assert not built
        monkeypatch.undo()
        same_as_a_build(svc)
    finally:
        svc.close()


def test_a_removal_is_out_of_the_keyword_index_when_the_command_returns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retrieval.lexical import LexicalIndex

    story = tmp_path / "kiosk.md"
    story.write_text("---\ntitle: Harbour kiosk closes\nsource: Example Gazette\n"
                     "published_at: 2026-11-20\n---\nThe harbour kiosk closed for the winter "
                     "on Friday, its owner said.\n")
    svc = make_services(tmp_path / "data")
    try:
        svc.admin.ingest([str(story)])
        ids = set(svc.retriever.lexical().ids)
        kiosk = {c.id for c in svc.store.iter_chunks() if c.text.startswith("The harbour kiosk")}
        assert kiosk and kiosk <= ids
        svc.admin.remove_source(str(story))
        assert not kiosk & set(svc.retriever.lexical().ids)  # no rebuild to wait for
        # A rebuild that fails after the write: the removal stands, and the old index is not
        # used to answer (the next question builds a new one).
        svc.admin.ingest([str(story)])
        monkeypatch.setattr(LexicalIndex, "build",
                            classmethod(lambda cls, chunks: (_ for _ in ()).throw(OSError("disk"))))
        svc.admin.remove_source(str(story))
        assert svc.state.find_source(normalise_spec(str(story))) is None
        monkeypatch.undo()
        assert not any(c.id in kiosk for c in svc.store.iter_chunks())
        assert not kiosk & set(svc.retriever.lexical().ids)
    finally:
        svc.close()


def test_a_first_sample_load_that_was_stopped_is_tried_again(tmp_path: Path) -> None:
    """Ctrl-C during the first question's load (or an embedding endpoint down) must not
    leave the data dir without the sample for good."""

    class Interrupted(FakeEmbedder):
        def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
            raise KeyboardInterrupt

    svc = build_services(make_settings(tmp_path / "data"), embedder=Interrupted())
    try:
        with pytest.raises(KeyboardInterrupt):
            svc.ensure_sample()
        assert svc.state.counts()[0] == 0
    finally:
        svc.close()
    svc = make_services(tmp_path / "data", sample=False)
    try:
        assert svc.ensure_sample() is not None and svc.state.counts()[0] > 0
        [sample] = svc.state.list_sources()
        svc.admin.remove_source(str(sample.id))
        assert svc.ensure_sample() is None  # removed by hand: stays empty
    finally:
        svc.close()


def test_a_full_reindex_passes_its_check_when_many_articles_share_a_headline(
        empty: Services, tmp_path: Path) -> None:
    """A column a feed runs every day ('Letters to the editor') gives many articles one
    headline: the check that a few articles find themselves must not fail on that."""
    src = tmp_path / "letters.jsonl"
    src.write_text("\n".join(json.dumps({
        "title": "Letters to the editor", "body": f"Reader {n} writes about the {topic} on "
        f"street {n}, which she says has been neglected for {n + 3} years. " * 4,
        "url": f"https://news.example.org/letters/{n}", "published_at": f"2025-03-{n:02d}"})
        for n, topic in enumerate(["bins", "lights", "trees", "buses", "parking"] * 5, 1))
        + "\n")
    empty.admin.ingest([str(src)])
    report = empty.admin.reindex(full=True)
    assert report.articles == 25 and empty.store.count() == report.chunks


def test_answers_kept_before_they_named_their_server_count_where_their_channel_is(
        tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE answers (message_id INTEGER PRIMARY KEY, channel_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,
            sources TEXT NOT NULL, abstained INTEGER NOT NULL, mode TEXT NOT NULL,
            created_at TEXT NOT NULL);
        INSERT INTO answers VALUES (1, 10, 5, 'when does the pier reopen?', '', '[]', 1,
            'extractive', '2025-01-01T00:00:00+00:00');
    """)
    db.close()
    state = State(path)
    try:
        state.record_answer(message_id=2, channel_id=20, user_id=5, question="any trams?",
                            answer="", sources=[], abstained=True, mode="extractive",
                            guild_id=200)
        here, there = AnswerScope(100, frozenset({10})), AnswerScope(200, frozenset({20}))
        assert state.unanswered_questions(scope=here) == [("when does the pier reopen?", 1)]
        assert state.unanswered_questions(scope=there) == [("any trams?", 1)]
        assert state.vote_totals(here) == (0, 0, 1) and state.vote_totals() == (0, 0, 2)
    finally:
        state.close()


def test_only_a_one_off_source_a_kill_left_empty_is_dropped_at_the_next_open(
        tmp_path: Path) -> None:
    """What a killed first load leaves (a file source recorded, nothing of it landed) is
    gone when the data dir is next opened; a loaded file and a followed feed whose first
    poll is still to come stay."""
    loaded = _jsonl(tmp_path / "loaded.jsonl", [1, 2])
    svc = make_services(tmp_path / "data", sample=False)
    try:
        svc.admin.ingest([str(loaded)])
        svc.state.add_source("https://news.example.org/feed.xml", "feed", watch=True)
        svc.state.add_source(str(tmp_path / "killed.jsonl"), "file")  # as a kill leaves it
    finally:
        svc.close()
    svc = make_services(tmp_path / "data", sample=False)
    try:
        assert [s["spec"] for s in svc.admin.source_list()] == [
            str(loaded), "https://news.example.org/feed.xml"]
    finally:
        svc.close()


_T = "2025-01-01T00:00:00+00:00"


def _old_state(path: Path, rows: str) -> None:
    """A state file as it was written before source URLs were recorded in canonical form:
    the URL kept as it was typed."""
    State(path).close()
    db = sqlite3.connect(path)
    db.executescript(rows.replace("$T", _T))
    db.close()


def _article_row(article_id: str, source: str) -> str:
    return (f"INSERT INTO articles VALUES ('{article_id}', NULL, '{source}', "
            f"'https://news.example.org/{article_id}', 'Pier {article_id}', NULL, NULL, NULL, "
            f"'The pier reopens.', 'h{article_id}', 1, '$T', '$T');")


def test_source_urls_recorded_as_typed_are_made_canonical_when_the_state_opens(
        tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    typed = "HTTPS://News.Example.org:443/harbour/feed.xml/?utm_source=rss"
    _old_state(path, f"""
        INSERT INTO sources (id, spec, kind, name, watch, added_at, polls)
            VALUES (1, '{typed}', 'feed', 'harbour', 1, '$T', 4);
        INSERT INTO sources (id, spec, kind, added_at) VALUES (2, '/srv/trams.jsonl', 'file', '$T');
        {_article_row("a1", typed)}
        INSERT INTO article_sources (article_id, source_id, guid, first_seen)
            VALUES ('a1', 1, 'item-1', '$T');
        INSERT INTO subscriptions (channel_id, source_id, created_at) VALUES (10, 1, '$T');
    """)
    canonical = "https://news.example.org/harbour/feed.xml"
    for _ in range(2):  # a second open changes nothing
        state = State(path)
        try:
            assert [(s.id, s.spec) for s in state.list_sources()] == [
                (1, canonical), (2, "/srv/trams.jsonl")]
            # Adding the feed again, as sources add records it now, is the source followed.
            assert state.add_source(canonical, "feed", watch=True).id == 1
            assert state.known_guids(1) == {"item-1": "a1"}
            assert [r["source_id"] for r in state.subscriptions()] == [1]
            assert state.get_article("a1").source == canonical  # type: ignore[union-attr]
            assert state.get_source(1).polls == 4  # type: ignore[union-attr]
        finally:
            state.close()


def test_a_source_added_again_since_under_its_canonical_url_is_merged_into_the_first(
        tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    typed, canonical = "HTTP://Harbour.example.org/feed.xml#top", "http://harbour.example.org/feed.xml"
    _old_state(path, f"""
        INSERT INTO sources (id, spec, kind, watch, added_at, polls)
            VALUES (1, '{typed}', 'feed', 1, '$T', 5);
        INSERT INTO sources (id, spec, kind, name, watch, added_at, polls)
            VALUES (2, '{canonical}', 'feed', 'harbour', 1, '$T', 1);
        {_article_row("a1", typed)}
        {_article_row("a2", canonical)}
        INSERT INTO article_sources (article_id, source_id, guid, first_seen) VALUES
            ('a1', 1, 'item-1', '$T'), ('a1', 2, 'item-1', '$T'), ('a2', 2, 'item-2', '$T');
        INSERT INTO subscriptions (id, channel_id, source_id, created_at) VALUES
            (1, 10, 1, '$T'), (2, 20, 1, '$T'), (3, 10, 2, '$T'), (4, 30, 2, '$T');
        INSERT INTO posts (channel_id, item_key, kind, subscription_id, nonce, payload,
            created_at) VALUES (10, 'a2', 'brief', 3, 'n', '{{}}', '$T');
        INSERT INTO brief_queue (article_id, source_id, queued_at) VALUES ('a2', 2, '$T');
    """)
    state = State(path)
    try:
        [source] = state.list_sources()
        assert (source.id, source.spec, source.name, source.polls) == (1, canonical, "harbour", 5)
        assert state.known_guids(1) == {"item-1": "a1", "item-2": "a2"}
        assert sorted((r["channel_id"], r["source_id"]) for r in state.subscriptions()) == [
            (10, 1), (20, 1), (30, 1)]
        assert state.get_post(10, "a2")["subscription_id"] == 1  # type: ignore[index]
        assert [r["source_id"] for r in state.queued_briefs()] == [1]
    finally:
        state.close()


def test_a_sync_summary_reads_as_a_sentence() -> None:
    from bot.core.admin import ReindexReport

    done = ReindexReport(full=False, dry_run=False, articles=14, added=14, chunks=15,
                         seconds=7.4)
    assert done.summary() == ("synced the store to the registry (14 articles): 14 added, "
                              "0 updated, 0 deleted; 15 chunks live, 7.4s")
    plan = ReindexReport(full=False, dry_run=True, articles=1, updated=1)
    assert plan.summary() == ("a sync of the store to the registry (1 article) would add 0, "
                              "update 1, delete 0; nothing was written")


def test_an_unknown_source_is_refused_naming_both_listings(tmp_path: Path) -> None:
    # Admins remove sources in Discord too (/feeds remove), where `newsbot sources` alone
    # points at a terminal they may not have; moderators subscribe there.
    svc = make_services(tmp_path / "data")
    try:
        for attempt in (lambda: svc.admin.remove_source("nope"),
                        lambda: svc.desk.subscribe(channel_id=1, source="nope")):
            with pytest.raises(NewsbotError) as err:
                attempt()
            assert str(err.value) == ("no source 'nope' is registered; `/feeds list` or "
                                      "`newsbot sources` lists them")
    finally:
        svc.close()
