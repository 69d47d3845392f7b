"""Speed: ingest throughput against the embedding model's own, ask latency at two store sizes,
memory, and cold start.

    python -m bench.speed --corpus DIR [--qa FILE] [--limit N] [--out FILE]

(a) Ingest: the chunks an ingest embeds (the project's Chunker and ``indexed_text``) are first
    embedded alone in one call, the machine's limit; then the same articles go through a fresh
    ``AdminService.ingest`` into a temporary store, and through the reference pipeline of
    ``bench.retrieval`` (the naive one). ``--limit N`` takes the first N articles.
(b) Ask latency on the whole corpus (the index cached by ``bench.retrieval``, built if
    missing): retrieval + extractive answer, and with an instant local model; wall time and
    the process's CPU time per ask (the figure that holds on a shared machine).
(c) The same at a synthetic store of 100,000 chunks: random unit vectors and generated text
    written through ``VectorStore.upsert`` (cached), with the lexical index built fresh.
(d) Peak memory of this process after each part, and of a ``newsbot ask`` process.
(e) Cold start: ``newsbot --help`` and ``newsbot ask ... --json`` in a subprocess, against the
    cached index.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.common import (
    BENCH_FORMAT,
    CACHE_ROOT,
    ProgressLine,
    bench_settings,
    cache_lock,
    code_fingerprint,
    corpus_files,
    fmt,
    git_commit,
    json_safe,
    key_hash,
    make_bench_embedder,
    open_index,
    peak_rss_mb,
    percentile,
    quiet_logs,
    read_jsonl,
    read_meta,
    share_model_cache,
    warm_up,
    write_meta,
)
from bot.core.llm import ChatModelBase, Completion

if TYPE_CHECKING:
    from rich.console import Console

    from bot.core.llm import ChatModel
    from bot.settings import Settings
    from retrieval.embeddings import Embedder
    from retrieval.search import Retriever

log = logging.getLogger(__name__)

# Questions used when no --qa file is given.
DEFAULT_QUESTIONS = (
    "what did the senate decide about the auto industry bailout?",
    "how many people died when the apartment building collapsed in Magnitogorsk?",
    "what happened to oil prices in the second half of 2008?",
    "who won the 2008 US presidential election?",
    "what caused the fire at Notre Dame?",
    "how was Qasem Soleimani killed?",
    "what did Pelosi announce about Trump in September 2019?",
    "what is the latest on the coronavirus outbreak?",
    "when was Saddam Hussein executed?",
    "what did General Motors do in early June 2009?",
    "which company won the air force tanker contract?",
    "what did the central bank do with interest rates?",
)

TARGETS = {
    "ingest_ratio": (">=", 0.9),
    "ask_p95_ms_wikinews": ("<=", 100.0),
    "ask_p95_ms_synthetic": ("<=", 300.0),
    "help_s": ("<", 0.5),
}

SYNTHETIC_DIM = 384
SYNTHETIC_SEED = 20240601
CHUNKS_PER_ARTICLE = 4
SYNTHETIC_FORMAT = 2  # bump when the generated store changes


class InstantModel(ChatModelBase):
    """A local chat model that answers at once with the first source's first sentence, cited
    (so the answer passes the model-mode checks, whose cost is part of what is timed)."""

    name = "instant"
    fallback = "The first article reports what happened and who was involved [1]."

    def generate(self, messages: Sequence[tuple[str, str]], *,
                 on_token: Callable[[str], None] | None = None,
                 deadline: float | None = None,
                 max_tokens: int | None = None) -> Completion:
        found = re.search(r'<article n="1"[^>]*>\n(.+?)(?:\n|</article>)', messages[0][1], re.S)
        first = re.split(r"(?<=[.!?])\s+", found.group(1).strip())[0] if found else ""
        reply = f"{first.rstrip('.!?')} [1]." if first else self.fallback
        if on_token:
            on_token(reply)
        return Completion(reply, "stop", 1, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    now: datetime | None = None
    dated: bool = False  # names a period (synthetic questions: a date filter)


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": percentile(values, 50),
            "p95_ms": percentile(values, 95), "max_ms": max(values) if values else float("nan")}


class _TimedRetriever:
    """Passes searches through and keeps the time each one reported."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.took_ms: list[float] = []

    def search(self, *args: Any, **kwargs: Any) -> Any:
        result = self.inner.search(*args, **kwargs)
        self.took_ms.append(result.took_ms)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def time_asks(settings: Settings, retriever: Retriever, model: ChatModel | None,
              queries: Sequence[Query], *, warm: int = 3, repeats: int = 1) -> dict[str, Any]:
    """p50/p95 of ``ask()`` and of the search inside it, after ``warm`` untimed questions:
    wall time, and the CPU time of the whole process (every thread) per ask, which a busy
    machine inflates far less; then the CPU time again with no sentence vector kept."""
    from bot.core.ask import AskService

    timed = _TimedRetriever(retriever)
    ask = AskService(settings, timed, model)  # type: ignore[arg-type]
    for q in queries[:warm]:
        ask.ask(q.text, now=q.now)
    timed.took_ms.clear()
    total_ms: list[float] = []
    cpu_ms: list[float] = []
    dated_ms: list[float] = []
    undated_ms: list[float] = []
    cold_cpu_ms: list[float] = []
    abstained = 0
    load: list[float] = []
    for _ in range(repeats):
        for q in queries:
            c0, t0 = time.process_time(), time.perf_counter()
            answer = ask.ask(q.text, now=q.now)
            ms = (time.perf_counter() - t0) * 1000
            cpu_ms.append((time.process_time() - c0) * 1000)
            total_ms.append(ms)
            (dated_ms if q.dated else undated_ms).append(ms)
            abstained += answer.abstained
        load.append(os.getloadavg()[0])
    # Again with no sentence vector kept from an earlier question: every answer embeds its
    # own sentences, as the first question about a story does.
    for q in queries:
        retriever.sentence_vectors.clear()
        c0 = time.process_time()
        ask.ask(q.text, now=q.now)
        cold_cpu_ms.append((time.process_time() - c0) * 1000)
    out = {"ask": _stats(total_ms), "cpu": _stats(cpu_ms), "cold_cpu": _stats(cold_cpu_ms),
           "search": _stats(timed.took_ms), "abstained": abstained / max(len(total_ms), 1),
           "load_avg": max(load, default=os.getloadavg()[0])}
    if dated_ms:
        out["dated"] = _stats(dated_ms)
        out["undated"] = _stats(undated_ms)
    return out


# -- (a) ingest throughput ---------------------------------------------------------------------
def limited_corpus(files: Sequence[Path], limit: int | None, into: Path) -> list[Path]:
    """The first ``limit`` records of the files (in order), written to ``into``."""
    if not limit:
        return list(files)
    into.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    left = limit
    for path in files:
        if left <= 0:
            break
        lines: list[str] = []
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    lines.append(line if line.endswith("\n") else line + "\n")
                    if len(lines) >= left:
                        break
        left -= len(lines)
        target = into / path.name
        target.write_text("".join(lines), encoding="utf-8")
        out.append(target)
    return out


def chunk_texts(files: Sequence[Path]) -> list[list[str]]:
    """Per article, the texts an ingest of ``files`` embeds: loaded, de-duplicated and chunked
    as it does, in the same order."""
    from retrieval.articles import Article
    from retrieval.chunking import Chunker
    from retrieval.sources import load_source

    chunker = Chunker()
    seen: set[str] = set()
    out: list[list[str]] = []
    for path in files:
        for item in load_source(str(path.resolve())):
            if isinstance(item, Article) and item.id not in seen:
                seen.add(item.id)
                out.append([c.indexed_text for c in chunker.split(item)])
    return out


def ingest_batches(per_article: Sequence[list[str]], embedder: Embedder) -> list[list[str]]:
    """The embedding calls an ingest makes: articles in groups of ``BATCH_ARTICLES``, and each
    group's chunks in slices of the indexer's ``embed_batch``."""
    from bot.core.admin import BATCH_ARTICLES
    from retrieval.indexer import Indexer

    size = Indexer(None, embedder).embed_batch  # type: ignore[arg-type]
    calls: list[list[str]] = []
    for g in range(0, len(per_article), BATCH_ARTICLES):
        texts = [t for chunks in per_article[g : g + BATCH_ARTICLES] for t in chunks]
        calls.extend(texts[i : i + size] for i in range(0, len(texts), size))
    return calls


def bench_ingest(files: Sequence[Path], embedder: Embedder, quantized: bool,
                 work: Path) -> dict[str, Any]:
    from bot.core.services import build_services

    per_article = chunk_texts(files)
    texts = [t for chunks in per_article for t in chunks]
    warm_up(embedder)
    print(f"[raw] embedding {len(texts)} chunks of {len(per_article)} articles, in one call "
          "and then in the ingest's batches ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    vectors = embedder.embed_documents(texts)
    raw_s = time.perf_counter() - t0
    assert len(vectors) == len(texts)
    del vectors
    calls = ingest_batches(per_article, embedder)
    t0 = time.perf_counter()
    for call in calls:
        embedder.embed_documents(call)
    batched_s = time.perf_counter() - t0

    data_dir = work / "ingest"
    shutil.rmtree(data_dir, ignore_errors=True)
    share_model_cache(data_dir, embedder)
    services = build_services(bench_settings(data_dir, embedding_quantized=quantized),
                              embedder=embedder)
    try:
        with ProgressLine("ingest") as progress:
            report = services.admin.ingest([str(p) for p in files], progress.callbacks())
    finally:
        services.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    if report.chunks != len(texts):
        log.warning("ingest wrote %d chunks, %d were embedded alone", report.chunks, len(texts))
    raw_cps = len(texts) / raw_s if raw_s else float("nan")
    ingest_cps = report.chunks / report.seconds if report.seconds else float("nan")
    return {
        "articles": len(per_article), "chunks": len(texts), "ingest_chunks": report.chunks,
        "raw_seconds": raw_s, "raw_chunks_per_s": raw_cps,
        "batched_seconds": batched_s, "embedding_calls": len(calls),
        "batched_chunks_per_s": len(texts) / batched_s if batched_s else float("nan"),
        "ingest_seconds": report.seconds, "ingest_chunks_per_s": ingest_cps,
        "ratio": ingest_cps / raw_cps if raw_cps else float("nan"),
        "mean_chunk_chars": float(np.mean([len(t) for t in texts])) if texts else 0.0,
    }


def naive_ingest(files: Sequence[Path], embedder: Embedder, quantized: bool,
                 work: Path) -> dict[str, Any]:
    """The reference pipeline of bench.retrieval ingesting the same articles, fresh."""
    from bench.retrieval import PeerPipeline

    # A folder per model: Chroma keeps a client per path for the life of the process.
    folder = work / f"naive-{embedder.model_id}"
    with PeerPipeline.open(files, embedder, quantized=quantized, cache=folder) as (_, info):
        pass
    shutil.rmtree(folder, ignore_errors=True)
    return {"seconds": info.ingest_seconds, "chunks": info.chunks,
            "chunks_per_s": info.chunks_per_s}


# -- (b) ask latency on the corpus -------------------------------------------------------------
def corpus_queries(qa: Path | None) -> list[Query]:
    if qa is None:
        return [Query(q) for q in DEFAULT_QUESTIONS]
    from bench.retrieval import Question

    return [Query(q.question, q.now) for q in map(Question.from_record, read_jsonl(qa))]


def bench_corpus_ask(files: Sequence[Path], embedder: Embedder, quantized: bool,
                     queries: Sequence[Query], cache: Path | None, repeats: int, *,
                     timed: bool = True, cold_runs: int = 0) -> dict[str, Any]:
    """Ask latency on the cached corpus index; then, with this process's services closed
    but the cache still reserved, the cold-start runs of ``newsbot`` against it."""
    out: dict[str, Any] = {}
    with open_index(files, embedder=embedder, quantized=quantized, cache=cache,
                    log=sys.stderr) as (services, info):
        warm_up(embedder)
        t0 = time.perf_counter()
        services.retriever.lexical()
        lexical_s = time.perf_counter() - t0
        if timed:
            ask = out["corpus_ask"] = {"articles": info.articles,
                                       "chunks": services.store.count(),
                                       "lexical_load_s": lexical_s,
                                       "index_reused": info.reused}
            for name, model in (("extractive", None), ("model", InstantModel())):
                ask[name] = time_asks(services.settings, services.retriever, model, queries,
                                      repeats=repeats)
            out["rss_after_corpus_ask"] = peak_rss_mb()
        if cold_runs:
            services.close()  # frees the store lock for the child processes
            out["cold_start"] = bench_cold_start(info.data_dir, quantized, queries[0].text,
                                                 cold_runs)
    return out


# -- (c) a synthetic store of 100k chunks ------------------------------------------------------
_SYLLABLES = ("ka", "to", "ri", "mel", "san", "dor", "vi", "lo", "pen", "ta", "ber", "nu",
              "gal", "ho", "rin", "qua", "ste", "mor", "li", "zan", "fe", "dru", "os", "tel")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


class SyntheticText:
    """Deterministic news-like text: a Zipf-distributed vocabulary of made-up words."""

    def __init__(self, seed: int, vocab_size: int = 30000) -> None:
        self.rng = random.Random(seed)
        words: set[str] = set()
        while len(words) < vocab_size:
            words.add("".join(self.rng.choice(_SYLLABLES)
                              for _ in range(self.rng.randint(2, 4))))
        self.vocab = sorted(words)
        self.rng.shuffle(self.vocab)
        ranks = np.arange(1, vocab_size + 1, dtype=np.float64)
        self.cum = np.cumsum(1.0 / ranks**1.05)
        self.cum /= self.cum[-1]
        self.nrng = np.random.default_rng(seed)

    def words(self, n: int) -> list[str]:
        idx = np.searchsorted(self.cum, self.nrng.random(n))
        return [self.vocab[min(i, len(self.vocab) - 1)] for i in idx]

    def sentence(self) -> str:
        w = self.words(self.rng.randint(9, 18))
        return " ".join([w[0].capitalize(), *w[1:]]) + "."

    def paragraph(self) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(3, 5)))

    def title(self) -> str:
        return " ".join(w.capitalize() for w in self.words(self.rng.randint(4, 8)))


def synthetic_key(n_chunks: int, model_id: str) -> dict[str, Any]:
    return {"format": BENCH_FORMAT, "kind": "synthetic", "generator": SYNTHETIC_FORMAT,
            "chunks": n_chunks,
            "dim": SYNTHETIC_DIM, "seed": SYNTHETIC_SEED, "model": model_id,
            "code": code_fingerprint()}


def synthetic_folder(n_chunks: int, embedder: Embedder) -> Path:
    key = synthetic_key(n_chunks, embedder.model_id)
    return CACHE_ROOT / f"synthetic-{n_chunks}-{key_hash(key)}"


def open_synthetic(n_chunks: int, embedder: Embedder, cache: Path | None = None,
                   n_queries: int = 400) -> tuple[Any, dict[str, Any], list[Query]]:
    """The synthetic store (built once, then reused), its build facts and questions on it.

    The text is generated again in every run (it takes seconds), so that the questions can
    quote it; vectors are generated and everything is written only when the store is built.
    """
    from retrieval.articles import Article
    from retrieval.chunking import Chunk, chunk_metadata
    from retrieval.store import VectorStore

    key = synthetic_key(n_chunks, embedder.model_id)
    folder = cache or synthetic_folder(n_chunks, embedder)
    meta = read_meta(folder)
    reused = bool(meta and meta.get("key") == key and meta.get("complete"))
    if not reused and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    store = VectorStore.open(path=folder / "chroma", model_id=embedder.model_id)

    gen = SyntheticText(SYNTHETIC_SEED)
    qrng = random.Random(SYNTHETIC_SEED + 1)
    vrng = np.random.default_rng(SYNTHETIC_SEED)
    n_articles = (n_chunks + CHUNKS_PER_ARTICLE - 1) // CHUNKS_PER_ARTICLE
    asked = set(qrng.sample(range(n_articles), min(n_queries, n_articles)))
    start = datetime(2005, 1, 1, tzinfo=UTC)
    queries: list[Query] = []
    batch: list[Chunk] = []
    left = n_chunks
    t0 = time.perf_counter()
    with ProgressLine("synthetic store", every_s=30.0) as progress:
        report = progress.callbacks()
        for a in range(n_articles):
            published = start + timedelta(hours=a * 5)
            title = gen.title()
            parts = [gen.paragraph() for _ in range(min(CHUNKS_PER_ARTICLE, left))]
            left -= len(parts)
            month = f"{_MONTHS[published.month - 1]} {published.year}"
            parts[0] = f"Reported in {month}. {parts[0]}"
            if a in asked:
                # Five consecutive words of a chunk; a quarter of the questions name the month,
                # which puts a date filter on the search.
                dated = qrng.random() < 0.25
                chunk = parts[0] if dated else qrng.choice(parts)
                words = [w.strip(".").lower() for w in chunk.split()[3:]]
                i = qrng.randrange(max(1, len(words) - 5))
                text = " ".join(words[i : i + 5]) + (f" in {month}" if dated else "")
                queries.append(Query(text + "?", dated=dated))
            if reused:
                continue
            article = Article(id=f"s{a:07d}", title=title, text="\n\n".join(parts),
                              url=f"https://synthetic.example/{a}",
                              outlet=f"Outlet {a % 20}", published_at=published)
            batch.extend(Chunk(id=f"{article.id}:{n}", article_id=article.id, n=n, text=p,
                               metadata=chunk_metadata(article, n))
                         for n, p in enumerate(parts))
            if len(batch) >= 5000 or (a == n_articles - 1 and batch):
                _write_random(store, batch, vrng)
                assert report.chunks and report.articles
                report.chunks(len(batch))
                report.articles(len({c.article_id for c in batch}))
                batch = []
    if not reused:
        meta = {"key": key, "complete": True, "chunks": store.count(), "articles": n_articles,
                "build_seconds": time.perf_counter() - t0,
                "built_at": datetime.now(UTC).isoformat(timespec="seconds")}
        write_meta(folder, meta)
    assert meta is not None
    qrng.shuffle(queries)
    facts = {"chunks": store.count(), "articles": n_articles, "reused": reused,
             "build_seconds": meta["build_seconds"], "built_at": meta["built_at"],
             "folder": str(folder)}
    return store, facts, queries


def _write_random(store: Any, chunks: Sequence[Any], rng: np.random.Generator) -> None:
    vectors = rng.standard_normal((len(chunks), SYNTHETIC_DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.upsert(list(chunks), vectors)


def bench_synthetic(n_chunks: int, embedder: Embedder, n_queries: int,
                    repeats: int) -> dict[str, Any]:
    from retrieval.search import Retriever

    folder = synthetic_folder(n_chunks, embedder)
    with cache_lock(folder):
        store, facts, queries = open_synthetic(n_chunks, embedder, folder)
        try:
            lexical_dir = folder / "lexical"
            shutil.rmtree(lexical_dir, ignore_errors=True)
            retriever = Retriever(store, embedder, cache_dir=lexical_dir)
            t0 = time.perf_counter()
            retriever.lexical()  # built from the store's chunks, then saved
            build_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            Retriever(store, embedder, cache_dir=lexical_dir).lexical()  # a restart: loaded
            load_s = time.perf_counter() - t0
            settings = bench_settings(folder)
            out = {**facts, "lexical_build_s": build_s, "lexical_load_s": load_s}
            for name, model in (("extractive", None), ("model", InstantModel())):
                out[name] = time_asks(settings, retriever, model, queries[:n_queries],
                                      repeats=repeats)
        finally:
            store.close()
    return out


# -- (e) cold start ----------------------------------------------------------------------------
def _child_env(data_dir: Path | None, quantized: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEWSBOT_", "OPENAI_", "DISCORD_"))}
    env["NEWSBOT_EMBEDDING_QUANTIZED"] = "true" if quantized else "false"
    if data_dir is not None:
        env["NEWSBOT_DATA_DIR"] = str(data_dir)
    return env


# Runs a command and reports its wall time and peak memory. A child's ru_maxrss starts from
# the memory of the process it was forked from, so the command is started from this small
# interpreter rather than from the benchmark process itself.
_MEASURE = r"""
import json, os, subprocess, sys, time
report, cmd = sys.argv[1], json.loads(sys.argv[2])
t0 = time.perf_counter()
proc = subprocess.Popen(cmd)
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - t0
proc.returncode = os.waitstatus_to_exitcode(status)
with open(report, "w") as fh:
    json.dump({"seconds": seconds, "rc": proc.returncode, "rss_mb": usage.ru_maxrss / 1024}, fh)
"""


def run_child(cmd: Sequence[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Wall time, exit code, output and peak memory of one process."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        done = subprocess.run([sys.executable, "-c", _MEASURE, str(report), json.dumps(list(cmd))],
                              env=env, cwd=cwd, capture_output=True, text=True, check=False)
        try:
            facts = json.loads(report.read_text())
        except (OSError, ValueError):
            facts = {"seconds": float("nan"), "rc": done.returncode, "rss_mb": float("nan")}
    return {**facts, "stdout": done.stdout, "stderr": done.stderr}


def bench_cold_start(data_dir: Path, quantized: bool, question: str,
                     runs: int) -> dict[str, Any]:
    newsbot = Path(sys.executable).parent / "newsbot"
    if not newsbot.exists():
        found = shutil.which("newsbot")
        if not found:
            return {"error": "the newsbot command is not installed"}
        newsbot = Path(found)
    with tempfile.TemporaryDirectory() as cwd:  # no .env is read from here
        help_runs = [run_child([str(newsbot), "--help"], _child_env(None, quantized), Path(cwd))
                     for _ in range(max(runs, 3) + 2)]
        ask_runs = [run_child([str(newsbot), "ask", question, "--json"],
                              _child_env(data_dir, quantized), Path(cwd)) for _ in range(runs)]
    for r in help_runs + ask_runs:
        if r["rc"] != 0:
            raise RuntimeError(f"newsbot exited with {r['rc']}: {r['stderr'][-2000:]}")
    answer = json.loads(ask_runs[0]["stdout"])
    return {
        "help_first_s": help_runs[0]["seconds"],
        "help_median_s": float(np.median([r["seconds"] for r in help_runs])),
        "ask_first_s": ask_runs[0]["seconds"],
        "ask_median_s": float(np.median([r["seconds"] for r in ask_runs])),
        "ask_rss_mb": max(r["rss_mb"] for r in ask_runs),
        "ask_abstained": bool(answer.get("abstained")),
        "question": question,
    }


# -- the run -----------------------------------------------------------------------------------
def _met(name: str, value: float | None) -> bool | None:
    if value is None or not np.isfinite(value):
        return None
    op, target = TARGETS[name]
    return {"<=": value <= target, ">=": value >= target, "<": value < target}[op]


def run(args: argparse.Namespace) -> dict[str, Any]:
    files = corpus_files(args.corpus)
    embedder = make_bench_embedder(args.quantized)
    result: dict[str, Any] = {"commit": git_commit(), "corpus": str(args.corpus),
                              "quantized": args.quantized, "model": embedder.model_id,
                              "cpus": len(os.sched_getaffinity(0)) if hasattr(
                                  os, "sched_getaffinity") else os.cpu_count(),
                              "rss_mb": {}}
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        work = Path(tmp)
        if not args.skip_ingest:
            subset = limited_corpus(files, args.limit, work / "corpus")
            result["ingest"] = bench_ingest(subset, embedder, args.quantized, work)
            result["ingest"]["limit"] = args.limit
            if not args.skip_naive:
                result["ingest"]["naive"] = naive_ingest(subset, embedder, args.quantized, work)
                if args.quantized:
                    # What a tutorial runs: the model in full precision, as sentence-transformers
                    # computes it (the same graph, without int8 weights).
                    result["ingest"]["naive_fp32"] = naive_ingest(
                        subset, make_bench_embedder(False), False, work)
            result["rss_mb"]["after_ingest"] = peak_rss_mb()
        queries = corpus_queries(args.qa)
        if not (args.skip_ask and args.skip_cold_start):
            part = bench_corpus_ask(files, embedder, args.quantized, queries, args.cache,
                                    args.repeats, timed=not args.skip_ask,
                                    cold_runs=0 if args.skip_cold_start else args.cold_runs)
            if "rss_after_corpus_ask" in part:
                result["rss_mb"]["after_corpus_ask"] = part.pop("rss_after_corpus_ask")
            result.update(part)
        if not args.skip_synthetic:
            result["synthetic"] = bench_synthetic(args.synthetic_chunks, embedder,
                                                  args.synthetic_queries, args.repeats)
            result["rss_mb"]["after_synthetic"] = peak_rss_mb()
    result["rss_mb"]["peak"] = peak_rss_mb()
    return result


def print_report(r: dict[str, Any], console: Console | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=140)
    table = Table(title=f"Speed, commit {r['commit']} ({r['model']}, {r['cpus']} CPUs)")
    for col in ("part", "measure", "value", "target", "met"):
        table.add_column(col, justify="right" if col in ("value",) else "left")

    def row(part: str, measure: str, value: str, target: str = "", met: bool | None = None
            ) -> None:
        mark = "" if met is None else ("[green]yes[/green]" if met else "[red]no[/red]")
        table.add_row(part, measure, value, target, mark)

    if "ingest" in r:
        g = r["ingest"]
        part = f"ingest ({g['articles']} articles{', --limit' if g['limit'] else ''})"
        row(part, f"chunks (mean {g['mean_chunk_chars']:.0f} chars)", str(g["chunks"]))
        row("", "raw embedding, one call, chunks/s", fmt(g["raw_chunks_per_s"], 1))
        row("", f"raw embedding, the ingest's {g['embedding_calls']} calls, chunks/s",
            fmt(g["batched_chunks_per_s"], 1))
        row("", "admin.ingest, chunks/s", fmt(g["ingest_chunks_per_s"], 1))
        row("", "admin.ingest / raw", fmt(g["ratio"], 2), ">= 0.9",
            _met("ingest_ratio", g["ratio"]))
        row("", "seconds: one call / ingest's calls / ingest",
            f"{g['raw_seconds']:.1f} / {g['batched_seconds']:.1f} / {g['ingest_seconds']:.1f}")
        naive = g.get("naive") or {}
        if naive:
            row("", f"naive pipeline, same model: {naive['chunks']} chunks in s (chunks/s)",
                f"{naive['seconds']:.1f} ({naive['chunks_per_s']:.1f})", "> ingest s",
                g["ingest_seconds"] < naive["seconds"])
        fp32 = g.get("naive_fp32") or {}
        if fp32:
            row("", "naive pipeline, fp32 model: s (chunks/s)",
                f"{fp32['seconds']:.1f} ({fp32['chunks_per_s']:.1f})", "> ingest s",
                g["ingest_seconds"] < fp32["seconds"])
        table.add_section()
    for key, label, target_key in (("corpus_ask", "ask, corpus", "ask_p95_ms_wikinews"),
                                   ("synthetic", "ask, synthetic", "ask_p95_ms_synthetic")):
        if key not in r:
            continue
        s = r[key]
        head = f"{label} ({s['chunks']} chunks)"
        if key == "synthetic":
            how = "reused" if s["reused"] else "built now"
            row(head, "store build s", f"{s['build_seconds']:.1f} ({how})")
            row("", "lexical index build / load s",
                f"{s['lexical_build_s']:.1f} / {s['lexical_load_s']:.2f}")
            head = ""
        else:
            row(head, "lexical index load s", f"{s['lexical_load_s']:.2f}")
            head = ""
        target = TARGETS[target_key]
        e, m = s["extractive"], s["model"]
        row(head, f"extractive ask p50 / p95 ms wall (n={e['ask']['n']})",
            f"{e['ask']['p50_ms']:.1f} / {e['ask']['p95_ms']:.1f}",
            f"p95 {target[0]} {target[1]:.0f}", _met(target_key, e["ask"]["p95_ms"]))
        row("", "  CPU per ask p50 / p95 ms (all threads)",
            f"{e['cpu']['p50_ms']:.1f} / {e['cpu']['p95_ms']:.1f}",
            f"p95 {target[0]} {target[1]:.0f}", _met(target_key, e["cpu"]["p95_ms"]))
        row("", "  CPU, no sentence vector kept, p50 / p95 ms",
            f"{e['cold_cpu']['p50_ms']:.1f} / {e['cold_cpu']['p95_ms']:.1f}",
            f"p95 {target[0]} {target[1]:.0f}", _met(target_key, e["cold_cpu"]["p95_ms"]))
        row("", "  load average (1 min) during the run", f"{e['load_avg']:.1f}")
        row("", "  of which search p50 / p95 ms",
            f"{e['search']['p50_ms']:.1f} / {e['search']['p95_ms']:.1f}")
        for part in ("undated", "dated"):
            if part in e:
                row("", f"  {part} questions p50 / p95 ms (n={e[part]['n']})",
                    f"{e[part]['p50_ms']:.1f} / {e[part]['p95_ms']:.1f}")
        row("", "instant-model ask p50 / p95 ms",
            f"{m['ask']['p50_ms']:.1f} / {m['ask']['p95_ms']:.1f}")
        row("", "abstained (extractive / model)", f"{e['abstained']:.2f} / {m['abstained']:.2f}")
        table.add_section()
    if "cold_start" in r:
        c = r["cold_start"]
        if "error" in c:
            row("cold start", "error", c["error"])
        else:
            row("cold start", "newsbot --help s (first / median)",
                f"{c['help_first_s']:.2f} / {c['help_median_s']:.2f}", "< 0.5",
                _met("help_s", c["help_median_s"]))
            row("", "newsbot ask --json s (first / median)",
                f"{c['ask_first_s']:.2f} / {c['ask_median_s']:.2f}")
            row("", "newsbot ask peak RSS MB", f"{c['ask_rss_mb']:.0f}")
        table.add_section()
    for name, value in r["rss_mb"].items():
        row("memory" if name == next(iter(r["rss_mb"])) else "",
            f"this process, peak RSS MB {name.replace('_', ' ')}", f"{value:.0f}")
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    from bot.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True,
                        help="folder of articles_*.jsonl files")
    parser.add_argument("--qa", type=Path, help="questions for the latency runs (JSON lines); "
                        "default: a fixed list")
    parser.add_argument("--limit", type=int, help="ingest only the first N articles in (a)")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    parser.add_argument("--cache", type=Path,
                        help="index folder for (b) and (e) (default: bench.retrieval's)")
    parser.add_argument("--quantized", action=argparse.BooleanOptionalAction,
                        default=bool(Settings.model_fields["embedding_quantized"].default),
                        help="int8 MiniLM (default: the project's default)")
    parser.add_argument("--repeats", type=int, default=1, help="passes over the questions")
    parser.add_argument("--synthetic-chunks", type=int, default=100_000)
    parser.add_argument("--synthetic-queries", type=int, default=100)
    parser.add_argument("--cold-runs", type=int, default=3)
    for part in ("ingest", "naive", "ask", "synthetic", "cold-start"):
        parser.add_argument(f"--skip-{part}", action="store_true")
    args = parser.parse_args(argv)
    quiet_logs()

    result = run(args)
    print_report(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(json_safe(result), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
