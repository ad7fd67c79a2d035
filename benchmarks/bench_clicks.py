"""Learning from shoppers, in simulation: how close judgments from search logs come to the raters' grades, for the
position-based click model (searchkit.training.judgments) and for raw click-through rate, at several log sizes.

    python benchmarks/bench_clicks.py [--sizes 10000,100000,1000000] [--seed 0]

Simulated shoppers search the training-split queries of the bundled pairs (a query drawn in proportion to a Zipf
popularity), and see that query's rated products ordered by an imperfect ranker that changes over the log: a blend of
the grade and a bias of the ranker's own for each product (a fixed N(0, 1) draw: what an old model wrongly liked),
the grade's weight drifting from 0.2 to 0.8 as releases improve, plus N(0, 0.3) noise per search. They examine position
p with probability 1 / p^0.8 and click an examined product with an attraction that follows its grade (0.05 at 1, 0.35
at 2, 0.75 at 3, linear between); a clicked product is added to the cart half the time. Prints a table and one JSON
line: for each size, the Spearman correlation with the raters' grades over the pairs judged (min 3 impressions), for
the position-based model searchkit uses, a cascade model (searchkit.training.judgments.cascade_model) and raw CTR.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, machine, popular_draws  # noqa: E402


def attraction(grade: np.ndarray) -> np.ndarray:
    return np.interp(grade, [1.0, 2.0, 3.0], [0.05, 0.35, 0.75])


def simulate(pairs: pd.DataFrame, searches: int, rng: np.random.Generator) -> pd.DataFrame:
    """Impression rows (query, product_id, position, clicked, added_to_cart) of `searches` simulated searches."""
    groups = [(q, g["product_id"].to_numpy(), g["relevance"].to_numpy()) for q, g in pairs.groupby("query", sort=True)]
    order = rng.permutation(len(groups))
    chosen = order[popular_draws(len(groups), searches, rng)]
    weight = np.linspace(0.2, 0.8, searches)
    bias = [rng.normal(0, 1, len(ids)) for _, ids, _ in groups]
    queries, products, positions, clicks = [], [], [], []
    for i, g in enumerate(chosen):
        query, ids, grades = groups[g]
        score = weight[i] * grades + (1 - weight[i]) * bias[g] + rng.normal(0, 0.3, len(grades))
        ranked = np.argsort(-score)[:10]
        shown = np.arange(1, len(ranked) + 1)
        examined = rng.random(len(ranked)) < 1.0 / shown ** 0.8
        clicked = examined & (rng.random(len(ranked)) < attraction(grades[ranked]))
        queries += [query] * len(ranked)
        products.append(ids[ranked])
        positions.append(shown)
        clicks.append(clicked)
    clicked = np.concatenate(clicks)
    search_ids = np.repeat(np.arange(len(chosen)), [len(p) for p in positions])
    return pd.DataFrame({"query": queries, "product_id": np.concatenate(products), "position": np.concatenate(positions),
                         "query_id": search_ids,
                         "clicked": clicked.astype(int),
                         "added_to_cart": (clicked & (rng.random(len(clicked)) < 0.5)).astype(int)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from searchkit.data.catalog import read_pairs
    from searchkit.data.splits import SplitConfig, split_pairs
    from searchkit.eval.metrics import spearman
    from searchkit.training.judgments import JudgmentConfig, cascade_model, judgments

    train = split_pairs(read_pairs(args.pairs), SplitConfig())["train"]
    train = train.assign(query=train["query"].str.lower().str.split().str.join(" "))
    truth = train.groupby(["query", "product_id"], as_index=False)["relevance"].mean()
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        started = time.perf_counter()
        log = simulate(truth, size, np.random.default_rng(args.seed))
        judged = judgments(log, JudgmentConfig()).merge(truth, on=["query", "product_id"], suffixes=("", "_rated"))
        cascade = cascade_model(log)
        judged["cascade"] = cascade.reindex(judged["query"] + "\t" + judged["product_id"]).to_numpy()
        rows.append({"searches": size, "impressions": len(log), "pairs_judged": len(judged),
                     "spearman_click_model": round(float(spearman(judged["relevance"], judged["relevance_rated"])), 4),
                     "spearman_ctr": round(float(spearman(judged["ctr"], judged["relevance_rated"])), 4),
                     "spearman_cascade": round(float(spearman(judged["cascade"], judged["relevance_rated"])), 4),
                     "seconds": round(time.perf_counter() - started, 1)})
    print(f"{'searches':>9} {'impressions':>12} {'pairs':>7} {'PBM (used)':>11} {'cascade':>8} {'raw CTR':>8} {'s':>6}")
    for r in rows:
        print(f"{r['searches']:>9} {r['impressions']:>12} {r['pairs_judged']:>7} {r['spearman_click_model']:>11} "
              f"{r['spearman_cascade']:>8} {r['spearman_ctr']:>8} {r['seconds']:>6}")
    print(json.dumps({"benchmark": "clicks", "machine": machine(), "command": command(), "rows": rows}))


if __name__ == "__main__":
    main()
