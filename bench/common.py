"""Helpers shared by the benchmarks.

Corpus files and their hash, settings isolated from the environment, the cached index of a
corpus built through the project's own ingest path, percentiles, memory, and a progress line
that works in a log file as well as in a terminal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from bot.core.admin import Progress
    from bot.core.services import Services
    from bot.settings import Settings
    from retrieval.embeddings import Embedder

# Bump when what the benchmarks cache changes meaning (a new key forces a rebuild).
BENCH_FORMAT = 1

ROOT = Path(__file__).resolve().parent.parent
CACHE_ROOT = ROOT / "bench" / ".cache"

# Code that decides what an index holds: when it changes, a cached index is rebuilt. (The
# store's own code is left out: a change there that breaks an old store fails loudly when it
# is opened, and most changes there do not touch what is stored.)
INGEST_CODE = (
    "retrieval/articles.py",
    "retrieval/chunking.py",
    "retrieval/indexer.py",
    "retrieval/sources/__init__.py",
    "retrieval/sources/files.py",
    "retrieval/sources/web.py",
)

# Settings that change answers or the index: pinned to their defaults, so that a NEWSBOT_*
# variable in the environment does not change what is measured.
_PINNED = ("collection", "embedding_backend", "embedding_batch_size", "top_k",
           "max_question_chars", "history_turns", "abstain_threshold")

META_FILE = "bench-meta.json"
CORE_DIRS = ("bot", "retrieval", "prompts")


# -- corpus ------------------------------------------------------------------------------------
def corpus_files(corpus_dir: Path | str) -> list[Path]:
    """Every ``articles_*.jsonl`` in the folder, sorted; an error when there is none."""
    folder = Path(corpus_dir)
    files = sorted(folder.glob("articles_*.jsonl"))
    if not files:
        raise SystemExit(f"no articles_*.jsonl in {folder}")
    return files


def hash_files(paths: Iterable[Path]) -> str:
    """SHA-256 over the names and bytes of the files, in the given order."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(b"\x00")
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\x00")
    return h.hexdigest()


def code_fingerprint(paths: Sequence[str] = INGEST_CODE) -> str:
    """Hash of the source files that decide what is stored."""
    return hash_files([ROOT / p for p in paths if (ROOT / p).exists()])[:16]


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def git_commit() -> str:
    """The checked-out commit; when files under bot/, retrieval/ or prompts/ differ from it,
    ``+dirty:<hash of their current contents>``, so runs on different uncommitted code differ.
    Call it before the run: the numbers describe the code imported at the start."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *CORE_DIRS], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    if not dirty:
        return head
    files = sorted(p for d in CORE_DIRS for p in (ROOT / d).rglob("*")
                   if p.is_file() and p.suffix in (".py", ".md", ".txt", ".json")
                   and "__pycache__" not in p.parts)
    return f"{head}+dirty:{hash_files(files)[:8]}"


# -- settings and services ---------------------------------------------------------------------
def bench_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a benchmark: no .env, no chat model (extractive answers), defaults pinned."""
    from bot.settings import Settings

    fields = Settings.model_fields
    values: dict[str, Any] = {name: fields[name].get_default(call_default_factory=True)
                              for name in _PINNED}
    values.update(data_dir=Path(data_dir), chroma_url=None, openai_api_key=None,
                  openai_base_url=None, discord_token=None)
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def share_model_cache(data_dir: Path, embedder: Embedder) -> None:
    """Point ``data_dir/models`` at the local model's folder, so that a ``newsbot`` process
    started on ``data_dir`` finds the ONNX model instead of building it again."""
    from retrieval.embeddings import LocalMiniLM

    if not isinstance(embedder, LocalMiniLM):
        return
    shared = embedder.cache_dir
    link = Path(data_dir) / "models"
    if link.exists() or link.is_symlink():
        return
    shared.mkdir(parents=True, exist_ok=True)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    # Without the link the model is simply built inside data_dir.
    with contextlib.suppress(OSError):
        link.symlink_to(shared.resolve(), target_is_directory=True)


def make_bench_embedder(quantized: bool) -> Embedder:
    """The project's local MiniLM, as ``make_embedder`` builds it, with the shared model cache."""
    from bot.core.services import make_embedder

    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    return make_embedder(bench_settings(CACHE_ROOT, embedding_quantized=quantized))


def index_key(files: Sequence[Path], *, model_id: str, quantized: bool) -> dict[str, Any]:
    """Everything a cached index depends on; its hash names the cache folder."""
    from retrieval.chunking import Chunker

    return {
        "format": BENCH_FORMAT,
        "corpus": hash_files(files),
        "files": [p.name for p in files],
        "chunker": Chunker().signature,
        "model": model_id,
        "quantized": quantized,
        "code": code_fingerprint(),
    }


def key_hash(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(slots=True)
class IndexInfo:
    """A ready index: where it is, and how its build went."""

    data_dir: Path
    key: dict[str, Any]
    reused: bool
    articles: int
    chunks: int
    ingest_seconds: float
    built_at: str
    skipped: int = 0
    summary: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.ingest_seconds if self.ingest_seconds else 0.0


def read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError):
        return None


def reuse_or_clear(folder: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The folder's recorded build when it was completed with ``key``; else the folder is
    removed so that it is rebuilt from scratch."""
    meta = read_meta(folder)
    if meta and meta.get("key") == key and meta.get("complete"):
        return meta
    if folder.exists():
        shutil.rmtree(folder)
    return None


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    tmp = folder / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, folder / META_FILE)


@contextmanager
def cache_lock(folder: Path, log: Any = None) -> Iterator[None]:
    """One benchmark process at a time checks, builds and uses a cache folder (another one
    waits here rather than deleting or rebuilding it underneath)."""
    from filelock import FileLock, Timeout

    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder.parent / f"{folder.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for another benchmark using {folder} ...", file=log or sys.stderr,
              flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextmanager
def open_index(files: Sequence[Path], *, embedder: Embedder, quantized: bool,
               cache: Path | None = None, log: Any = None
               ) -> Iterator[tuple[Services, IndexInfo]]:
    """The project's services on a cached index of ``files``, ingested first if needed.

    The cache folder is ``bench/.cache/ours-<key>`` unless ``cache`` names one; it is reused
    only when its recorded key matches (corpus bytes, chunker, model, quantization, ingest
    code, benchmark format), and rebuilt from scratch otherwise. The services are closed, and
    the folder left to other processes, when the block ends.
    """
    from bot.core.services import build_services

    key = index_key(files, model_id=embedder.model_id, quantized=quantized)
    folder = Path(cache) if cache else CACHE_ROOT / f"ours-{key_hash(key)}"
    with cache_lock(folder, log):
        meta = reuse_or_clear(folder, key)
        reused = meta is not None
        share_model_cache(folder, embedder)
        settings = bench_settings(folder, embedding_quantized=quantized)
        services = build_services(settings, embedder=embedder)
        try:
            if reused and meta:
                info = IndexInfo(folder, key, True, meta["articles"], meta["chunks"],
                                 meta["ingest_seconds"], meta["built_at"],
                                 meta.get("skipped", 0), meta.get("summary", ""))
            else:
                info = _ingest(services, files, key, embedder, log)
            yield services, info
        finally:
            services.close()


def _ingest(services: Services, files: Sequence[Path], key: dict[str, Any],
            embedder: Embedder, log: Any) -> IndexInfo:
    warm_up(embedder)
    with ProgressLine("ingest", log) as progress:
        report = services.admin.ingest([str(p) for p in files], progress.callbacks())
    info = IndexInfo(services.settings.data_dir, key, False, services.state.counts()[0],
                     report.chunks, report.seconds,
                     datetime.now(UTC).isoformat(timespec="seconds"), len(report.skipped),
                     report.summary())
    write_meta(info.data_dir, {"key": key, "complete": True, "articles": info.articles,
                               "chunks": info.chunks, "ingest_seconds": info.ingest_seconds,
                               "built_at": info.built_at, "skipped": info.skipped,
                               "summary": info.summary, "commit": git_commit()})
    return info


def warm_up(embedder: Embedder) -> None:
    """Load the model (first calls build sessions) so timings measure steady work."""
    embedder.embed_documents(["warm up the encoder", "a second, somewhat longer warm-up text"])
    embedder.embed_query("warm up")


def quiet_logs() -> None:
    """Warnings only; bm25s sets its own logger to DEBUG when it is imported."""
    import bm25s  # noqa: F401

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)


# -- numbers -----------------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (linear interpolation); NaN for no values."""
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=float), p))


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(who).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def json_safe(value: Any) -> Any:
    """NaN and infinity become null, so the JSON written is valid everywhere."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


# -- progress ----------------------------------------------------------------------------------
class ProgressLine:
    """Counts articles and chunks of a long job; prints a line every few seconds to stderr."""

    def __init__(self, label: str, log: Any = None, every_s: float = 15.0) -> None:
        self.label = label
        self.every_s = every_s
        self.articles = 0
        self.chunks = 0
        self._t0 = self._last = 0.0
        self._out = log or sys.stderr

    def __enter__(self) -> ProgressLine:
        self._t0 = self._last = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None and (self.chunks or self.articles):
            self._print(final=True)

    def callbacks(self) -> Progress:
        from bot.core.admin import Progress

        return Progress(articles=self._on_articles, chunks=self._on_chunks)

    def _on_articles(self, n: int) -> None:
        self.articles += n
        self._maybe_print()

    def _on_chunks(self, n: int) -> None:
        self.chunks += n
        self._maybe_print()

    def _maybe_print(self) -> None:
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            self._print()

    def _print(self, final: bool = False) -> None:
        elapsed = time.perf_counter() - self._t0
        rate = self.chunks / elapsed if elapsed else 0.0
        state = "done" if final else "..."
        print(f"[{self.label}] {self.articles} articles, {self.chunks} chunks, "
              f"{elapsed:.0f}s ({rate:.1f} chunks/s) {state}", file=self._out, flush=True)
