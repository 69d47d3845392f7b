"""The briefs' operations for the command line and the service (see bot/core/operations.py):
preview and post a brief, and manage subscriptions. Moderator operations; the Discord cog
passes the member's rights in the Actor, and these run the same checks for everyone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.core.models import NewsbotError

if TYPE_CHECKING:
    from bot.core.operations import Args, Context, Result


def _channel(args: Args) -> int:
    try:
        channel = int(args["channel_id"])
    except (KeyError, TypeError, ValueError):
        raise NewsbotError("give the channel as its numeric id (--channel ID)") from None
    if channel <= 0:
        raise NewsbotError("give the channel as its numeric id (--channel ID)")
    return channel


def _guild_channels(args: Args) -> list[int]:
    """The channels of the server a Discord command came from (``guild_channels``, as the
    bot sees them): subscriptions made with no server that post there are that server's."""
    return [int(c) for c in args.get("guild_channels") or ()]


def _claim(ctx: Context, args: Args) -> None:
    if args.get("guild_id") is not None and args.get("guild_channels"):
        ctx.services.desk.claim(int(args["guild_id"]), _guild_channels(args))


def brief_preview(ctx: Context, args: Args) -> Result:
    brief = ctx.services.briefs.preview(str(args.get("article") or ""))
    return {**brief.to_json(), "mode": brief.mode, "notes": brief.notes}


def brief_post(ctx: Context, args: Args) -> Result:
    """Record a brief for delivery to a channel (sent by the running bot)."""
    channel = _channel(args)
    services = ctx.services
    article = services.briefs.resolve(str(args.get("article") or ""))
    brief = services.briefs.write(article)
    for name in ("headline", "synopsis"):
        value = " ".join(str(args.get(name) or "").split())
        if value:
            setattr(brief, name, value[:4000 if name == "synopsis" else 256])
    key, recorded = services.desk.post_article(article, channel, brief=brief)
    row = services.state.get_post(channel, key)
    return {"channel_id": channel, "item_key": key, "recorded": recorded,
            "status": row["status"] if row else None,
            "message_id": row["message_id"] if row else None, "brief": brief.to_json()}


def subscriptions_add(ctx: Context, args: Args) -> Result:
    _claim(ctx, args)
    keywords = args.get("keywords") or []
    if isinstance(keywords, str):
        keywords = [k.strip() for k in keywords.split(",")]
    sub = ctx.services.desk.subscribe(
        channel_id=_channel(args), guild_id=args.get("guild_id"), source=args.get("source"),
        topic=args.get("topic"), keywords=keywords, daily_cap=args.get("daily_cap"),
        mode=args.get("mode") or "immediate", digest_hour=int(args.get("digest_hour") or 8),
        tz=args.get("tz") or None, created_by=ctx.actor.name)
    return sub.to_json()


def brief_timezone(ctx: Context, args: Args) -> Result:
    try:
        guild_id = int(args["guild_id"])
    except (KeyError, TypeError, ValueError):
        raise NewsbotError("a time zone is set for a server (its numeric id)") from None
    tz = str(args.get("tz") or "").strip()
    _claim(ctx, args)
    moved = ctx.services.desk.set_timezone(guild_id, tz)
    return {"guild_id": guild_id, "tz": tz, "subscriptions": moved}


def subscriptions_remove(ctx: Context, args: Args) -> Result:
    try:
        sub_id = int(args["id"])
    except (KeyError, TypeError, ValueError):
        raise NewsbotError("give the subscription's number (see `subscriptions list`)") \
            from None
    _claim(ctx, args)
    return ctx.services.desk.unsubscribe(sub_id, guild_id=args.get("guild_id")).to_json()


def subscriptions_list(ctx: Context, args: Args) -> Result:
    subs = ctx.services.desk.subscriptions(guild_id=args.get("guild_id"),
                                           channel_id=args.get("channel_id"),
                                           guild_channels=_guild_channels(args))
    labels = {r.id: r.label for r in ctx.services.state.list_sources()}
    out: list[dict[str, Any]] = []
    for s in subs:
        item = s.to_json()
        item["describe"] = s.describe(labels.get(s.source_id) if s.source_id else None)
        out.append(item)
    return {"subscriptions": out, "queue": ctx.services.desk.queue()}
