"""Could a learned "no match" classifier beat the hand rule (searchkit.search.match)? Logistic regression over ten signals of
a search (best / mean cosine and their spread, best / mean share of query words held, share of words the catalog never
uses, whether the query names a product type, the rarest word's document frequency, word count, dense-lexical top-10
overlap), trained on real queries (validation split, optionally 1,500 training-split queries) beside the even lines of
the out-of-catalog set; reported on the odd lines and the test split, the threshold set to flag 1% of the training
real queries.

    python research/no_match_classifier.py --index indexes/homedepot
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_spelling import SETS, read_lines  # noqa: E402

from searchkit import Searcher  # noqa: E402
from searchkit.data.catalog import read_pairs  # noqa: E402
from searchkit.eval.selection import EvalConfig, select_pairs  # noqa: E402


def signals(searcher: Searcher, query: str) -> list[float] | None:
    parsed = searcher._parse(query)
    words = parsed.understood.split()
    if not words:
        return None
    hits = searcher.search(query, k=10)
    cosines = np.array([h.cosine for h in hits]) if hits else np.zeros(1)
    rows = np.array([searcher._row_of[h.product_id] for h in hits], dtype=np.int64)
    lexical = searcher.lexical
    held = lexical.coverage(parsed.keywords, rows) if len(rows) else np.zeros(1)
    content = [w for w in words if w.isalpha() and len(w) >= 3]
    unknown = sum(not searcher.corrector.known(w) for w in content) / len(content) if content else 0.0
    terms = [t for t in parsed.keywords.split() if not t.startswith(("brand_", "color_"))]
    counts = [int(lexical.indptr[lexical.vocab[t] + 1] - lexical.indptr[lexical.vocab[t]]) if t in lexical.vocab
              else 0 for t in terms]
    dense = {h.product_id for h in searcher.search(query, k=10, mode="dense")}
    both = len(dense & {h.product_id for h in searcher.search(query, k=10, mode="lexical")}) / 10
    return [float(cosines.max()), float(cosines.mean()), float(cosines.max() - cosines.min()), float(held.max()),
            float(held.mean()), unknown, float(parsed.intent.typed), float(np.log1p(min(counts) if counts else 0)),
            float(len(words)), both]


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    args = parser.parse_args()
    searcher = Searcher.from_dir(args.index)
    pairs = read_pairs(args.pairs)

    def matrix(queries):
        return np.array([f for f in (signals(searcher, q) for q in queries) if f is not None])

    def split(name):
        return sorted(set(select_pairs(pairs, EvalConfig(split=name))["query"]))

    outside = matrix(read_lines(SETS / "out-of-catalog.txt"))
    val, test, train = matrix(split("val")), matrix(split("test")), matrix(split("train")[:1500])
    rows = []
    for name, real in (("val", val), ("val+train", np.vstack([val, train]))):
        x = np.vstack([real, outside[0::2]])
        y = np.r_[np.zeros(len(real)), np.ones(len(outside[0::2]))]
        scale = StandardScaler().fit(x)
        for c in (0.1, 1.0, 10.0):
            model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(scale.transform(x), y)

            def p(m, model=model):
                return model.predict_proba(scale.transform(m))[:, 1]

            threshold = float(np.quantile(p(real), 0.99))
            rows.append({"real": name, "C": c, "out_of_catalog_held_out": float((p(outside[1::2]) > threshold).mean()),
                         "test_real_flagged": float((p(test) > threshold).mean())})
            print(f"{name:10} C={c:<5} out-of-catalog (held out) {rows[-1]['out_of_catalog_held_out']:.3f}  "
                  f"test real flagged {rows[-1]['test_real_flagged']:.4f}")
    print(json.dumps({"benchmark": "no-match-classifier", "index": str(args.index), "rows": rows}))


if __name__ == "__main__":
    main()
