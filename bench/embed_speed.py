"""Speed of the local MiniLM embedder on news passages, fp32 against int8.

    python -m bench.embed_speed --corpus DIR [--file NAME] [--passages 300] [--rounds 3]

Cuts about 1,000-character passages from the ``body`` fields of ``DIR/NAME`` and reports:
building the ONNX files (in a fresh temporary cache) and their sizes, session load time,
passages per second for each model, batch size and with or without length-sorting (best of
``--rounds``, rounds interleaved so background load spreads over all configurations), query
latency, and how closely the int8 vectors agree with the fp32 ones.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bench.common import git_commit, percentile
from retrieval.embeddings import LocalMiniLM

T = TypeVar("T")

QUERIES = (
    "who won the election",
    "What did the court rule about the tanker contract?",
    "earthquake death toll",
    "Which countries closed their borders in March 2020 because of the coronavirus?",
    "Brexit vote",
    "wildfires Australia",
    "What did the minister say about the flood relief package last week?",
    "NASA launch",
)


def passages(path: Path, n: int, size: int) -> list[str]:
    """The first ``n`` passages of about ``size`` characters, cut at word boundaries."""
    out: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            for passage in _cut(json.loads(line).get("body") or "", size):
                out.append(passage)
                if len(out) == n:
                    return out
    return out


def _cut(text: str, size: int) -> Iterator[str]:
    words: list[str] = []
    length = 0
    for word in text.split():
        if words and length + 1 + len(word) > size:
            yield " ".join(words)
            words, length = [], 0
        length += len(word) + (1 if words else 0)
        words.append(word)
    # An article's short tail would skew the "1,000 characters" figure.
    if length >= 0.8 * size:
        yield " ".join(words)


def timed(fn: Callable[..., T], *args: Any) -> tuple[float, T]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


class BackgroundLoad:
    """CPU the rest of the machine used while measuring, in cores (Linux ``/proc/stat``).

    Timings on a shared machine are only comparable when this stays near zero.
    """

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        except OSError:
            return None
        ticks = [int(x) for x in fields]
        busy = (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
        own = os.times()
        return busy, own.user + own.system, time.monotonic()

    def cores(self) -> float | None:
        end = self._sample()
        if self._start is None or end is None or end[2] <= self._start[2]:
            return None
        other = (end[0] - self._start[0]) - (end[1] - self._start[1])
        return max(0.0, other / (end[2] - self._start[2]))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def neighbour_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of each passage's top-k neighbours (itself excluded) the two spaces share."""

    def top(m: np.ndarray) -> np.ndarray:
        sims = m @ m.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1)[:, :k]

    ta, tb = top(a), top(b)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ta, tb, strict=True)]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.embed_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--corpus", type=Path, required=True, help="folder of articles_*.jsonl")
    parser.add_argument("--file", default="articles_2019_2020.jsonl")
    parser.add_argument("--passages", type=int, default=300)
    parser.add_argument("--chars", type=int, default=1000, help="passage length")
    parser.add_argument("--batch-sizes", default="1,8,16,32,64")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: all usable cores")
    args = parser.parse_args(argv)

    texts = passages(args.corpus / args.file, args.passages, args.chars)
    if not texts:
        raise SystemExit(f"no passages in {args.corpus / args.file}")
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mean_chars = sum(map(len, texts)) / len(texts)

    with tempfile.TemporaryDirectory(prefix="embed-speed-") as tmp:
        cache = Path(tmp)
        models = {q: LocalMiniLM(cache, quantized=q, threads=args.threads) for q in (False, True)}
        build = {q: timed(models[q].load)[0] for q in (False, True)}  # int8 includes quantizing
        files = {q: models[q].model_path for q in (False, True)}
        # A second load from the cache: what every later start of the bot pays.
        load_again = timed(LocalMiniLM(cache, threads=args.threads).load)[0]
        tokenizer = models[False].load()[0]
        tokens = [len(e.ids) for e in tokenizer.encode_batch(texts)]

        print(
            f"commit {git_commit()}  cores {cores}  threads {models[False].threads}  "
            f"passages {len(texts)} × {mean_chars:.0f} chars, "
            f"{np.mean(tokens):.0f} tokens mean ({sum(t >= 256 for t in tokens)} truncated)"
        )
        for q in (False, True):
            path = files[q]
            assert path is not None
            what = "build + quantize" if q else "build"
            print(
                f"{models[q].model_id:<18} {what} {build[q]:.1f}s  "
                f"file {path.stat().st_size / 1e6:.1f} MB  ({path.name})"
            )
        print(f"load from cache (fp32)  {load_again:.2f}s")

        configs = list(itertools.product((False, True), (True, False), sizes))
        embedders = {
            (q, s, b): LocalMiniLM(
                cache, quantized=q, batch_size=b, threads=args.threads, sort_by_length=s
            )
            for q, s, b in configs
        }
        for e in embedders.values():
            e.embed_documents(texts[:4])
        load = BackgroundLoad()
        best = dict.fromkeys(configs, float("inf"))
        vectors: dict[tuple[bool, bool, int], np.ndarray] = {}
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds} ...", file=sys.stderr, flush=True)
            for c in configs:
                seconds, vectors[c] = timed(embedders[c].embed_documents, texts)
                best[c] = min(best[c], seconds)

        background = load.cores()
        print()
        if background is not None:
            print(f"other processes used {background:.2f} cores on average while timing")
        print(f"{'model':<18} {'sorted':<7} {'batch':>5} {'passages/s':>11} {'tokens/s':>9}")
        for q, s, b in configs:
            rate = len(texts) / best[(q, s, b)]
            print(
                f"{models[q].model_id:<18} {'yes' if s else 'no':<7} {b:>5} {rate:>11.1f} "
                f"{rate * np.mean(tokens):>9.0f}"
            )

        print()
        print(f"{'query latency (ms)':<18} {'p50':>6} {'p95':>6} {'max':>6}")
        for q in (False, True):
            e = models[q]
            for text in QUERIES:
                e.embed_query(text)
            times = [timed(e.embed_query, text)[0] * 1000 for _ in range(25) for text in QUERIES]
            print(
                f"{e.model_id:<18} {percentile(times, 50):>6.2f} {percentile(times, 95):>6.2f} "
                f"{max(times):>6.2f}"
            )

        ref_size = 32 if 32 in sizes else sizes[0]
        fp32 = vectors[(False, True, ref_size)]
        int8 = vectors[(True, True, ref_size)]
        agree = cosines(fp32, int8)
        print()
        print(
            f"int8 vs fp32 over {len(texts)} passages (batch {ref_size}): cosine mean "
            f"{agree.mean():.4f}  min {agree.min():.4f}  p5 {np.percentile(agree, 5):.4f}; "
            f"top-10 neighbour overlap {neighbour_overlap(fp32, int8):.3f}"
        )
        for q in (False, True):
            by_size = [vectors[(q, True, b)] for b in sizes]
            spread = (
                min(float(cosines(by_size[0], v).min()) for v in by_size[1:])
                if len(by_size) > 1
                else 1.0
            )
            print(
                f"{models[q].model_id}: min cosine of a passage to itself across batch sizes "
                f"{spread:.4f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
