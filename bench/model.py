"""Model-mode answers against any OpenAI-compatible endpoint, on both halves of a question set.

    python -m bench.model --corpus DIR --qa FILE --base-url URL [--model NAME] [--api-key KEY]
        [--budget 30] [--max-tokens 600] [--limit N] [--half tune|check|both] [--out FILE]
    python -m bench.model --corpus DIR --qa FILE --oracle   # the local test server, scripted

Every question goes through ``AskService.ask`` with the model configured as a deployment
would configure it (``--base-url``, ``--model``), streaming, with ``asked_at`` as "today" and a
follow-up's earlier question and answer as history. The corpus is indexed once into the same
cache ``bench.retrieval`` uses. Reported per half (tune / check, by a hash of the qid, as in
``bench.retrieval``) and together:

- ans@ev: an answer sentence holds 60% of the content words of a gold evidence sentence;
- citation validity: the cited sentences of model answers whose numbers all occur in the
  article they cite (as the model was given it);
- the share of answers shown from the model, the fallback rate and its reasons;
- time to the first shown sentence (model answers) and total time per answer;
- the longest reply in streamed tokens against the cap, and how many replies hit it.

``--oracle`` starts the project's OpenAI-compatible test server in this process, scripted as
a good model: it answers with the gold evidence sentences, each cited to the number of the
article that holds it, and with the not-found marker when no given article holds one. It
measures what the checks cost a model that is right (sentences wrongly held back, time).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import (
    bench_settings,
    corpus_files,
    git_commit,
    make_bench_embedder,
    open_index,
    percentile,
    quiet_logs,
)
from bench.retrieval import (
    Question,
    RecordingRetriever,
    answer_metrics,
    contains_sentence,
    load_questions,
    parents_first,
    thread_of,
)
from bot.core.llm import ChatModelBase, Completion

if TYPE_CHECKING:
    from bot.core.llm import ChatModel
    from bot.core.models import Answer
    from bot.core.services import Services
    from retrieval.search import SearchResult

HALVES = ("tune", "check")
CAP_SLACK = 4  # servers send about one token per delta; a few over the cap still held it

# Fallback reasons, from the answer's note (the first that matches names it).
REASONS: tuple[tuple[str, str], ...] = (
    ("timed out", "timed out"),
    ("repeated its instructions", "echoed the prompt"),
    ("still reasoning", "cut off while reasoning"),
    ("only a list of sources", "listed its sources only"),
    ("could not be read", "unreadable reply"),
    ("cited no article", "cited nothing"),
    ("passed the checks", "no sentence passed the checks"),
    ("reply was empty", "empty reply"),
    ("did not answer", "error"),
)


# -- a model that records how each reply ended --------------------------------------------------
class RecordingModel(ChatModelBase):
    """Passes calls through and keeps each completion (or failure)."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[dict[str, Any]] = []

    def generate(self, messages: Sequence[tuple[str, str]], *,
                 on_token: Callable[[str], None] | None = None,
                 deadline: float | None = None,
                 max_tokens: int | None = None) -> Completion:
        from bot.core.llm import LLMError

        try:
            done = self.inner.generate(messages, on_token=on_token, deadline=deadline,
                                       max_tokens=max_tokens)
        except LLMError as exc:
            self.calls.append({"finish": exc.reason, "chunks": None})
            raise
        self.calls.append({"finish": done.finish_reason, "chunks": done.chunks,
                           "seconds": done.seconds, "first_token_s": done.first_token_s,
                           "text": done.text[:600]})
        return done

    def close(self) -> None:
        self.inner.close()


# -- the scripted good model -----------------------------------------------------------------
_BLOCK = re.compile(r'<article n="(\d+)"[^>]*>\n(.*?)\n</article>', re.S)


class Oracle:
    """Replies with the current question's gold evidence, cited to the article holding it."""

    def __init__(self, chunk_delay: float) -> None:
        self.question: Question | None = None
        self.chunk_delay = chunk_delay

    def __call__(self, body: dict[str, Any]) -> Any:
        from tests.support.openai_server import QueuedReply

        messages = body.get("messages") or []
        system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
        if not system:  # the follow-up rewrite: the message as it was
            text = messages[-1].get("content", "") if messages else ""
            last = re.findall(r"Last message: (.*)", text)
            return last[-1].strip() if last else ""
        q = self.question
        said = []
        for n, block in _BLOCK.findall(system):
            for ev in q.evidence if q else ():
                if contains_sentence(ev, block) and ev not in [s for s, _ in said]:
                    said.append((ev, n))
        if not said:
            return "NOT_IN_ARTICLES"
        text = " ".join(f"{ev.rstrip(' .')} [{n}]." for ev, n in said[:4])
        return QueuedReply(text=text, stream_chunk_size=4, chunk_delay=self.chunk_delay)


@contextmanager
def oracle_server(chunk_delay: float) -> Iterator[tuple[str, Oracle]]:
    from tests.support.openai_server import FakeOpenAIServer

    oracle = Oracle(chunk_delay)
    with FakeOpenAIServer(responder=oracle, cap_mode="max_tokens") as server:
        yield server.base_url, oracle


# -- one run ---------------------------------------------------------------------------------
@dataclass(slots=True)
class Row:
    """One question's outcome."""

    qid: str
    type: str
    half: str
    mode: str
    abstained: bool
    note: str | None
    answer: str
    seconds: float
    first_shown_s: float | None
    ans_at_ev: float | None
    cited_sentences: int = 0
    valid_sentences: int = 0
    model_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def asked_model(self) -> bool:
        return bool(self.model_calls)

    @property
    def fallback(self) -> str | None:
        """Why the model's text was not shown, when the model was asked and it was not."""
        if not self.asked_model or self.mode == "model":
            return None
        note = self.note or ""
        if self.abstained and "found no answer" in note:
            return None  # the model's own abstention, not a fallback
        return next((label for key, label in REASONS if key in note), "other")


_NUM = re.compile(r"\d+(?:[.,]\d+)*")


def citation_validity(answer: Answer, result: SearchResult | None) -> tuple[int, int]:
    """(cited sentences, those whose numbers all occur in a cited article as the model was
    given it: headline, date and text)."""
    from bot.core.answer_model import _numbers, sources_of  # the checks' own reading

    if result is None or answer.mode != "model":
        return 0, 0
    given = dict(zip((a.article_id for a in result.articles), sources_of(result), strict=True))
    numbers = {s.n: given[s.article_id].numbers for s in answer.sources
               if s.article_id in given}
    cited = valid = 0
    for sentence in re.split(r"(?<=[.!?])\s+(?=\S)", answer.text):
        ns = [int(n) for n in re.findall(r"\[(\d{1,2})\]", sentence)]
        if not ns:
            continue
        cited += 1
        body = re.sub(r"\[\d{1,2}\]", " ", sentence)
        have = set().union(*(numbers.get(n, set()) for n in ns))
        valid += (_numbers(body) - {"0", "1"}) <= have
    return cited, valid


def run_questions(services: Services, model: RecordingModel, questions: Sequence[Question],
                  *, budget: float, max_tokens: int, top_k: int | None = None,
                  oracle: Oracle | None = None, log: Any = sys.stderr) -> list[Row]:
    from bot.core.ask import AskService
    from bot.core.models import QuestionError, Turn

    settings = services.settings.model_copy(update={
        "answer_budget_s": budget, "llm_max_tokens": max_tokens,
        "top_k": top_k or services.settings.top_k})
    proxy = RecordingRetriever(services.retriever)
    ask = AskService(settings, proxy, model)  # type: ignore[arg-type]
    by_id = {q.qid: q for q in questions}
    said: dict[str, str] = {}
    rows: list[Row] = []
    ordered = parents_first(questions)
    for i, q in enumerate(ordered, 1):
        history: list[Turn] = []
        for earlier in thread_of(q, by_id):
            history += [Turn("user", earlier.question),
                        Turn("assistant", said.get(earlier.qid, ""))]
        if oracle is not None:
            oracle.question = q
        proxy.calls.clear()
        model.calls.clear()
        shown: list[float] = []
        start = time.perf_counter()
        try:
            answer = ask.ask(q.question, history=history, now=q.now,
                             on_token=lambda _t, shown=shown: shown.append(time.perf_counter()))
        except QuestionError as exc:
            print(f"{q.qid}: refused: {exc}", file=log)
            continue
        seconds = time.perf_counter() - start
        said[q.qid] = answer.text
        result = proxy.calls[-1][3] if proxy.calls else None
        cited, valid = citation_validity(answer, result)
        m = answer_metrics(q, answer.text, answer.abstained)
        row = Row(qid=q.qid, type=q.type, half=q.half, mode=answer.mode,
                  abstained=answer.abstained, note=answer.note, answer=answer.text,
                  seconds=seconds,
                  first_shown_s=(shown[0] - start) if shown and answer.mode == "model" else None,
                  ans_at_ev=m.get("ans@ev"), cited_sentences=cited, valid_sentences=valid,
                  model_calls=list(model.calls))
        rows.append(row)
        print(f"[{i}/{len(ordered)}] {q.qid} {row.mode}{' abstained' if row.abstained else ''}"
              f" {seconds:.1f}s {row.fallback or ''}", file=log, flush=True)
    return rows


# -- the report ------------------------------------------------------------------------------
def summarise(rows: Sequence[Row], max_tokens: int) -> dict[str, Any]:
    asked = [r for r in rows if r.asked_model]
    model_rows = [r for r in rows if r.mode == "model"]
    falls = [r for r in asked if r.fallback]
    answerable = [r for r in rows if r.ans_at_ev is not None]
    chunks = [c["chunks"] for r in rows for c in r.model_calls if c.get("chunks") is not None]
    capped = [c for r in rows for c in r.model_calls if c.get("finish") == "length"]
    cited = sum(r.cited_sentences for r in model_rows)
    firsts = [r.first_shown_s for r in model_rows if r.first_shown_s is not None]
    totals = [r.seconds for r in rows]
    fall_times = [r.seconds for r in falls]

    def share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    return {
        "questions": len(rows),
        "declined_at_retrieval": sum(not r.asked_model and r.abstained for r in rows),
        "asked_model": len(asked),
        "model_answers": share(len(model_rows), len(asked)),
        "model_abstained": sum(r.abstained and r.asked_model and not r.fallback for r in rows),
        "fallback_rate": share(len(falls), len(asked)),
        "fallback_reasons": dict(Counter(r.fallback for r in falls).most_common()),
        "ans@ev": share(sum(r.ans_at_ev or 0 for r in answerable), len(answerable)),
        "ans@ev_model_answers": share(
            sum(r.ans_at_ev or 0 for r in answerable if r.mode == "model"),
            sum(r.mode == "model" for r in answerable)),
        "citation_validity": share(sum(r.valid_sentences for r in model_rows), cited),
        "cited_sentences": cited,
        "first_shown_p50_s": percentile(firsts, 50) if firsts else None,
        "first_shown_p95_s": percentile(firsts, 95) if firsts else None,
        "total_p50_s": percentile(totals, 50) if totals else None,
        "total_p95_s": percentile(totals, 95) if totals else None,
        "total_max_s": max(totals) if totals else None,
        "fallback_p50_s": percentile(fall_times, 50) if fall_times else None,
        "fallback_max_s": max(fall_times) if fall_times else None,
        "longest_reply_tokens": max(chunks) if chunks else None,
        "replies_at_cap": len(capped),
        "cap": max_tokens,
        "cap_honoured": (max(chunks) <= max_tokens + CAP_SLACK) if chunks else None,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
    return str(value)


def print_report(header: str, tables: dict[str, dict[str, Any]]) -> None:
    print(header)
    names = list(tables)
    keys = list(next(iter(tables.values())))
    width = max(len(k) for k in keys)
    print(f"{'':<{width}}  " + "  ".join(f"{n:>12}" for n in names))
    for key in keys:
        cells = [_fmt(tables[n][key]) for n in names]
        if key == "fallback_reasons":
            print(f"{key:<{width}}")
            for n, c in zip(names, cells, strict=True):
                print(f"  {n}: {c}")
            continue
        print(f"{key:<{width}}  " + "  ".join(f"{c:>12}" for c in cells))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="folder of articles_*.jsonl")
    parser.add_argument("--qa", type=Path, required=True, help="questions (dev.jsonl format)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. "
                        "http://127.0.0.1:8080/v1")
    target.add_argument("--oracle", action="store_true",
                        help="the local test server scripted as a good model")
    parser.add_argument("--model", default="local", help="model name at the endpoint")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--budget", type=float, default=30.0, help="answer budget, seconds")
    parser.add_argument("--max-tokens", type=int, default=600)
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds one request may wait for the next bytes")
    parser.add_argument("--top-k", type=int, default=0,
                        help="sources per answer (0: the default); fewer make a shorter prompt")
    parser.add_argument("--half", choices=("tune", "check", "both"), default="both")
    parser.add_argument("--limit", type=int, default=0,
                        help="at most N questions per half (0: all), for slow servers")
    parser.add_argument("--oracle-delay", type=float, default=0.01,
                        help="seconds between the oracle's 4-character deltas")
    parser.add_argument("--out", type=Path, help="one JSON line per question")
    parser.add_argument("--summary", type=Path, help="the tables as JSON")
    args = parser.parse_args(argv)
    quiet_logs()

    from bot.core.llm import OpenAIChatModel

    questions = load_questions(args.qa)
    halves = HALVES if args.half == "both" else (args.half,)
    chosen: list[Question] = []
    for half in halves:
        in_half = [q for q in questions if q.half == half]
        if args.limit:
            keep = {q.qid for q in in_half[: args.limit]}
            by_id = {q.qid: q for q in questions}
            for q in list(in_half[: args.limit]):  # a follow-up needs what it follows
                keep |= {p.qid for p in thread_of(q, by_id)}
            in_half = [q for q in in_half if q.qid in keep]
        chosen += in_half

    embedder = make_bench_embedder(True)
    files = corpus_files(args.corpus)
    with open_index(files, embedder=embedder, quantized=True) as (services, info), \
            _endpoint(args) as (base_url, oracle):
        print(f"index: {info.articles} articles, {info.chunks} chunks "
              f"({'cached' if info.reused else 'built'})", file=sys.stderr)
        settings = bench_settings(info.data_dir, openai_base_url=base_url,
                                  llm_model=args.model, answer_budget_s=args.budget,
                                  llm_max_tokens=args.max_tokens, llm_timeout_s=args.timeout,
                                  openai_api_key=args.api_key)
        model = RecordingModel(OpenAIChatModel(settings))
        try:
            rows = run_questions(services, model, chosen, budget=args.budget,
                                 max_tokens=args.max_tokens, top_k=args.top_k or None,
                                 oracle=oracle)
        finally:
            model.close()
    tables = {half: summarise([r for r in rows if r.half == half], args.max_tokens)
              for half in halves}
    if len(halves) > 1:
        tables["all"] = summarise(rows, args.max_tokens)
    where = "the test server scripted as a good model" if args.oracle else args.base_url
    k = args.top_k or services.settings.top_k
    print_report(f"bench.model: {args.model} at {where}; budget {args.budget:g} s, cap "
                 f"{args.max_tokens} tokens, {k} sources; commit {git_commit()}; "
                 f"{len(rows)} questions",
                 tables)
    if args.out:
        with args.out.open("w") as fh:
            for r in rows:
                fh.write(json.dumps(asdict(r) | {"fallback": r.fallback}) + "\n")
    if args.summary:
        args.summary.write_text(json.dumps(tables, indent=2))
    return 0


@contextmanager
def _endpoint(args: argparse.Namespace) -> Iterator[tuple[str, Oracle | None]]:
    if args.oracle:
        with oracle_server(args.oracle_delay) as (url, oracle):
            yield url, oracle
    else:
        yield args.base_url, None


if __name__ == "__main__":
    sys.exit(main())
