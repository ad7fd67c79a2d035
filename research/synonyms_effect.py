"""Synonyms in the keyword text alone, or in the embedded text too: product@10 of three product-type queries a shop
would write synonyms for, on a hard-linked copy of an index with a three-group rules file installed.

    python research/synonyms_effect.py --index indexes/homedepot [--copy /tmp/synonyms-index]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_intent import is_asked_for, load_queries  # noqa: E402

from searchkit import Searcher  # noqa: E402
from searchkit.search.rules import install  # noqa: E402

RULES = """
[[synonyms]]
words = ["weed eater", "string trimmer"]
[[synonyms]]
from = "bbq grill"
to = ["gas grill", "charcoal grill"]
[[synonyms]]
words = ["chain saw", "chainsaw"]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--copy", type=Path, default=Path("/tmp/synonyms-index"))
    args = parser.parse_args()
    shutil.rmtree(args.copy, ignore_errors=True)
    subprocess.run(["cp", "-al", str(args.index), str(args.copy)], check=True)  # the rules file is the only write
    entries = {e["query"]: e for e in load_queries("homedepot")}
    entries["weed eater"] = {**entries["string trimmer"], "query": "weed eater"}
    queries = ["weed eater", "bbq grill", "chain saw"]

    def scores(searcher: Searcher) -> dict[str, float]:
        return {q: sum(is_asked_for(entries[q], h.fields) for h in searcher.search(q, k=10)) / 10 for q in queries}

    searcher = Searcher.from_dir(args.copy)
    rows = {"no rules": scores(searcher)}
    rules_file = args.copy.parent / f"{args.copy.name}.rules.toml"
    rules_file.write_text(RULES)
    install(args.copy, rules_file)
    searcher.load_rules()
    rows["lexical synonyms"] = scores(searcher)
    searcher.set_rules(replace(searcher.rules, embed_synonyms=True))
    rows["lexical + embedded"] = scores(searcher)
    for name, row in rows.items():
        print(f"{name:20} " + "  ".join(f"{q} {v:.1f}" for q, v in row.items()))
    print(json.dumps({"benchmark": "synonyms", "index": str(args.index), "command": " ".join(sys.argv), "rows": rows}))


if __name__ == "__main__":
    main()
