"""Briefs of a wave of articles while the model hangs: each brief would wait out the whole
answer budget, and the wave's briefs are held until all are written."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.core.delivery import Desk
from bot.core.llm import OpenAIChatModel
from tests.fakes import make_services, make_settings
from tests.support.openai_server import FakeOpenAIServer

NEWS = 101


def _story(n: int, title: str, body: str) -> dict[str, str]:
    return {"title": title, "outlet": "Gazette", "url": f"https://gazette.example.org/{n}",
            "published_at": f"2025-05-0{n}T08:00:00Z", "body": body}


STORIES = [
    _story(1, "Harbour ferry crews strike over pay",
           "Ferry crews in Kestrel Harbour stopped work on Thursday in a dispute over pay. The "
           "strike halted all 14 crossings between the islands."),
    _story(2, "Museum opens a wing for meteorites",
           "The Linden natural history museum opened a new wing on Friday to show its "
           "meteorite collection. Visitors can touch a 30 kg iron meteorite."),
    _story(3, "Town library extends its opening hours",
           "The Linden town library will open until 9 pm on weekdays from June. The council "
           "approved 2 new librarian posts to cover the longer hours."),
    _story(4, "Tram line to the airport opens in Marlow",
           "The tram line from Marlow station to the airport opened on Sunday. Trams run every "
           "8 minutes and the trip takes 22 minutes."),
]


def test_a_model_that_does_not_answer_one_brief_is_not_waited_for_by_the_rest(
        tmp_path: Path, openai_server: FakeOpenAIServer) -> None:
    settings = make_settings(tmp_path / "model", openai_base_url=openai_server.base_url,
                             answer_budget_s=1.0, llm_max_retries=0)
    model = OpenAIChatModel(settings)
    svc = make_services(tmp_path / "data", sample=False)
    now = [datetime(2025, 5, 1, tzinfo=UTC)]
    desk = Desk(svc.state, svc.embedder, model=model, topic_threshold=-1.0,
                clock=lambda: now[0])
    try:
        desk.subscribe(channel_id=NEWS, topic="local news", now=now[0] - timedelta(days=30))
        path = tmp_path / "wave.jsonl"
        path.write_text("".join(json.dumps(s) + "\n" for s in STORIES[:3]))
        openai_server.queue_reply("{}", delay=60)  # a model that hangs
        report = desk.plan(svc.admin.ingest([str(path)]).added_ids)
        assert report.briefs == 3  # every brief is written, extractive
        # Asked once: the first brief waited out the budget, the other two did not wait.
        assert len(openai_server.requests_to("/v1/chat/completions")) == 1
        titles = sorted(json.loads(r["payload"])["brief"]["headline"]
                        for r in svc.state.pending_posts())
        assert titles == sorted(s["title"] for s in STORIES[:3])

        # Some minutes later the model is asked again, and its brief is used.
        now[0] += timedelta(minutes=6)
        openai_server.queue_reply(json.dumps({
            "headline": "Airport tram line opens in Marlow",
            "synopsis": "The tram line from Marlow station to the airport opened on Sunday.",
            "points": ["Trams run every 8 minutes."]}))
        path.write_text(json.dumps(STORIES[3]) + "\n")
        assert desk.plan(svc.admin.ingest([str(path)]).added_ids).briefs == 1
        assert len(openai_server.requests_to("/v1/chat/completions")) == 2
        assert "Airport tram line opens in Marlow" in {
            json.loads(r["payload"])["brief"]["headline"] for r in svc.state.pending_posts()}
    finally:
        model.close()
        svc.close()
