"""Does an embedder trained on judgments from simulated search logs beat the base model? Simulate shoppers as
benchmarks/bench_clicks.py does, turn the log into judgments, train from the base all-MiniLM-L6-v2 (or any model) on
them alone, and measure it on the bundled pairs' held-out test split (searchkit evaluate --model, in memory).

    python research/train_on_simulated_logs.py --searches 1000000 --max-steps 150 --out runs/sim-1m
        [--base MODEL] [--seed 0]

Writes OUT/judgments.csv, OUT/model/ and OUT/result.json (the test-split figures of the trained model).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_clicks import simulate  # noqa: E402

from searchkit.data.catalog import read_pairs  # noqa: E402
from searchkit.data.splits import SplitConfig, split_pairs  # noqa: E402
from searchkit.eval.evaluate import evaluate  # noqa: E402
from searchkit.eval.in_memory import in_memory_searcher  # noqa: E402
from searchkit.eval.selection import EvalConfig  # noqa: E402
from searchkit.training.embedder import TrainConfig, train  # noqa: E402
from searchkit.training.judgments import JudgmentConfig, judgments, write_judgments  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=Path("catalog/homedepot-pairs.parquet"))
    parser.add_argument("--catalog", type=Path, default=Path("catalog/homedepot-products.parquet"))
    parser.add_argument("--searches", type=int, default=1_000_000)
    parser.add_argument("--max-steps", type=int, default=150)
    parser.add_argument("--base", type=Path, default=None, help="Start from this model (default: the base model).")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pairs = read_pairs(args.pairs)
    trainable = split_pairs(pairs, SplitConfig())["train"]
    trainable = trainable.assign(query=trainable["query"].str.lower().str.split().str.join(" "))
    truth = trainable.groupby(["query", "product_id"], as_index=False)["relevance"].mean()
    log = simulate(truth, args.searches, np.random.default_rng(args.seed))
    judged = write_judgments(judgments(log, JudgmentConfig()), args.out / "judgments.csv")
    # the judgments hold training-split queries only: all of them train (no query of the test split is in them)
    model = train(TrainConfig(pairs=judged, catalog=args.catalog, out=args.out / "model", base_model=args.base,
                              max_steps=args.max_steps, split=SplitConfig(val_fraction=0.05, test_fraction=0.0)))
    report = evaluate(in_memory_searcher(args.catalog, model=model), pairs, EvalConfig(split="test",
                                                                                     modes=("dense", "hybrid")))
    result = {"searches": args.searches, "max_steps": args.max_steps, "base": str(args.base or "all-MiniLM-L6-v2"),
              "command": " ".join(sys.argv), "test": {m: {k: round(v, 4) for k, v in r.items() if k in
                                                          ("ndcg@10", "ndcg@10_judged")}
                                                      for m, r in report["retrieval"].items()},
              "spearman": round(report["pairs"]["spearman"], 4)}
    (args.out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
