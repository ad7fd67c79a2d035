import pandas as pd
import pytest

from searchkit import SearchkitError
from searchkit.data.catalog import read_pairs
from searchkit.data.splits import SplitConfig, query_split, split_pairs
from searchkit.eval.evaluate import evaluate
from searchkit.eval.measure import pair_correlation, pair_cosines, query_metrics, retrieval
from searchkit.eval.selection import EvalConfig, select_pairs


def test_split_is_by_query_and_seeded(pairs_file):
    pairs = read_pairs(pairs_file)
    parts = split_pairs(pairs)
    seen = [set(p["query"]) for p in parts.values()]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert sum(len(p) for p in parts.values()) == len(pairs)
    assert query_split("swag light kit") == query_split(" Swag Light Kit ")
    other = split_pairs(pairs, SplitConfig(seed=1))
    assert [set(p["query"]) for p in other.values()] != seen


def test_split_by_pair_shares_queries_and_keeps_every_pair_once(pairs_file):
    pairs = read_pairs(pairs_file)
    parts = split_pairs(pairs, SplitConfig(by="pair"))
    keys = [set(zip(p["query"], p["product_id"], strict=True)) for p in parts.values()]
    assert sum(len(p) for p in parts.values()) == len(pairs) and not (keys[0] & keys[2]) and not (keys[0] & keys[1])
    assert set(parts["test"]["query"]) & set(parts["train"]["query"])  # queries leak: why it is not the default
    assert {k: len(p) for k, p in parts.items()} != {k: len(p) for k, p in split_pairs(pairs).items()}
    again = split_pairs(pairs.sample(frac=1.0, random_state=3), SplitConfig(by="pair"))
    assert set(zip(again["test"]["query"], again["test"]["product_id"], strict=True)) == keys[2]  # order-free


def test_unknown_split_kind_refused():
    with pytest.raises(SearchkitError, match="split by 'product'"):
        SplitConfig(by="product")


def test_lexical_retrieval_is_perfect_when_queries_are_titles(searcher, catalog_frame):
    unique = catalog_frame.drop_duplicates("title").head(20)
    pairs = pd.DataFrame({"query": unique["title"], "product_id": unique["product_id"], "relevance": 3.0})
    report = retrieval(searcher, pairs, "lexical")
    assert report["queries"] == 20
    assert report["mrr@10"] >= 0.5 and report["recall@100"] == pytest.approx(1.0)


def test_evaluate_report_shape(searcher, pairs_file):
    report = evaluate(searcher, read_pairs(pairs_file), EvalConfig(split="all"))
    assert report["queries"] == len(set(read_pairs(pairs_file)["query"]))
    assert report["pairs"]["pairs"] == len(read_pairs(pairs_file))
    assert set(report["retrieval"]["dense"]) == {"ndcg@10", "mrr@10", "recall@10", "recall@100", "ndcg@10_judged",
                                                 "judged@10", "queries"}


def test_per_query_figures_are_what_the_report_averages(searcher, pairs_file):
    pairs = read_pairs(pairs_file)
    frame = query_metrics(searcher, pairs, "hybrid")
    assert frame.index.tolist() == sorted(set(pairs["query"]))  # one row per query, for pairing two systems
    report = retrieval(searcher, pairs, "hybrid")
    assert report["ndcg@10"] == pytest.approx(frame["ndcg@10"].mean())
    assert report["recall@10"] == pytest.approx(frame["recall@10"].mean())  # NaN (no relevant product) left out
    cosines, relevance, queries = pair_cosines(searcher, pairs)
    assert len(cosines) == len(relevance) == len(queries) == len(pairs) and list(queries) == sorted(queries)
    assert searcher.similarity(queries[0], [pairs.sort_values("query", kind="stable")["product_id"].iloc[0]])[0] \
        == pytest.approx(cosines[0])
    assert pair_correlation(searcher, pairs)["pairs"] == len(pairs)


def test_max_queries_and_unknown_products(searcher, pairs_file):
    pairs = read_pairs(pairs_file)
    every = sorted(set(pairs["query"]))
    sample = select_pairs(pairs, EvalConfig(split="all", max_queries=3))
    assert sample["query"].nunique() == 3 and set(sample["query"]) <= set(every)
    assert sample.equals(select_pairs(pairs, EvalConfig(split="all", max_queries=3)))  # seeded
    drawn = [sorted(set(select_pairs(pairs, EvalConfig(split="all", max_queries=3, seed=s))["query"]))
             for s in range(5)]
    assert any(d != every[:3] for d in drawn) and len({tuple(d) for d in drawn}) > 1  # a sample, not the first 3
    assert select_pairs(pairs, EvalConfig(split="all", max_queries=len(every) + 5))["query"].nunique() == len(every)
    bad = pd.DataFrame({"query": ["x"], "product_id": ["nope"], "relevance": [3.0]})
    with pytest.raises(Exception, match="not in the index"):
        evaluate(searcher, bad, EvalConfig(split="all"))


def test_in_memory_model_evaluation_matches_the_index_and_needs_no_faiss(tmp_path, catalog_file, tiny_model,
                                                                        pairs_file, monkeypatch):
    """An index whose catalog torch embedded (the in-memory searcher's way; the default build uses the int8 graph)."""
    from searchkit import IndexConfig, Searcher, build_index
    from searchkit.eval.in_memory import in_memory_searcher

    config = EvalConfig(split="all")
    build_index(catalog_file, tmp_path / "idx", model=tiny_model, config=IndexConfig(bulk="torch"))
    disk = Searcher.from_dir(tmp_path / "idx", backend="torch")
    on_disk = evaluate(disk, read_pairs(pairs_file), config)
    expected = [h.score for h in disk.search("toilet seat", k=5, mode="dense")]
    monkeypatch.setitem(__import__("sys").modules, "faiss", None)  # `import faiss` now fails
    memory = in_memory_searcher(catalog_file, tiny_model, device="cpu")
    report = evaluate(memory, read_pairs(pairs_file), config)
    assert report["pairs"]["spearman"] == pytest.approx(on_disk["pairs"]["spearman"], abs=1e-6)
    for mode in ("dense", "lexical", "hybrid"):  # equal up to the order of tied products (generated duplicates)
        assert report["retrieval"][mode]["ndcg@10"] == pytest.approx(on_disk["retrieval"][mode]["ndcg@10"], abs=1e-3)
    assert [h.score for h in memory.search("toilet seat", k=5, mode="dense")] == pytest.approx(expected, abs=1e-5)



def test_auto_split_measures_only_queries_the_models_never_learnt_from(tmp_path, pairs_file):
    from searchkit.data.catalog import PairFormat
    from searchkit.eval.selection import choose_split, training_files

    pairs = read_pairs(pairs_file)
    learnt = [(pairs_file, PairFormat())]
    split, reason = choose_split(pairs, learnt, seed=42)  # the training file itself: its test split
    parts = split_pairs(pairs)
    seen = len(set(parts["train"]["query"]) | set(parts["val"]["query"]))
    assert split == "test" and reason.startswith(f"{seen} of its {pairs['query'].nunique()} queries are in the "
                                                 "training or validation split (seed 42) of")
    held_out = parts["test"].assign(query=lambda f: "  " + f["query"].str.upper())  # the same queries, as typed
    assert choose_split(held_out, learnt, seed=42)[0] == "all"
    assert choose_split(parts["val"], learnt, seed=42)[0] == "test"  # tuned on: flattering, so not all of it
    new = pd.DataFrame({"query": ["a query no one trained on"], "product_id": ["1"], "relevance": [3.0]})
    split, reason = choose_split(new, learnt, seed=42)
    assert split == "all" and "none of its 1 queries were trained or tuned on" in reason
    assert choose_split(new, [], seed=42) == ("all", "none of its 1 queries were trained or tuned on (no training "
                                                     "pairs file found on this machine): measuring all of them")

    # the files: the model card's (relative to here, then to the checkout), the bundled one, each once
    card = {"data": {"pairs": str(pairs_file), "pair_format": PairFormat(scale=(0, 2)).to_dict()}}
    found = training_files(card, [pairs_file, tmp_path / "absent.parquet"])
    assert found == [(pairs_file, PairFormat(scale=(0, 2)))]
    assert training_files({"data": {"pairs": "catalog/no-such-file.parquet"}}, []) == []
    assert training_files({}, [pairs_file]) == [(pairs_file, PairFormat())]
