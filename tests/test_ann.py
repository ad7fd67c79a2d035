"""Index types: approximate indexes calibrate their search knob against exact search and keep it through a save."""

import json

import numpy as np
import pytest

from searchkit import IndexConfig, Searcher, SearchkitError, build_index
from searchkit.errors import QueryError
from searchkit.index.ann import (
    AnnConfig,
    apply_params,
    exact_top,
    hnsw_edited,
    hybrid_knob,
    knob_for_recall,
    make_index,
    recall_at_k,
    tuned_facts,
)


def clustered_vectors(n: int, dim: int = 32, clusters: int = 40, seed: int = 3, noise_seed: int | None = None
                      ) -> np.ndarray:
    """Unit vectors around random centres: like embeddings, neighbours are close but not identical."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    rng = rng if noise_seed is None else np.random.default_rng(noise_seed)
    x = centres[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def test_exact_top_matches_argsort_and_excludes_self():
    x = clustered_vectors(300)
    truth = np.argsort(-(x[:20] @ x.T), axis=1, kind="stable")[:, :5]
    assert np.array_equal(np.sort(exact_top(x, x[:20], 5), 1), np.sort(truth, 1))
    no_self = exact_top(x, x[:20], 5, exclude=np.arange(20))
    assert not any(i in row for i, row in enumerate(no_self))


def test_recall_at_k_hand_case():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, -1], [5, 6, 7, 8]])  # 2 of 4, then 4 of 4
    assert recall_at_k(found, truth) == pytest.approx(0.75)


@pytest.mark.parametrize("kind", ["hnsw", "hnsw-sq8", "ivf-sq8"])
def test_calibrated_recall_is_real(kind):
    x = clustered_vectors(4000)
    index, meta, where = make_index(x, AnnConfig(index_type=kind, target_recall=0.95, calibration_queries=200))
    assert meta["type"] == kind and where == "cpu" and meta["recall@10_sample"] >= 0.95
    knob = "ef_search" if kind.startswith("hnsw") else "nprobe"
    curve = meta["calibration"]["curve"]
    assert str(meta["params"][knob]) in curve and list(curve)[-1] == str(meta["params"][knob])  # cheapest passing
    # measured again, independently, on new points of the same distribution (not stored vectors)
    queries = clustered_vectors(200, noise_seed=99)
    _, found = index.search(queries, 10)
    assert recall_at_k(found, exact_top(x, queries, 10)) >= 0.9


def test_ivf_knob_capped_by_lists_and_unreachable_target_takes_the_most():
    x = clustered_vectors(2000)
    config = AnnConfig(index_type="ivf-sq8", ivf_lists=8, target_recall=1.0, calibration_queries=100)
    _, meta, _ = make_index(x, config)
    assert meta["params"]["lists"] == 8 and meta["params"]["nprobe"] <= 8
    assert max(int(v) for v in meta["calibration"]["curve"]) == meta["params"]["nprobe"]


def test_auto_is_flat_for_small_catalogs():
    assert AnnConfig().resolved_type(4_000) == "flat" and AnnConfig().resolved_type(4_001) == "hnsw"
    assert AnnConfig(ivf_lists=None).lists(100) == 2 and AnnConfig().lists(10) == 1


def test_bad_ann_settings_refused_before_encoding():
    with pytest.raises(SearchkitError, match="unknown index type 'ivf'"):
        IndexConfig(index_type="ivf")
    with pytest.raises(SearchkitError, match="target recall"):
        IndexConfig(target_recall=0.0)


@pytest.mark.parametrize("kind", ["hnsw-sq8", "ivf-sq8"])
def test_quantised_index_end_to_end(tmp_path, catalog_file, tiny_model, built_index, kind):
    out = tmp_path / kind
    manifest = build_index(catalog_file, out, model=tiny_model, config=IndexConfig(index_type=kind))
    knob = "ef_search" if kind.startswith("hnsw") else "nprobe"
    stored = json.loads((out / "manifest.json").read_text())["index"]
    assert stored["params"][knob] == manifest.index.params[knob] and stored["factory"].endswith("SQ8")
    searcher, exact = Searcher.from_dir(out), Searcher.from_dir(built_index)
    if knob == "nprobe":
        import faiss

        assert faiss.extract_index_ivf(searcher.index).nprobe == stored["params"]["nprobe"]
    for query in ["kohler toilet seat", "classic garden hose"]:
        ours = searcher.search(query, k=10, mode="dense")
        ref = exact.search(query, k=10, mode="dense")
        assert len({h.product_id for h in ours} & {h.product_id for h in ref}) >= 7
        assert abs(ours[0].score - ref[0].score) < 0.03  # cosines decoded from 8-bit codes
        hybrid = searcher.search(query, k=5, mode="hybrid", filters={"brand": ["kohler"]})
        assert hybrid and all(h.fields["brand"] == "kohler" for h in hybrid)
    curve = {int(v): r for v, r in stored["calibration"]["curve"].items()}
    cheapest = Searcher.from_dir(out, target_recall=0.0)  # recall chosen at search time from the build's curve
    assert cheapest.search_params == {knob: min(curve)} and searcher.search_params == {knob: stored["params"][knob]}
    with pytest.raises(QueryError, match="reaches recall@10 1.01"):
        Searcher.from_dir(out, target_recall=1.01)
    from searchkit.eval.calibrate import recalibrate  # 8-bit codes: exact search over the decoded vectors

    queries = ["kohler toilet seat", "classic garden hose", "ceiling fan"]
    tuned = recalibrate(out, queries, target_recall=1.0).index.to_dict()
    assert tuned["calibration"]["queries"] == 3 and tuned["params"][knob] in {
        int(v) for v in tuned["calibration"]["curve"]}
    assert Searcher.from_dir(out).search_params == {knob: tuned["params"][knob]}


def test_knob_for_recall_takes_the_cheapest_measured_setting():
    meta = {"type": "hnsw", "params": {"ef_search": 128},
            "calibration": {"curve": {"16": 0.8, "32": 0.93, "64": 0.96, "128": 0.981}}}
    assert knob_for_recall(meta, 0.95) == 64 and knob_for_recall(meta, 0.93) == 32 and knob_for_recall(meta, 0.5) == 16
    with pytest.raises(SearchkitError, match=r"the best: 0.981 at 128"):
        knob_for_recall(meta, 0.99)
    assert knob_for_recall({"type": "flat"}, 0.99) is None
    with pytest.raises(SearchkitError, match="no recall calibration"):
        knob_for_recall({"type": "hnsw", "params": {"ef_search": 64}}, 0.9)
    index = make_index(clustered_vectors(500), AnnConfig(index_type="hnsw"))[0]
    assert apply_params(index, meta) == {"ef_search": 128} and apply_params(index, meta, 0.95) == {"ef_search": 64}
    import faiss

    assert faiss.downcast_index(index).hnsw.efSearch == 64


def test_hybrid_legs_knob_applies_below_dense_searchs_own_and_a_recalibration_drops_it():
    meta = {"type": "hnsw", "params": {"ef_search": 64, "hybrid_ef_search": 16},
            "calibration": {"curve": {"16": 0.9, "64": 0.98}, "hybrid_curve": {"16": 0.95, "24": 0.99}}}
    index = make_index(clustered_vectors(500), AnnConfig(index_type="hnsw"))[0]
    assert apply_params(index, meta) == {"ef_search": 64, "hybrid_ef_search": 16}
    assert hybrid_knob(meta) == 16 and hybrid_knob(meta, 0.99) == 24 and hybrid_knob(meta, 0.999) is None
    assert apply_params(index, meta, 0.9) == {"ef_search": 16}  # never above (nor at) dense search's own
    assert apply_params(index, {**meta, "calibration": {"curve": meta["calibration"]["curve"]}}, 0.98) == {
        "ef_search": 64}  # no hybrid curve: the leg searches as dense search does
    assert hybrid_knob({"type": "flat", "params": {"hybrid_ef_search": 16}}) is None
    fresh = tuned_facts(meta, {"ef_search": 32, "recall@10": 0.97, "target_recall": 0.97, "calibration": {}})
    assert fresh["params"] == {"ef_search": 32}  # measured against another graph or knob: dropped
    assert tuned_facts(meta, {"recall@10": 0.97})["params"] == meta["params"]


@pytest.mark.parametrize("kind", ["hnsw", "ivf-sq8"])
def test_a_search_effort_given_to_the_dense_leg_is_the_knob_set_on_the_index(kind):
    import faiss

    from searchkit.search.retrieval import Fusion, Retriever

    rng = np.random.default_rng(5)  # no clusters: what a walk or a probe finds depends on its effort
    x, queries = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (rng.normal(size=(3000, 32)).astype(np.float32),
                                                                         rng.normal(size=(30, 32)).astype(np.float32)))
    index = make_index(x, AnnConfig(index_type=kind, ivf_lists=32))[0]
    retriever = Retriever(index, None, Fusion())
    low = 16 if kind == "hnsw" else 1
    if kind == "hnsw":
        faiss.downcast_index(index).hnsw.efSearch = 128
    else:
        faiss.extract_index_ivf(index).nprobe = 16
    with_effort = retriever.dense(queries, 50, None, effort=low)
    if kind == "hnsw":
        own = faiss.downcast_index(index).hnsw.efSearch
        faiss.downcast_index(index).hnsw.efSearch = low
    else:
        own = faiss.extract_index_ivf(index).nprobe
        faiss.extract_index_ivf(index).nprobe = low
    set_on_index = retriever.dense(queries, 50, None)
    for (a, sa), (b, sb) in zip(with_effort, set_on_index, strict=True):
        assert (a == b).all() and np.allclose(sa, sb)
    assert own != low and retriever._effort(low) is retriever._effort(low)  # made once
    wider = retriever.dense(queries, 50, None, effort=own)  # a knob that changes what is found here
    assert any(len(a) != len(b) or (a != b).any() for (a, _), (b, _) in zip(wider, with_effort, strict=True))


def test_calibration_with_query_vectors_counts_unfilled_results_as_misses():
    import faiss

    from searchkit.index.ann import calibrate

    x = clustered_vectors(400)
    index = faiss.index_factory(32, "IVF8,Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(x)
    index.add(x[:12])  # at nprobe 1 most lists hold fewer than k + 1 vectors: faiss pads with -1
    tuned = calibrate(index, "ivf-sq8", x[:12], AnnConfig(target_recall=1.0), queries=clustered_vectors(20, noise_seed=4))
    assert tuned["calibration"]["queries"] == 20 and 0.0 <= tuned["recall@10"] <= 1.0


def test_exact_index_matches_numpy_and_pads_past_the_end():
    import numpy as np

    from searchkit.index.ann import ExactIndex

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    queries = rng.normal(size=(4, 8)).astype(np.float32)
    scores, ids = ExactIndex(vectors).search(queries, 5)
    full = queries @ vectors.T
    assert (ids == np.argsort(-full, axis=1)[:, :5]).all()
    assert np.allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :5], atol=1e-5)
    scores, ids = ExactIndex(vectors[:3]).search(queries, 5)
    assert (ids[:, 3:] == -1).all() and (ids[:, :3] >= 0).all()


def test_recalibrate_on_queries_sets_the_cheapest_knob_and_keeps_the_index(tmp_path, catalog_file, tiny_model,
                                                                           built_index, pairs_file):
    from click.testing import CliRunner

    from searchkit.cli import main
    from searchkit.eval.calibrate import recalibrate

    out = tmp_path / "hnsw"
    build_index(catalog_file, out, model=tiny_model, config=IndexConfig(index_type="hnsw", target_recall=1.0))
    before = json.loads((out / "manifest.json").read_text())
    queries = ["kohler toilet seat", "classic garden hose", "ceiling fan", "kohler toilet seat", " "]
    manifest = recalibrate(out, queries, target_recall=0.5, source="test queries")
    stored = json.loads((out / "manifest.json").read_text())
    assert stored["index"] == json.loads(manifest.to_json())["index"] and stored["files"] == before["files"]
    assert stored["index"]["calibration"]["queries"] == 3 and stored["index"]["calibration"]["source"] == "test queries"
    curve = {int(v): r for v, r in stored["index"]["calibration"]["curve"].items()}
    chosen = stored["index"]["params"]["ef_search"]
    assert curve[chosen] >= 0.5 and all(r < 0.5 for v, r in curve.items() if v < chosen)
    assert stored["index"]["recall@10_sample"] == curve[chosen]
    assert Searcher.from_dir(out).search_params == {"ef_search": chosen}  # checksums still verify
    with pytest.raises(SearchkitError, match="no search knob"):
        recalibrate(built_index, queries)
    with pytest.raises(SearchkitError, match="no queries"):
        recalibrate(out, ["", "  "])
    query_file = tmp_path / "log.txt"
    query_file.write_text("kohler toilet seat\n\nceiling fan\n")
    result = CliRunner().invoke(main, ["calibrate", "--index", str(out), "--queries", str(query_file),
                                       "--target-recall", "1.0", "--json"])
    assert result.exit_code == 0, result.output
    meta = json.loads(result.output)
    assert meta["calibration"]["queries"] == 2 and str(query_file) in meta["calibration"]["source"]
    assert json.loads((out / "manifest.json").read_text())["index"]["target_recall"] == 1.0
    result = CliRunner().invoke(main, ["calibrate", "--index", str(out), "--pairs", str(pairs_file), "--split", "all"])
    assert result.exit_code == 0 and "ef_search" in result.output, result.output
    assert "hybrid's dense leg: ef_search" in result.output


def test_hybrid_leg_calibrated_against_an_exact_leg(tmp_path, catalog_file, tiny_model):
    """The leg's curve: the share of hybrid's top 10 an exact dense leg's top 10 keeps, cheapest knob first, up to
    dense search's own; the knob chosen is the first reaching the target, and hybrid searches then use it."""
    from searchkit.eval.calibrate import exact_leg_tops, hybrid_calibration, hybrid_recall, recalibrate
    from searchkit.search.results import Mode

    out = tmp_path / "hnsw"
    build_index(catalog_file, out, model=tiny_model, config=IndexConfig(index_type="hnsw", target_recall=1.0))
    texts = ["kohler toilet seat", "classic garden hose", "ceiling fan", "led bulb", "patio chair", "drill"]
    searcher = Searcher.from_dir(out)
    searcher.search_params = {"ef_search": 96}
    truth = exact_leg_tops(searcher, texts)
    assert truth[0] == [h.product_id for h in searcher.search(texts[0], k=10)] or len(truth[0]) == 10
    chosen, curve = hybrid_calibration(searcher, texts, target_recall=1.0, ceiling=96)
    assert list(curve) == sorted(curve) and max(curve) <= 96 and chosen in curve | {96: None}
    assert all(r < 1.0 for v, r in curve.items() if v < chosen)
    assert curve[min(curve)] == hybrid_recall(searcher, texts, truth, effort=min(curve))
    assert searcher.search_params == {"ef_search": 96}  # measured, not kept
    searcher.search_params = {"ef_search": 96, "hybrid_ef_search": 16}
    assert searcher._effort(Mode.HYBRID) == searcher._effort(Mode.RERANK) == 16
    assert searcher._effort(Mode.DENSE) is None and searcher._effort(Mode.LEXICAL) is None
    manifest = recalibrate(out, texts, target_recall=1.0)
    stored = manifest.index.to_dict()
    hybrid = {int(v): r for v, r in stored["calibration"]["hybrid_curve"].items()}
    assert hybrid and max(hybrid) <= stored["params"]["ef_search"]
    leg = stored["params"].get("hybrid_ef_search")
    assert leg is None or (leg < stored["params"]["ef_search"] and hybrid[leg] >= 1.0)


def test_an_edited_hnsw_graph_drops_replaces_and_inserts_nodes_and_keeps_recall():
    """2% of nodes dropped, 2% re-embedded, 2% new: row r holds vectors[r], nothing dropped is ever found, and recall
    at a fixed efSearch matches a graph built from scratch over the same vectors."""
    import faiss

    rng = np.random.default_rng(0)
    n, d = 3000, 32
    old = rng.normal(size=(n, d)).astype(np.float32)
    old /= np.linalg.norm(old, axis=1, keepdims=True)
    index = faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT)
    index.add(old)
    order = rng.permutation(n)
    dropped, changed = set(order[:60].tolist()), set(order[60:120].tolist())
    kept = [i for i in range(n) if i not in dropped]
    sources = np.array([-1 if i in changed else i for i in kept] + [-1] * 60, dtype=np.int64)
    vectors = np.vstack([old[kept], rng.normal(size=(60, d))]).astype(np.float32)
    vectors[[j for j, i in enumerate(kept) if i in changed]] = rng.normal(size=(60, d))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    edited = hnsw_edited(index, sources, vectors)
    assert edited.ntotal == len(vectors)
    assert np.allclose(np.vstack([edited.reconstruct(i) for i in range(edited.ntotal)]), vectors)
    fresh = faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT)
    fresh.add(vectors)
    queries = rng.normal(size=(200, d)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = exact_top(vectors, queries, 10)
    edited.hnsw.efSearch = fresh.hnsw.efSearch = 64
    found = edited.search(queries, 10)[1]
    assert recall_at_k(found, truth) >= recall_at_k(fresh.search(queries, 10)[1], truth) - 0.02
    assert recall_at_k(found, truth) > 0.9 and found.max() < len(vectors) and found.min() >= 0
    changed_rows = [j for j, i in enumerate(kept) if i in changed] + list(range(len(kept), len(vectors)))
    hits = edited.search(vectors[changed_rows], 1)[1][:, 0]  # every re-embedded and new node is reachable
    assert (hits == np.array(changed_rows)).mean() > 0.95
