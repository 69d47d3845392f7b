"""Retrieval and answer quality on question sets: newsbot's ask path against a plain
LangChain pipeline (recursive 1,000-character chunks, Chroma, similarity search).

    python -m bench.retrieval --corpus DIR --qa FILE [--qa FILE ...] [--no-own] [--out FILE]
                              [--summary FILE] [--k 10] [--slice NAME ...]

Every ``articles_*.jsonl`` of DIR is indexed once through ``AdminService.ingest`` into a cache
folder keyed by the corpus bytes and the settings, then reused. The questions are those of
every ``--qa`` file plus the project's own (``bench/data/questions_*.jsonl``, unless
``--no-own``), all in the same format. Each goes through ``AskService.ask`` in extractive
mode, with ``asked_at`` as "today" and a follow-up's earlier question and answer as history.
The ranking reported starts with the articles the answer was built from, in its order;
further ranks come from the same search call repeated with ``k=max(--k, 10)``.

Every question falls in one of two halves by a hash of its conversation's first qid: tune on
one ("tune"), and keep a change only when the other ("check") agrees. Both are reported, each
file on its own, and everything together (the targets are checked there).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import sys
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from datetime import time as dtime
from difflib import SequenceMatcher
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import (
    BENCH_FORMAT,
    CACHE_ROOT,
    ROOT,
    IndexInfo,
    ProgressLine,
    cache_lock,
    corpus_files,
    fmt,
    git_commit,
    hash_files,
    json_safe,
    key_hash,
    make_bench_embedder,
    open_index,
    percentile,
    quiet_logs,
    read_jsonl,
    reuse_or_clear,
    warm_up,
    write_meta,
)

if TYPE_CHECKING:
    from rich.console import Console

    from bot.core.services import Services
    from retrieval.embeddings import Embedder
    from retrieval.search import Retriever, SearchResult

TYPES = ("single", "multi", "temporal", "followup", "null")
ANSWERABLE = "all answerable"
NEAR_MISS = "null near-miss"
ROWS = (*TYPES, NEAR_MISS, ANSWERABLE)
RANK_METRICS = ("hit@1", "hit@4", "hit@5", "hit@10", "mrr@10", "all@5", "all@10", "ev@5")
ANSWER_METRICS = ("ans@ev", "ans@ev1", "ans@art", "ans@all")
METRICS = (*RANK_METRICS, *ANSWER_METRICS, "abstain")
DEPTH = 10  # the deepest cut-off a metric reads

# The reference pipeline, as the LangChain RAG tutorial builds it.
PEER_CHUNK_SIZE = 1000
PEER_CHUNK_OVERLAP = 200
PEER_K = 4
PEER_SENTENCES = 2  # the reference answer: the sentences of its chunks closest to the question
PEER_COLLECTION = "peer"

# Targets, checked on every question set together (both halves of each file):
# (row, metric, comparison, value).
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("single", "hit@1", ">=", 0.93),
    ("single", "mrr@10", ">=", 0.95),
    ("single", "ans@ev", ">=", 0.80),
    ("single", "ans@ev1", ">=", 0.70),
    ("multi", "all@5", ">=", 0.90),
    ("multi", "all@10", ">=", 0.95),
    ("multi", "ans@all", ">=", 0.60),
    ("temporal", "hit@1", ">=", 0.85),
    ("temporal", "ans@ev", ">=", 0.75),
    ("followup", "hit@5", ">=", 0.90),
    ("followup", "ans@ev", ">=", 0.70),
    ("null", "abstain", ">=", 0.70),
    (NEAR_MISS, "abstain", ">=", 0.50),
    (ANSWERABLE, "abstain", "<=", 0.05),
)

OWN_QUESTIONS = ROOT / "bench" / "data"
# An answer sentence states an evidence sentence when it holds this share of its content words.
STATES_SHARE = 0.6

log = logging.getLogger(__name__)


# -- questions ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Question:
    qid: str
    type: str
    question: str
    gold_ids: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    asked_at: str = ""
    followup_of: str = ""
    # The article each evidence sentence comes from, in the order of ``evidence``.
    evidence_ids: tuple[str, ...] = ()
    # A null question about a covered story, asking for a fact the story never states.
    near_miss: bool = False
    source: str = ""  # the question file's name, without ".jsonl"
    half: str = ""  # "tune" or "check": see ``assign_halves``

    @classmethod
    def from_record(cls, rec: dict[str, Any], source: str = "") -> Question:
        ev = [e for e in rec.get("evidence") or () if e.get("text")]
        return cls(
            qid=str(rec["qid"]), type=str(rec.get("type") or "single"),
            question=str(rec["question"]),
            gold_ids=tuple(str(g) for g in rec.get("gold_ids") or ()),
            evidence=tuple(str(e["text"]) for e in ev),
            asked_at=str(rec.get("asked_at") or ""),
            followup_of=str(rec.get("followup_of") or ""),
            evidence_ids=tuple(str(e.get("id") or "") for e in ev),
            near_miss=bool(rec.get("near_miss")),
            source=source,
        )

    @property
    def answerable(self) -> bool:
        return self.type != "null" and bool(self.gold_ids)

    @property
    def now(self) -> datetime | None:
        """``asked_at`` as the end of that day (UTC): the articles of that day are known."""
        if not self.asked_at:
            return None
        return datetime.combine(date.fromisoformat(self.asked_at), dtime.max, tzinfo=UTC)


def load_questions(*paths: Path | str) -> list[Question]:
    """The questions of every file, in order, each split into its half; qids must be unique
    across the files (a clear error otherwise)."""
    questions: list[Question] = []
    seen: dict[str, str] = {}
    for path in paths:
        name = Path(path).name.removesuffix(".jsonl")
        for rec in read_jsonl(path):
            q = Question.from_record(rec, name)
            if q.qid in seen:
                raise SystemExit(f"question {q.qid} is in both {seen[q.qid]} and {name}")
            seen[q.qid] = name
            questions.append(q)
    return assign_halves(questions)


def half_of(qid: str) -> str:
    """"tune" or "check", from a hash of the qid: stable, and blind to what is asked."""
    return "tune" if hashlib.sha256(qid.encode()).digest()[0] % 2 == 0 else "check"


def assign_halves(questions: Sequence[Question]) -> list[Question]:
    """Each question's half, decided by its conversation's first question, so that a
    follow-up is measured in the same half as what it follows."""
    by_id = {q.qid: q for q in questions}
    out = []
    for q in questions:
        chain = thread_of(q, by_id)
        root = chain[0].qid if chain else q.qid
        out.append(replace(q, half=half_of(root)))
    return out


def own_question_files(folder: Path = OWN_QUESTIONS) -> list[Path]:
    """The project's own question files (``bench/data/questions_*.jsonl``), sorted."""
    return sorted(folder.glob("questions_*.jsonl"))


def parents_first(questions: Sequence[Question]) -> list[Question]:
    """File order, except that a follow-up always comes after the question it follows."""
    by_id = {q.qid: q for q in questions}
    order: list[Question] = []
    done: set[str] = set()

    def visit(q: Question, path: tuple[str, ...]) -> None:
        if q.qid in done:
            return
        parent = by_id.get(q.followup_of)
        if parent is not None and parent.qid not in path:
            visit(parent, (*path, q.qid))
        done.add(q.qid)
        order.append(q)

    for q in questions:
        visit(q, ())
    return order


def thread_of(q: Question, by_id: dict[str, Question]) -> list[Question]:
    """The earlier questions of ``q``'s conversation, first one first."""
    chain: list[Question] = []
    seen = {q.qid}
    parent = by_id.get(q.followup_of)
    while parent is not None and parent.qid not in seen:
        chain.append(parent)
        seen.add(parent.qid)
        parent = by_id.get(parent.followup_of)
    return chain[::-1]


# -- metrics -----------------------------------------------------------------------------------
def dedupe(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def hit_at(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """1.0 when any gold article is in the top ``k``."""
    gold = set(gold)
    return float(any(a in gold for a in ranked[:k]))


def mrr_at(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Reciprocal rank of the first gold article within the top ``k`` (0 when none is)."""
    gold = set(gold)
    for rank, a in enumerate(ranked[:k], 1):
        if a in gold:
            return 1.0 / rank
    return 0.0


def all_at(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """1.0 when every gold article is in the top ``k``."""
    gold = set(gold)
    return float(bool(gold) and gold <= set(ranked[:k]))


_WORDS = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORDS.findall(unicodedata.normalize("NFKC", text).casefold())


def contains_sentence(sentence: str, text: str, min_share: float = 0.9) -> bool:
    """``sentence`` occurs in ``text`` (case and spacing ignored), or at least ``min_share``
    of its words do as one unbroken run: a chunk boundary may cut a sentence at either end."""
    s = words(sentence)
    if not s:
        return False
    t = words(text)
    if f" {' '.join(s)} " in f" {' '.join(t)} ":
        return True
    if len(t) * 1.0 < min_share * len(s):
        return False
    m = SequenceMatcher(None, s, t, autojunk=False).find_longest_match(0, len(s), 0, len(t))
    return m.size >= min_share * len(s)


def evidence_found(evidence: Sequence[str], chunk_texts: Sequence[str],
                   min_share: float = 0.9) -> bool:
    """Some evidence sentence is inside one of the retrieved chunks."""
    return any(contains_sentence(e, c, min_share) for e in evidence for c in chunk_texts)


# -- answer level ------------------------------------------------------------------------------
_CITE = re.compile(r"\s*\[\d{1,3}\]")
_CONTENT = re.compile(r"[^\W_]{3,}")
# A sentence ends at . ! or ? followed by space and a capital or digit (optionally behind a
# quote or bracket), except after the abbreviations news writing uses most. Kept apart from
# the project's own splitter so that a change there cannot move this measure.
_NO_END = ("Mr", "Mrs", "Ms", "Dr", "St", "No", "vs", "Inc", "Ltd", "Co", "Jr", "Sr", "Gen",
           "Gov", "Sen", "Rep", "Prof", "Lt", "Col", "Sgt", "Mt", "Ft", "U.S", "U.N", "Capt",
           "Cmdr", "Adm", "Rev", "Corp", "Bros", "Jan", "Feb", "Aug", "Sept", "Oct", "Nov",
           "Dec")
# A capital's initial ("Timothy F. Geithner") does not end a sentence either: cut there, an
# answer quoting the whole sentence would be scored on "Last week, Timothy F." alone.
_END = re.compile("".join(rf"(?<!\b{re.escape(a)}\.)" for a in _NO_END) + r"(?<!\b[A-Z]\.)"
                  + r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")


def content_words(text: str) -> set[str]:
    """Lower-cased alphanumeric tokens of three or more characters."""
    return set(_CONTENT.findall(unicodedata.normalize("NFKC", text).casefold()))


def answer_sentences(answer: str) -> list[str]:
    """The answer's sentences, citation marks removed first."""
    text = _CITE.sub("", answer)
    return [s.strip() for para in re.split(r"\n+", text) for s in _END.split(para)
            if s.strip()]


def states(sentence: str, evidence: str, share: float = STATES_SHARE) -> bool:
    """``sentence`` holds at least ``share`` of the content words of ``evidence``."""
    ev = content_words(evidence)
    return bool(ev) and len(ev & content_words(sentence)) >= share * len(ev)


def answer_metrics(q: Question, answer: str, abstained: bool) -> dict[str, float | None]:
    """ans@ev: some answer sentence states some evidence sentence; ans@ev1: the first one
    does; for questions with several gold articles, ans@art is the share of gold articles
    whose evidence the answer states, ans@all whether it states every one's."""
    m: dict[str, float | None] = dict.fromkeys(ANSWER_METRICS)
    if not q.answerable or not q.evidence:
        return m
    sents = [] if abstained else answer_sentences(answer)
    stated = [any(states(s, e) for s in sents) for e in q.evidence]
    m["ans@ev"] = float(any(stated))
    m["ans@ev1"] = float(bool(sents) and any(states(sents[0], e) for e in q.evidence))
    gold = dedupe(q.gold_ids)
    if len(gold) > 1:
        by_article = {g: any(ok for ok, eid in zip(stated, q.evidence_ids, strict=True)
                             if eid == g) for g in gold}
        m["ans@art"] = sum(by_article.values()) / len(gold)
        m["ans@all"] = float(all(by_article.values()))
    return m


@dataclass(slots=True)
class Outcome:
    """What one pipeline did with one question (article ids are the dataset's own)."""

    qid: str
    ranked: list[str]  # articles, best first, deduplicated, at most DEPTH (or --k)
    top4: list[str]  # the articles behind the first four results
    chunk_texts: list[str]  # retrieved chunks of the top five articles
    abstained: bool = False
    answer: str = ""
    cited: list[str] = field(default_factory=list)
    ms: float = 0.0  # the whole call: ask (ours) or similarity search (peer)
    search_ms: float = 0.0  # the search alone

    def to_json(self, k: int) -> dict[str, Any]:
        return {"qid": self.qid, "ranked_article_ids": self.ranked[:k],
                "abstained": self.abstained, "answer": self.answer,
                "cited_article_ids": self.cited}


def question_metrics(q: Question, o: Outcome) -> dict[str, float | None]:
    """Per-question values; None where a metric does not apply."""
    m: dict[str, float | None] = dict.fromkeys(METRICS)
    m["abstain"] = float(o.abstained)
    if not q.answerable:
        return m
    gold = q.gold_ids
    m["hit@1"] = hit_at(o.ranked, gold, 1)
    m["hit@4"] = hit_at(o.top4, gold, 4)
    m["hit@5"] = hit_at(o.ranked, gold, 5)
    m["hit@10"] = hit_at(o.ranked, gold, 10)
    m["mrr@10"] = mrr_at(o.ranked, gold, 10)
    if len(set(gold)) > 1:
        m["all@5"] = all_at(o.ranked, gold, 5)
        m["all@10"] = all_at(o.ranked, gold, 10)
    if q.evidence:
        m["ev@5"] = float(evidence_found(q.evidence, o.chunk_texts))
    m.update(answer_metrics(q, o.answer, o.abstained))
    return m


Table = dict[str, dict[str, float | int | None]]


def aggregate(questions: Sequence[Question], outcomes: dict[str, Outcome]) -> Table:
    """Mean of every metric per question type and over all answerable questions.

    ``abstain`` is the abstention rate: wanted on null questions, false on the others.
    """
    groups: dict[str, list[dict[str, float | None]]] = {row: [] for row in ROWS}
    for q in questions:
        if q.qid not in outcomes:
            continue
        m = question_metrics(q, outcomes[q.qid])
        groups.setdefault(q.type, []).append(m)
        if q.type == "null" and q.near_miss:
            groups[NEAR_MISS].append(m)
        if q.answerable:
            groups[ANSWERABLE].append(m)
    table: Table = {}
    for row, items in groups.items():
        cells: dict[str, float | int | None] = {"n": len(items)}
        for metric in METRICS:
            values = [v for v in (i[metric] for i in items) if v is not None]
            cells[metric] = sum(values) / len(values) if values else None
        table[row] = cells
    return table


def ratio_table(ours: Table, peer: Table) -> Table:
    out: Table = {}
    for row, cells in ours.items():
        out[row] = {"n": cells.get("n")}
        for metric in METRICS:
            a, b = cells.get(metric), peer.get(row, {}).get(metric)
            out[row][metric] = (a / b if metric != "abstain" and a is not None and b
                                else None)
    return out


def check_targets(ours: Table) -> list[dict[str, Any]]:
    rows = []
    for row, metric, op, target in TARGETS:
        value = ours.get(row, {}).get(metric)
        met = None if value is None else (value >= target if op == ">=" else value <= target)
        rows.append({"row": row, "metric": metric, "target": f"{op} {target}", "value": value,
                     "met": met})
    return rows


# -- newsbot's pipeline ------------------------------------------------------------------------
class RecordingRetriever:
    """Passes the ask path's searches through unchanged and keeps each call's arguments and
    result, so that the same search can be repeated deeper."""

    def __init__(self, inner: Retriever) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int, dict[str, Any], SearchResult]] = []

    def search(self, query: str, *, k: int = 5, **kwargs: Any) -> SearchResult:
        result = self.inner.search(query, k=k, **kwargs)
        self.calls.append((query, k, kwargs, result))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass(slots=True)
class OursRun:
    outcomes: dict[str, Outcome]
    # Questions whose deeper search did not start with the answer's articles (the ranking
    # depends on k); their ranks beyond the answer's come from the deeper search.
    k_dependent: list[str] = field(default_factory=list)


def run_ours(services: Services, questions: Sequence[Question], depth: int = DEPTH) -> OursRun:
    """Every question through ``AskService.ask`` (extractive), parents before follow-ups.

    The ranking reported starts with the articles the answer was built from, in its order;
    ranks after those come from the same search call repeated with ``k=depth``.
    """
    from bot.core.ask import AskService
    from bot.core.models import Answer, QuestionError, Turn

    ext = services.state.ext_ids()
    proxy = RecordingRetriever(services.retriever)
    ask = AskService(services.settings, proxy, model=None)  # type: ignore[arg-type]
    by_id = {q.qid: q for q in questions}
    answers: dict[str, Answer] = {}
    run = OursRun({})
    for q in parents_first(questions):
        history = []
        for earlier in thread_of(q, by_id):
            said = answers.get(earlier.qid)
            history += [Turn("user", earlier.question),
                        Turn("assistant", said.text if said else "")]
        proxy.calls.clear()
        t0 = time.perf_counter()
        try:
            answer = ask.ask(q.question, history=history, now=q.now)
        except QuestionError as exc:
            run.outcomes[q.qid] = Outcome(q.qid, [], [], [], abstained=True, answer=str(exc))
            continue
        ms = (time.perf_counter() - t0) * 1000
        answers[q.qid] = answer
        top: list[Any] = []
        deeper: list[Any] = []
        took = 0.0
        if proxy.calls:
            query, k, kwargs, result = proxy.calls[-1]
            top, took = result.articles, result.took_ms
            if [a.article_id for a in top] != answer.ranked_article_ids:
                raise RuntimeError(f"{q.qid}: the recorded search is not the answer's")
            if depth > k:
                deeper = proxy.inner.search(query, k=depth, **kwargs).articles
                if [a.article_id for a in deeper[: len(top)]] != [a.article_id for a in top]:
                    run.k_dependent.append(q.qid)
        ids = [a.article_id for a in top]
        ids += [a.article_id for a in deeper if a.article_id not in set(ids)]
        ranked = dedupe(ext.get(a, a) for a in ids)[:depth]
        run.outcomes[q.qid] = Outcome(
            qid=q.qid, ranked=ranked, top4=ranked[:4],
            chunk_texts=[c.text for a in top[:5] for c in a.chunks],
            abstained=answer.abstained, answer=answer.text,
            cited=[ext.get(s.article_id, s.article_id) for s in answer.sources],
            ms=ms, search_ms=took,
        )
    return run


# -- the reference pipeline --------------------------------------------------------------------
class PeerPipeline:
    """RecursiveCharacterTextSplitter(1000, 200) on each body, Chroma, similarity_search."""

    def __init__(self, store: Any) -> None:
        self.store = store

    @staticmethod
    def key(files: Sequence[Path], embedder: Embedder, quantized: bool) -> dict[str, Any]:
        import importlib.metadata as md

        return {"format": BENCH_FORMAT, "kind": "peer", "corpus": hash_files(files),
                "files": [p.name for p in files],
                "splitter": f"recursive-{PEER_CHUNK_SIZE}-{PEER_CHUNK_OVERLAP}",
                "model": embedder.model_id, "quantized": quantized,
                "langchain_chroma": md.version("langchain-chroma")}

    @classmethod
    @contextmanager
    def open(cls, files: Sequence[Path], embedder: Embedder, *, quantized: bool,
             cache: Path | None = None, log_to: Any = None
             ) -> Iterator[tuple[PeerPipeline, IndexInfo]]:
        """The reference index in its own cache folder (built first if needed)."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from langchain_chroma import Chroma

        from retrieval.embeddings import as_langchain

        key = cls.key(files, embedder, quantized)
        folder = Path(cache) if cache else CACHE_ROOT / f"peer-{key_hash(key)}"
        with cache_lock(folder, log_to):
            meta = reuse_or_clear(folder, key)
            reused = meta is not None
            folder.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(
                path=str(folder / "chroma"), settings=ChromaSettings(anonymized_telemetry=False))
            embeddings = as_langchain(embedder)
            if reused and meta:
                store = Chroma(collection_name=PEER_COLLECTION, embedding_function=embeddings,
                               client=client)
                yield cls(store), IndexInfo(folder, key, True, meta["articles"],
                                            meta["chunks"], meta["ingest_seconds"],
                                            meta["built_at"])
                return
            warm_up(embedder)
            with ProgressLine("peer ingest", log_to) as progress:
                t0 = time.perf_counter()
                store, articles, chunks = cls._build(files, embeddings, client)
                seconds = time.perf_counter() - t0
                progress.articles, progress.chunks = articles, chunks
            info = IndexInfo(folder, key, False, articles, chunks, seconds,
                             datetime.now(UTC).isoformat(timespec="seconds"))
            write_meta(folder, {"key": key, "complete": True, "articles": articles,
                                "chunks": chunks, "ingest_seconds": seconds,
                                "built_at": info.built_at, "commit": git_commit()})
            yield cls(store), info

    @staticmethod
    def _build(files: Sequence[Path], embeddings: Any, client: Any) -> tuple[Any, int, int]:
        """Load, split and index, as the tutorial does (timed as a whole by the caller)."""
        from langchain_chroma import Chroma
        from langchain_core.documents import Document
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        docs = [
            Document(page_content=str(rec.get("body") or ""),
                     metadata={"id": str(rec["id"]), "title": str(rec.get("title") or ""),
                               "published_at": str(rec.get("published_at") or "")})
            for path in files for rec in read_jsonl(path)
        ]
        splitter = RecursiveCharacterTextSplitter(chunk_size=PEER_CHUNK_SIZE,
                                                  chunk_overlap=PEER_CHUNK_OVERLAP)
        splits = splitter.split_documents(docs)
        store = Chroma.from_documents(splits, embedding=embeddings,
                                      collection_name=PEER_COLLECTION, client=client)
        return store, len(docs), len(splits)

    def run(self, questions: Sequence[Question], depth: int = DEPTH) -> dict[str, Outcome]:
        """Each question alone (no dates, no history); it never abstains. Its answer is the
        two sentences of the k=4 chunks closest to the question by the same model."""
        outcomes: dict[str, Outcome] = {}
        for q in questions:
            t0 = time.perf_counter()
            first = self.store.similarity_search(q.question, k=PEER_K)
            ms = (time.perf_counter() - t0) * 1000
            docs = self.store.similarity_search(q.question, k=depth)
            ranked = dedupe(str(d.metadata["id"]) for d in docs)
            top5 = set(ranked[:5])
            outcomes[q.qid] = Outcome(
                qid=q.qid, ranked=ranked,
                top4=dedupe(str(d.metadata["id"]) for d in first),
                chunk_texts=[d.page_content for d in docs if d.metadata["id"] in top5],
                answer=self.top_sentences(q.question, [d.page_content for d in first]),
                ms=ms, search_ms=ms,
            )
        return outcomes

    def top_sentences(self, question: str, texts: Sequence[str], n: int = PEER_SENTENCES) -> str:
        """The ``n`` sentences of ``texts`` most similar to ``question``, best first."""
        import numpy as np

        sents = dedupe(s for t in texts for s in answer_sentences(t))
        if not sents:
            return ""
        emb = self.store.embeddings
        vecs = np.asarray(emb.embed_documents(sents), dtype=np.float32)
        qv = np.asarray(emb.embed_query(question), dtype=np.float32)
        sims = vecs @ qv / (np.linalg.norm(vecs, axis=1) * (np.linalg.norm(qv) or 1.0) + 1e-9)
        return " ".join(sents[i] for i in np.argsort(-sims)[:n])


# -- the run -----------------------------------------------------------------------------------
def slices(questions: Sequence[Question]) -> dict[str, list[Question]]:
    """The question sets reported: each half over every file, each file, and everything."""
    out: dict[str, list[Question]] = {
        "tune": [q for q in questions if q.half == "tune"],
        "check": [q for q in questions if q.half == "check"],
    }
    for source in dedupe(q.source for q in questions):
        out[source or "questions"] = [q for q in questions if q.source == source]
    out["all"] = list(questions)
    return out


@dataclass(slots=True)
class BenchResult:
    questions: list[Question]
    ours: dict[str, Outcome]
    ours_table: Table  # every question
    ours_index: IndexInfo
    peer: dict[str, Outcome] | None = None
    peer_table: Table | None = None
    peer_index: IndexInfo | None = None
    commit: str = ""
    corpus: str = ""
    qa: str = ""
    k_dependent: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, tuple[Table, Table | None]]:
        """Each slice's tables: ours, and the reference pipeline's (or None)."""
        return {name: (aggregate(qs, self.ours),
                       aggregate(qs, self.peer) if self.peer is not None else None)
                for name, qs in slices(self.questions).items()}

    def latency(self, which: str) -> dict[str, float]:
        outcomes = self.ours if which == "ours" else (self.peer or {})
        ms = [o.ms for o in outcomes.values()]
        search = [o.search_ms for o in outcomes.values()]
        # What the answer adds to the search (sentence scoring included), answered ones only.
        answer = [o.ms - o.search_ms for o in outcomes.values() if o.search_ms and not o.abstained]
        return {"p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
                "search_p50_ms": percentile(search, 50), "search_p95_ms": percentile(search, 95),
                "answer_p50_ms": percentile(answer, 50), "answer_p95_ms": percentile(answer, 95)}

    def summary(self) -> dict[str, Any]:
        def index(info: IndexInfo | None) -> dict[str, Any] | None:
            if info is None:
                return None
            return {"articles": info.articles, "chunks": info.chunks,
                    "ingest_seconds": info.ingest_seconds, "chunks_per_s": info.chunks_per_s,
                    "reused_cache": info.reused, "built_at": info.built_at,
                    "folder": str(info.data_dir)}

        out: dict[str, Any] = {
            "commit": self.commit, "corpus": self.corpus, "qa": self.qa,
            "questions": len(self.questions), "ours": self.ours_table,
            "slices": {name: {"ours": o, "peer": p} for name, (o, p) in self.tables().items()},
            "k_dependent_rankings": self.k_dependent,
            "targets": check_targets(self.ours_table),
            "totals": {"ours": {**(index(self.ours_index) or {}), **self.latency("ours")}},
        }
        if self.peer_table is not None:
            out["peer"] = self.peer_table
            out["ratio"] = ratio_table(self.ours_table, self.peer_table)
            out["totals"]["peer"] = {**(index(self.peer_index) or {}), **self.latency("peer")}
        return out


def run(corpus: Path | str, qa: Path | str | Sequence[Path | str], *, k: int = DEPTH,
        cache: Path | None = None, peer_cache: Path | None = None,
        quantized: bool | None = None, embedder: Embedder | None = None,
        with_peer: bool = True, log_to: Any = None) -> BenchResult:
    """Index (or reuse), ask every question of every file in ``qa`` through both pipelines,
    and score them."""
    from bot.settings import Settings

    commit = git_commit()
    if quantized is None:
        quantized = bool(Settings.model_fields["embedding_quantized"].default)
    files = corpus_files(corpus)
    qa_files = [qa] if isinstance(qa, (str, Path)) else list(qa)
    questions = load_questions(*qa_files)
    embedder = embedder or make_bench_embedder(quantized)
    depth = max(k, DEPTH)

    with open_index(files, embedder=embedder, quantized=quantized, cache=cache,
                    log=log_to) as (services, info):
        warm_up(embedder)
        services.retriever.lexical()  # loaded (or built) before anything is timed
        ours_run = run_ours(services, questions, depth)
    ours = ours_run.outcomes
    result = BenchResult(questions=questions, ours=ours, ours_table=aggregate(questions, ours),
                         ours_index=info, commit=commit, corpus=str(corpus),
                         qa=", ".join(str(p) for p in qa_files),
                         k_dependent=ours_run.k_dependent)
    if with_peer:
        with PeerPipeline.open(files, embedder, quantized=quantized, cache=peer_cache,
                               log_to=log_to) as (peer, peer_info):
            result.peer = peer.run(questions, depth)
        result.peer_table = aggregate(questions, result.peer)
        result.peer_index = peer_info
    return result


# -- printing ----------------------------------------------------------------------------------
_HEAD = {"hit@1": "hit@1", "hit@4": "hit@4", "hit@5": "hit@5", "hit@10": "hit@10",
         "mrr@10": "MRR@10", "all@5": "all@5", "all@10": "all@10", "ev@5": "ev@5",
         "ans@ev": "ans@ev", "ans@ev1": "ans@ev1", "ans@art": "ans@art", "ans@all": "ans@all",
         "abstain": "abstain"}
# The columns printed (hit@4 and hit@10 are in the JSON summary).
SHOWN = ("hit@1", "hit@5", "mrr@10", "all@5", "all@10", "ev@5", *ANSWER_METRICS, "abstain")


def print_report(result: BenchResult, console: Console | None = None,
                 only: Sequence[str] = ()) -> None:
    """One table per question slice (``only`` picks some), then time and targets."""
    from rich.console import Console
    from rich.table import Table as RichTable

    console = console or Console(width=150)
    for name, (ours, peer) in result.tables().items():
        if only and name not in only:
            continue
        table = RichTable(title=(f"{name}: {ours[ANSWERABLE]['n']} answerable + "
                                 f"{ours['null']['n']} null questions, commit {result.commit}"),
                          title_justify="left")
        table.add_column("type")
        table.add_column("n", justify="right")
        table.add_column("pipeline")
        for m in SHOWN:
            table.add_column(_HEAD[m], justify="right")
        for i, row in enumerate(ROWS):
            cells = ours.get(row, {"n": 0})
            if not cells.get("n"):
                continue
            if i:
                table.add_section()
            table.add_row(row, str(cells["n"]), "ours", *(fmt(cells.get(m)) for m in SHOWN))
            if peer is not None:
                table.add_row("", "", "plain", *(fmt(peer.get(row, {}).get(m)) for m in SHOWN))
        console.print(table)
    console.print(
        "hit@k, MRR@10, all@k: article level (all@k only for questions with 2+ gold articles); "
        "ev@5: an evidence sentence in a retrieved chunk of the top 5 articles; ans@ev: an "
        "answer sentence holds 60% of an evidence sentence's content words (ans@ev1: the "
        "first sentence does); ans@art / ans@all: the share of gold articles whose evidence "
        "the answer states / all of them; abstain: on null questions the abstention rate, on "
        "the others the false-abstention rate. plain: the LangChain pipeline, its answer the "
        "two sentences of its four chunks closest to the question; it never abstains. "
        "tune / check: the halves by a hash of the qid.")
    if result.k_dependent:
        console.print(f"[yellow]{len(result.k_dependent)} question(s) ranked differently with "
                      f"k={DEPTH} than with the answer's k: {', '.join(result.k_dependent)}; "
                      "their ranks after the answer's articles come from the deeper search."
                      "[/yellow]")

    totals = RichTable(title="Index and query time", caption=(
        "ours: ask() = retrieval + extractive answer; search = the hybrid search alone; "
        "answer = ask - search, answered questions only. plain: similarity_search(k=4), query "
        "embedding included."), caption_justify="left")
    for col in ("pipeline", "articles", "chunks", "ingest s", "chunks/s", "p50 ms", "p95 ms",
                "search p50", "search p95", "answer p50", "answer p95", "index"):
        totals.add_column(col, justify="left" if col in ("pipeline", "index") else "right")

    def add(name: str, info: IndexInfo | None, lat: dict[str, float]) -> None:
        if info is None:
            return
        built = info.built_at[:16].replace("T", " ")
        where = f"cached, built {built}" if info.reused else "built now"
        totals.add_row(name, str(info.articles), str(info.chunks), fmt(info.ingest_seconds, 1),
                       fmt(info.chunks_per_s, 1), fmt(lat["p50_ms"], 1), fmt(lat["p95_ms"], 1),
                       fmt(lat["search_p50_ms"], 1), fmt(lat["search_p95_ms"], 1),
                       fmt(lat["answer_p50_ms"], 1), fmt(lat["answer_p95_ms"], 1), where)

    add("ours", result.ours_index, result.latency("ours"))
    add("plain", result.peer_index, result.latency("peer"))
    console.print(totals)

    targets = RichTable(title="Targets (ours, every question)")
    for col in ("type", "metric", "target", "value", "met"):
        targets.add_column(col)
    for t in check_targets(result.ours_table):
        mark = "—" if t["met"] is None else ("[green]yes[/green]" if t["met"] else "[red]no[/red]")
        targets.add_row(t["row"], _HEAD[t["metric"]], t["target"], fmt(t["value"]), mark)
    console.print(targets)


def write_outputs(result: BenchResult, *, out: Path | None, summary: Path | None,
                  k: int) -> None:
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as fh:
            for q in result.questions:
                o = result.ours.get(q.qid)
                if o is not None:
                    fh.write(json.dumps(o.to_json(k), ensure_ascii=False) + "\n")
    if summary:
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(json.dumps(json_safe(result.summary()), indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    from bot.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m bench.retrieval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True,
                        help="folder of articles_*.jsonl files")
    parser.add_argument("--qa", type=Path, action="append", required=True,
                        help="questions (JSON lines); repeat for several files")
    parser.add_argument("--own", action=argparse.BooleanOptionalAction, default=True,
                        help="add the project's own questions, bench/data/questions_*.jsonl "
                             "(default: yes)")
    parser.add_argument("--slice", action="append", default=[], dest="slices",
                        help="print only this slice (tune, check, a file's name, all); "
                             "repeatable")
    parser.add_argument("--out", type=Path, help="write one JSON line per question (ours)")
    parser.add_argument("--summary", type=Path, help="write the metric tables as JSON")
    parser.add_argument("--k", type=int, default=DEPTH,
                        help="articles per ranking in --out (default 10)")
    parser.add_argument("--cache", type=Path,
                        help="index folder (default bench/.cache/ours-<key>)")
    parser.add_argument("--peer-cache", type=Path,
                        help="reference index folder (default bench/.cache/peer-<key>)")
    parser.add_argument("--quantized", action=argparse.BooleanOptionalAction,
                        default=bool(Settings.model_fields["embedding_quantized"].default),
                        help="int8 MiniLM for both pipelines (default: the project's default)")
    parser.add_argument("--no-peer", action="store_true",
                        help="skip the reference pipeline (faster tuning runs)")
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("--k must be at least 1")
    quiet_logs()

    qa = [*args.qa, *(p for p in own_question_files() if args.own and p not in args.qa)]
    result = run(args.corpus, qa, k=args.k, cache=args.cache, peer_cache=args.peer_cache,
                 quantized=args.quantized, with_peer=not args.no_peer, log_to=sys.stderr)
    print_report(result, only=args.slices)
    write_outputs(result, out=args.out, summary=args.summary, k=args.k)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
