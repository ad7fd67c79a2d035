"""The merchandiser's controls: pages, sorting, rules (synonyms, pins, hides, boosts, signals, demotion),
highlights and suggestions, in Python, the CLI and over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from searchkit import Searcher, build_index, update_index
from searchkit.cli import main
from searchkit.search.rules import RulesError, install
from searchkit.serve.app import create_app

MODES = ["dense", "lexical", "hybrid", "rerank"]


@pytest.fixture()
def cli():
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def shop(tmp_path_factory, catalog_frame, tiny_model, reranker):
    """The tiny catalog with shop columns: stock and popularity beside price."""
    frame = catalog_frame.copy()
    frame["stock"] = [0 if i % 5 == 0 else 10 for i in range(len(frame))]
    frame["popularity"] = [(i * 37) % 100 / 100 for i in range(len(frame))]
    path = tmp_path_factory.mktemp("shop") / "shop.parquet"
    frame.to_parquet(path, index=False)
    out = tmp_path_factory.mktemp("shop-index") / "idx"
    build_index(path, out, model=tiny_model, reranker=reranker)
    return out


@pytest.fixture()
def searcher(shop):
    return Searcher.from_dir(shop)


def ids(hits):
    return [h.product_id for h in hits]


@pytest.mark.parametrize("mode", MODES)
def test_page_two_is_ranks_eleven_to_twenty(searcher, mode):
    twenty = searcher.search("kohler toilet seat", k=20, mode=mode)
    second = searcher.search("kohler toilet seat", k=10, mode=mode, offset=10)
    assert ids(second) == ids(twenty)[10:] and [h.rank for h in second] == list(range(11, 21))
    filtered = {"color": ["white", "chrome"]}
    assert ids(searcher.search("fan", k=5, mode=mode, offset=5, filters=filtered)) == ids(
        searcher.search("fan", k=10, mode=mode, filters=filtered))[5:]
    assert ids(searcher.search("fan", k=10, mode=mode, offset=10)) == ids(
        searcher.search("fan", k=10, mode=mode, offset=10))  # stable across calls


def test_sorting_keeps_to_the_relevant_results(searcher):
    relevant = set(ids(searcher.search("ceiling fan", k=100)))
    cheap = searcher.search("ceiling fan", k=10, sort="price")
    assert set(ids(cheap)) <= relevant
    prices = [h.fields["price"] for h in cheap]
    assert prices == sorted(prices)
    dear = [h.fields["price"] for h in searcher.search("ceiling fan", k=10, sort="-price")]
    assert dear == sorted(dear, reverse=True) and dear[0] >= prices[-1]
    by_brand = [h.fields["brand"] or "" for h in searcher.search("ceiling fan", k=30, sort="brand")]
    filled = [b for b in by_brand if b]
    assert filled == sorted(filled) and by_brand[:len(filled)] == filled  # no brand: last
    page2 = searcher.search("ceiling fan", k=5, sort="price", offset=5)
    assert ids(page2) == ids(searcher.search("ceiling fan", k=10, sort="price"))[5:]
    # facets count what the shopper pages through: the same on every page of one order
    assert searcher.search_with_facets("ceiling fan", k=10)[1] == searcher.search_with_facets(
        "ceiling fan", k=10, offset=10)[1]
    sorted_hits, sorted_counts = searcher.search_with_facets("ceiling fan", k=10, sort="price")
    assert sorted_counts == searcher.search_with_facets("ceiling fan", k=10, sort="price", offset=10)[1]
    assert sum(n for _, n in sorted_counts["brand"]) <= 100
    from searchkit.errors import QueryError

    with pytest.raises(QueryError, match="cannot sort by 'weight'"):
        searcher.search("fan", sort="weight")
    with pytest.raises(QueryError, match="at most 1000"):
        searcher.search("fan", k=10, offset=995)


def write_rules(tmp_path, text):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path


def test_rules_change_results_in_every_mode_with_filters_and_pages(shop, tmp_path):
    searcher = Searcher.from_dir(shop)
    plain = {m: ids(searcher.search("kohler toilet seat", k=10, mode=m)) for m in MODES}
    last = plain["hybrid"][-1]
    hidden = plain["hybrid"][0]
    install(shop, write_rules(tmp_path, f"""
[[rules]]
name = "toilet week"
query = "kohler toilet seat"
pin = ["{last}", "P00001"]
hide = ["{hidden}"]
"""))
    try:
        searcher.load_rules()
        for mode in MODES:
            hits = searcher.search("kohler toilet seat", k=10, mode=mode)
            assert ids(hits)[:2] == [last, "P00001"] and hidden not in ids(hits), mode
            assert hits[0].rules == ("pinned by toilet week",)
            assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
            page2 = searcher.search("kohler toilet seat", k=5, mode=mode, offset=5)
            assert ids(page2) == ids(hits)[5:]
        other = searcher.search("kohler toilet seat", k=10, filters={"color": "biscuit"})
        assert hidden not in ids(other)
        explained = searcher.search("kohler toilet seat", k=3, explain=True)
        assert explained[0].explain["rules"] == ["pinned by toilet week"]
        assert ids(searcher.search("ceiling fan", k=10)) == ids(Searcher.from_dir(shop).search("ceiling fan", k=10))
    finally:
        install(shop, None)
    searcher.load_rules()
    assert {m: ids(searcher.search("kohler toilet seat", k=10, mode=m)) for m in MODES} == plain  # rules off


def test_synonyms_boosts_signals_and_demotion(shop, tmp_path):
    searcher = Searcher.from_dir(shop)
    before = searcher.search("commode", k=10, mode="lexical")
    install(shop, write_rules(tmp_path, """
[[synonyms]]
from = "commode"
to = ["toilet seat"]
[[synonyms]]
words = ["fan", "ventilator"]
[[rules]]
contains = "faucet"
boost = { brand = "Delta" }
[signals]
popularity = 0.01
[demote]
stock = 0
"""))
    try:
        searcher.load_rules()
        hits = searcher.search("commode", k=10, mode="lexical")
        assert not before and hits and all("toilet seat" in h.fields["title"].lower() for h in hits)
        assert searcher.search("toilet seat", k=5, mode="lexical")  # one-way: the other way is unchanged
        assert searcher.understand("ventilator")[0] == "ventilator"  # a synonym is never "corrected"
        assert ids(searcher.search("ventilator", k=5, mode="lexical")) == ids(
            searcher.search("fan", k=5, mode="lexical"))  # multi-way: "ventilator" finds the fans
        faucets = searcher.search("kitchen faucet", k=20)
        assert faucets[0].fields["brand"] == "delta"
        assert all("boosted by rules #1" in h.rules for h in faucets if h.fields["brand"] == "delta")
        assert not any(h.rules for h in searcher.search("ceiling fan", k=20) if h.fields["stock"])  # no faucet rule
        ranked = searcher.search("ceiling fan", k=100)
        stock = [h.fields["stock"] for h in ranked]
        assert 0 in stock and stock == sorted(stock, reverse=True)  # out of stock sinks below the rest
        assert all("demoted" in h.rules for h in ranked if h.fields["stock"] == 0)
    finally:
        install(shop, None)


def test_rules_are_validated_whole(shop, tmp_path):
    bad = [
        ("[[rules]]\nquery = 'fan'\npin = ['nope']\n", "not in the index"),
        ("[[rules]]\nquery = 'fan'\nboost = { size = 'xl' }\n", "unknown column(s) ['size']"),
        ("[[rules]]\nquery = 'fan'\n", "needs pin, hide, boost, bury or redirect"),
        ("[[rules]]\nquery = 'fan'\ncontains = 'fan'\nhide = ['P00001']\n", "one of them"),
        ("[signals]\nbrand = 0.1\n", "not a numeric column"),
        ("[[synonyms]]\nwords = ['sofa']\n", "at least two"),
        ("[[rules]]\nquery = 'fan'\nhide = ['P00001']\nstart = 2026-12-31\nend = 2026-12-01\n", "after end"),
        ("[pins]\nx = 1\n", "unknown section(s) ['pins']"),
        ("not toml = [", "not valid TOML"),
    ]
    installed = install(shop, write_rules(tmp_path, "[[synonyms]]\nwords = ['sofa', 'couch']\n"))
    try:
        for text, message in bad:
            with pytest.raises(RulesError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                               .replace("]", r"\]")):
                install(shop, write_rules(tmp_path, text))
            assert Searcher.from_dir(shop).rules == installed  # a refused file leaves the rules in force
    finally:
        install(shop, None)


def test_rule_windows_and_redirects(shop, tmp_path):
    today = dt.datetime.now(dt.timezone.utc).date()
    install(shop, write_rules(tmp_path, f"""
[[rules]]
query = "shower head"
redirect = "/sale"
[[rules]]
query = "kohler toilet seat"
hide = ["P00001"]
start = {today + dt.timedelta(days=1)}
"""))
    try:
        searcher = Searcher.from_dir(shop)
        assert searcher.search("shower head").redirect == "/sale"
        assert searcher.search("shower head").summary()["redirect"] == "/sale"
        assert searcher.rules.for_query("kohler toilet seat") == []  # not yet
        assert searcher.rules.for_query("kohler toilet seat", today + dt.timedelta(days=2))
    finally:
        install(shop, None)


def test_rules_in_the_cli_http_and_after_an_update(shop, tmp_path, cli, tmp_path_factory):
    import shutil

    index = tmp_path / "idx"
    shutil.copytree(shop, index)
    path = write_rules(tmp_path, "[[rules]]\nquery = 'ceiling fan'\npin = ['P00002']\n")
    app = create_app(index, watch=True)
    with TestClient(app) as client:
        assert client.get("/search", params={"q": "ceiling fan"}).json()["results"][0]["product_id"] != "P00002"
        out = cli("rules", path, "--index", index)
        assert out.exit_code == 0 and "rules from" in out.output and "pin ['P00002']" in out.output
        deadline = time.time() + 10
        while time.time() < deadline:  # the server's watcher picks the rules up
            first = client.get("/search", params={"q": "ceiling fan"}).json()["results"][0]
            if first["product_id"] == "P00002":
                break
            time.sleep(0.2)
        assert first["product_id"] == "P00002" and first["rules"] == ["pinned by rules #1"]
    assert "pin ['P00002']" in cli("rules", "--index", index, "--show").output
    query = json.loads(cli("query", "ceiling fan", "--index", index, "--json").output)
    assert query["results"][0]["product_id"] == "P00002"
    upsert = tmp_path / "up.csv"
    pd.DataFrame({"product_id": ["NEW"], "title": ["kohler ceiling fan in white"]}).to_csv(upsert, index=False)
    update_index(index, upsert=upsert)
    assert Searcher.from_dir(index).search("ceiling fan")[0].product_id == "P00002"  # an update keeps the rules
    assert cli("rules", "--index", index, "--remove").exit_code == 0
    assert "no rules" in cli("rules", "--index", index, "--show").output
    assert cli("rules", "--index", index).exit_code != 0  # FILE, --show or --remove


def test_highlights_mark_stems_corrections_and_synonyms(searcher):
    hits = searcher.search("kohlr toilet seats", k=3, highlight=True, mode="lexical")
    assert "<mark>" in hits[0].highlight and hits[0].to_dict()["highlight"] == hits[0].highlight
    for hit in hits:
        title = hit.fields["title"]
        for word in ("Kohler", "Toilet", "Seat"):
            if word in title:
                assert f"<mark>{word}</mark>" in hit.highlight
    assert searcher.search("fan", k=1)[0].highlight is None  # only when asked


def test_slipped_completions_come_in_one_order_and_only_slips_that_can_complete_are_tried():
    import random

    from searchkit.data.suggest import Suggester

    tied = Suggester.from_counts({"dual fuel range": 3, "dual wire nut": 2, "dual wall nut": 2, "dual kit nuts": 2})
    # ties (the same products, the same length) in lexical order, whatever order the slips are tried in
    assert tied._best(["dual w", "dual f", "dual k"], 3) == tied._best(["dual k", "dual f", "dual w"], 3) == [
        ("dual fuel range", 3.0), ("dual kit nuts", 2.0), ("dual wall nut", 2.0)]
    assert tied.complete("dual wbll") == ["dual wall nut"] and tied.complete("dxal") == []
    assert tied._reach("dual wx") == 6 and tied._reach("zz") == 0 and tied._reach("dual kit") == 8 and tied._reach("dual kit nuts!") == 13

    class EverySlip(Suggester):  # the slips at every letter, as tried before the reach
        def _reach(self, prefix: str) -> int:
            return len(prefix)

    texts = {f"{a} {b}": float(i % 4) for i, (a, b) in enumerate(
        (a, b) for a in ("ceiling", "celing", "kohler", "led", "lead") for b in ("fan", "fans", "seat", "light"))}
    quick, every = Suggester.from_counts(texts), EverySlip.from_counts(texts)
    rng = random.Random(0)
    typed = [t[:n] for t in texts for n in range(1, len(t) + 1)]
    typed += [t[:i] + rng.choice("aeiouxz ") + t[i + 1:] for t in typed for i in [rng.randrange(len(t))]]
    assert sum(bool(quick.complete(t)) and not quick._best([t], 1) for t in typed) > 20  # slips found some
    assert all(quick.complete(t, k) == every.complete(t, k) for t in typed for k in (1, 3, 8))


def test_suggestions(searcher, shop, tmp_path):
    assert "ceiling fan" in searcher.suggest("ceil")
    assert "ceiling fan" in searcher.suggest("celing f")  # one slip past the first letters
    assert searcher.suggest("kohler s")[0].startswith("kohler s")
    assert searcher.suggest("") == [] and searcher.suggest("zzzzqqq") == []
    import shutil

    index = tmp_path / "idx"
    shutil.copytree(shop, index)
    upsert = tmp_path / "up.csv"
    pd.DataFrame({"product_id": [f"N{i}" for i in range(3)],
                  "title": [f"Acme Gizmotron Widget {i}" for i in range(3)], "brand": "acme"}).to_csv(upsert,
                                                                                             index=False)
    update_index(index, upsert=upsert)
    assert "gizmotron widget" in Searcher.from_dir(index).suggest("gizmo")  # an update suggests its new products
    with TestClient(create_app(index, watch=False)) as client:
        body = client.get("/suggest", params={"q": "gizmo"}).json()
        assert "gizmotron widget" in body["suggestions"] and body["took_ms"] >= 0


def test_a_sort_keeps_to_the_type_asked_for_else_to_the_products_holding_the_most_of_the_query():
    from searchkit.search.arrange import kept_for_sort

    relevant = [(r, {"score": 1.0 - r / 10}) for r in range(6)]
    share = np.array([0.5, 1.0, 0.0, 1.0, 0.5, 1.0])
    assert [r for r, _ in kept_for_sort(relevant, 1, None, lambda rows: share[rows])] == [0, 1, 3, 5]  # pin stays
    assert [r for r, _ in kept_for_sort(relevant, 0, lambda rows: rows == 4, lambda rows: share[rows])] == [4]
    assert kept_for_sort(relevant, 0, None, lambda rows: np.zeros(len(rows))) == relevant  # no word held: all kept


def test_a_sorted_search_holds_the_query_and_says_no_match_as_the_unsorted_one(searcher):
    query = "white"
    assert not searcher._parse(query).intent.typed
    cheap = searcher.search(query, k=10, sort="price")
    rows = np.array([searcher._row_of[h.product_id] for h in cheap], dtype=np.int64)
    keywords = searcher._parse(query).keywords
    best = searcher.lexical.coverage(keywords, np.array([searcher._row_of[h.product_id]
                                                         for h in searcher.search(query, k=100)])).max()
    assert best > 0 and (searcher.lexical.coverage(keywords, rows) == best).all()
    prices = [h.fields["price"] for h in cheap]
    assert prices == sorted(prices)
    for q in ("white", "kohler toilet seat", "zzqx"):
        assert searcher.search(q, k=10, sort="price").no_match == searcher.search(q, k=10).no_match
