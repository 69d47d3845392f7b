"""The store: one writer per embedded path, and the Chroma server path."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.core.models import StoreError
from bot.core.services import build_services
from retrieval.store import EF_SEARCH
from tests.fakes import FakeEmbedder, make_services, make_settings
from tests.support.chroma_server import ChromaServer


def test_second_process_is_refused_with_the_holder_named(tmp_path: Path) -> None:
    svc = make_services(tmp_path / "data")
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from bot.core.models import StoreError
        from tests.fakes import make_services
        try:
            make_services(Path({str(tmp_path / "data")!r}), sample=False)
        except StoreError as exc:
            print(exc)
            sys.exit(3)
        sys.exit(0)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parents[2])
    svc.close()
    assert proc.returncode == 3, proc.stderr
    assert "in use by pid" in proc.stdout and "NEWSBOT_CHROMA_URL" in proc.stdout
    # The first process's store is intact.
    again = make_services(tmp_path / "data", sample=False)
    assert again.admin.status()["chunks"] > 0
    again.close()


def test_second_open_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    svc = make_services(tmp_path / "data", sample=False)
    with pytest.raises(StoreError, match="in use"):
        build_services(make_settings(tmp_path / "data"), embedder=FakeEmbedder())
    svc.close()


def _text_rows(data_dir: Path) -> dict[str, int]:
    """Rows per collection in the embedded store's chunk text file."""
    [db] = data_dir.rglob("chunk_texts.sqlite3")
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT collection, count(*) FROM chunk_text GROUP BY 1"))


def test_embedded_store_keeps_texts_beside_chroma_and_in_step(tmp_path: Path) -> None:
    svc = make_services(tmp_path / "data")
    live = svc.store.collection_name
    stored = svc.store._collection.get(limit=5, include=["documents"])
    assert stored["ids"] and stored["documents"] == [None] * len(stored["ids"])
    assert _text_rows(tmp_path / "data") == {live: svc.store.count()}
    assert all(c.text for c in svc.store.iter_chunks())
    assert svc.store._collection.configuration_json["hnsw"]["ef_search"] == EF_SEARCH
    assert "Buenos Aires" in svc.ask.ask("what did Netflix use AI for in The Eternaut?").text

    victim = next(svc.state.iter_articles()).id
    svc.store.delete_articles([victim])
    assert _text_rows(tmp_path / "data") == {live: svc.store.count()}

    # A rebuild replaces the collection; the old collection's texts go with it.
    svc.admin.reindex(full=True)
    assert svc.store.collection_name != live
    assert _text_rows(tmp_path / "data") == {svc.store.collection_name: svc.store.count()}
    svc.close()


def test_unreachable_chroma_server_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot reach the Chroma server"):
        build_services(make_settings(tmp_path / "d", chroma_url="http://127.0.0.1:9"),
                       embedder=FakeEmbedder())


@pytest.mark.integration
def test_two_processes_share_a_chroma_server(tmp_path: Path, chroma_server: ChromaServer) -> None:
    url = f"http://{chroma_server.host}:{chroma_server.port}"
    writer = make_services(tmp_path / "a", chroma_url=url, collection="shared-news")
    reader = make_services(tmp_path / "b", sample=False, chroma_url=url,
                           collection="shared-news")
    answer = reader.ask.ask("what did Netflix use AI for in The Eternaut?")
    assert not answer.abstained and "Buenos Aires" in answer.text
    assert reader.admin.status()["chunks"] == writer.admin.status()["chunks"]

    # The writer adds a story and then rebuilds the store; the reader follows both.
    story = tmp_path / "story.md"
    story.write_text("---\ntitle: Glass bridge opens over the Vltava gorge\n"
                     "url: https://news.example.org/glass-bridge\npublished_at: 2025-03-02\n---\n"
                     "A glass footbridge over the Vltava gorge opened to walkers on Sunday.\n")
    writer.admin.ingest([str(story)])
    writer.admin.reindex(full=True)
    reader.store.version(max_age_s=0)
    answer = reader.ask.ask("when did the glass footbridge over the Vltava gorge open?")
    assert not answer.abstained and answer.sources[0].title.startswith("Glass bridge")
    assert reader.store.collection_name == writer.store.collection_name
    writer.close()
    reader.close()


@pytest.mark.integration
async def test_a_data_dir_that_reads_a_shared_store_leaves_it_as_its_keeper_made_it(
        tmp_path: Path, chroma_server: ChromaServer) -> None:
    """A second bot process reads the store another data dir built on a Chroma server. Its
    own registry lacks the keeper's articles: its service's start-up sync deleted them all,
    and dropped the keeper's rebuild under way. Writes from it are refused in one line."""
    import asyncio

    from bot.core.models import NewsbotError
    from bot.service import NewsService

    url = chroma_server.url
    keeper = make_services(tmp_path / "a", chroma_url=url, collection="kept-news")
    chunks = keeper.store.count()
    staging = keeper.store.begin_rebuild()  # the keeper's `reindex --full`, under way
    reader = make_services(tmp_path / "b", sample=False, chroma_url=url,
                           collection="kept-news")
    svc = NewsService(reader, tick_s=3600, control=False)
    await svc.start()
    for _ in range(200):
        if not svc._busy:  # the start-up work is done
            break
        await asyncio.sleep(0.05)
    await svc.stop()
    reader = make_services(tmp_path / "b", sample=False, chroma_url=url,
                           collection="kept-news")
    assert keeper.store.count() == chunks
    assert staging.name in [c.name for c in chroma_server.client().list_collections()]
    story = tmp_path / "story.md"
    story.write_text("---\ntitle: Ferry timetable changes\nurl: https://news.example.org/f\n"
                     "published_at: 2025-03-02\n---\nThe ferry runs hourly from Monday.\n")
    for write in (lambda: reader.admin.reindex(), lambda: reader.admin.ingest([str(story)])):
        with pytest.raises(NewsbotError, match="kept by another newsbot data dir"):
            write()
    assert keeper.store.count() == chunks and reader.state.counts()[0] == 0
    assert not reader.ask.ask("what did Netflix use AI for in The Eternaut?").abstained
    keeper.store.abort_rebuild(staging)
    reader.close()
    keeper.close()


def test_a_collection_base_that_begins_another_leaves_the_other_alone(tmp_path: Path) -> None:
    """NEWSBOT_COLLECTION "news" beside "news-sports" (two bots on one Chroma server, or a
    setting changed back): neither takes the other's collection as its own or drops it."""
    sports = make_services(tmp_path / "data", collection="news-sports")
    before = sports.admin.status()
    sports.close()
    news = make_services(tmp_path / "data", sample=False, collection="news")
    assert news.admin.status()["chunks"] == 0  # a store of its own, empty
    news.admin.reindex(full=True)
    news.close()
    sports = make_services(tmp_path / "data", sample=False, collection="news-sports")
    after = sports.admin.status()
    assert (after["collection"], after["chunks"]) == (before["collection"], before["chunks"])
    assert not sports.ask.ask("what did Netflix use AI for in The Eternaut?").abstained
    sports.close()
