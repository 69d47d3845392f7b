"""The ``newsbot`` command line: run the bot, ask, chat, ingest, manage sources, reindex.

Heavy imports (Chroma, onnxruntime, discord.py) happen inside the commands, so ``--help``
answers at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from bot.core.admin import Progress
    from bot.core.models import Answer
    from bot.core.services import Services
    from bot.settings import Settings

EXAMPLE_QUESTION = "what did Netflix use AI for in The Eternaut?"


def _settings() -> Settings:
    from bot.settings import Settings

    return Settings()


def _services(settings: Settings | None = None, **kwargs: Any) -> Services:
    from bot.core.services import build_services

    return build_services(settings or _settings(), **kwargs)


@contextmanager
def _progress(label: str) -> Iterator[Progress]:
    """Rich progress bars for articles and chunks, on stderr so --json stays clean."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as Bars

    from bot.core.admin import Progress

    console = Console(stderr=True)
    bars = Bars(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                console=console, transient=False, disable=not console.is_terminal)
    with bars:
        arts = bars.add_task(f"{label} articles", total=None, rate="")
        chunks = bars.add_task("chunks", total=None, rate="")

        def on_chunks(n: int) -> None:
            bars.advance(chunks, n)
            task = bars.tasks[chunks]
            if task.elapsed:
                bars.update(chunks, rate=f"{task.completed / task.elapsed:.1f}/s")

        yield Progress(articles=lambda n: bars.advance(arts, n), chunks=on_chunks)


def _print_answer(answer: Answer, as_json: bool) -> None:
    if as_json:
        print(json.dumps(answer.to_json(), ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    console.print(escape(answer.text))
    if answer.sources:
        console.print("\n[bold]Sources[/bold]")
    for s in answer.sources:
        date = s.published_at.date().isoformat() if s.published_at else "undated"
        console.print(f"  [{s.n}] {escape(s.title)} — {escape(s.outlet or 'unknown outlet')}, "
                      f"{date}" + (f"\n      {s.url}" if s.url else ""), highlight=False)
    if answer.abstained and answer.closest:
        console.print("\n[bold]Closest articles[/bold]")
        for s in answer.closest:
            date = s.published_at.date().isoformat() if s.published_at else "undated"
            console.print(f"  - {escape(s.title)} ({escape(s.outlet or '?')}, {date})",
                          highlight=False)
    mode = "language model" if answer.mode == "model" else "extractive (no language model)"
    console.print(f"\n[dim]{mode}{'; ' + answer.note if answer.note else ''}"
                  f"{'; earlier turns were cut' if answer.history_cut else ''}[/dim]")


def _ensure_sample(services: Services, quiet: bool) -> None:
    report = None
    if quiet:
        report = services.ensure_sample()
    elif not (services.state.counts()[0] or services.store.count()):
        print("No articles yet: loading the bundled sample articles (first run only).",
              file=sys.stderr)
        with _progress("sample") as progress:
            report = services.ensure_sample(progress)
    if report and not quiet:
        print(report.summary(), file=sys.stderr)


# -- commands ----------------------------------------------------------------------------------
def cmd_ask(args: argparse.Namespace) -> int:
    services = _services()
    try:
        # Bad input is refused before anything is written, even the first-run sample.
        since = services.ask.parse_since(args.since) if args.since else None
        services.ask.validate(args.question)
        _ensure_sample(services, quiet=args.json)
        answer = services.ask.ask(args.question, since=since, outlet=args.source)
        _print_answer(answer, args.json)
    finally:
        services.close()
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.core.models import NewsbotError, Turn

    services = _services()
    history: list[Turn] = []
    try:
        _ensure_sample(services, quiet=False)
        print("Ask about the news; follow-ups keep the conversation. Ctrl-D or 'exit' quits.")
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
                answer = services.ask.ask(question, history=history)
            except NewsbotError as exc:
                print(f"newsbot> {exc}")
                continue
            print("newsbot> ", end="")
            _print_answer(answer, as_json=False)
            history += [Turn("user", question), Turn("assistant", answer.text)]
    finally:
        services.close()


def cmd_ingest(args: argparse.Namespace) -> int:
    services = _services()
    try:
        with _progress("ingest") as progress:
            report = services.admin.ingest(args.sources, progress)
    finally:
        services.close()
    print(report.summary())
    for s in report.skipped[: args.show_skipped]:
        print(f"  skipped {s.name}: {s.reason}")
    if len(report.skipped) > args.show_skipped:
        print(f"  ... and {len(report.skipped) - args.show_skipped} more")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    services = _services()
    try:
        status = services.admin.status()
    finally:
        services.close()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for key, value in status.items():
            print(f"{key:>16}: {value}")
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    services = _services()
    try:
        if args.action == "remove":
            if not args.spec:
                print("error: `newsbot sources remove` needs the source to remove",
                      file=sys.stderr)
                return 2
            n = services.admin.remove_source(args.spec)
            print(f"removed {args.spec}: {n} articles taken out of the store")
            return 0
        rows = services.admin.sources()
    finally:
        services.close()
    if args.json:
        print(json.dumps([{"outlet": r.outlet, "source": r.source, "articles": r.articles,
                           "newest": r.newest.isoformat() if r.newest else None} for r in rows],
                         indent=2))
    else:
        for r in rows:
            newest = r.newest.date().isoformat() if r.newest else "undated"
            print(f"{r.articles:>6}  {r.outlet}  (newest {newest})  {r.source}")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    services = _services(check_model=False)
    try:
        with _progress("reindex") as progress:
            articles, chunks = services.admin.reindex(progress)
    finally:
        services.close()
    print(f"reindexed {articles} articles into {chunks} chunks; the new collection is live")
    return 0


def cmd_brief(args: argparse.Namespace) -> int:
    services = _services()
    try:
        brief = services.briefs.preview(args.article)
    finally:
        services.close()
    if args.json:
        print(json.dumps(brief.to_json(), ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    console.print(f"[bold]{escape(brief.headline)}[/bold]")
    date = brief.published_at.date().isoformat() if brief.published_at else "undated"
    console.print(f"[dim]{escape(brief.outlet or 'unknown outlet')}, {date}[/dim]\n",
                  highlight=False)
    console.print(escape(brief.synopsis))
    for point in brief.points:
        console.print(f"  • {escape(point)}")
    if brief.url:
        console.print(f"\n{brief.url}", highlight=False)
    mode = "language model" if brief.mode == "model" else "extractive (no language model)"
    console.print(f"\n[dim]{mode}; article {brief.article_id}[/dim]", highlight=False)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.discord_token is None:
        print("error: DISCORD_TOKEN is not set; put it in .env or the environment "
              "(see .env.example)", file=sys.stderr)
        return 2
    from bot.client import run_bot

    services = _services(settings)
    try:
        return run_bot(services)
    finally:
        services.close()


def cmd_sync(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.discord_token is None:
        print("error: DISCORD_TOKEN is not set; put it in .env or the environment",
              file=sys.stderr)
        return 2
    from bot.client import sync_commands

    services = _services(settings)
    try:
        return sync_commands(services)
    finally:
        services.close()


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
    p.add_argument("--since", help="only articles since: YYYY-MM-DD, today, week, month, year")
    p.add_argument("--source", help="only articles from this outlet")
    add("chat", cmd_chat, "a conversation in the terminal; follow-ups keep their context")
    p = add("ingest", cmd_ingest, "add articles from files, folders, feeds or web pages")
    p.add_argument("sources", nargs="+", help="JSON/JSONL/Markdown file, folder, feed or URL")
    p.add_argument("--show-skipped", type=int, default=20, metavar="N",
                   help="list at most N skipped items (default 20)")
    p = add("status", cmd_status, "articles, chunks, models and store in use")
    p.add_argument("--json", action="store_true")
    p = add("sources", cmd_sources, "list the sources, or remove one with its articles")
    p.add_argument("action", nargs="?", choices=["list", "remove"], default="list")
    p.add_argument("spec", nargs="?", help="the source to remove (as listed)")
    p.add_argument("--json", action="store_true")
    add("reindex", cmd_reindex,
        "rebuild the vector store from the registry; the old one serves until the switch")
    p = add("brief", cmd_brief, "news briefs: preview the brief of an article")
    p.add_argument("action", choices=["preview"])
    p.add_argument("article", help="an article id from the registry, or the article's URL "
                                   "(fetched and ingested first when new)")
    p.add_argument("--json", action="store_true", help="print the brief as JSON")
    add("run", cmd_run, "connect to Discord and answer members (needs DISCORD_TOKEN)")
    add("sync", cmd_sync, "register the slash commands globally with Discord")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from bot.core.models import NewsbotError
    from bot.settings import Settings  # noqa: F401  (settings errors are reported below)

    try:
        return int(args.func(args))
    except NewsbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            errors = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'setting'}: {e['msg']}"
                               for e in exc.errors())
            print(f"error: invalid setting: {errors}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
