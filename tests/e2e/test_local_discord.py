"""The local Discord behaves like Discord for discord.py's real HTTP client and gateway."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import discord
import pytest
from discord import app_commands

from tests.e2e.conftest import Probe, start_probe, stop_probe
from tests.support.discord_server import LocalDiscord


def _guild(server: LocalDiscord) -> Any:
    return next(iter(server.guilds.values()))


def _general(server: LocalDiscord) -> Any:
    return next(iter(_guild(server).channels.values()))


# -- connecting ----------------------------------------------------------------------------------


async def test_identify_ready_and_guild_create_fill_discord_py_cache(probe: Probe) -> None:
    server_guild_count = 1
    assert probe.readies == 1
    assert len(probe.guilds) == server_guild_count
    guild = probe.guilds[0]
    assert guild.me is not None and guild.me.id == probe.user.id  # type: ignore[union-attr]
    assert [c.name for c in guild.text_channels] == ["general"]
    assert guild.self_role is not None and guild.self_role.is_bot_managed()
    perms = guild.text_channels[0].permissions_for(guild.me)
    assert perms.send_messages and perms.create_public_threads and not perms.manage_threads


async def test_a_privileged_intent_not_enabled_in_the_portal_is_refused(
    point_discord_py: LocalDiscord,
) -> None:
    intents = discord.Intents(guilds=True, guild_messages=True, message_content=True)
    with pytest.raises(discord.PrivilegedIntentsRequired):
        await start_probe(point_discord_py, intents=intents)


async def test_a_wrong_token_fails_the_login(point_discord_py: LocalDiscord) -> None:
    client = Probe()
    with pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()
    assert point_discord_py.calls("GET", "/users/@me")[0].status == 401


# -- the message content rule --------------------------------------------------------------------


async def test_without_the_intent_only_messages_addressed_to_the_bot_carry_content(
    probe: Probe, point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    guild, general = _guild(server), _general(server)
    ana = server.add_member(guild, "ana")
    channel = probe.get_channel(general.id)
    assert isinstance(channel, discord.TextChannel)
    answer = await channel.send("an answer from the bot")
    bot_reply = server.messages[answer.id]

    cases = [
        (server.say(ana, general, "just chatting"), ""),
        (server.say(ana, general, f"<@{server.bot.id}> what happened?"), "mention"),
        (server.say(ana, general, "more please", reply_to=bot_reply, ping=True), "ping reply"),
        (server.say(ana, general, "more please", reply_to=bot_reply, ping=False), ""),
        (server.dm(ana, "hello in private"), "dm"),
    ]
    await server.wait_async(lambda: len(probe.received) >= 6, what="six messages")
    got = {m.id: m for m in probe.received}
    for sent, why in cases:
        assert bool(got[sent.id].content) == bool(why), (sent.content, why)
    # Without content the bot still sees that a reply without a ping is a reply to it.
    no_ping = got[cases[3][0].id]
    assert no_ping.reference is not None and no_ping.reference.message_id == answer.id
    assert got[cases[1][0].id].mentions[0].id == server.bot.id


async def test_a_reply_to_a_slash_command_response_carries_no_content(
    probe: Probe, point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    guild, general = _guild(server), _general(server)
    ana = server.add_member(guild, "ana")
    await _register(probe, server)

    async def respond(interaction: discord.Interaction[Any]) -> None:
        await interaction.response.send_message("pong")

    probe.on_interaction_hook = respond
    inter = server.slash(ana, general, "ping")
    response = await server.wait_async(lambda: server.responses(inter), what="the response")
    reply = server.say(ana, general, "thanks", reply_to=response[0], ping=True)
    seen = await server.wait_async(
        lambda: next((m for m in probe.received if m.id == reply.id), None), what="the reply")
    assert seen.content == ""
    assert server.bot.id in server.messages[reply.id].mentions  # pinged, yet no content


async def test_with_the_intent_every_message_carries_content(
    point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    server.message_content_enabled = True
    intents = discord.Intents(guilds=True, guild_messages=True, message_content=True)
    client = await start_probe(server, intents=intents)
    try:
        ana = server.add_member(_guild(server), "ana")
        msg = server.say(ana, _general(server), "just chatting")
        seen = await server.wait_async(lambda: client.received, what="the message")
        assert seen[0].id == msg.id and seen[0].content == "just chatting"
    finally:
        await stop_probe(client)


async def test_history_over_rest_follows_the_portal_switch(
    probe: Probe, point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    ana = server.add_member(_guild(server), "ana")
    general = _general(server)
    server.say(ana, general, "first, unaddressed")
    server.say(ana, general, f"<@{server.bot.id}> second, addressed")
    channel = probe.get_channel(general.id)
    assert isinstance(channel, discord.TextChannel)
    history = [m.content async for m in channel.history(limit=10)]
    assert history == [f"<@{server.bot.id}> second, addressed", ""]
    server.message_content_enabled = True
    history = [m.content async for m in channel.history(limit=10)]
    assert history[-1] == "first, unaddressed"


# -- sending -------------------------------------------------------------------------------------


async def test_mentions_ping_only_what_allowed_mentions_allow(
    probe: Probe, point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    guild = _guild(server)
    ana = server.add_member(guild, "ana")
    role = server.add_role(guild, "readers", mentionable=True)
    channel = probe.get_channel(_general(server).id)
    assert isinstance(channel, discord.TextChannel)
    text = f"@everyone <@{ana.id}> <@&{role.id}> look"
    loud = await channel.send(text, allowed_mentions=discord.AllowedMentions.all())
    quiet = await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
    assert server.messages[loud.id].pinged == {0, ana.id, role.id}
    assert server.messages[quiet.id].pinged == set()
    assert quiet.content == text  # the text itself is untouched


async def test_discord_limits_are_enforced(probe: Probe, point_discord_py: LocalDiscord) -> None:
    channel = probe.get_channel(_general(point_discord_py).id)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as too_long:
        await channel.send("x" * 2001)
    assert too_long.value.status == 400 and too_long.value.code == 50035
    embed = discord.Embed(title="t" * 257)
    with pytest.raises(discord.HTTPException):
        await channel.send(embed=embed)
    fields = discord.Embed(description="d" * 4000)
    for i in range(3):
        fields.add_field(name=f"f{i}", value="v" * 1000)
    with pytest.raises(discord.HTTPException) as too_big:
        await channel.send(embed=fields)
    assert "6000" in str(too_big.value)


async def test_a_repeated_nonce_returns_the_earlier_message(
    probe: Probe, point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    general = _general(server)
    channel = probe.get_channel(general.id)
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("only once", nonce="brief:42:7")
    again = await channel.send("only once", nonce="brief:42:7")
    assert again.id == first.id
    assert [m.content for m in server.channel_messages(general)] == ["only once"]


async def test_missing_permissions_answer_403_with_discords_codes(
    probe: Probe, point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    guild = _guild(server)
    quiet = server.add_channel(guild, "quiet")
    hidden = server.add_channel(guild, "hidden")
    server.set_overwrite(quiet, server.bot_role(guild), deny=["send_messages"])
    server.set_overwrite(hidden, guild.everyone, deny=["view_channel"])
    await server.wait_async(lambda: probe.get_channel(hidden.id), what="the channels")
    with pytest.raises(discord.Forbidden) as no_send:
        await probe.http.send_message(quiet.id, params=_text("hello"))
    assert no_send.value.code == 50013
    with pytest.raises(discord.Forbidden) as no_view:
        await probe.http.send_message(hidden.id, params=_text("hello"))
    assert no_view.value.code == 50001
    # The cache agrees: discord.py sees the overwrite through CHANNEL_UPDATE.
    channel = probe.get_channel(quiet.id)
    assert isinstance(channel, discord.TextChannel)
    assert not channel.permissions_for(channel.guild.me).send_messages


def _text(content: str) -> Any:
    return discord.http.handle_message_parameters(content=content)


# -- faults --------------------------------------------------------------------------------------


async def test_a_429_with_via_is_retried_and_without_it_is_raised(
    probe: Probe, point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    general = _general(server)
    channel = probe.get_channel(general.id)
    assert isinstance(channel, discord.TextChannel)
    route = "/channels/{channel_id}/messages"
    server.fail("POST", route, 429, retry_after=0.05, channel_id=general.id)
    sent = await channel.send("after a wait")
    assert [r.status for r in server.calls("POST", route)] == [429, 200]
    assert server.messages[sent.id].content == "after a wait"

    server.fail("POST", route, 429, retry_after=0.05, via=False)
    with pytest.raises(discord.HTTPException) as raised:
        await channel.send("never")
    assert raised.value.status == 429


async def test_scripted_404_and_5xx(probe: Probe, point_discord_py: LocalDiscord) -> None:
    server = point_discord_py
    general = _general(server)
    channel = probe.get_channel(general.id)
    assert isinstance(channel, discord.TextChannel)
    route = "/channels/{channel_id}/messages"
    server.fail("POST", route, 404)
    with pytest.raises(discord.NotFound) as missing:
        await channel.send("gone")
    assert missing.value.code == 10003
    server.fail("POST", route, 503)  # not one discord.py retries
    with pytest.raises(discord.DiscordServerError):
        await channel.send("down")
    assert server.channel_messages(general) == []


async def test_a_rate_limit_delivers_every_message_once(
    probe: Probe, point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    general = _general(server)
    limit = server.rate_limit("POST", "/channels/{channel_id}/messages", limit=3, per=0.2)
    channel = probe.get_channel(general.id)
    assert isinstance(channel, discord.TextChannel)
    await asyncio.gather(*(channel.send(f"message {i}") for i in range(8)))
    texts = sorted(m.content for m in server.channel_messages(general))
    assert texts == sorted(f"message {i}" for i in range(8))
    # No window let more than the limit through.
    per_window = Counter(start for _, start in limit.granted)
    assert len(limit.granted) == 8 and max(per_window.values()) <= 3


async def test_unknown_routes_are_recorded(probe: Probe, point_discord_py: LocalDiscord) -> None:
    with pytest.raises(discord.NotFound):
        await probe.http.request(discord.http.Route("GET", "/voice/regions"))
    assert [r.path for r in point_discord_py.unhandled] == ["/api/v10/voice/regions"]


# -- interactions --------------------------------------------------------------------------------


async def _register(probe: Probe, server: LocalDiscord) -> app_commands.CommandTree[Any]:
    tree = app_commands.CommandTree(probe)

    @tree.command(name="ping", description="answers pong")
    async def ping(interaction: discord.Interaction[Any]) -> None:  # handled by the probe
        pass

    @tree.command(name="say", description="says it")
    @app_commands.describe(text="what to say")
    async def say(interaction: discord.Interaction[Any],
                  text: app_commands.Range[str, 1, 20]) -> None:
        pass

    @tree.command(name="secret", description="for moderators")
    @app_commands.default_permissions(manage_messages=True)
    @app_commands.guild_only()
    async def secret(interaction: discord.Interaction[Any]) -> None:
        pass

    await tree.sync()
    return tree


async def test_a_deferred_interaction_is_answered_and_timed(
    probe: Probe, point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    general = _general(server)
    ana = server.add_member(_guild(server), "ana")
    await _register(probe, server)

    async def respond(interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content="the answer")
        await interaction.followup.send("and more", wait=True)

    probe.on_interaction_hook = respond
    inter = server.slash(ana, general, "ping")
    responses = await server.wait_async(lambda: len(server.responses(inter)) == 2
                                        and server.responses(inter), what="two responses")
    assert [m.content for m in responses] == ["the answer", "and more"]
    assert responses[0].interaction_id == inter.id
    assert inter.response_type == 5 and inter.response_latency is not None
    assert inter.response_latency < 3.0  # Discord's deadline
    # The payload names the registered command, so discord.py's tree resolves it.
    command = probe.interactions[0].command
    assert command is not None and command.name == "ping"


async def test_a_late_or_second_callback_is_refused(point_discord_py: LocalDiscord) -> None:
    server = point_discord_py
    server.interaction_deadline_s = 0.1
    client = await start_probe(server)
    errors: list[BaseException] = []
    try:
        general = _general(server)
        ana = server.add_member(_guild(server), "ana")
        await _register(client, server)

        async def late(interaction: discord.Interaction[Any]) -> None:
            await asyncio.sleep(0.3)
            try:
                await interaction.response.defer()
            except discord.HTTPException as exc:
                errors.append(exc)

        client.on_interaction_hook = late
        server.slash(ana, general, "ping")
        await server.wait_async(lambda: errors, what="the refusal")
        assert isinstance(errors[0], discord.NotFound) and errors[0].code == 10062
    finally:
        await stop_probe(client)


async def test_slash_refuses_what_discords_client_would_not_send(
    probe: Probe, point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    guild, general = _guild(server), _general(server)
    ana = server.add_member(guild, "ana")
    mods = server.add_role(guild, "mods", ["manage_messages"])
    mod = server.add_member(guild, "mod", roles=[mods])
    await _register(probe, server)
    with pytest.raises(ValueError, match="max_length"):
        server.slash(ana, general, "say", text="x" * 21)
    with pytest.raises(ValueError, match="not registered"):
        server.slash(ana, general, "nope")
    with pytest.raises(PermissionError, match="hidden"):
        server.slash(ana, general, "secret")
    with pytest.raises(PermissionError, match="DMs"):
        server.slash(ana, server.dm_channel(ana), "secret")
    assert server.slash(mod, general, "secret").id
    # A server that opened the command to everyone lets it through; the bot must check.
    assert server.slash(ana, general, "secret", bypass_client_checks=True).id


async def test_a_modal_is_checked_shown_and_submitted_as_discord_does(
    probe: Probe, point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    general = _general(server)
    ana = server.add_member(_guild(server), "ana")
    await _register(probe, server)
    errors: list[discord.HTTPException] = []
    submitted: list[str] = []

    class Ask(discord.ui.Modal, title="Tell us"):
        answer: discord.ui.TextInput[Any] = discord.ui.TextInput(label="Answer", max_length=10,
                                                                 default="hi")

        async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
            submitted.append(self.answer.value)
            try:  # a modal cannot answer a modal submit
                await interaction.response.send_modal(Ask())
            except discord.HTTPException as exc:
                errors.append(exc)
            await interaction.response.send_message("thanks")

    async def respond(interaction: discord.Interaction[Any]) -> None:
        if interaction.type is not discord.InteractionType.application_command:
            return
        try:
            await interaction.response.send_modal(Ask(title="x" * 46))  # over Discord's 45
        except discord.HTTPException as exc:
            errors.append(exc)
        await interaction.response.send_modal(Ask())

    probe.on_interaction_hook = respond
    opened = server.slash(ana, general, "ping")
    modal = await server.wait_async(lambda: opened.modal, what="the modal")
    assert [(e.status, e.code) for e in errors] == [(400, 50035)]
    (row,) = modal["components"]
    (text,) = row["components"]
    assert (text["value"], text["max_length"]) == ("hi", 10)
    with pytest.raises(ValueError, match="max_length"):
        server.submit_modal(ana, opened, {text["custom_id"]: "x" * 11})
    with pytest.raises(ValueError, match="required"):
        server.submit_modal(ana, opened, {text["custom_id"]: ""})
    submit = server.submit_modal(ana, opened, {text["custom_id"]: "hello"})
    (thanks,) = await server.wait_async(lambda: server.responses(submit), what="the answer")
    assert submitted == ["hello"] and thanks.content == "thanks"
    assert submit.type == 5 and [(e.status, e.code) for e in errors[1:]] == [(400, 50035)]


# -- threads -------------------------------------------------------------------------------------


async def test_a_thread_opened_on_a_message(probe: Probe, point_discord_py: LocalDiscord) -> None:
    server = point_discord_py
    general = _general(server)
    ana = server.add_member(_guild(server), "ana")
    question = server.say(ana, general, f"<@{server.bot.id}> a question")
    seen = await server.wait_async(lambda: probe.received, what="the question")
    thread = await seen[0].create_thread(name="a question")
    assert thread.id == question.id and thread.owner_id == server.bot.id
    await server.wait_async(lambda: probe.get_channel(thread.id), what="THREAD_CREATE")
    await thread.send("the answer")
    follow = server.say(ana, server.channel(thread.id), "and then?")  # type: ignore[arg-type]
    got = await server.wait_async(
        lambda: next((m for m in probe.received if m.id == follow.id), None), what="follow-up")
    assert isinstance(got.channel, discord.Thread) and got.content == ""  # no intent
    assert [m.content for m in server.replies_to(question)] == ["the answer"]
    with pytest.raises(discord.HTTPException) as twice:
        await seen[0].create_thread(name="again")
    assert twice.value.code == 160004


async def test_a_thread_needs_send_messages_in_threads(
    probe: Probe, point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    guild, general = _guild(server), _general(server)
    server.set_overwrite(general, server.bot_role(guild), deny=["send_messages_in_threads"])
    channel = probe.get_channel(general.id)
    assert isinstance(channel, discord.TextChannel)
    starter = await channel.send("starter")  # Send Messages still works in the channel
    thread = await starter.create_thread(name="t")
    with pytest.raises(discord.Forbidden):
        await thread.send("inside")


# -- the gateway ---------------------------------------------------------------------------------


async def test_reconnect_resumes_and_replays_what_was_missed(
    probe: Probe, point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    ana = server.add_member(_guild(server), "ana")
    server.drop(code=4000)
    missed = server.say(ana, _general(server), f"<@{server.bot.id}> while away")
    await server.wait_async(lambda: probe.resumes == 1, what="RESUMED")
    await server.wait_async(lambda: any(m.id == missed.id for m in probe.received),
                            what="the missed message")
    assert probe.readies == 1 and server.identifies == 1
    assert server.gateway_urls[-1].startswith(server.resume_gateway_url)
    server.reconnect()  # op 7
    await server.wait_async(lambda: probe.resumes == 2, what="the second RESUMED")


async def test_a_session_that_cannot_resume_identifies_again(
    probe: Probe, point_discord_py: LocalDiscord,
) -> None:
    server = point_discord_py
    server.drop(code=4000, resumable=False)
    await server.wait_async(lambda: probe.readies == 2, what="a second READY")
    assert server.identifies == 2 and probe.resumes == 0
    assert len(probe.guilds) == 1
