"""Bad input through Discord: a clear short line or a safe result, and nothing written that
should not be. The bot runs in-process on the local Discord, which computes who a message
really pings and hides what Discord hides."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot import checks
from bot.core.language import ENGLISH_ONLY
from bot.render import clean_text
from tests.bot.conftest import OnDiscord, is_answer
from tests.fakes import ScriptedModel
from tests.support.discord_server import Channel, Interaction, LocalDiscord, User

Start = Callable[..., Awaitable[OnDiscord]]
NETFLIX_Q = "what did Netflix use generative AI for in The Eternaut?"


def asked(w: OnDiscord) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    real = w.services.ask.ask

    def spy(question: str, **kwargs: Any) -> Any:
        calls.append({"question": question, **kwargs})
        return real(question, **kwargs)

    w.services.ask.ask = spy  # type: ignore[method-assign]
    return calls


# -- mentions --------------------------------------------------------------------------------------


async def test_mentions_in_a_question_an_article_and_a_model_reply_ping_nobody(
    start_on_discord: Start, tmp_path: Path,
) -> None:
    w = await start_on_discord(answer_in_threads=False)
    ben = w.member("ben")
    role = w.server.add_role(w.guild, "zebra fans", mentionable=True)
    article = tmp_path / "ping.md"
    article.write_text(
        "---\ntitle: Moderators warn about mass pings\noutlet: Ping Post\n"
        "published_at: 2025-07-01\nurl: https://example.org/ping\n---\n"
        f"The zebra club channel saw a message saying @everyone and <@{ben.id}> and "
        f"<@&{role.id}> to ping the whole zebra club server at once.\n", encoding="utf-8")
    w.services.admin.ingest([str(article)])
    model = ScriptedModel(f"@everyone <@{ben.id}> <@&{role.id}> the zebra club message pinged "
                          "the whole server [1].")
    w.services.ask.model = model
    text = w.mention(f"@everyone <@{ben.id}> <@&{role.id}> what message did the zebra club "
                     "channel see?")
    question = w.server.say(w.member("ana"), w.news, text)
    assert question.pinged == {0, ben.id, role.id, w.server.bot.id}  # the member's own pings
    await w.answer_to(question)
    w.services.ask.model = None  # and once more, quoting the article itself
    second = w.server.say(w.member("cy"), w.news, w.mention("what did the zebra club channel "
                                                            "message say?"))
    await w.answer_to(second)
    assert model.prompts, "the model was asked"
    sent = w.server.bot_messages()
    assert sent and all(m.pinged == set() for m in sent)
    assert "<@" not in "".join(m.text() for m in sent)  # markup is never echoed as markup


# -- what a model may write -------------------------------------------------------------------


async def test_fences_spoilers_and_masked_links_in_a_model_reply_are_defused(
    start_on_discord: Start,
) -> None:
    w = await start_on_discord(answer_in_threads=False)
    reply = ("Netflix used generative AI for a building collapse ||in Buenos Aires|| [1]. "
             "It saved time [1]. ```python\nprint('left open') [1]")
    w.services.ask.model = ScriptedModel(reply)
    answer = await w.answer_to(w.server.say(w.member("dan"), w.news, w.mention(NETFLIX_Q)))
    text = answer.embeds[0]["description"]
    assert "||" not in text.replace("\\|\\|", "")  # no spoiler bar hides anything
    assert text.count("```") % 2 == 0  # a fence left open is closed
    masked = clean_text("see [the source](https://evil.example/x) [1]")
    assert "(<https://evil.example/x>)" in masked and "](" not in masked


# -- invisible, bidi and other-language questions ------------------------------------------------


async def test_invisible_and_bidi_characters_change_nothing(start_on_discord: Start) -> None:
    w = await start_on_discord(answer_in_threads=False)
    calls = asked(w)
    eve = w.member("eve")
    clean = await w.answer_to(w.server.say(eve, w.news, w.mention(NETFLIX_Q)))
    dirty_q = ("\u200bwhat did Net\u200dflix use gene\u00adrative AI for in "
               "\u202eThe\u202c \u2066Eternaut\u2069?\ufeff")
    dirty = await w.answer_to(w.server.say(w.member("fin"), w.news, w.mention(dirty_q)))
    normalised = w.services.ask.validate(calls[1]["question"])
    assert normalised == NETFLIX_Q
    assert dirty.embeds[0]["description"] == clean.embeds[0]["description"]
    assert dirty.embeds[0]["fields"] == clean.embeds[0]["fields"]


@pytest.mark.parametrize("question", [
    "Wofür hat Netflix bei Der Eternauta generative KI eingesetzt?",
    "Netflixはエル・エテルナウタで生成AIを何に使いましたか？",
    "لماذا استخدمت نتفليكس الذكاء الاصطناعي التوليدي في مسلسل الإيترناوتا؟",
])
async def test_a_question_in_another_language_gets_an_answer_or_an_honest_no(
    start_on_discord: Start, question: str,
) -> None:
    w = await start_on_discord(answer_in_threads=False)
    answer = await w.answer_to(w.server.say(w.member("gus"), w.news, w.mention(question)))
    text = answer.embeds[0]["description"]
    abstained = not any(f["name"].startswith("Sources") for f in answer.embeds[0]["fields"])
    assert not abstained or ENGLISH_ONLY in text, text


# -- privileged commands ---------------------------------------------------------------------------


def _dummy_options(spec: dict[str, Any], channel: Channel, user: User) -> dict[str, Any]:
    values = {3: "https://example.org/feed.xml", 4: 1, 5: True, 6: str(user.id),
              7: str(channel.id), 8: str(channel.guild_id), 10: 1.0}
    return {o["name"]: values[o["type"]] for o in spec.get("options") or []
            if o.get("required") and o["type"] in values}


def _privileged(w: OnDiscord) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, access, command payload) of every moderator or admin command the bot has."""
    out = []
    for cmd in w.bot.tree.walk_commands():
        access = checks.access_of(cmd)
        if access is None or not hasattr(cmd, "callback"):
            continue
        top = w.server._find_command(cmd.qualified_name.split()[0], w.guild.id)
        assert top is not None, cmd.qualified_name
        node = top.payload
        for part in cmd.qualified_name.split()[1:]:
            node = next(o for o in node["options"] if o["name"] == part)
        out.append((cmd.qualified_name, access, node))
    return out


def _state_rows(w: OnDiscord) -> dict[str, int]:
    db = sqlite3.connect(w.services.settings.state_path)
    try:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        return {t: db.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables}
    finally:
        db.close()


async def _refused(w: OnDiscord, inter: Interaction) -> str:
    msgs = await w.wait(lambda: w.server.responses(inter), "the refusal")
    assert all(m.ephemeral for m in msgs)  # only the member sees it
    return msgs[0].content


async def test_members_cannot_use_privileged_commands_in_a_guild_or_a_dm(
    start_on_discord: Start,
) -> None:
    w = await start_on_discord()
    await w.bot.tree.sync()  # global too, as `newsbot sync` does: what a DM would offer
    server: LocalDiscord = w.server
    member = w.member("hal")
    dm = server.dm_channel(member)
    commands = _privileged(w)
    assert {access for _, access, _ in commands} == {"mod", "admin"}
    before = _state_rows(w)
    public = lambda: [m for m in server.bot_messages() if not m.ephemeral]  # noqa: E731
    posted_before = len(public())
    for name, access, spec in commands:
        options = _dummy_options(spec, w.news, member)
        # Discord's own client neither shows these to a member nor offers them in a DM ...
        with pytest.raises(PermissionError):
            server.slash(member, w.news, name, **options)
        with pytest.raises(PermissionError):
            server.slash(member, dm, name, **options)
        # ... and where a server grants them to everyone anyway, or in a DM, the bot refuses.
        who = "moderators" if access == "mod" else "admins"
        for where in (w.news, dm):
            inter = server.slash(member, where, name, bypass_client_checks=True, **options)
            line = await _refused(w, inter)
            assert line == f"Only {who} can use this command.", (name, line)
    assert _state_rows(w) == before  # nothing written
    assert len(public()) == posted_before  # nothing posted in public
    assert not [m for m in public() if is_answer(m)]


async def test_ask_with_an_outlet_no_article_is_from_is_refused_naming_the_outlets(
    start_on_discord: Start,
) -> None:
    """A typo in /ask's source: one private line naming the outlets, as on the command line,
    not a public "no article matched" that /feedback stats counts as unanswered."""
    w = await start_on_discord(answer_in_threads=False)
    calls = asked(w)
    inter = w.server.slash(w.member("ana"), w.news, "ask",
                           question="any news on the eclipse?", source="Sample Wyre")
    (line,) = await w.wait(lambda: [m for m in w.server.responses(inter) if m.content],
                           "the refusal")
    assert line.ephemeral and not line.embeds
    assert line.content == ("no article is from an outlet named 'Sample Wyre'; the outlets "
                            "are: Sample Wire")
    assert calls == [] and w.services.feedback.stats().answers == 0
    inter = w.server.slash(w.member("bo"), w.news, "ask", question="any news on the eclipse?",
                           source="sample wire")
    assert "eclipse" in (await w.slash_answer(inter)).embeds[0]["description"]


async def test_subscribe_with_neither_a_source_nor_a_topic_says_so(
    start_on_discord: Start,
) -> None:
    w = await start_on_discord(answer_in_threads=False)
    mod = w.member("mia")
    w.server.add_role(w.guild, "desk", ["manage_messages"], members=[mod])
    inter = w.server.slash(mod, w.news, "brief subscribe", channel=str(w.news.id))
    (line,) = await w.wait(lambda: [m for m in w.server.responses(inter) if m.content],
                           "the refusal")
    assert line.content == "give a source to follow or a topic"
    inter = w.server.slash(mod, w.news, "brief subscribe", channel=str(w.news.id),
                           topic="eclipses", source="1")
    (line,) = await w.wait(lambda: [m for m in w.server.responses(inter) if m.content],
                           "the refusal")
    assert line.content == "give a source to follow or a topic, not both"
