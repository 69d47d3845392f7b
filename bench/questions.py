"""Check question files against the corpus they are about.

    python -m bench.questions --corpus DIR FILE [FILE ...]

Every question must have a known type; an answerable one names gold articles that exist, and
each evidence sentence must appear word for word in the article it names, which must be a
gold one; a null question has no gold articles; a follow-up names a question of the same
files; qids are unique. Prints one line per problem and a count by type; exits 1 on any
problem.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import corpus_files, read_jsonl

TYPES = ("single", "multi", "temporal", "followup", "null")


def problems(records: Sequence[dict[str, Any]], bodies: dict[str, str]) -> list[str]:
    """What is wrong with ``records`` given the articles' ``bodies`` (by id)."""
    out: list[str] = []
    qids = Counter(str(r.get("qid")) for r in records)
    out += [f"{qid}: used {n} times" for qid, n in qids.items() if n > 1]
    for r in records:
        qid, kind = str(r.get("qid")), r.get("type")
        gold = [str(g) for g in r.get("gold_ids") or ()]
        if kind not in TYPES:
            out.append(f"{qid}: unknown type {kind!r}")
        if not str(r.get("question") or "").strip():
            out.append(f"{qid}: no question")
        if kind == "null":
            if gold or r.get("evidence"):
                out.append(f"{qid}: a null question has no gold articles or evidence")
            continue
        if not gold:
            out.append(f"{qid}: no gold articles")
        if kind == "multi" and len(set(gold)) < 2:
            out.append(f"{qid}: a multi question needs two or more gold articles")
        out += [f"{qid}: gold article {g} is not in the corpus" for g in gold if g not in bodies]
        evidence = r.get("evidence") or []
        if not evidence:
            out.append(f"{qid}: no evidence")
        for e in evidence:
            aid, text = str(e.get("id")), str(e.get("text") or "")
            if aid not in gold:
                out.append(f"{qid}: evidence from {aid}, which is not a gold article")
            elif aid in bodies and text not in bodies[aid]:
                out.append(f"{qid}: evidence not found word for word in {aid}: {text[:60]!r}")
        for g in gold:
            if not any(str(e.get("id")) == g for e in evidence):
                out.append(f"{qid}: no evidence from gold article {g}")
        parent = str(r.get("followup_of") or "")
        if parent and parent not in qids:
            out.append(f"{qid}: follows {parent}, which is not a question here")
        if kind == "followup" and r.get("followup_of") == qid:
            out.append(f"{qid}: follows itself")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.questions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True,
                        help="folder of articles_*.jsonl files")
    parser.add_argument("files", type=Path, nargs="+", help="question files (JSON lines)")
    args = parser.parse_args(argv)
    bodies = {str(a["id"]): str(a.get("body") or "")
              for path in corpus_files(args.corpus) for a in read_jsonl(path)}
    records = [r for path in args.files for r in read_jsonl(path)]
    found = problems(records, bodies)
    for line in found:
        print(line)
    counts = Counter(str(r.get("type")) for r in records)
    near = sum(1 for r in records if r.get("type") == "null" and r.get("near_miss"))
    print(f"{len(records)} questions: " + ", ".join(f"{t} {counts[t]}" for t in TYPES)
          + f" (near-miss nulls {near}); {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
