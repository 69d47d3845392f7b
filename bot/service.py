"""The long-lived process: ``newsbot serve`` (no Discord) and ``newsbot run`` (with Discord).

It owns the store and is its only writer. Writes (ingest, polls, reindex, source changes)
run one at a time on worker threads, whoever asks: the feed watcher, a Discord admin, or the
command line through the control socket. Reads (questions, status) run beside them, so
members keep getting answers during a reindex.

Stopping (SIGTERM, Ctrl-C) takes a few seconds at most: the watcher stops, the running job
stops at its next batch boundary, and a job that does not reach one in time is abandoned;
every write is ordered so that an abandoned job, like a ``kill -9``, leaves the live store
serving, and the incremental sync run at the next start completes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from discord.ext import tasks

from bot.control import ControlServer, Emit, socket_path
from bot.core.admin import Cancelled, Progress
from bot.core.models import NewsbotError
from bot.core.operations import Actor, Context, NotPermitted, execute, lookup
from bot.threads import call_soon

if TYPE_CHECKING:
    from bot.core.services import Services
    from bot.core.sources import PollReport

log = logging.getLogger(__name__)

T = TypeVar("T")
GRACE_S = 4.0  # how long a stop waits for the running job to reach a batch boundary
WATCH_TICK_S = 30.0  # how often the watcher looks for due sources

# Set when a stop leaves a job running on its thread: see leave().
_abandoned = threading.Event()


def leave(code: int) -> int:
    """The exit of ``serve`` and ``run``: returns ``code``, or, when a stop abandoned a job,
    ends the process here with it. The job's thread may be inside the embedding model's
    native code, and the interpreter's normal exit then aborts the process (SIGABRT, exit
    134, a core dump) at what was an orderly stop."""
    if not _abandoned.is_set():
        return code
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


@dataclass(slots=True)
class Job:
    """The write operation running now, for status and for "already running" replies."""

    name: str
    started: datetime
    total: int | None = None
    done: int = 0

    def describe(self) -> str:
        since = self.started.astimezone().strftime("%H:%M")
        pct = f", {100 * self.done // self.total}% done" if self.total else ""
        article = "an" if self.name[:1] in "aeiou" else "a"
        return f"{article} {self.name} is already running since {since}{pct}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "started": self.started.isoformat(), "total": self.total,
                "done": self.done}


async def in_thread(func: Callable[[], T]) -> T:
    """Run ``func`` on a daemon thread: unlike the default executor's threads, one that is
    still busy when the service stops does not hold the process open."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def target() -> None:
        try:
            result = func()
        except BaseException as exc:  # handed to the awaiting coroutine
            if not call_soon(loop, _settle, future, None, exc):
                log.debug("%s failed after the service stopped: %r", func, exc)
        else:
            call_soon(loop, _settle, future, result, None)  # dropped once the loop is closed

    threading.Thread(target=target, daemon=True, name="newsbot-job").start()
    return await future


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class NewsService:
    """The service: control endpoint, feed watcher and job runner around the core services."""

    def __init__(self, services: Services, *, tick_s: float = WATCH_TICK_S,
                 control: bool = True) -> None:
        self.services = services
        self.started = datetime.now(UTC)
        self.stopping = threading.Event()
        self.job: Job | None = None
        self.waiting = 0  # write operations queued behind the running one
        self._reindex_queued = False  # a reindex runs or waits: a second one is refused
        self._writes = asyncio.Lock()
        # Reads run beside the writes, each on a thread of its own: a bound keeps a flood of
        # local calls from starting threads without end (the rest wait their turn).
        self._reads = asyncio.Semaphore(max(2, services.settings.max_concurrent_answers))
        self._control = (ControlServer(socket_path(services.settings.data_dir), self.call,
                                       self.info) if control else None)
        self._tick_s = tick_s
        self._watcher: tasks.Loop[Any] | None = None
        self._busy: set[asyncio.Future[Any]] = set()
        # Called with every poll report (briefs), and with one line for moderators.
        self.poll_listeners: list[Callable[[PollReport], Awaitable[None]]] = []
        self.alert: Callable[[str], Awaitable[None]] | None = None
        self.watcher_starts = 0  # how often a watcher was started (one per service)
        self.poll_listeners.append(self._plan_briefs)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        if self._control is not None:
            await self._control.start()
            log.info("control socket: %s", self._control.path)
        admin = self.services.admin
        if admin.model_change_pending:
            log.warning("the store holds vectors of %s but %s is configured: answers use the "
                        "old model until `newsbot reindex --full`",
                        admin.indexer.embedder.model_id, admin.target_embedder.model_id)
        self._spawn(in_thread(self._warm_up))
        self._spawn(in_thread(self._check_model))
        self._spawn(self._repair())
        self._spawn(self._plan_briefs())  # what a crash left queued
        self._start_watcher()

    def _start_watcher(self) -> None:
        if self._watcher is not None:
            return  # one watcher per service, however often Discord reconnects
        loop = tasks.loop(seconds=self._tick_s, name="newsbot-feed-watcher")(self._watch_tick)
        loop.start()
        self._watcher = loop
        self.watcher_starts += 1

    async def stop(self) -> None:
        """Stop taking work, let the running job reach a batch boundary, then close."""
        self.stopping.set()
        if self._watcher is not None:
            self._watcher.cancel()
        deadline = time.monotonic() + GRACE_S
        while self.job is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # Closed only now: a job that stopped at its batch has told its caller so (new calls
        # were refused meanwhile, as the service was stopping).
        if self._control is not None:
            await self._control.stop()
        if self.job is not None:
            log.warning("abandoning the running %s: what it wrote is kept, and the next "
                        "start completes it", self.job.name)
            _abandoned.set()
            return  # its thread still uses the store: the process exit ends both
        for fut in list(self._busy):
            fut.cancel()
        self.services.close()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        fut = asyncio.ensure_future(coro)
        self._busy.add(fut)
        fut.add_done_callback(self._busy.discard)

    def _warm_up(self) -> None:
        """Load the embedding model and the keyword index now, not on the first question."""
        try:
            self.services.embedder.embed_query("warm up")
            self.services.retriever.lexical()
        except Exception:
            log.exception("warming up the search failed; the first question will retry")

    def _check_model(self) -> None:
        """Log what `newsbot doctor` would say about the configured language model."""
        from bot.core.model_check import log_model_check

        log_model_check(self.services.ask.model, self.services.settings)

    async def _repair(self) -> None:
        """At start: drop a crashed rebuild's collection and sync the store to the registry
        (a kill -9 mid-ingest or mid-removal leaves them apart)."""
        store = self.services.store
        if not store.writable:
            log.info("the store %s on %s is kept by another data dir: this service reads it "
                     "and writes nothing to it", store.collection_name, store.location)
            return
        try:
            await self.call("reindex", {"startup": True, "record": False})
        except Exception:
            log.exception("the start-up sync of the store failed; the store serves as it is")

    # -- operations ------------------------------------------------------------------------
    async def call(self, name: str, args: dict[str, Any], emit: Emit | None = None,
                   actor: Actor | None = None) -> dict[str, Any]:
        """Run an operation for the control socket or an adapter; writes one at a time.
        ``actor`` defaults to the local user (an admin): the socket admits no one else."""
        actor = actor or Actor()
        op = lookup(name, actor)
        if self.stopping.is_set():
            raise NewsbotError("the service is shutting down; try again when it is back")
        if name == "reindex" and self._reindex_queued:
            running = self.job is not None and self.job.name == "reindex"
            raise NewsbotError(self.job.describe() if running and self.job else
                               "a reindex is already waiting to run")
        startup = name == "reindex" and bool(args.pop("startup", False))
        job = Job("start-up sync" if startup else name, datetime.now(UTC))
        progress = self._progress(job, emit)
        ctx = Context(self.services, progress, actor=actor, service_info=self.info)
        if not op.write:
            async with self._reads:
                return await in_thread(lambda: execute(op, ctx, args))
        self.waiting += 1
        queued_reindex = name == "reindex" and not startup
        if queued_reindex:
            self._reindex_queued = True
        try:
            if self._writes.locked() and emit and self.job is not None:
                emit({"waiting": self.job.describe().replace("is already", "is")})
            await self._writes.acquire()
        except BaseException:
            if queued_reindex:
                self._reindex_queued = False
            raise
        finally:
            self.waiting -= 1
        if self.stopping.is_set():  # it began to stop while this call waited its turn
            self._writes.release()
            if queued_reindex:
                self._reindex_queued = False
            raise NewsbotError("the service is shutting down; try again when it is back")
        try:
            self.job = job
            if startup:
                await in_thread(self.services.store.drop_unfinished)
            result = await in_thread(lambda: execute(op, ctx, args))
        except Exception as exc:
            if name == "reindex" and not isinstance(exc, (NotPermitted, Cancelled)):
                self._spawn(self.tell_moderators(
                    f"A reindex failed; the live store serves as before: {exc}"))
            raise
        finally:
            self.job = None
            if queued_reindex:
                self._reindex_queued = False
            self._writes.release()
        if name == "poll":
            self._spawn(self.after_poll(result))
        elif name == "sources.add":
            self._spawn(self.after_poll({"sources": [result["poll"]], "seconds": 0.0}))
        return result

    def _progress(self, job: Job, emit: Emit | None) -> Progress:
        """Progress that keeps ``job``'s counts (for status) and forwards events."""
        def on_event(event: dict[str, Any]) -> None:
            if "phase" in event:
                job.total, job.done = event["total"], 0
            elif "articles" in event:
                job.done += event["articles"]
            if emit:
                emit(event)

        return Progress.emitting(on_event, cancelled=self.stopping.is_set)

    def info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "started": self.started.isoformat(),
            "uptime_s": round((datetime.now(UTC) - self.started).total_seconds()),
            "job": self.job.to_json() if self.job else None,
            "queued": self.waiting,
            "watcher": self._watcher is not None and self._watcher.is_running(),
            "watcher_starts": self.watcher_starts,
        }

    # -- the feed watcher ------------------------------------------------------------------
    async def _watch_tick(self) -> None:
        if self.stopping.is_set() or self._writes.locked():
            return  # a long job runs: due sources wait for the next tick
        if not self.services.store.writable:
            return  # polls write to a store another data dir keeps: that one's polls do
        try:
            await self.call("poll", {"due_only": True})  # hands its report on itself
        except Exception:
            log.exception("a feed poll failed")

    async def after_poll(self, result: dict[str, Any]) -> None:
        """Hand a poll's outcome to the listeners, and tell moderators of sources that were
        disabled by this poll (once: later polls skip a disabled source)."""
        from bot.core.sources import PollReport, SourcePoll

        report = PollReport([SourcePoll(**s) for s in result["sources"]], result["seconds"])
        for s in report.sources:
            if s.newly_disabled:
                await self.tell_moderators(f"Source {s.id} ({s.label}) was {s.error}. "
                                           "Re-add it with `/feeds add` once it works again.")
        for listener in self.poll_listeners:
            try:
                await listener(report)
            except Exception:
                log.exception("a poll listener failed")

    async def _plan_briefs(self, report: PollReport | None = None) -> None:
        """New and changed articles of polls become briefs for the subscribed channels
        (recorded in the posted log; the Discord side sends them). Polls queue them in the
        transaction that records them, so this also plans what a crash left unplanned."""
        try:
            await in_thread(self.services.desk.plan_queued)
        except Exception:
            log.exception("planning briefs failed; the articles stay queued for the next pass")

    async def tell_moderators(self, line: str) -> None:
        log.warning("%s", line)
        if self.alert is not None:
            try:
                await self.alert(line)
            except Exception:
                log.exception("could not post an alert to the moderators' channel")


# -- entry points ----------------------------------------------------------------------------


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def serve(services: Services, *, ready: Callable[[NewsService], None] | None = None
                ) -> int:
    """``newsbot serve``: the service without Discord, until SIGTERM or Ctrl-C."""
    service = NewsService(services)
    stop = asyncio.Event()
    stop_on_signals(stop)
    await service.start()
    log.info("newsbot serve: pid %d, watching sources every %ds", os.getpid(),
             int(service._tick_s))
    if ready:
        ready(service)
    await stop.wait()
    log.info("stopping")
    await service.stop()
    return 0
