from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from searchkit import IndexConfig, QueryError, Searcher, build_index
from searchkit.search.filters import merge_filters, parse_filter
from searchkit.search.retrieval import Fusion, rrf
from tests.fixtures import make_catalog


@pytest.mark.parametrize("query", ["", "   ", "\n"])
def test_empty_query_refused(searcher, query):
    with pytest.raises(QueryError, match="empty"):
        searcher.search(query)


def test_bad_k_and_mode_refused(searcher):
    with pytest.raises(QueryError, match="positive integer"):
        searcher.search("fan", k=0)
    with pytest.raises(QueryError, match="unknown mode"):
        searcher.search("fan", mode="magic")
    with pytest.raises(QueryError, match="characters long"):
        searcher.search("fan " * 400)


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_every_mode_scores_by_what_ranked_with_the_cosine_beside(searcher, mode):
    hits = searcher.search("kohler elongated toilet seat", k=20, mode=mode, explain=True)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1)) and hits
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)  # non-increasing with rank: sorting by score keeps the ranking
    cosines = searcher.similarity("kohler elongated toilet seat", [h.product_id for h in hits])
    assert np.allclose(cosines, [h.cosine for h in hits], atol=1e-5)
    ranked_by = {"dense": "dense", "lexical": "lexical", "hybrid": "fusion"}[mode]
    assert np.allclose(scores, [h.explain[ranked_by] for h in hits], atol=1e-5)
    assert all(h.to_dict()["score"] == round(h.score, 6) and "cosine" in h.to_dict() for h in hits)


def test_lexical_finds_exact_words_first(searcher):
    hits = searcher.search("garden hose", k=3, mode="lexical")
    assert all("garden hose" in h.fields["title"].lower() for h in hits)


def test_lexical_with_no_known_word_returns_nothing(searcher):
    assert searcher.search("zzzqqq", k=5, mode="lexical") == []


def test_rrf_hand_computed():
    fused = rrf([np.array([1, 2]), np.array([2, 3])], k=60)
    assert fused[2] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[1] == pytest.approx(1 / 61) and fused[3] == pytest.approx(1 / 62)


@pytest.mark.parametrize("fusion", [Fusion("rrf"), Fusion("weighted", alpha=0.0, type_weight=0, cover_weight=0),
                                    Fusion("weighted", alpha=1.0, type_weight=0, cover_weight=0)])
def test_fusion_methods_and_extremes(searcher, fusion):
    searcher.fusion = fusion
    try:
        hybrid = [h.product_id for h in searcher.search("kohler toilet seat", k=5, mode="hybrid")]
    finally:
        searcher.fusion = Fusion()
    assert len(hybrid) == 5
    if fusion.method == "weighted" and fusion.alpha == 1.0:  # pure (scaled) cosine: the dense order
        assert hybrid == [h.product_id for h in searcher.search("kohler toilet seat", k=5, mode="dense")]
    if fusion.method == "weighted" and fusion.alpha == 0.0:  # pure BM25 on top
        top = searcher.search("kohler toilet seat", k=1, mode="lexical")[0].product_id
        lex = searcher.lexical.scores(searcher.normaliser.query("kohler toilet seat"))
        assert lex[searcher._row_of[hybrid[0]]] == pytest.approx(lex[searcher._row_of[top]])


def test_batch_equals_single(searcher):
    queries = ["ceiling fan", "chrome kitchen faucet", "deck screw"]
    batch = searcher.search_batch(queries, k=4, mode="hybrid")
    for query, hits in zip(queries, batch):
        single = searcher.search(query, k=4, mode="hybrid")
        assert [h.product_id for h in hits] == [h.product_id for h in single]


def test_concurrent_searches_agree_with_sequential(searcher):
    queries = ["ceiling fan", "toilet seat", "kohler", "swag light kit", "black door knob", "wall outlet"] * 4
    expected = [[h.product_id for h in searcher.search(q, k=5)] for q in queries]
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(lambda q: [h.product_id for h in searcher.search(q, k=5)], queries))
    assert got == expected


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_filters_keep_only_matching_products(searcher, mode):
    hits = searcher.search("light", k=10, mode=mode, filters={"brand": "Kohler", "color": ["black", "white"]})
    assert hits
    assert all(h.fields["brand"] == "kohler" and h.fields["color"] in ("Black", "White") for h in hits)


def test_numeric_range_filter(searcher):
    hits = searcher.search("fan", k=20, filters={"price": {"min": 20, "max": 30}}, mode="dense")
    assert hits and all(20 <= h.fields["price"] <= 30 for h in hits)


def test_filter_errors_are_clear(searcher):
    with pytest.raises(QueryError, match="unknown filter column 'size'"):
        searcher.search("fan", filters={"size": "xl"})
    with pytest.raises(QueryError, match="ranges need a numeric column"):
        searcher.search("fan", filters={"brand": {"min": 1}})
    with pytest.raises(QueryError, match="not a number"):
        searcher.search("fan", filters={"price": {"min": "cheap"}})


def test_parse_filter_syntax():
    assert parse_filter("brand=kohler") == ("brand", "kohler")
    assert parse_filter("color=white, biscuit") == ("color", ["white", "biscuit"])
    assert parse_filter("price=10..50") == ("price", {"min": 10.0, "max": 50.0})
    assert parse_filter("price=..50") == ("price", {"max": 50.0})
    with pytest.raises(QueryError, match="COLUMN=VALUE"):
        parse_filter("brand")
    with pytest.raises(QueryError, match="given twice"):
        merge_filters(["brand=a", "brand=b"])


def test_selective_filter_under_ann_has_no_holes(tmp_path, tiny_model):
    catalog = make_catalog(n=1200, seed=3, rare_brand="Rarebrand", rare_count=8)  # 8 of 1200 rows: 0.67 %
    path = tmp_path / "c.parquet"
    catalog.to_parquet(path, index=False)
    build_index(path, tmp_path / "idx", model=tiny_model, config=IndexConfig(index_type="hnsw"))
    searcher = Searcher.from_dir(tmp_path / "idx")
    for mode in ("dense", "hybrid"):
        hits = searcher.search("ceiling fan", k=8, mode=mode, filters={"brand": "rarebrand"})
        assert len(hits) == 8 and {h.fields["brand"] for h in hits} == {"rarebrand"}
    assert len(searcher.search("ceiling fan", k=50, filters={"brand": "rarebrand"})) == 8


def test_facets_count_candidates(searcher):
    facets = searcher.facets("swag light kit", depth=30, mode="dense")
    assert sum(n for _, n in facets["brand"]) <= 30 and facets["brand"]
    counts = [n for _, n in facets["color"]]
    assert counts == sorted(counts, reverse=True)
    only = searcher.facets("swag light kit", filters={"brand": "kohler"}, depth=30)
    assert [b for b, _ in only["brand"]] == ["kohler"]


def test_explain_says_why(searcher):
    hit = searcher.search("kohler toilet seat", k=1, mode="hybrid", explain=True)[0]
    why = hit.explain
    assert why["mode"] == "hybrid" and why["dense"] == pytest.approx(hit.cosine) and why["score"] == hit.score
    assert "fusion" in why and why["lexical"] >= 0
    assert set(why["matched_terms"]) <= {"kohler", "toilet", "seat", "brand_kohler"}
    assert searcher.search("kohler toilet seat", k=1)[0].explain is None


def test_similarity_unknown_id(searcher):
    with pytest.raises(QueryError, match="unknown product id"):
        searcher.similarity("fan", ["nope"])


def test_product_lookup(searcher, catalog_frame):
    assert searcher.product("P00003")["title"] == catalog_frame["title"][3]
    with pytest.raises(QueryError):
        searcher.product("missing")


def test_lexical_scores_equal_bm25s():
    import bm25s

    from searchkit.index.lexical import BM25_B, BM25_K1, LexicalIndex

    texts = ["kohler toilet seat brand_kohler", "toilet paper holder", "seat cushion seat", "fan"]
    for ours, (k1, b) in ((LexicalIndex.build(texts), (BM25_K1, BM25_B)),
                          (LexicalIndex.build(texts, k1=1.2, b=0.75), (1.2, 0.75))):
        ref = bm25s.BM25(k1=k1, b=b, method="lucene")
        ref.index([t.split() for t in texts], show_progress=False)
        for query in ["toilet seat", "seat", "fan unknownword", "brand_kohler toilet"]:
            known = [t for t in query.split() if t in ref.vocab_dict]
            assert np.allclose(ours.scores(query), ref.get_scores(known), atol=1e-6)
        assert not ours.scores("nothing here").any()
    assert not np.allclose(LexicalIndex.build(texts).scores("seat"), LexicalIndex.build(texts, 1.2, 0.75).scores("seat"))


def test_query_path_skips_pandas_and_bm25s(built_index):
    import subprocess
    import sys

    code = ("import sys; from searchkit import Searcher; s = Searcher.from_dir(sys.argv[1]); "
            "assert s.search('kohler toilet seat', k=3, explain=True); "
            "heavy = [m for m in ('pandas', 'bm25s', 'scipy', 'torch', 'nltk') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code, str(built_index)], check=True)


def test_searcher_without_keyword_index_says_so(searcher):
    bare = Searcher(searcher.index, searcher.table, searcher.encoder, searcher.manifest, searcher.normaliser)
    assert bare.search("toilet seat", k=2, mode="dense")
    with pytest.raises(QueryError, match="needs a keyword index"):
        bare.search("toilet seat", mode="hybrid")


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_one_search_gives_the_same_results_and_facets(searcher, mode):
    hits, facets = searcher.search_with_facets("swag light kit", k=7, mode=mode, depth=40)
    assert [h.product_id for h in hits] == [h.product_id for h in searcher.search("swag light kit", k=7, mode=mode)]
    assert facets == searcher.facets("swag light kit", depth=40, mode=mode)


def test_bad_index_settings_refused_before_encoding(tiny_model):
    from searchkit import SearchkitError

    with pytest.raises(SearchkitError, match="unknown index type 'ivf'"):
        IndexConfig(index_type="ivf")


def test_query_embedding_cache_is_bounded_and_transparent(built_index):
    searcher = Searcher.from_dir(built_index)
    searcher.cache_size = 2
    first = searcher.embed_queries(["kohler toilet seat", "fan", "kohler toilet seat"])
    assert np.array_equal(first[0], first[2]) and len(searcher._cache) == 2
    calls = []
    real = searcher.encoder.encode
    searcher.encoder.encode = lambda texts, **kw: calls.append(list(texts)) or real(texts, **kw)
    again = searcher.embed_queries(["fan", "swag light kit", "kohler toilet seat"])
    assert calls == [[searcher._parse("swag light kit").normalised]]  # two of three came from the cache
    assert np.allclose(again[0], first[1]) and np.allclose(again[2], first[0], atol=1e-6)
    assert len(searcher._cache) == 2 and searcher._parse("fan").normalised not in searcher._cache  # LRU evicted
    searcher.cache_size = 0
    searcher._cache.clear()
    searcher.embed_queries(["fan"])
    assert not searcher._cache


def test_no_queries_embed_to_an_empty_matrix(searcher):
    assert searcher.embed_queries([]).shape == (0, searcher.encoder.info.dimension)


@pytest.mark.parametrize("mode", ["hybrid", "lexical"])
def test_overlapped_legs_give_the_sequential_results(searcher, monkeypatch, mode):
    from searchkit.search import searcher as search

    queries = ["kohler toilet seat", "swag light kit", "white garden hose 50 ft", "unknownword"]
    monkeypatch.setattr(search, "OVERLAP_FROM", 10**12)
    expected = {(q, f): [(h.product_id, h.score, h.explain) for h in searcher.search(
        q, k=7, mode=mode, filters=f and {"brand": ["kohler"]}, explain=True)] for q in queries for f in (False, True)}
    calls = []
    monkeypatch.setattr(search, "OVERLAP_FROM", 0)
    original = searcher._dense_leg
    monkeypatch.setattr(searcher, "_dense_leg", lambda *a: calls.append(1) or original(*a))
    for (q, f), want in expected.items():
        got = [(h.product_id, h.score, h.explain) for h in searcher.search(
            q, k=7, mode=mode, filters=f and {"brand": ["kohler"]}, explain=True)]
        assert got == want, q
    assert len(calls) == len(expected)  # every one of them took the overlapped path

    def broken(*args):
        raise RuntimeError("worker failed")

    monkeypatch.setattr(searcher, "_dense_leg", broken)
    with pytest.raises(RuntimeError, match="worker failed"):
        searcher.search("kohler toilet seat")
    assert searcher._inflight == 0
    monkeypatch.setattr(search, "OVERLAP_FROM", 10**12)
    assert searcher.search("kohler toilet seat")  # the sequential path never calls the worker


def test_a_filter_narrower_than_the_walk_is_read_exactly_and_a_broad_one_walks(tmp_path, tiny_model, monkeypatch):
    """On a graph index a filter's rows are scored exactly while they are fewer than the walk would visit
    (EXACT_PER_EFFORT per unit of its effort); a broader filter walks the graph, keeping only rows it passes."""
    from searchkit.search import retrieval

    catalog = make_catalog(n=1200, seed=5)
    path = tmp_path / "c.parquet"
    catalog.to_parquet(path, index=False)
    build_index(path, tmp_path / "idx", model=tiny_model, config=IndexConfig(index_type="hnsw"))
    retriever = Searcher.from_dir(tmp_path / "idx").retriever
    walks = []

    def counted(*args, **kwargs):
        walks.append(kwargs.get("effort", args[4] if len(args) > 4 else None))
        return selected(*args, **kwargs)

    selected = retrieval._selected
    monkeypatch.setattr(retrieval, "_selected", counted)
    monkeypatch.setattr(retrieval, "EXACT_FILTERED", 16)
    monkeypatch.setattr(retrieval, "EXACT_PER_EFFORT", 1)  # so that a 1,200-row graph has filters of both kinds
    vectors = np.random.default_rng(0).normal(size=(3, retriever.index.d)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    stored = np.stack([retriever.index.reconstruct(i) for i in range(retriever.index.ntotal)])
    narrow = np.zeros(retriever.index.ntotal, dtype=bool)
    ef = max(int(retriever._graph.hnsw.efSearch), 10)
    narrow[::20] = True  # 60 rows, fewer than the walk's effort (ef / sqrt(0.05))
    assert 60 <= ef / 0.05 ** 0.5
    for vector, (rows, scores) in zip(vectors, retriever.dense(vectors, 10, narrow), strict=True):
        exact = np.flatnonzero(narrow)[np.argsort(-(stored[narrow] @ vector), kind="stable")[:10]]
        assert rows.tolist() == exact.tolist()
        assert scores == pytest.approx(np.sort(stored[narrow] @ vector)[::-1][:10], abs=1e-5)
    assert walks == []
    broad = np.zeros(retriever.index.ntotal, dtype=bool)
    broad[::2] = True  # 600 rows, more than its effort (ef / sqrt(0.5))
    found = retriever.dense(vectors, 10, broad)
    assert walks == [int(ef / 0.5 ** 0.5)] and all(broad[rows].all() and len(rows) == 10 for rows, _ in found)
