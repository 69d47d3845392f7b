"""Every command the service carries out for the command line, in one table.

An operation takes JSON-able arguments and returns a JSON-able result, so the CLI prints the
same thing whether it ran the operation itself or a running service ran it and sent the
result over the control socket. Writes are serialised by the caller (the service's job
runner, or the CLI being the only process); reads may run concurrently with them.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from bot.core import brief_ops
from bot.core.admin import Progress
from bot.core.models import NewsbotError, Turn
from retrieval.embeddings import EmbeddingUnavailable
from retrieval.store import StoreReadOnly, StoreUnavailable

if TYPE_CHECKING:
    from bot.core.services import Services
    from bot.core.state import State

Args = dict[str, Any]
OUTLETS_NAMED = 10  # of the outlets a misspelt one is refused with
Result = dict[str, Any]


Access = Literal["member", "mod", "admin"]


class NotPermitted(NewsbotError):
    """The caller may not run this operation (checked here as well as in each adapter)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks. The command line's user is the machine's user (the control socket admits
    no one else), so an admin; Discord passes what the member's permissions allow."""

    name: str = "local user"
    mod: bool = True
    admin: bool = True

    def may(self, access: Access) -> bool:
        return access == "member" or (access == "mod" and (self.mod or self.admin)) or (
            access == "admin" and self.admin)


@dataclass(slots=True)
class Context:
    """What an operation may use besides its arguments."""

    services: Services
    progress: Progress = field(default_factory=Progress)
    actor: Actor = field(default_factory=Actor)
    # Filled by a running service for `status`: uptime, the running job, the queue.
    service_info: Callable[[], dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    write: bool  # changes the registry or the store: one at a time
    run: Callable[[Context, Args], Result]
    access: Access = "member"


def _ask(ctx: Context, args: Args) -> Result:
    ask = ctx.services.ask
    since = ask.parse_since(args["since"]) if args.get("since") else None
    ask.validate(args["question"])  # bad input is refused before anything is written
    if args.get("load_sample", True):
        ctx.services.ensure_sample(ctx.progress)
    outlet = (args.get("source") or "").strip() or None
    if outlet is not None:
        check_outlet(ctx.services.state, outlet)
    history = [Turn(t["role"], t["text"]) for t in args.get("history") or []]
    answer = ask.ask(args["question"], history=history, since=since, outlet=outlet)
    return {**answer.to_json(), "history_cut": answer.history_cut}


def check_outlet(state: State, outlet: str) -> None:
    """Refuse an outlet no article is from (a typo), naming those there are, rather than
    answer that nothing matched (the command line's ``--source``, Discord's ``source:``)."""
    outlets = sorted({r["outlet"] for r in state.outlet_summary() if r["outlet"]},
                     key=str.casefold)
    if outlet.casefold() in {o.casefold() for o in outlets}:
        return
    listed = ", ".join(outlets[:OUTLETS_NAMED])
    more = f" and {len(outlets) - OUTLETS_NAMED} more" if len(outlets) > OUTLETS_NAMED else ""
    raise NewsbotError(f"no article is from an outlet named {outlet!r}; "
                       + (f"the outlets are: {listed}{more}" if outlets else "there are no "
                          "articles yet"))


def _status(ctx: Context, args: Args) -> Result:
    status = ctx.services.admin.status()
    status["service"] = ctx.service_info() if ctx.service_info else None
    return status


def _ingest(ctx: Context, args: Args) -> Result:
    return ctx.services.admin.ingest(args["sources"], ctx.progress).to_json()


def _sources_list(ctx: Context, args: Args) -> Result:
    return {"sources": ctx.services.admin.source_list()}


def _sources_add(ctx: Context, args: Args) -> Result:
    return ctx.services.sources.add(args["url"], name=args.get("name"),
                                    every_min=args.get("every"),
                                    backfill=int(args.get("backfill") or 0),
                                    progress=ctx.progress)


def _sources_remove(ctx: Context, args: Args) -> Result:
    # The channel subscriptions that follow the source end with it: said in the reply.
    following = ctx.services.desk.subscriptions()
    source, removed = ctx.services.admin.remove_source(args["spec"], path=args.get("path"))
    ended = [{"id": s.id, "channel_id": s.channel_id} for s in following
             if s.source_id == source.id]
    return {"id": source.id, "spec": source.spec, "name": source.name,
            "articles_removed": removed, "subscriptions_ended": ended}


def _reindex(ctx: Context, args: Args) -> Result:
    return ctx.services.admin.reindex(ctx.progress, full=bool(args.get("full")),
                                      dry_run=bool(args.get("dry_run")),
                                      record=bool(args.get("record", True))).to_json()


def _poll(ctx: Context, args: Args) -> Result:
    report = ctx.services.sources.poll(only=args.get("source"),
                                       due_only=bool(args.get("due_only")),
                                       progress=ctx.progress)
    return report.to_json()


def _export(ctx: Context, args: Args) -> Result:
    path = Path(args["path"])
    if path.exists() and path.is_dir():
        raise NewsbotError(f"{path} is a folder; give a file name for the export")
    try:
        counts = ctx.services.admin.export(path)
    except OSError as exc:
        raise NewsbotError(f"cannot write {path}: {exc.strerror or exc}") from None
    return {"path": str(path), **counts}


def _import(ctx: Context, args: Args) -> Result:
    return ctx.services.admin.import_(Path(args["path"]), ctx.progress)


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    Operation("ask", False, _ask),
    Operation("status", False, _status),
    Operation("sources.list", False, _sources_list, "admin"),
    Operation("ingest", True, _ingest, "admin"),
    Operation("sources.add", True, _sources_add, "admin"),
    Operation("sources.remove", True, _sources_remove, "admin"),
    Operation("reindex", True, _reindex, "admin"),
    Operation("poll", True, _poll, "admin"),
    Operation("export", False, _export, "admin"),
    Operation("import", True, _import, "admin"),
    # Briefs: a new URL is ingested first, so preview and post are writes.
    Operation("brief.preview", True, brief_ops.brief_preview, "mod"),
    Operation("brief.post", True, brief_ops.brief_post, "mod"),
    Operation("subscriptions.add", True, brief_ops.subscriptions_add, "mod"),
    Operation("subscriptions.remove", True, brief_ops.subscriptions_remove, "mod"),
    Operation("subscriptions.list", False, brief_ops.subscriptions_list, "mod"),
    Operation("brief.timezone", True, brief_ops.brief_timezone, "mod"),
)}


def lookup(name: str, actor: Actor) -> Operation:
    """The operation ``name``, if ``actor`` may run it."""
    op = OPERATIONS.get(name)
    if op is None:
        raise NewsbotError(f"unknown operation {name!r}")
    if not actor.may(op.access):
        raise NotPermitted(f"only {'admins' if op.access == 'admin' else 'moderators'} "
                           f"can do that ({name})")
    return op


def execute(op: Operation, ctx: Context, args: Args) -> Result:
    """Run ``op``; a full disk becomes one line saying so (every write is ordered so that
    a failed one loses nothing, and the store keeps serving)."""
    try:
        return op.run(ctx, args)
    except NewsbotError:
        raise
    except StoreReadOnly as exc:
        raise NewsbotError(str(exc)) from None
    except (httpx.TransportError, StoreUnavailable) as exc:
        store = ctx.services.store
        if not store.shared:
            raise
        # The Chroma server stopped (a restart, a crash) while this ran: every write is
        # ordered so that what it did not finish is finished by running it again.
        gone = f"the Chroma server at {store.location} does not answer"
        if not op.write:
            raise NewsbotError(f"{gone}; try again once it is back") from exc
        raise NewsbotError(f"{gone}: {op.name} stopped; nothing stored before was lost; run "
                           "it again once the server is back") from exc
    except EmbeddingUnavailable as exc:
        raise NewsbotError(f"{str(exc).rstrip('.')}; {op.name} stopped, nothing was lost") \
            from exc
    except Exception as exc:
        if not _write_refused(exc):
            raise
        raise NewsbotError(
            f"writing to the disk failed ({exc}): {op.name} stopped; nothing already stored "
            "was lost and answers carry on. Check the free space and run it again.") from exc


def _write_refused(exc: BaseException) -> bool:
    """A full disk, a quota, a file-size limit: what SQLite, Chroma and the OS say then."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return True
    if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorname", "").startswith(
            ("SQLITE_FULL", "SQLITE_IOERR")):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("disk is full", "no space left", "file too large",
                                   "disk quota", "disk i/o error"))


def run_operation(name: str, ctx: Context, args: Args) -> Result:
    """Run one operation in this process (the caller serialises writes)."""
    return execute(lookup(name, ctx.actor), ctx, args)
