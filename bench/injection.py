"""How well the instruction-like-text filter tells planted instructions from news prose.

    python -m bench.injection --corpus DIR --attacks FILE [--labelled FILE] [--hosts 5]

- recall: each attack text of FILE (a JSON object of category -> list of texts, as BIPIA's
  text attacks are published) is planted as a paragraph of its own into ``--hosts`` articles
  of the corpus picked at random (seeded), the way a hostile page would carry it, and counts
  as caught when the filter flags it there;
- false flags: each sentence of ``--labelled`` (default ``bench/data/injection_news.jsonl``:
  500 Wikinews sentences drawn at random and labelled by hand, all news) is judged inside its
  own article, and counts as a false flag when it is flagged though labelled news.

Prints both rates, with the misses and the false flags listed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import ROOT, corpus_files, read_jsonl

LABELLED = ROOT / "bench" / "data" / "injection_news.jsonl"
RECALL_TARGET = 0.95
FALSE_FLAG_TARGET = 0.005


@dataclass(slots=True)
class Rates:
    planted: int = 0
    caught: int = 0
    news: int = 0
    false_flags: int = 0
    misses: list[tuple[str, str]] = field(default_factory=list)  # (attack, host title)
    flagged_news: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.caught / self.planted if self.planted else float("nan")

    @property
    def false_flag_rate(self) -> float:
        return self.false_flags / self.news if self.news else float("nan")


def load_attacks(path: Path | str) -> list[str]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict):
        return [str(t) for texts in data.values() for t in texts]
    return [str(t) for t in data]


def planted_flags(attack: str, body: str) -> bool:
    """Whether the filter flags ``attack`` planted as a paragraph in the middle of ``body``."""
    from retrieval.text import instruction_sentences

    paras = body.split("\n\n")
    at = len(paras) // 2
    text = "\n\n".join([*paras[:at], attack, *paras[at:]])
    flagged = instruction_sentences(text)
    # The attack may be split into several sentences; it is caught when any of them is.
    return any(s in attack for s in flagged)


def measure(articles: dict[str, dict[str, Any]], attacks: Sequence[str],
            labelled: Sequence[dict[str, Any]], hosts: int = 5, seed: int = 11) -> Rates:
    from retrieval.text import is_instruction_like

    rates = Rates()
    rng = random.Random(seed)
    ids = sorted(articles)
    for attack in attacks:
        for aid in rng.sample(ids, hosts):
            rates.planted += 1
            if planted_flags(attack, str(articles[aid].get("body") or "")):
                rates.caught += 1
            else:
                rates.misses.append((attack, str(articles[aid].get("title") or aid)))
    for rec in labelled:
        if rec.get("injection"):
            continue
        aid = str(rec["id"]).rsplit("#", 1)[0]
        body = str(articles.get(aid, {}).get("body") or "")
        rates.news += 1
        if is_instruction_like(str(rec["text"]), context=body):
            rates.false_flags += 1
            rates.flagged_news.append(str(rec["text"]))
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.injection", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True,
                        help="folder of articles_*.jsonl files (hosts and contexts)")
    parser.add_argument("--attacks", type=Path, required=True,
                        help="attack texts: JSON, category -> list of texts")
    parser.add_argument("--labelled", type=Path, default=LABELLED,
                        help="labelled news sentences (JSON lines: id, text, injection)")
    parser.add_argument("--hosts", type=int, default=5,
                        help="articles each attack is planted into (default 5)")
    args = parser.parse_args(argv)
    if args.hosts < 1:
        parser.error("--hosts must be at least 1")
    articles = {str(a["id"]): a for p in corpus_files(args.corpus) for a in read_jsonl(p)}
    rates = measure(articles, load_attacks(args.attacks), read_jsonl(args.labelled),
                    hosts=args.hosts)
    missed = sorted({a for a, _ in rates.misses})
    print(f"recall: {rates.caught}/{rates.planted} planted attacks flagged = "
          f"{rates.recall:.3f} (target >= {RECALL_TARGET}); attacks missed at least once: "
          f"{len(missed)}")
    for a in missed:
        print(f"  missed: {a}")
    print(f"false flags: {rates.false_flags}/{rates.news} news sentences = "
          f"{rates.false_flag_rate:.4f} (target <= {FALSE_FLAG_TARGET})")
    for s in rates.flagged_news:
        print(f"  flagged: {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
