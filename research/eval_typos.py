"""Typo tolerance, measured: NDCG@10 on held-out queries as typed, and on seeded misspellings of them, with the
spelling fallback on and off.

    python research/eval_typos.py --index indexes/homedepot [--split test] [--mode hybrid]

Each misspelled query changes one word of 5+ letters by one edit (drop, double, swap or replace a letter), seeded.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import pandas as pd

from searchkit import Searcher
from searchkit.data.catalog import read_pairs
from searchkit.data.text import words
from searchkit.eval.measure import retrieval
from searchkit.eval.selection import EvalConfig, select_pairs


def misspell(query: str, rng: random.Random) -> str | None:
    tokens = words(query)
    candidates = [i for i, t in enumerate(tokens) if len(t) >= 5 and t.isalpha()]
    if not candidates:
        return None
    i = rng.choice(candidates)
    w = tokens[i]
    j = rng.randrange(1, len(w) - 1)
    kind = rng.choice(["drop", "double", "swap", "replace"])
    if kind == "drop":
        w = w[:j] + w[j + 1:]
    elif kind == "double":
        w = w[:j] + w[j] + w[j:]
    elif kind == "swap":
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    else:
        w = w[:j] + rng.choice([c for c in "abcdefghijklmnopqrstuvwxyz" if c != w[j]]) + w[j + 1:]
    tokens[i] = w
    return " ".join(tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    searcher = Searcher.from_dir(args.index)
    pairs = select_pairs(read_pairs(args.pairs), EvalConfig(split=args.split))
    rng = random.Random(args.seed)
    typo_of = {q: misspell(q, rng) for q in sorted(set(pairs["query"]))}
    typo_of = {q: t for q, t in typo_of.items() if t and t != " ".join(words(q))}
    typos = pairs[pairs["query"].isin(typo_of)].assign(query=lambda f: f["query"].map(typo_of))
    originals = pairs[pairs["query"].isin(typo_of)]
    rows = []
    for label, frame in (("as typed (all)", pairs), ("clean (subset)", originals), ("misspelled", typos)):
        for correct in (False, True):
            searcher.spell_correct = correct
            m = retrieval(searcher, frame, args.mode)
            rows.append({"queries": label, "spell_fallback": correct, "n": m["queries"],
                         "ndcg@10": round(m["ndcg@10"], 4), "mrr@10": round(m["mrr@10"], 4)})
    print(pd.DataFrame(rows).to_string(index=False))
    examples = list(typo_of.items())[:5]
    print(json.dumps({"benchmark": "typos", "index": str(args.index), "split": args.split, "mode": args.mode,
                      "command": " ".join(sys.argv), "examples": examples, "rows": rows}))


if __name__ == "__main__":
    main()
