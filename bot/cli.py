"""The ``newsbot`` command line: run the bot, ask, chat, ingest, manage sources, reindex.

Heavy imports (Chroma, onnxruntime, discord.py) happen inside the commands, so ``--help``
answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.models import counted  # standard library only: --help stays quick

if TYPE_CHECKING:
    from bot.core.admin import Progress
    from bot.core.services import Services
    from bot.settings import Settings

EXAMPLE_QUESTION = "what did Netflix use AI for in The Eternaut?"
# How long a command waits for a service that holds the store to open its socket.
SERVICE_START_WAIT_S = 10.0


def _settings() -> Settings:
    from bot.settings import Settings

    try:
        return Settings()
    except UnicodeDecodeError as exc:  # python-dotenv reads .env as UTF-8
        raise _BadSettings(f".env is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                           f"offset {exc.start}); save it as UTF-8") from None


class _BadSettings(Exception):
    """Settings that cannot be read at all: one line, and exit 2 as for a bad value."""


def _services(settings: Settings | None = None, **kwargs: Any) -> Services:
    from bot.core.services import build_services

    return build_services(settings or _settings(), **kwargs)


class _Bars:
    """Rich progress bars on stderr (so --json stays clean), fed by progress events from
    this process or from a running service."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as Bars

        self.console = Console(stderr=True)
        self.bars = Bars(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                         MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                         TimeElapsedColumn(), console=self.console, transient=False,
                         disable=not self.console.is_terminal)
        self.label = label
        self._arts: Any = None
        self._chunks: Any = None

    def event(self, event: dict[str, Any]) -> None:
        if "phase" in event:
            if event["phase"] == "sample":
                print("No articles yet: loading the bundled sample articles (first run only).",
                      file=sys.stderr)
            if self._arts is None:
                self._arts = self.bars.add_task(f"{self.label} articles", total=event["total"],
                                                rate="")
                self._chunks = self.bars.add_task("chunks", total=None, rate="")
            else:
                self.bars.reset(self._arts, total=event["total"],
                                description=f"{event['phase']} articles")
        elif "articles" in event and self._arts is not None:
            self.bars.advance(self._arts, event["articles"])
        elif "chunks" in event and self._chunks is not None:
            self.bars.advance(self._chunks, event["chunks"])
            task = self.bars.tasks[self._chunks]
            if task.elapsed:
                self.bars.update(self._chunks, rate=f"{task.completed / task.elapsed:.1f}/s")
        else:
            _say_waiting(event)

    def progress(self) -> Progress:
        from bot.core.admin import Progress

        return Progress(articles=lambda n: self.event({"articles": n}),
                        chunks=lambda n: self.event({"chunks": n}),
                        phase=lambda name, total: self.event({"phase": name, "total": total}))

    def __enter__(self) -> _Bars:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.__exit__(None, None, None)


def call(op: str, args: dict[str, Any], *, label: str | None = None,
         check_model: bool = True, settings: Settings | None = None) -> dict[str, Any]:
    """Run an operation: in the running service when there is one, else here.

    The result is the same either way, so output (and ``--json``) does not depend on it.
    """
    from bot.control import ControlClient, ServiceError, ServiceGone, ServiceUnreachable
    from bot.core.models import NewsbotError, StoreError

    settings = settings or _settings()
    bars = _Bars(label) if label else None
    deadline = time.monotonic() + SERVICE_START_WAIT_S
    with bars or contextlib.nullcontext():
        for attempt in range(40):
            client = ControlClient.find(settings.data_dir)
            if client is not None:
                try:
                    return client.call(op, args, bars.event if bars else _say_waiting)
                except KeyboardInterrupt:
                    if _writes(op):
                        print(f"interrupted: the running service goes on with `{_words(op)}`; "
                              "`newsbot status` shows when it is done", file=sys.stderr)
                    raise
                except ServiceUnreachable:
                    continue  # it stopped just now: the command runs here (or waits for it)
                except ServiceGone:
                    raise NewsbotError(_gone(op)) from None
                except ServiceError as exc:
                    if exc.user:
                        raise NewsbotError(str(exc)) from None
                    raise NewsbotError(f"the running service failed: {exc} (see its log)") \
                        from None
            try:
                services = _services(settings, check_model=check_model)
            except StoreError as exc:
                # A service that is starting holds the store before its socket is up; a
                # command holds it until it ends, which may be minutes away: say so at once.
                if (_held_by_a_service(str(exc)) and attempt < 39
                        and time.monotonic() < deadline):
                    time.sleep(0.25)
                    continue
                raise
            break
        else:
            # Found each time and gone each time: a service that keeps restarting. Running
            # here would race it for the store.
            raise NewsbotError(f"the service on {settings.data_dir} kept stopping before the "
                               "command reached it; see its log, then run the command again")
        from bot.core.operations import Context, run_operation

        try:
            ctx = Context(services, bars.progress() if bars else _quiet_progress())
            return run_operation(op, ctx, args)
        except KeyboardInterrupt:
            if _writes(op):
                print(f"interrupted: `{_words(op)}` stopped; nothing stored before was lost "
                      "and the store serves as it did; run the command again to finish it",
                      file=sys.stderr)
            raise
        finally:
            services.close()
    raise AssertionError("unreachable")


def _held_by_a_service(error: str) -> bool:
    """Whether a store-in-use error names `newsbot serve` or `newsbot run` as the holder."""
    return "in use by" in error and ("(newsbot serve" in error or "(newsbot run" in error)


def _say_waiting(event: dict[str, Any]) -> None:
    """The one line a command says while it waits its turn (behind a running reindex),
    with progress bars or without."""
    if "waiting" in event:
        print(f"waiting: {event['waiting']}", file=sys.stderr, flush=True)


def _gone(op: str) -> str:
    """What became of a command whose service stopped (or was killed) while it ran."""
    if not _writes(op):
        return "the service stopped before it answered; run the command again"
    return (f"the service stopped while it ran `{_words(op)}`: nothing stored before was "
            "lost and the store serves as it did; run the command again to finish it")


def _writes(op: str) -> bool:
    from bot.core.operations import OPERATIONS

    return OPERATIONS[op].write


def _words(op: str) -> str:
    return "newsbot " + op.replace(".", " ")  # "sources.add" -> "newsbot sources add"


def _quiet_progress() -> Progress:
    from bot.core.admin import Progress

    return Progress()


def _day(published_at: str | None, zone: tzinfo) -> str:
    """An article's date where the reader is (NEWSBOT_TIMEZONE)."""
    from retrieval.timeparse import local_date

    if not published_at:
        return "undated"
    return local_date(datetime.fromisoformat(published_at), zone).isoformat()


def _print_answer(answer: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape

    settings = _settings()
    zone = settings.zone
    # soft_wrap: the terminal wraps lines, so a piped answer keeps whole lines.
    console = Console(soft_wrap=True)
    console.print(escape(answer["answer"]))
    if answer["sources"]:
        console.print("\n[bold]Sources[/bold]")
    for s in answer["sources"]:
        date = _day(s["published_at"], zone)
        console.print(f"  [{s['n']}] {escape(s['title'])} — "
                      f"{escape(s['outlet'] or 'unknown outlet')}, {date}", highlight=False)
        if s["url"]:
            print(f"      {s['url']}")  # never wrapped: a URL must stay one line to click
    if answer["abstained"] and answer["closest"]:
        console.print("\n[bold]Closest articles[/bold]")
        for s in answer["closest"]:
            date = _day(s["published_at"], zone)
            # Numbered: an answer that says what the articles lack quotes one of them as [n].
            console.print(f"  [{s['n']}] {escape(s['title'])} ({escape(s['outlet'] or '?')}, "
                          f"{date})", highlight=False)
    from bot.core.models import origin_label

    # One line: where the text came from and, from the note, why or what was left out.
    line = [origin_label(answer["mode"], answer["abstained"])]
    if answer.get("note"):
        line.append(" ".join(answer["note"].split()))
    if answer.get("history_cut"):
        line.append(f"only the last {settings.history_turns} messages of the conversation "
                    "were read")
    console.print(f"\n[dim]{escape('; '.join(line))}[/dim]", highlight=False)


def _dump(data: object) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


# -- commands ----------------------------------------------------------------------------------
def cmd_ask(args: argparse.Namespace) -> int:
    from bot.control import ControlClient

    settings = _settings()
    # A running service checks the question itself; the answer machinery this check
    # imports was about 40% of such a command's CPU.
    if ControlClient.find(settings.data_dir) is None:
        from bot.core.ask import validate_question

        validate_question(args.question, settings.max_question_chars)  # before opening
    answer = call("ask", {"question": args.question, "since": args.since,
                          "source": args.source},
                  label=None if args.json else "sample", settings=settings)
    if args.json:
        _dump({k: v for k, v in answer.items() if k != "history_cut"})
    else:
        _print_answer(answer)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.control import ControlClient
    from bot.core.models import NewsbotError
    from bot.core.operations import Context, run_operation

    settings = _settings()
    # Without a running service, the store and the model are opened once for the whole chat.
    services = None if ControlClient.find(settings.data_dir) else _services(settings)

    def ask(args: dict[str, Any]) -> dict[str, Any]:
        if services is None:
            return call("ask", args, settings=settings, label="sample")
        bars = _Bars("sample")
        with bars:
            return run_operation("ask", Context(services, bars.progress()), args)

    history: list[dict[str, str]] = []
    print("Ask about the news; follow-ups keep the conversation. Ctrl-D or 'exit' quits.")
    try:
        while True:
            try:
                question = input("\nyou> ").strip()
            except EOFError:
                print()
                return 0
            if question.lower() in ("exit", "quit", ":q"):
                return 0
            if not question:
                continue
            try:
                answer = ask({"question": question, "history": history})
            except NewsbotError as exc:
                print(f"newsbot> {exc}")
                continue
            print("newsbot> ", end="")
            _print_answer(answer)
            history += [{"role": "user", "text": question},
                        {"role": "assistant", "text": answer["answer"]}]
    finally:
        if services is not None:
            services.close()


def cmd_ingest(args: argparse.Namespace) -> int:
    from bot.core.admin import IngestReport, normalise_spec

    # Paths are resolved here: a running service has another working directory.
    specs = [normalise_spec(s) if s.strip() and Path(s).expanduser().exists() else s
             for s in args.sources]
    result = call("ingest", {"sources": specs}, label="ingest")
    nothing = not (result["added"] or result["updated"] or result["unchanged"])
    # Nothing loaded, and each skip (if any) is the reason a source failed: the errors say
    # it all.
    only_failures = nothing and {s["reason"] for s in result["skipped"]} <= {
        f["reason"] for f in result["failed"]}
    if args.json:
        _dump(result)
    elif not (result["failed"] and only_failures):
        report = IngestReport.from_json(result)
        print(report.summary())
        for s in report.skipped[: args.show_skipped]:
            print(f"  skipped {s.name}: {s.reason}")
        if len(report.skipped) > args.show_skipped:
            print(f"  ... and {len(report.skipped) - args.show_skipped} more")
    for f in result["failed"]:
        where = f"{f['name']}: " if f["name"].strip() else ""
        print(f"error: {where}{f['reason']}", file=sys.stderr)
    return 1 if result["failed"] else 0


def cmd_status(args: argparse.Namespace) -> int:
    status = call("status", {})
    if args.json:
        _dump(status)
        return 0
    sources = status.pop("sources")
    service = status.pop("service")
    reindex = status.pop("last_reindex")
    if status.get("model") is None:
        status["model"] = "none (extractive answers)"
    for key, value in status.items():
        print(f"{key:>26}: {value}")
    if reindex:
        print(f"{'last_reindex':>26}: {reindex['at']} "
              f"{'ok' if reindex['ok'] else 'FAILED'} {reindex['summary']}")
    if service:
        job = service["job"]
        print(f"{'service':>26}: pid {service['pid']}, up {service['uptime_s']} s, "
              f"{'job: ' + job['name'] if job else 'idle'}, {service['queued']} queued")
    else:
        print(f"{'service':>26}: not running")
    _print_sources(sources)
    return 0


def _print_sources(sources: list[dict[str, Any]]) -> None:
    from bot.core.models import redact_url

    if not sources:
        print("no sources yet: `newsbot sources add URL` follows a feed, "
              "`newsbot ingest PATH` loads files")
        return
    for s in sources:
        when = (s["last_fetch"] or "")[:16].replace("T", " ") or "never"
        nxt = (s["next_poll"] or "")[:16].replace("T", " ") or "-"
        print(f"[{s['id']}] {s['name'] or '(no name)'}  {s['kind']}  {s['status']}  "
              f"failures {s['failures']}  {counted(s['articles'], 'article')}  last fetch {when}  "
              f"next poll {nxt}")
        # Alone on its line so it never wraps inside other text; a key in it stays hidden
        # (``--json`` gives the address as stored).
        print(f"    {redact_url(s['spec'])}")
        if s["last_error"]:
            print(f"    last error: {s['last_error']}")


def cmd_sources(args: argparse.Namespace) -> int:
    from bot.core.models import source_label

    if args.action == "list":
        result = call("sources.list", {})
        if args.json:
            _dump(result["sources"])
        else:
            _print_sources(result["sources"])
        return 0
    if not args.target:
        print(f"error: `newsbot sources {args.action}` needs "
              f"{'a URL' if args.action == 'add' else 'the source (id, name or URL)'}",
              file=sys.stderr)
        return 2
    if args.action == "remove":
        from bot.core.admin import normalise_spec

        spec, path = args.target, None
        if Path(spec).expanduser().exists():
            spec = normalise_spec(spec)
        elif not spec.strip().lower().startswith(("http://", "https://")):
            # Perhaps a file or folder since deleted, named from here: a running service
            # would read it from its own working directory.
            path = normalise_spec(spec)
        result = call("sources.remove", {"spec": spec, "path": path})
        if args.json:
            _dump(result)
        else:
            ended = result.get("subscriptions_ended") or []
            print(f"removed source {result['id']} "
                  f"({source_label(result['name'], result['spec'])}): "
                  f"{counted(result['articles_removed'], 'article')} taken out of the store"
                  + ("; subscriptions ended: "
                     + ", ".join(f"#{s['id']} (channel {s['channel_id']})" for s in ended)
                     if ended else ""))
        return 0
    target = args.target.strip()
    if (not target.lower().startswith(("http://", "https://"))
            and Path(target).expanduser().exists()):
        # Files are loaded, not followed: say which command does it.
        print(f"error: {target} is a local file or folder, not a feed or page URL: "
              f"`newsbot ingest {target}` loads it", file=sys.stderr)
        return 1
    result = call("sources.add", {"url": args.target, "name": args.name, "every": args.every,
                                  "backfill": args.backfill}, label="first fetch")
    if args.json:
        _dump(result)
    else:
        poll = result["poll"]
        print(f"following [{result['id']}] {source_label(result['name'], result['spec'])} "
              f"({result['kind']}), every {result['every_min']} min; "
              f"{'first fetch' if poll.get('first_fetch') else 'already followed, fetched now'}: "
              f"{poll['added']} new, {poll['updated']} updated, {poll['unchanged']} unchanged")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    result = call("reindex", {"full": args.full, "dry_run": args.dry_run},
                  label="reindex", check_model=False)
    if args.json:
        _dump(result)
    else:
        from bot.core.admin import ReindexReport

        print(ReindexReport(**result).summary())
    return 0


def _print_brief(brief: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    console.print(f"[bold]{escape(brief['headline'])}[/bold]")
    date = _day(brief["published_at"], _settings().zone)
    console.print(f"[dim]{escape(brief['outlet'] or 'unknown outlet')}, {date}[/dim]\n",
                  highlight=False)
    # Wrapped here rather than by rich: a point's lines hang under its text, and no line
    # ends in the space it was broken at.
    width = max(console.width, 40)
    console.print(escape(textwrap.fill(brief["synopsis"], width)), soft_wrap=True)
    for point in brief["points"]:
        console.print(escape(textwrap.fill(point, width, initial_indent="  • ",
                                           subsequent_indent="    ")), soft_wrap=True)
    if brief["url"]:
        print(f"\n{brief['url']}")  # never wrapped: a URL must stay one line to click
    if "mode" in brief:
        mode = ("language model" if brief["mode"] == "model"
                else "extractive (the article's own sentences)")
        console.print(f"\n[dim]{mode}; article {brief['article_id']}[/dim]", highlight=False)


def cmd_brief(args: argparse.Namespace) -> int:
    if args.action == "preview":
        result = call("brief.preview", {"article": args.article})
        if args.json:
            _dump({k: result[k] for k in ("headline", "synopsis", "points", "url",
                                          "published_at", "outlet", "article_id")})
        else:
            _print_brief(result)
        return 0
    if args.channel is None:
        print("error: `newsbot brief post` needs --channel ID", file=sys.stderr)
        return 2
    result = call("brief.post", {"article": args.article, "channel_id": args.channel,
                                 "headline": args.headline, "synopsis": args.synopsis})
    if args.json:
        _dump(result)
    elif not result["recorded"]:
        print(f"that story was already posted in channel {result['channel_id']} "
              f"({result['status']}); nothing new was queued")
    else:
        print(f"queued for channel {result['channel_id']}: {result['brief']['headline']} "
              "(the running bot posts it)")
    return 0


def cmd_subscriptions(args: argparse.Namespace) -> int:
    if args.action == "list":
        result = call("subscriptions.list", {"channel_id": args.channel})
        if args.json:
            _dump(result)
        else:
            for sub in result["subscriptions"]:
                # Discord's channel markup, "<#123>", is "channel 123" in a terminal.
                print(re.sub(r"<#(\d+)>", r"channel \1", sub["describe"]))
            if not result["subscriptions"]:
                print("no subscriptions")
        return 0
    if args.action == "remove":
        if args.id is None:
            print("error: `newsbot subscriptions remove` needs the subscription's number",
                  file=sys.stderr)
            return 2
        result = call("subscriptions.remove", {"id": args.id})
        if args.json:
            _dump(result)
        else:
            print(f"removed subscription #{result['id']}")
        return 0
    if args.channel is None or (args.source is None) == (args.topic is None):
        print("error: `newsbot subscriptions add` needs --channel ID and either --source or "
              "--topic", file=sys.stderr)
        return 2
    result = call("subscriptions.add", {
        "channel_id": args.channel, "source": args.source, "topic": args.topic,
        "keywords": args.keywords or [], "daily_cap": args.daily_cap, "mode": args.mode,
        "digest_hour": args.digest_hour, "tz": args.tz})
    if args.json:
        _dump(result)
    elif result.get("resumed") is not None:
        held = result["resumed"]
        print(f"subscription #{result['id']} resumed: {counted(held, 'held brief')} "
              f"go{'es' if held == 1 else ''} out")
    else:
        print(f"subscription #{result['id']}: channel {result['channel_id']} follows "
              + (f"source {result['source_id']}" if result["source_id"] is not None
                 else f"topic \"{result['topic']}\"") + f" ({result['mode']})")
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    result = call("poll", {"source": args.source}, label="poll")
    if args.json:
        _dump(result)
    else:
        from bot.core.sources import SourcePoll

        polls = [SourcePoll(**s) for s in result["sources"]]
        for p in polls:
            print(p.line())
        if not polls:
            print("no followed sources to poll: `newsbot sources add URL` follows one")
        print(f"polled {counted(len(polls), 'source')} in {result['seconds']:.1f}s")
    failed = [s for s in result["sources"] if s["outcome"] in ("failed", "disabled")]
    return 1 if failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    result = call("export", {"path": str(Path(args.path).expanduser().resolve())})
    if args.json:
        _dump(result)
    else:
        print(f"exported {counted(result['sources'], 'source')} and "
              f"{counted(result['articles'], 'article')} "
              f"to {result['path']}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.path).expanduser().resolve()
    if not path.is_file():
        why = "is a folder; give the export file" if path.is_dir() else "no such file"
        print(f"error: {args.path}: {why}", file=sys.stderr)
        return 1
    result = call("import", {"path": str(path)}, label="import")
    if args.json:
        _dump(result)
    else:
        from bot.core.admin import ReindexReport

        print(f"imported {counted(result['sources'], 'source')} and "
              f"{counted(result['articles'], 'article')} "
              f"({result['restored']} new or changed); "
              f"{ReindexReport(**result['reindex']).summary()}")
    return 0


def _service_store(settings: Settings) -> Services:
    """The services of ``serve`` and ``run``. A command run while no service was up holds
    the store until it ends: the service waits for it (as such a command waits for a
    starting service) instead of exiting; a running service's store is refused."""
    from bot.control import ControlClient
    from bot.core.models import NewsbotError, StoreError

    told = False
    while True:
        try:
            return _services(settings)
        except StoreError as exc:
            if "in use by" in str(exc) and ControlClient.find(settings.data_dir):
                holder = re.search(r"in use by (pid \d+) \((.*)\);", str(exc))
                raise NewsbotError(
                    f"newsbot already runs on {settings.data_dir}"
                    + (f" ({holder[1]}, {holder[2]})" if holder else "")
                    + "; commands are handed to it, so stop it before starting another"
                ) from None
            if "in use by" not in str(exc):
                raise
            if not told:
                holder = str(exc).split("; ")[0]
                print(f"waiting: {holder}; the service starts when it is done",
                      file=sys.stderr, flush=True)
                told = True
            time.sleep(0.5)


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from bot.service import leave, serve

    services = _service_store(_settings())
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("bot").setLevel(logging.INFO)  # a service says what it does
    try:
        return leave(asyncio.run(serve(services)))
    except KeyboardInterrupt:
        return leave(0)


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.discord_token is None:
        print("error: DISCORD_TOKEN is not set; put it in .env or the environment "
              "(see .env.example)", file=sys.stderr)
        return 2
    from bot.client import run_bot
    from bot.service import leave

    return leave(run_bot(_service_store(settings)))


def cmd_doctor(args: argparse.Namespace) -> int:
    from bot.core.llm import build_chat_model
    from bot.core.model_check import check_model

    settings = _settings()
    if not logging.getLogger().isEnabledFor(logging.INFO):
        # The check's one line says what failed; the client's warning would say it twice.
        logging.getLogger("bot.core.llm").setLevel(logging.ERROR)
    model = build_chat_model(settings)
    if model is None:
        note = ("no language model configured (OPENAI_API_KEY / OPENAI_BASE_URL): answers are "
                "extractive")
        if args.json:
            _dump({"configured": False, "model": None, "mode": "extractive", "ok": True,
                   "note": note})
        else:
            print(note)
        return 0
    try:
        check = check_model(model, settings)
    finally:
        model.close()
    if args.json:
        print(json.dumps({"configured": True, **check.to_json()}, indent=2))
    else:
        print(check.summary())
        if check.answer:
            print(f"  its answer: {check.answer}")
    return 0 if check.ok else 1


def cmd_sync(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.discord_token is None:
        print("error: DISCORD_TOKEN is not set; put it in .env or the environment",
              file=sys.stderr)
        return 2
    from bot.client import sync_commands

    return sync_commands(settings)  # the commands only: the store may be held by a running bot


def _count(value: str) -> int:
    """An option's whole number of 0 or more (argparse reports the error and exits 2)."""
    if not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of 0 or more")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsbot",
        description="Answers questions from the news articles it has read, citing each source.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> Any:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("ask", cmd_ask, "answer one question and print the answer with its sources")
    p.add_argument("question", nargs="?", default=EXAMPLE_QUESTION,
                   help=f'the question (default: "{EXAMPLE_QUESTION}")')
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.add_argument("--since",
                   help="only articles since: YYYY-MM-DD, today, yesterday, week, month, year")
    p.add_argument("--source", help="only articles from this outlet")
    add("chat", cmd_chat, "a conversation in the terminal; follow-ups keep their context")
    p = add("ingest", cmd_ingest, "load articles once from files, folders, feeds or web pages")
    p.add_argument("sources", nargs="+", help="JSON/JSONL/Markdown file, folder, feed or URL")
    p.add_argument("--show-skipped", type=_count, default=20, metavar="N",
                   help="list at most N skipped items (default 20)")
    p.add_argument("--json", action="store_true")
    p = add("status", cmd_status, "articles, chunks, models, sources and the running service")
    p.add_argument("--json", action="store_true")
    p = add("sources", cmd_sources,
            "list the sources; `add URL` follows a feed or page, `remove SPEC` forgets one")
    p.add_argument("action", nargs="?", choices=["list", "add", "remove"], default="list")
    p.add_argument("target", nargs="?", metavar="URL_OR_SPEC",
                   help="add: the feed or page URL; remove: the source's id, name or URL")
    p.add_argument("--name", help="add: a short name for the source")
    p.add_argument("--every", type=int, metavar="MINUTES",
                   help="add: minutes between polls (default NEWSBOT_POLL_MINUTES)")
    p.add_argument("--backfill", type=int, default=0, metavar="N",
                   help="add: post briefs for the N newest items of the first fetch")
    p.add_argument("--json", action="store_true")
    p = add("reindex", cmd_reindex, "sync the store to the registry, or rebuild it with --full")
    p.add_argument("--full", action="store_true",
                   help="rebuild into a new collection; the old one serves until the switch")
    p.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")
    p.add_argument("--json", action="store_true")
    p = add("poll", cmd_poll, "poll the followed feeds and pages now, once")
    p.add_argument("--once", action="store_true", help="one pass (the only mode; for scripts)")
    p.add_argument("--source", metavar="SPEC", help="poll only this source (id, name or URL)")
    p.add_argument("--json", action="store_true")
    p = add("brief", cmd_brief, "news briefs: preview an article's brief, or post it to a "
                                "channel through the running bot")
    p.add_argument("action", choices=["preview", "post"])
    p.add_argument("article", help="an article id from the registry, or the article's URL "
                                   "(fetched and ingested first when new)")
    p.add_argument("--channel", type=int, metavar="ID", help="post: the channel's id")
    p.add_argument("--headline", help="post: a headline of your own")
    p.add_argument("--synopsis", help="post: a synopsis of your own")
    p.add_argument("--json", action="store_true", help="print the brief as JSON")
    p = add("subscriptions", cmd_subscriptions,
            "channels that receive briefs of a source or a topic: add, remove, list")
    p.add_argument("action", choices=["add", "remove", "list"])
    p.add_argument("id", nargs="?", type=int, help="remove: the subscription's number")
    p.add_argument("--channel", type=int, metavar="ID", help="the channel's id")
    p.add_argument("--source", help="add: follow this source (id, name or URL)")
    p.add_argument("--topic", help="add: follow articles about this topic")
    p.add_argument("--keywords", type=lambda v: [k.strip() for k in v.split(",") if k.strip()],
                   help="add: only articles with one of these words (comma-separated)")
    p.add_argument("--daily-cap", type=int, metavar="N", help="add: at most N briefs a day")
    p.add_argument("--mode", choices=["immediate", "digest"], default="immediate")
    p.add_argument("--digest-hour", type=int, default=8, metavar="H",
                   help="add: the hour of the daily digest (0-23)")
    p.add_argument("--tz", help="add: the time zone of the digest hour (default: "
                   "NEWSBOT_TIMEZONE, UTC unless set)")
    p.add_argument("--json", action="store_true")
    p = add("export", cmd_export, "write the sources and articles to a JSONL backup")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p = add("import", cmd_import, "restore sources and articles from a backup, then reindex")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    add("serve", cmd_serve, "run the service without Discord: feed watcher and control socket")
    add("run", cmd_run, "the service plus Discord: answer members (needs DISCORD_TOKEN)")
    add("sync", cmd_sync, "register the slash commands globally with Discord")
    p = add("doctor", cmd_doctor, "one test question to the configured language model: "
            "reachable, tokens/s, cited, length cap honoured")
    p.add_argument("--json", action="store_true")
    return parser


def _not_utf8(argv: Sequence[str]) -> str | None:
    """The first argument that is not UTF-8 text, as typed, or None.

    Python hands such bytes over as lone surrogates (a Latin-1 file name, a terminal set to
    Latin-1), which no database, URL or tokenizer takes.
    """
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            try:
                return arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            except UnicodeEncodeError:
                return arg.encode("utf-8", "backslashreplace").decode()
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bad = _not_utf8(sys.argv[1:] if argv is None else argv)
    if bad is not None:
        print(f"error: '{bad}' is not UTF-8 text; newsbot takes names, paths and words in "
              "UTF-8", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # trafilatura logs a page it cannot read as an ERROR of its own; the command's one
        # line already says why ("an HTML page with no article text").
        logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    from bot.core.models import NewsbotError
    from bot.settings import unknown_settings

    for line in unknown_settings(os.environ):
        print(f"warning: {line}", file=sys.stderr)

    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader that went away shows up here, not at exit
        return code
    except BrokenPipeError:
        # Piped into `head` and the reader has gone: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE
    except NewsbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except _BadSettings as exc:
        print(f"error: invalid setting: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            from bot.settings import setting_errors

            print(f"error: invalid setting: {setting_errors(exc)}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
