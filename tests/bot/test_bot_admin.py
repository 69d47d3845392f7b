"""Admin commands in Discord: /feeds add|remove|list and /reindex, at every layer."""

from __future__ import annotations

import sys
import threading
from typing import Any

import discord
import pytest

from bot import checks
from bot.core.operations import NotPermitted
from tests.bot.discord_double import Harness, make_interaction
from tests.fakes import FakeEmbedder
from tests.support.feeds import numbered_items, rss
from tests.support.http import StaticServer

ADMIN = discord.Permissions(manage_guild=True)
MOD = discord.Permissions(manage_messages=True)


def _cog(h: Harness) -> Any:
    cog = h.bot.get_cog("Admin")
    assert cog is not None
    return cog


async def test_a_member_is_refused_by_the_check_and_again_by_the_service(
        harness: Harness) -> None:
    h = harness
    cog = _cog(h)
    for perms in (discord.Permissions.none(), MOD):
        rec = make_interaction(h, permissions=perms)
        # Discord hides the command (default permissions), the runtime check refuses ...
        for command in (cog.feeds_add, cog.feeds_remove, cog.feeds_list, cog.reindex):
            with pytest.raises(checks.NotAllowed):
                await command.checks[0](rec.interaction)
        # ... and if a guild's overrides let the call through, the service refuses it.
        with pytest.raises(NotPermitted):
            await cog.feeds_list.callback(cog, rec.interaction)
        rec = make_interaction(h, permissions=perms)
        collection = h.services.store.collection_name
        await cog.reindex.callback(cog, rec.interaction, True, False)
        assert "only admins can do that" in (rec.original.content or "")
        assert h.services.store.collection_name == collection
    # In a DM there is no server to administer.
    rec = make_interaction(h, permissions=ADMIN, guild=False)
    with pytest.raises(checks.NotAllowed):
        await cog.feeds_add.checks[0](rec.interaction)


@pytest.mark.usefixtures("allow_private_urls")
async def test_a_feed_followed_by_its_keyed_address_is_shown_with_the_key_hidden(
        harness: Harness) -> None:
    h = harness
    cog = _cog(h)
    with StaticServer() as http:
        url = http.add("/paid.xml?token=s3cret", rss(numbered_items(0, 1)),
                       content_type="application/rss+xml")
        rec = make_interaction(h, permissions=ADMIN)
        await cog.feeds_add.callback(cog, rec.interaction, url, None, None)
    [line] = rec.ephemeral
    assert "/paid.xml?token=REDACTED" in line and "s3cret" not in line
    assert "First fetch: 1 new article stored" in line  # not "1 new articles"
    assert h.services.state.list_sources()[-1].spec == url  # stored as given


@pytest.mark.usefixtures("allow_private_urls")
async def test_an_admin_follows_lists_and_removes_a_feed(harness: Harness) -> None:
    h = harness
    cog = _cog(h)
    with StaticServer() as http:
        url = http.add("/feed.xml", rss(numbered_items(0, 3, long_text=True)),
                       content_type="application/rss+xml")
        rec = make_interaction(h, permissions=ADMIN)
        await cog.feeds_add.callback(cog, rec.interaction, url, "harbour", 15)
    [line] = rec.ephemeral
    assert "Following **harbour**" in line and "every 15 min" in line
    assert "3 new articles" in line and f"<{url}>" in line

    rec = make_interaction(h, permissions=ADMIN)
    choices = await cog._source_choices(rec.interaction, "harb")
    assert [c.name for c in choices] == [f"{choices[0].value} · harbour"]
    member = make_interaction(h)
    assert await cog._source_choices(member.interaction, "") == []  # nothing shown to members

    rec = make_interaction(h, permissions=ADMIN)
    await cog.feeds_list.callback(cog, rec.interaction)
    [embed] = rec.ephemeral_embeds
    assert "harbour" in embed.description and "ok" in embed.description

    rec = make_interaction(h, permissions=ADMIN)
    await cog.feeds_remove.callback(cog, rec.interaction, choices[0].value)
    assert "3 articles left the store" in rec.ephemeral[0]


async def test_reindex_edits_one_message_with_counts_then_the_summary(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    cog = _cog(h)
    # The extension's own module: load_extension executes a fresh copy of it.
    monkeypatch.setattr(sys.modules[type(cog).__module__], "EDIT_EVERY_S", 0.05)
    release = threading.Event()

    class Slow(FakeEmbedder):
        def embed_documents(self, texts):  # type: ignore[no-untyped-def]
            release.wait(0.5)
            return super().embed_documents(texts)

    h.services.admin.target_embedder = Slow()
    rec = make_interaction(h, permissions=ADMIN)
    await cog.reindex.callback(cog, rec.interaction, True, False)
    edits = [s for s in h.http.sent if s.message_id == rec.original.id]
    contents = [s.payload.get("content") or "" for s in edits]
    assert any(c.startswith("Reindex · rebuild") for c in contents), contents
    assert contents[-1].startswith("Done: reindexed 12 articles")
    assert len({s.message_id for s in edits}) == 1  # one message, edited

    rec = make_interaction(h, permissions=ADMIN)
    await cog.reindex.callback(cog, rec.interaction, False, True)
    assert "the store matches the registry" in (rec.original.content or "")
