"""Choose the "no match" rule's thresholds (searchkit.search.match.MatchRule) on the validation split's real queries
beside the out-of-catalog queries written for tuning (benchmarks/sets/out-of-catalog-tune.txt); the set written apart
(out-of-catalog.txt) and the test split only report. The rule is read as Searcher._no_match reads it.

    python research/tune_no_match.py --index indexes/homedepot [--max-real 0.0175]

Prints the best rules (the most tuning queries flagged, at most --max-real of the validation queries flagged) and one
JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_spelling import SETS, read_lines  # noqa: E402

from searchkit import MatchRule, Searcher  # noqa: E402
from searchkit.data.catalog import read_pairs  # noqa: E402
from searchkit.eval.selection import EvalConfig, select_pairs  # noqa: E402


class Recorder(MatchRule):
    """A MatchRule that never settles early and records what Searcher._no_match hands it."""

    seen: list

    @property
    def settled(self) -> float:
        return float("inf")

    def no_match(self, *signals, **more) -> bool:
        self.seen.append((*signals, *more.values()))
        return False


def signals(searcher: Searcher, query: str) -> tuple | None:
    """What MatchRule.no_match reads for one query, or None for a query with no word (always no match)."""
    recorder = Recorder()
    object.__setattr__(recorder, "seen", [])
    searcher.match_rule = recorder
    searcher.search(query, k=10)
    return recorder.seen[0] if recorder.seen else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--max-real", type=float, default=0.0175)
    args = parser.parse_args()
    searcher = Searcher.from_dir(args.index)
    pairs = read_pairs(args.pairs)
    sets = {"tune": read_lines(SETS / "out-of-catalog-tune.txt"), "report": read_lines(SETS / "out-of-catalog.txt"),
            "val": sorted(set(select_pairs(pairs, EvalConfig(split="val"))["query"])),
            "test": sorted(set(select_pairs(pairs, EvalConfig(split="test"))["query"]))}
    cache = {q: signals(searcher, q) for queries in sets.values() for q in queries}
    base = MatchRule()
    rows = []
    for uses, share, cover, cosine in itertools.product((5, 10, 20, 40), (0.34, 0.5, 1.0), (0.5, 0.67, 1.0),
                                                        (0.45, 0.5, 0.55, 0.6, 0.65)):
        rule = replace(base, rare_uses=uses, rare_share=share, rare_coverage=cover, rare_cosine=cosine)

        def flagged(queries, rule=rule):
            return float(np.mean([cache[q] is None or rule.no_match(*cache[q][:4], _rare(searcher, q, rule))
                                  for q in queries]))

        rows.append({"rule": asdict(rule), **{name: flagged(queries) for name, queries in sets.items()}})
    ok = sorted((r for r in rows if r["val"] <= args.max_real), key=lambda r: (-r["tune"], r["val"]))
    for r in ok[:8]:
        rule = {k: r["rule"][k] for k in ("rare_uses", "rare_share", "rare_coverage", "rare_cosine")}
        print(f"{rule}  val {r['val']:.4f} tune {r['tune']:.3f} | reported: out-of-catalog {r['report']:.3f} "
              f"test {r['test']:.4f}")
    print(json.dumps({"benchmark": "no-match-rule", "index": str(args.index), "command": " ".join(sys.argv),
                      "best": ok[:8]}))


_words: dict[str, list[str]] = {}


def _rare(searcher: Searcher, query: str, rule: MatchRule) -> float:
    """The rare-word share for another `rare_uses` (the recorded one was taken with the default)."""
    from searchkit.search.match import RARE_IGNORED, content_words

    if query not in _words:
        understood = searcher._parse(query).understood.split()
        _words[query] = [w for w in content_words(understood) if w not in RARE_IGNORED]
    words, corrector = _words[query], searcher.corrector
    if not words:
        return 0.0
    limit = rule.rare_limit(len(searcher))
    return sum(corrector.is_word(w) and corrector.uses(w) <= limit for w in words) / len(words)


if __name__ == "__main__":
    main()
