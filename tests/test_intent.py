"""What a shopper means: product types, "no match", spelling that does no harm, filters as one syntax."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from searchkit import MatchRule, Searcher, build_index
from searchkit.cli import main
from searchkit.data.intent import ProductTypes, catalog_types, serves, title_types
from searchkit.data.spell import SpellCorrector
from searchkit.data.text import CachedStemmer, words
from searchkit.errors import CatalogError, QueryError
from searchkit.search.match import content_words
from searchkit.search.retrieval import Fusion


def test_a_titles_type_is_the_head_of_its_name():
    assert title_types("Weber Grill Cover with Storage Bag for Spirit Series Gas Grills", "Weber") == ("cover",)
    assert title_types("Oregon S57 16 in. Chainsaw Chain", "Oregon") == ("chain",)
    assert title_types("Homelite 14 in. 42cc Gas Chainsaw - Battery Not Included", "Homelite") == ("chainsaw",)
    assert title_types("Whirlpool 6.2 cu. ft. Slide-In Electric Range with Self-Cleaning", "Whirlpool") == ("range",)
    assert title_types("Westinghouse 18 ft. Brushed Nickel Swag Light Kit") == ("kit", "light")
    assert title_types("Ryobi 18-Volt Cordless String Trimmer/Edger") == ("edger", "trimmer")
    assert title_types("Philips 60W Equivalent Daylight (5000K) A19 LED Light Bulb") == ("bulb",)
    assert title_types("18 in. x 24 in.") == ()


def test_what_a_product_is_made_for():
    assert serves("AirJet Universal Snow Shovel Attachment for Leaf Blowers") == ("blowers",)
    assert serves("Classic Accessories Medium BBQ Grill Cover", "Classic Accessories") == ("grill", "bbq")
    assert serves("Charcoal Companion 4-Piece BBQ Grill Tool Set", "Charcoal Companion") == ("grill", "bbq")
    assert serves("Oregon S57 16 in. Chainsaw Chain", "Oregon") == ("chainsaw",)
    assert serves("Homelite 14 in. 42cc Gas Chainsaw") == ()  # a chainsaw is made for nothing
    assert serves("RIDGID 10 in. Portable Tile Saw with Laser") == ()  # a saw is not a part of tiles


def test_a_querys_type_is_its_last_typed_word_before_for():
    stem = CachedStemmer()
    titles = ["Acme Gas Grill", "Acme Charcoal Grill", "Acme Grill Cover", "Acme Grill Cover XL", "Acme Gas Chainsaw",
              "Acme Electric Chainsaw", "Acme Chainsaw Chain", "Acme Saw Chain"]
    types = ProductTypes(catalog_types(titles, ["Acme"] * len(titles), stem))
    name = {i: n for i, n in enumerate(types.names)}
    assert {name[i] for i in types.of_query(words("bbq grill"), stem).wanted} == {"grill"}
    assert {name[i] for i in types.of_query(words("cover for grill"), stem).wanted} == {"cover"}
    assert {name[i] for i in types.of_query(words("chain saw"), stem).wanted} == {"chainsaw"}  # glued
    sawn = ProductTypes(catalog_types(titles + ["Acme Cordless Chain Saw", "Acme Hand Saw"], ["Acme"] * 10, stem))
    chain_saw = sawn.of_query(words("chain saw"), stem)  # a chainsaw, or a saw titled "Chain Saw"; never a chain
    assert {sawn.names[i] for i in chain_saw.wanted} == {"chainsaw", "saw"}
    assert "chain" not in {sawn.names[i] for i in chain_saw.named}
    assert not types.of_query(words("acme"), stem).typed
    grill = types.of_query(words("grill"), stem)
    # the grills +1, the covers made for grills -ACCESSORY, the chainsaws nothing
    scores = types.match(np.arange(len(titles)), grill)
    assert scores[0] == scores[1] == 1.0 and scores[2] < 0 and scores[3] < 0 and scores[4] == 0


@pytest.fixture(scope="module")
def grill_index(tmp_path_factory, tiny_model):
    """A small shop whose covers and brushes say "bbq grill" more often than its grills do."""
    rows = [("G1", "Acme Gas Grill"), ("G2", "Acme Propane Grill"), ("G3", "Acme Charcoal Grill")]
    rows += [(f"C{i}", f"Acme BBQ Grill Cover {size}") for i, size in enumerate(["Small", "Medium", "Large", "XL"])]
    rows += [(f"B{i}", f"Acme BBQ Grill Brush {size}") for i, size in enumerate(["Small", "Large"])]
    rows += [(f"F{i}", f"Acme Ceiling Fan {i}") for i in range(20)]
    frame = pd.DataFrame({"product_id": [r[0] for r in rows], "title": [r[1] for r in rows], "brand": "acme",
                          "color": ""})
    path = tmp_path_factory.mktemp("grills") / "grills.csv"
    frame.to_csv(path, index=False)
    out = tmp_path_factory.mktemp("grill-index") / "idx"
    build_index(path, out, model=tiny_model)
    return out


@pytest.fixture()
def run_cli():
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_hybrid_ranks_the_product_above_its_accessories(grill_index):
    searcher = Searcher.from_dir(grill_index)
    top = [h.product_id for h in searcher.search("bbq grill", k=3)]
    assert set(top) == {"G1", "G2", "G3"}
    searcher.fusion = Fusion(type_weight=0.0, cover_weight=0.0)  # words alone: the covers say more of the query
    assert {h.product_id for h in searcher.search("bbq grill", k=3)} != {"G1", "G2", "G3"}
    searcher.fusion = Fusion()
    covers = [h.product_id for h in searcher.search("grill cover", k=4)]  # asking for the accessory gets it
    assert set(covers) == {"C0", "C1", "C2", "C3"}


def test_match_rule():
    rule = MatchRule()
    assert rule.no_match(0.9, 1.0, 0.0, 0)  # no words at all
    assert rule.no_match(0.1, 1.0, 0.0, 2)  # nothing near
    assert rule.no_match(0.4, 0.0, 1.0, 1)  # words the catalog never uses, nothing close
    assert rule.no_match(0.3, 0.3, 0.0, 2)  # the best result holds few of its words, and is not close
    assert not rule.no_match(0.6, 1.0, 0.0, 2)
    assert not rule.no_match(0.6, 0.0, 1.0, 1)  # a close embedding match for unknown words ("sofa" for couches)
    # everyday words the catalog hardly uses ("yoga pants" in a hardware store), the best result holding half of them
    assert rule.no_match(0.5, 0.5, 0.0, 2, rare_share=0.5)
    assert not rule.no_match(0.5, 0.5, 0.0, 2, rare_share=0.0)  # the same query in words the catalog sells
    assert not rule.no_match(0.5, 1.0, 0.0, 2, rare_share=0.5)  # a product holding every word matches
    assert not rule.no_match(rule.settled, 0.0, 1.0, 2, rare_share=1.0)  # close enough whatever the words
    # "hardly uses": 20 products in a large catalog; in a small shop a word a hundredth of its products use is a line
    # it sells (a charger among 127 electronics), not an everyday word it hardly sells
    assert rule.rare_limit(54_667) == 20 and rule.rare_limit(558) == 5 and rule.rare_limit(127) == 1
    assert rule.rare_limit(0) == 1


def test_two_letter_words_count_unless_they_are_function_words():
    assert content_words(["tv", "stand", "in", "x", "2", "pc", "of", "4k"]) == ["tv", "stand", "pc"]
    assert content_words(["headphones", "under", "100"]) == ["headphones"]  # how much, not what


def test_a_two_letter_word_the_catalog_never_uses_is_unknown(searcher):
    searcher.match_rule = MatchRule(min_cosine=-1.0, unknown_cosine=2.0, coverage_cosine=-1.0, rare_cosine=-1.0)
    try:
        assert searcher.search("zq toilet", k=5).no_match  # "tv" in a shop that sells none: half its words unknown
        assert not searcher.search("toilet in", k=5).no_match  # a function word is not a word the shop lacks
    finally:
        searcher.match_rule = MatchRule()


def test_rare_everyday_words_are_counted_by_stem():
    corrector = SpellCorrector({"pizza": 2, "bolt": 30, "bolts": 25, "kohler": 3}, dictionary={"pizza", "bolt", "yoga"},
                               stem=lambda w: w[:-1] if w.endswith("s") else w)
    assert corrector.uses("bolts") == 55 and corrector.uses("pizzas") == 2 and corrector.uses("yoga") == 0
    assert corrector.is_word("yoga") and not corrector.is_word("kohler")  # a brand is the shop's word, not everyday


def test_search_says_no_match_and_still_returns_related_products(searcher):
    empty = searcher.search("🔥🔥🔥", k=5)
    assert empty == [] and empty.no_match and empty.searched_as == ""
    searcher.match_rule = MatchRule(min_cosine=2.0)  # nothing is ever close enough
    try:
        related = searcher.search("kohler toilet seat", k=5)
        assert related.no_match and len(related) == 5  # related products, flagged
    finally:
        searcher.match_rule = MatchRule()
    searcher.match_rule = MatchRule(min_cosine=-1.0, unknown_cosine=-1.0, coverage_cosine=-1.0)
    try:
        found = searcher.search("kohler toilet seat", k=5)
        assert not found.no_match and found.searched_as == "kohler toilet seat"
        assert found[:2].no_match is False  # a slice keeps the account of the query
    finally:
        searcher.match_rule = MatchRule()


def test_spelling_keeps_words_the_shopper_could_mean():
    catalog = {"chow": 0, "how": 40, "house": 20, "die": 30, "diet": 0, "beaded": 12, "toy": 50, "dehumidifer": 1,
               "dehumidifier": 22, "alarm": 30, "arm": 90, "smoke": 40, "shackle": 13, "head": 200, "shower": 80}
    catalog = {w: n for w, n in catalog.items() if n}
    stem = CachedStemmer()
    spell = SpellCorrector(catalog, dictionary=["chow", "diet", "bearded", "puppy", "hose"], stem=stem)
    assert spell.correct(["puppy", "chow"])[0] == ["puppy", "chow"]  # a word of the language, kept
    assert spell.correct(["bearded", "dragon"])[0] == ["bearded", "dragon"]
    assert spell.correct(["toys"])[0] == ["toys"]  # its stem is a catalog word's
    assert spell.correct(["dehumidifer"])[0] == ["dehumidifier"]  # a rare catalog spelling of a common word
    assert spell.correct(["spackle"])[0] == ["spackle"]  # an unlikely slip with nothing to agree: left alone

    def together(word, others):  # smoke goes with alarm, not with arm
        return {"alarm": 25, "arm": 0}.get(word, 0) if others == ["smoke"] else 0

    assert spell.correct(["smoke", "alrm"], together=together)[0] == ["smoke", "alarm"]
    together_head = lambda word, others: 60 if (word, others) == ("head", ["shower"]) else 0  # noqa: E731
    assert spell.correct(["shower", "hed"], together=together_head)[0] == ["shower", "head"]
    assert spell.correct(["hed"])[0] == ["hed"]  # three letters alone: too many neighbours to guess
    assert spell.correct(["hose"])[0] == ["hose"] and spell.did_you_mean("hose") == "house"  # offered, not searched


def test_searcher_offers_did_you_mean(searcher):
    hits = searcher.search("kohler toilet seat", k=3)
    assert hits.did_you_mean is None and searcher.did_you_mean("kohler toilet seat") is None


@pytest.mark.parametrize("wanted", ["10..20", (10, 20), {"min": 10, "max": 20}, (10.0, "20")])
def test_one_range_syntax(searcher, wanted):
    hits = searcher.search("toilet seat", k=50, filters={"price": wanted})
    assert hits and all(10 <= h.fields["price"] <= 20 for h in hits)
    same = searcher.search("toilet seat", k=50, filters={"price": "10..20"})
    assert [h.product_id for h in hits] == [h.product_id for h in same]


def test_ranges_open_reversed_and_lists(searcher):
    assert all(h.fields["price"] <= 20 for h in searcher.search("fan", k=30, filters={"price": "..20"}))
    assert all(h.fields["price"] >= 20 for h in searcher.search("fan", k=30, filters={"price": (20, None)}))
    with pytest.raises(QueryError, match="reversed"):
        searcher.search("fan", filters={"price": "30..10"})
    with pytest.raises(QueryError, match="reversed"):
        searcher.search("fan", filters={"price": (30, 10)})
    with pytest.raises(QueryError, match="numeric column"):
        searcher.search("fan", filters={"brand": "a..b"})
    prices = sorted({h.fields["price"] for h in searcher.search("fan", k=5)})[:2]
    listed = searcher.search("fan", k=50, filters={"price": prices})  # a list is any of its values
    assert listed and {h.fields["price"] for h in listed} <= set(prices)


def test_filters_compare_words_and_facets_show_tidy_values(searcher):
    assert searcher.search("fan", k=5, filters={"brand": "Hampton-Bay"}) == searcher.search(
        "fan", k=5, filters={"brand": "hampton bay"})
    _, counts = searcher.search_with_facets("fan", k=5)
    assert counts["brand"] and all(n > 0 for _, n in counts["brand"])
    import pyarrow as pa

    from searchkit.search.filters import FilterIndex

    table = pa.table({"color": ["White", "White", "white", "WHITE ", "Black and White Finials Included White"]})
    index = FilterIndex(table)
    # one chip for the three spellings, shown as most rows spell it; a catalog note is no chip (it still filters)
    assert index.counts(np.arange(5), ("color",)) == {"color": [("White", 4)]}
    assert index.mask({"color": "white"}).tolist() == [True, True, True, True, False]


def test_a_bad_number_is_refused_with_its_row_or_read_as_missing(tmp_path, tiny_model, run_cli):
    path = tmp_path / "shop.csv"
    pd.DataFrame({"sku": [f"S{i}" for i in range(12)], "name": ["kohler toilet seat"] * 12,
                  "price": [f"${i},000.50" for i in range(1, 11)] + ["12.5", "abc"]}).to_csv(path, index=False)
    refused = run_cli("build-index", path, "--model", tiny_model, "--out", tmp_path / "idx")
    assert refused.exit_code != 0 and "column 'price'" in refused.output and "'abc'" in refused.output
    assert "[12]" in refused.output and not (tmp_path / "idx").exists()
    built = run_cli("build-index", path, "--model", tiny_model, "--out", tmp_path / "idx", "--columns",
                    "bad_numbers=missing")
    assert built.exit_code == 0, built.output
    assert "price (number)" in built.output and "product_id <- sku (text)" in built.output
    prices = Searcher.from_dir(tmp_path / "idx").products["price"]
    assert prices.iloc[0] == 1000.5 and np.isnan(prices.iloc[-1])

    upsert = tmp_path / "up.csv"
    pd.DataFrame({"sku": ["S1"], "name": ["kohler toilet seat"], "price": ["lots"]}).to_csv(upsert, index=False)
    bad = run_cli("update", "--index", tmp_path / "idx", "--upsert", upsert)
    assert bad.exit_code != 0 and "numeric in the index" in bad.output and "'lots'" in bad.output


def test_writes_name_their_index_and_updates_make_an_index_stale(tmp_path, tiny_model, catalog_file, run_cli,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEARCHKIT_INDEX", raising=False)
    out = tmp_path / "indexes" / "products"
    shutil.copy(catalog_file, tmp_path / "products.parquet")
    assert run_cli("build-index", "products.parquet", "--model", tiny_model).exit_code == 0
    up = tmp_path / "up.csv"
    pd.DataFrame({"product_id": ["NEW1"], "title": ["kohler toilet seat in white"]}).to_csv(up, index=False)
    nameless = run_cli("update", "--upsert", up)
    assert nameless.exit_code != 0 and "--index" in nameless.output
    assert run_cli("update", "--index", out, "--upsert", up).exit_code == 0
    again = run_cli("build-index", "products.parquet", "--model", tiny_model, "--if-stale")
    assert again.exit_code == 0 and "rebuilding" in again.output and "updated (version 2)" in again.output
    assert json.loads((out / "manifest.json").read_text())["catalog"].get("version", 1) == 1


def test_catalog_sets_are_in_the_repository():
    from pathlib import Path

    sets = Path(__file__).resolve().parents[1] / "benchmarks" / "sets"
    for name in ("product-types.toml", "out-of-catalog.txt", "typos.csv", "real-words.txt", "petshop-products.csv",
                 "petshop-sells.txt", "electronics-products.csv", "electronics-sells.txt", "electronics-outside.txt"):
        assert (sets / name).is_file(), name
    with pytest.raises(CatalogError):
        from searchkit.data.catalog import ColumnMap

        ColumnMap(bad_numbers="sometimes")


def test_the_cli_keeps_the_http_limits(run_cli, built_index):
    too_many = run_cli("query", "fan", "--index", built_index, "-k", "101")
    assert too_many.exit_code != 0 and "101" in too_many.output
    too_long = run_cli("query", "x" * 1001, "--index", built_index)
    assert too_long.exit_code != 0 and "at most 1000" in too_long.output
    nothing = run_cli("query", "🔥🔥", "--index", built_index)
    assert nothing.exit_code == 0 and "no products match" in nothing.output


def test_filtered_dense_search_is_exact_by_either_path(searcher, monkeypatch):
    import searchkit.search.retrieval as retrieval

    mask = searcher.filter_index.mask({"color": ["white", "chrome", "black"]})
    vector = searcher.embed(["kohler toilet seat"])
    monkeypatch.setattr(retrieval, "GATHER_BELOW", 10**9)
    gathered = searcher.retriever.dense(vector, 20, mask)[0]
    monkeypatch.setattr(retrieval, "GATHER_BELOW", 0)
    scanned = searcher.retriever.dense(vector, 20, mask)[0]
    assert mask[scanned[0]].all() and len(scanned[0]) == 20
    assert np.allclose(np.sort(scanned[1]), np.sort(gathered[1]), atol=1e-5)  # the same top scores (ties may swap)
    exact = np.sort(searcher.retriever.cosines(vector[0], np.flatnonzero(mask)))[::-1][:20]
    assert np.allclose(np.sort(scanned[1])[::-1], exact, atol=1e-5)


def test_everyday_words_the_catalog_hardly_uses_are_no_match(searcher):
    extra = searcher.corrector.extra
    searcher.corrector.extra = frozenset({"yoga", "pants"})  # as a merchandiser's synonyms would make them words
    searcher.match_rule = MatchRule(min_cosine=-1.0, unknown_cosine=-1.0, coverage_cosine=-1.0, rare_cosine=2.0)
    try:
        assert searcher.search("yoga pants", k=5).no_match  # words a shopper means, for nothing the shop sells
        assert not searcher.search("kohler toilet seat", k=5).no_match  # its best result holds every word
        searcher.match_rule = MatchRule(min_cosine=-1.0, unknown_cosine=-1.0, coverage_cosine=-1.0, rare_cosine=-1.0)
        assert not searcher.search("yoga pants", k=5).no_match
    finally:
        searcher.match_rule = MatchRule()
        searcher.corrector.extra = extra


def test_candidate_cosines_read_in_place_equal_gathered_ones(searcher):
    retriever = searcher.retriever
    vector = searcher.embed_queries(["kohler toilet seat"])[0]
    rows = np.array([5, 0, 17, 5, len(searcher) - 1], dtype=np.int64)  # any order, repeats allowed
    np.testing.assert_allclose(retriever.cosines(vector, rows), retriever.vectors[rows] @ vector, atol=1e-6)
    assert len(retriever.cosines(vector, np.zeros(0, dtype=np.int64))) == 0
    with pytest.raises(IndexError):  # a bad row is refused, never read past the vectors
        retriever.cosines(vector, np.array([len(searcher)], dtype=np.int64))
