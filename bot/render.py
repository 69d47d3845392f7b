"""Answers and reports as Discord embeds that always fit Discord's limits.

Pure functions: nothing here talks to Discord. Every text that came from a user, an article
or a model goes through ``clean_text`` so a masked link cannot disguise its target, links do
not unfurl and a stray code fence cannot swallow the rest of a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import discord

from bot.core.models import Answer, Source, counted, origin_label, redact_url, source_label
from retrieval.timeparse import by_day

# Discord's limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FIELD_COUNT_LIMIT = 25
FOOTER_LIMIT = 2048
MESSAGE_EMBEDS_LIMIT = 6000  # all embeds of one message together

MAX_SOURCES = 10  # listed under an answer; more would bury the answer itself
SOURCE_TITLE_CHARS = 120
SOURCE_URL_CHARS = 400  # a longer URL is shown as its title only

ANSWER_COLOUR = discord.Colour.blurple()
ABSTAIN_COLOUR = discord.Colour.light_grey()
PROGRESS_CURSOR = " ▌"
PROGRESS_FOOTER = "Writing… sources follow when the answer is complete."
INTERRUPTED_TEXT = ("This answer was interrupted: I was restarted while writing it, so it was "
                    "never finished. Please ask again (mention me or use /ask) and I'll answer "
                    "it in full.")
INTERRUPTED_FOOTER = "Interrupted by a restart · not answered"
ELLIPSIS = "…"


class SourceSummaryLike(Protocol):
    """What ``/sources`` shows for one outlet (``services.admin.sources()`` items)."""

    outlet: str
    articles: int
    newest: datetime | None


class FeedbackStatsLike(Protocol):
    """What ``/feedback stats`` shows (``services.feedback.stats()``)."""

    up: int
    down: int
    answers: int
    unanswered: list[tuple[str, int]]
    most_downvoted: list[tuple[str, str, int]]


# --- text ----------------------------------------------------------------------------------

_MASKED_LINK = re.compile(r"\[([^\[\]\n]{0,300})\]\(\s*<?([^\s()<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# A bare http(s) URL not already wrapped in <...>; trailing punctuation stays outside.
_BARE_URL = re.compile(r"(?<![<\w])(https?://[^\s<>]*[^\s<>.,;:!?'\")\]])")
# Discord's own link syntax (simple-markdown's) is wider than the form above: a label may
# hold brackets ("[a [b]]") or a line break, a target parentheses ("/a(b)") or a quoted
# title. What they all share is "](": a space there leaves text that is never a link.
_LINK_JOIN = re.compile(r"\]\(")
_FENCE = re.compile(r"```([^\s`]*)")
_SENTENCE_END = re.compile(r"[.!?…][\"')\]»”]*(?:\s+)")


_USER_MENTION = re.compile(r"<@!?(\d{15,21})>")
_ROLE_MENTION = re.compile(r"<@&(\d{15,21})>")
_CHANNEL_MENTION = re.compile(r"<#(\d{15,21})>")
_MASS_MENTION = re.compile(r"@(everyone|here)\b")


def plain_mentions(
    text: str,
    *,
    user: Callable[[int], str | None] = lambda _: None,
    role: Callable[[int], str | None] = lambda _: None,
    channel: Callable[[int], str | None] = lambda _: None,
) -> str:
    """``text`` with mention markup shown as Discord shows it (``discord.Message.clean_content``
    for any text): ``<@123>`` becomes ``@name``, ``<@&456>`` ``@role``, ``<#789>`` ``#channel``
    and @everyone/@here lose their power. The callbacks name an id, or None when unknown."""
    text = _USER_MENTION.sub(lambda m: "@" + (user(int(m[1])) or "unknown-user"), text)
    # The @everyone role's name carries its own "@".
    text = _ROLE_MENTION.sub(lambda m: "@" + (role(int(m[1])) or "deleted-role").lstrip("@"),
                             text)
    text = _CHANNEL_MENTION.sub(lambda m: "#" + (channel(int(m[1])) or "unknown"), text)
    return _MASS_MENTION.sub(lambda m: "@\u200b" + m[1], text)


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, at a word boundary when one is near, with "…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def safe_url(url: str | None) -> str | None:
    """An http(s) URL safe to put inside ``(<...>)``, or None when there is none to link."""
    if not url:
        return None
    url = url.strip()
    if not re.match(r"https?://", url, re.IGNORECASE) or len(url) > SOURCE_URL_CHARS:
        return None
    # These characters would end the markdown link early.
    return url.replace(" ", "%20").replace(")", "%29").replace(">", "%3E").replace("<", "%3C")


def _defuse_masked_link(match: re.Match[str]) -> str:
    label, url = match.group(1).strip(), match.group(2)
    if not re.match(r"https?://", url, re.IGNORECASE):
        return match.group(0)
    # Show where a link really goes: "[label](url)" in quoted text can hide its target.
    label = f"[{label}]" if label.isdigit() else label
    return f"{label} (<{url}>)" if label else f"<{url}>"


def no_masked_links(text: str) -> str:
    """``text`` (markdown escaped or not) in which nothing renders as a masked link: every
    "](" that could join a label to a target gets a space."""
    return _LINK_JOIN.sub("] (", text)


def plain(text: str) -> str:
    """A name from a feed or a page (an outlet, a source's title) shown as the words it is:
    no markdown, no masked link."""
    return no_masked_links(discord.utils.escape_markdown(text))


def balance_fences(text: str) -> str:
    """Close a code fence left open, so it cannot swallow what is rendered after it."""
    return text + "\n```" if len(_FENCE.findall(text)) % 2 else text


def clean_text(text: str) -> str:
    """Text from a model or an article made safe to show: masked links spelled out, links
    wrapped so they do not unfurl, spoiler bars shown as bars (nothing in an answer is
    hidden), code fences balanced."""
    text = no_masked_links(_MASKED_LINK.sub(_defuse_masked_link, text.strip()))
    text = _BARE_URL.sub(r"<\1>", text)
    text = text.replace("||", "\\|\\|")
    return balance_fences(text)


def _cut_point(text: str, budget: int) -> int:
    """Where to cut ``text`` so the first part has at most ``budget`` characters, preferring a
    paragraph break, then a sentence end, then a line break, then a space."""
    window = text[:budget]
    para = window.rfind("\n\n")
    if para >= budget // 2:
        return para
    ends = [m.end() for m in _SENTENCE_END.finditer(window)]
    if ends and ends[-1] >= budget // 3:
        return ends[-1]
    for sep in ("\n", " "):
        pos = window.rfind(sep)
        if pos >= budget // 3:
            return pos
    return budget


def _fence_state(text: str, lang: str | None) -> str | None:
    """The language of the code fence open at the end of ``text`` (``""`` for a bare one), or
    None when no fence is open; ``lang`` is the state at its start."""
    for m in _FENCE.finditer(text):
        lang = None if lang is not None else m.group(1)
    return lang


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, split between sentences rather than
    inside one; a code fence open at a split is closed and reopened in the next part."""
    text = text.strip()
    if limit < 32:
        raise ValueError("limit too small to split text sensibly")
    parts: list[str] = []
    lang: str | None = None
    while text:
        prefix = f"```{lang}\n" if lang is not None else ""
        whole = prefix + text
        if len(whole) <= limit and _fence_state(text, lang) is None:
            parts.append(whole)
            break
        # Room for the prefix and for closing a fence ("\n```").
        budget = limit - len(prefix) - 4
        cut = _cut_point(text, budget) if len(text) > budget else len(text)
        piece, text = text[:cut].rstrip(), text[cut:].lstrip()
        state = _fence_state(piece, lang)
        part = prefix + piece
        if state is not None:
            part += "\n```"
        parts.append(part)
        lang = state
    return [p for p in parts if p.strip()]


# --- dates ----------------------------------------------------------------------------------


def format_date(value: datetime | date | None) -> str:
    """Dates as "3 Mar 2024": unambiguous everywhere, short enough for a footer."""
    if value is None:
        return "undated"
    return f"{value.day} {value:%b %Y}"


def member_date(value: datetime | None) -> str:
    """An article's date as each member reads it: a report with a time of day as Discord's
    timestamp, shown in the reader's own time zone (23:30 UTC is the next day in Tokyo);
    one dated by day alone as that date, which is the same everywhere."""
    if value is None or by_day(int(value.timestamp())):
        return format_date(value)
    return f"<t:{int(value.timestamp())}:D>"


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# --- answers -------------------------------------------------------------------------------


def source_line(source: Source) -> str:
    """``**[n]** [Title](<url>) · Outlet, 3 Mar 2024``: title linked, the link not unfurled."""
    title = truncate(" ".join(source.title.split()) or "Untitled", SOURCE_TITLE_CHARS)
    # Brackets in a title would end the link label early.
    title = discord.utils.escape_markdown(title.replace("[", "(").replace("]", ")"))
    url = safe_url(source.url)
    linked = f"[{title}](<{url}>)" if url else title
    outlet = plain(truncate(source.outlet or "", 60))
    meta = ", ".join(p for p in (outlet, member_date(source.published_at)) if p)
    return f"**[{source.n}]** {linked} · {meta}"


def _line_fields(name: str, lines: Sequence[str]) -> list[tuple[str, str]]:
    """Lines packed into as few fields as fit; later fields are named "… (cont.)"."""
    fields: list[tuple[str, str]] = []
    current: list[str] = []
    for line in lines:
        line = truncate(line, FIELD_VALUE_LIMIT)
        if current and len("\n".join([*current, line])) > FIELD_VALUE_LIMIT:
            fields.append((name if not fields else f"{name} (cont.)", "\n".join(current)))
            current = []
        current.append(line)
    if current:
        fields.append((name if not fields else f"{name} (cont.)", "\n".join(current)))
    return fields


def _source_fields(answer: Answer) -> list[tuple[str, str]]:
    listed = answer.closest if answer.abstained else answer.sources
    name = "Closest articles" if answer.abstained else "Sources"
    lines = [source_line(s) for s in listed[:MAX_SOURCES]]
    if len(listed) > MAX_SOURCES:
        lines.append(f"… and {len(listed) - MAX_SOURCES} more")
    return _line_fields(name, lines)


def answer_footer(answer: Answer, *, history_turns: int | None = None) -> str:
    """One line: where the text came from, the "as of" date and the note (why the model's
    text was not shown, or what was left out of it); then, when history was cut, the notice."""
    parts = [origin_label(answer.mode, answer.abstained)]
    as_of = answer.as_of
    if as_of is not None:
        parts.append(f"as of {format_date(as_of)}")
    if answer.note:
        parts.append(truncate(" ".join(answer.note.split()), 200))
    lines = [" · ".join(parts)]
    if answer.history_cut:
        if history_turns:
            lines.append(f"Only the last {history_turns} messages of this conversation were read.")
        else:
            lines.append("Earlier messages of this conversation were left out.")
    return truncate("\n".join(lines), FOOTER_LIMIT)


def answer_embeds(answer: Answer, *, history_turns: int | None = None) -> list[discord.Embed]:
    """One embed per message: the answer text, split between sentences when it does not fit in
    one; the first carries the question as title, the last the sources and the footer."""
    colour = ABSTAIN_COLOUR if answer.abstained else ANSWER_COLOUR
    title = truncate(" ".join((answer.question or "").split()), TITLE_LIMIT) or None
    text = clean_text(answer.text) or "(no answer)"

    tail = discord.Embed()
    for name, value in _source_fields(answer):
        tail.add_field(name=name, value=value, inline=False)
    tail.set_footer(text=answer_footer(answer, history_turns=history_turns))
    tail_size = len(tail)

    parts = split_text(text, DESCRIPTION_LIMIT)
    # The last message also carries the sources and footer: its text must leave them room.
    last_budget = MESSAGE_EMBEDS_LIMIT - tail_size - (len(title or "") if len(parts) == 1 else 0)
    if len(parts[-1]) > last_budget:
        parts[-1:] = split_text(parts[-1], min(DESCRIPTION_LIMIT, last_budget))

    embeds = [discord.Embed(description=part, colour=colour) for part in parts]
    if title:
        embeds[0].title = title
    last = embeds[-1]
    for field in tail.fields:
        last.add_field(name=field.name, value=field.value, inline=False)
    last.set_footer(text=tail.footer.text)
    return embeds


def progress_embed(partial: str, *, question: str = "") -> discord.Embed:
    """The in-progress state of a streamed answer: the text so far and a cursor."""
    text = clean_text(partial)
    room = DESCRIPTION_LIMIT - len(PROGRESS_CURSOR) - len(ELLIPSIS) - 8
    if len(text) > room:
        # Show the newest text; the full answer replaces this when it is done.
        text = ELLIPSIS + balance_fences(text[-room:].lstrip("`"))
    embed = discord.Embed(description=(text or "…") + PROGRESS_CURSOR, colour=ANSWER_COLOUR)
    if question.strip():
        embed.title = truncate(" ".join(question.split()), TITLE_LIMIT)
    embed.set_footer(text=PROGRESS_FOOTER)
    return embed


def interrupted_embed(question: str) -> discord.Embed:
    """What an answer left "Writing…" by a bot that was killed shows once it is back: the
    question, and that it was not answered (the words shown so far go: their citations name
    sources that were never listed)."""
    embed = discord.Embed(description=INTERRUPTED_TEXT, colour=ABSTAIN_COLOUR)
    if question.strip():
        embed.title = truncate(" ".join(question.split()), TITLE_LIMIT)
    embed.set_footer(text=INTERRUPTED_FOOTER)
    return embed


def embed_text(embed: discord.Embed) -> str:
    """The answer text an embed shows, without the in-progress cursor (for history)."""
    text = embed.description or ""
    return text.removesuffix(PROGRESS_CURSOR)


# --- reports -------------------------------------------------------------------------------


def listing(lines: Iterable[str], limit: int = DESCRIPTION_LIMIT - 100) -> str:
    """Lines for an embed description, as many as fit, then "… and N more"."""
    lines = list(lines)
    kept: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        more = f"… and {len(lines) - i} more"
        if used + len(line) + 1 + len(more) + 1 > limit:
            kept.append(more)
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept)


def sources_embed(summaries: Sequence[SourceSummaryLike]) -> discord.Embed:
    """``/sources``: the outlets the bot has read, with article counts and newest dates.
    Members see no paths or URLs of the server's own."""
    total = sum(s.articles for s in summaries)
    embed = discord.Embed(title="Sources", colour=ANSWER_COLOUR)
    if not summaries:
        embed.description = "No articles yet: an admin can follow feeds with `/feeds add`."
        return embed
    ordered = sorted(summaries, key=lambda s: s.outlet.lower())
    embed.description = listing(
        f"**{plain(truncate(s.outlet, 80))}** · {s.articles} "
        f"article{'s' if s.articles != 1 else ''} · newest {format_date(s.newest)}"
        for s in ordered)
    embed.set_footer(text=f"{counted(len(summaries), 'outlet')} · {counted(total, 'article')}")
    return embed


def feeds_embed(sources: Sequence[Mapping[str, Any]]) -> discord.Embed:
    """``/feeds list`` (admins): every source with its health and next poll."""
    embed = discord.Embed(title="Followed sources", colour=ANSWER_COLOUR)
    if not sources:
        embed.description = "No sources yet: `/feeds add url:` follows a feed or page."
        return embed
    def entry(s: Mapping[str, Any]) -> str:
        name = plain(truncate(source_label(s["name"], s["spec"]), 80))
        nxt = _parse_iso(s["next_poll"])
        when = discord.utils.format_dt(nxt, "R") if nxt else "not polled"
        health = s["status"] + (f", {counted(s['failures'], 'failure')}" if s["failures"] else "")
        url = safe_url(redact_url(s["spec"]))
        line = (f"`{s['id']}` **{name}** · {s['kind']} · {health} · "
                f"{counted(s['articles'], 'article')} "
                f"· next {when}" + (f"\n<{url}>" if url else ""))
        if s["last_error"]:
            line += f"\n↳ {clean_text(truncate(str(s['last_error']), 200))}"
        return line

    embed.description = listing(entry(s) for s in sources)
    embed.set_footer(text=counted(len(sources), "source"))
    return embed


def status_embed(status: Mapping[str, Any], *, detailed: bool = True) -> discord.Embed:
    """``/status``: store size, models, sources' health, the last ingest and reindex; with
    ``detailed``, the failing sources by name with their last error."""
    embed = discord.Embed(title="Status", colour=ANSWER_COLOUR)
    model = status.get("model") or "none (extractive answers)"
    last = _parse_iso(status.get("last_ingest"))
    sources = status.get("sources") or []
    failing = [s for s in sources if s["status"] != "ok"]
    health = f"{len(sources)} followed" + (f", {len(failing)} failing or disabled"
                                           if failing else ", all ok")
    reindex = status.get("last_reindex") or None
    when = _parse_iso(reindex["at"]) if reindex else None
    rows = [
        ("Articles", status.get("articles", "?")),
        ("Chunks", status.get("chunks", "?")),
        ("Answer model", model),
        ("Embeddings", status.get("embedding_model") or "?"),
        ("Sources", health),
        ("Last ingest", discord.utils.format_dt(last, "f") if last else "never"),
        ("Last reindex", (f"{discord.utils.format_dt(when, 'R')} "
                          f"{'ok' if reindex['ok'] else 'failed'}") if when and reindex
         else "never"),
    ]
    if status.get("full_reindex_needed"):
        rows.append(("Needs", f"a full reindex for {status.get('configured_embedding_model')}"))
    service = status.get("service")
    if service:
        job = service.get("job")
        rows.append(("Service", f"up {int(service['uptime_s']) // 3600} h · "
                                f"{'running ' + job['name'] if job else 'idle'}"))
    for name, value in rows:
        embed.add_field(name=name, value=truncate(str(value), FIELD_VALUE_LIMIT), inline=True)
    for s in failing[:5] if detailed else []:
        # A source's name and error may be a hostile feed's words (its title, its
        # Content-Type).
        label = source_label(s["name"], s["spec"])
        embed.add_field(name=truncate(f"⚠ {no_masked_links(label)}", 256),
                        value=truncate(clean_text(str(s["last_error"] or s["status"])),
                                       FIELD_VALUE_LIMIT),
                        inline=False)
    return embed


def feedback_stats_embed(stats: FeedbackStatsLike, *, top: int = 5) -> discord.Embed:
    """``/feedback stats``: vote counts, questions the bot could not answer, worst answers."""
    embed = discord.Embed(title="Feedback", colour=ANSWER_COLOUR)
    embed.add_field(
        name="Votes",
        value=f"👍 {stats.up} · 👎 {stats.down} · {counted(stats.answers, 'answer')}",
        inline=False,
    )
    esc = plain
    unanswered = [f"{count}× {esc(truncate(q, 150))}" for q, count in stats.unanswered[:top]]
    downvoted = [
        f"{n}👎 **{esc(truncate(q, 120))}**: {esc(truncate(' '.join(a.split()), 150))}"
        for q, a, n in stats.most_downvoted[:top]
    ]
    for name, lines in (("Unanswered questions", unanswered), ("Most downvoted", downvoted)):
        for fname, value in _line_fields(name, lines or ["none"]):
            embed.add_field(name=fname, value=value, inline=False)
    return embed


# --- checks --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LimitProblem:
    where: str
    size: int
    limit: int


def limit_problems(
    embeds: Sequence[discord.Embed], content: str | None = None
) -> list[LimitProblem]:
    """Every Discord limit the message would break (empty when it can be sent)."""
    problems: list[LimitProblem] = []

    def check(where: str, size: int, limit: int) -> None:
        if size > limit:
            problems.append(LimitProblem(where, size, limit))

    check("content", len(content or ""), CONTENT_LIMIT)
    check("embeds", len(embeds), 10)
    check("total", sum(len(e) for e in embeds), MESSAGE_EMBEDS_LIMIT)
    for i, e in enumerate(embeds):
        check(f"embed {i} title", len(e.title or ""), TITLE_LIMIT)
        check(f"embed {i} description", len(e.description or ""), DESCRIPTION_LIMIT)
        check(f"embed {i} fields", len(e.fields), FIELD_COUNT_LIMIT)
        check(f"embed {i} footer", len(e.footer.text or ""), FOOTER_LIMIT)
        for j, f in enumerate(e.fields):
            check(f"embed {i} field {j} name", len(f.name or ""), FIELD_NAME_LIMIT)
            check(f"embed {i} field {j} value", len(f.value or ""), FIELD_VALUE_LIMIT)
    return problems


# --- briefs --------------------------------------------------------------------------------

BRIEF_COLOUR = discord.Colour.dark_teal()
BRIEF_POINTS_CHARS = 300
BRIEF_ALSO_MAX = 8  # other reports listed under a brief
BRIEF_AUTHOR_ROOM = 64  # kept free for an author line set after the embed is built


class BriefLike(Protocol):
    """What a brief's embed shows (``bot.core.briefs.Brief``)."""

    headline: str
    synopsis: str
    points: list[str]
    url: str | None
    published_at: datetime | None
    outlet: str | None


def brief_embed(brief: BriefLike, *, also: Sequence[Source] = (),
                updated: bool = False) -> discord.Embed:
    """A brief: headline linked to the article, the synopsis, key points as bullets, the
    outlet and date; ``also`` lists other outlets' reports of the same story."""
    esc = discord.utils.escape_markdown
    title = truncate(" ".join(brief.headline.split()) or "News brief", TITLE_LIMIT)
    lines = [clean_text(esc(" ".join(brief.synopsis.split())))] if brief.synopsis.strip() else []
    bullets = [f"• {clean_text(esc(truncate(' '.join(p.split()), BRIEF_POINTS_CHARS)))}"
               for p in brief.points if p.strip()]
    if bullets:
        lines.append("\n".join(bullets))
    embed = discord.Embed(title=title, description=truncate("\n\n".join(lines),
                                                            DESCRIPTION_LIMIT) or None,
                          colour=BRIEF_COLOUR, url=safe_url(brief.url))
    when = brief.published_at
    timed = when is not None and not by_day(int(when.timestamp()))
    # A footer shows no markup; a time of day goes in the embed's timestamp, which Discord
    # shows in each reader's own time zone.
    meta = [truncate(brief.outlet or "", 80), "" if timed else format_date(when)]
    if updated:
        meta.append("updated with more sources")
    embed.set_footer(text=" · ".join(p for p in meta if p))
    if timed:
        embed.timestamp = when
    # The other reports take what is left of the message's 6,000 characters (an author
    # line, "Update on this story", may still be added): as many as fit, then a count.
    room = MESSAGE_EMBEDS_LIMIT - len(embed) - BRIEF_AUTHOR_ROOM
    lines = [source_line(s) for s in also[:BRIEF_ALSO_MAX]]

    def fit() -> list[tuple[str, str]]:
        more = [f"… and {len(also) - len(lines)} more"] if len(lines) < len(also) else []
        return _line_fields("Also reported by", [*lines, *more])

    fields = fit()
    while lines and sum(len(n) + len(v) for n, v in fields) > room:
        lines.pop()
        fields = fit()
    for name, value in fields if also else []:
        embed.add_field(name=name, value=value, inline=False)
    return embed
