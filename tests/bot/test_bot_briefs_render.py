"""How the Discord side shows what delivery sends: the title and link stay exactly the
message's (an unconfirmed post is found again by them), and every kind fits Discord."""

from __future__ import annotations

from bot.cogs.briefs import message_embed
from bot.core.delivery import OutMessage
from bot.render import limit_problems

BRIEF = {"headline": "Harbour bridge reopens", "synopsis": "It reopened on Saturday.",
         "points": ["It cost 48 million euros."], "url": "https://news.example.org/bridge",
         "published_at": "2025-03-08T00:00:00+00:00", "outlet": "Example Gazette",
         "article_id": "a1"}


def test_every_kind_keeps_its_title_and_link_and_fits() -> None:
    long_title = "A very long headline " * 20
    messages = [
        OutMessage(kind="brief", title="Harbour bridge reopens", url=BRIEF["url"], brief=BRIEF,
                   also=[{"article_id": "a2", "title": "Bridge open", "outlet": "Other Post",
                          "url": "https://other.example.net/b", "published_at": None}]),
        OutMessage(kind="update", title=long_title[:256], url="https://x.example.org/u",
                   brief={**BRIEF, "headline": long_title}),
        OutMessage(kind="digest", title="Top stories, 1 May 2025", lines=[
            {"title": "Ferry strike", "url": "https://a.example.org/f", "outlet": "Gazette",
             "article_id": "a3", "count": 3},
            {"title": "Museum wing", "url": None, "outlet": None, "article_id": "a4",
             "count": 1}]),
        OutMessage(kind="notice", title="Briefs paused", text="Briefs to <#1> are paused."),
    ]
    for msg in messages:
        embed = message_embed(msg)
        assert embed.title == msg.title and embed.url == msg.url
        assert limit_problems([embed]) == []
    brief, update, digest, notice = (message_embed(m) for m in messages)
    assert "• It cost 48 million euros." in (brief.description or "")
    assert brief.fields[0].name == "Also reported by"
    assert update.author.name == "Update on this story" and "•" not in (update.description or "")
    lines = (digest.description or "").splitlines()
    assert lines[0].startswith("**[1]** [Ferry strike](<https://a.example.org/f>)")
    assert lines[0].endswith("· Gazette (+2 more reports)")
    assert lines[1] == "**[2]** Museum wing"
    assert notice.description == "Briefs to <#1> are paused."


def test_a_brief_at_every_limit_with_eight_other_reports_still_fits() -> None:
    """A moderator's longest edit, four long points and eight other reports with long titles
    and addresses: Discord refuses a message over 6,000 characters in all."""
    brief = {**BRIEF, "headline": "H" * 256, "synopsis": "Synopsis words. " * 62,
             "points": ["A key point with figures 12 and 34. " * 8] * 4}
    also = [{"article_id": f"a{i}", "title": f"Another outlet's long headline {i} " * 5,
             "outlet": "An Outlet With A Rather Long Name Indeed, Ltd." * 2,
             "url": f"https://news{i}.example.org/" + "section/" * 45 + f"story-{i}",
             "published_at": "2025-03-08T09:30:00+00:00"} for i in range(8)]
    msg = OutMessage(kind="brief", title=brief["headline"], url=BRIEF["url"], brief=brief,
                     also=also)
    embed = message_embed(msg)
    assert limit_problems([embed]) == []
    assert embed.title == msg.title and embed.url == msg.url
    listed = "\n".join(f.value for f in embed.fields)
    assert "news0.example.org" in listed  # the other reports are listed, as many as fit
