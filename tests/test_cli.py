import json

import pandas as pd
import pytest
from click.testing import CliRunner

from searchkit.cli import main


@pytest.fixture()
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_build_index_then_query_json(run, tmp_path, catalog_file, tiny_model):
    out = tmp_path / "idx"
    result = run("build-index", catalog_file, "--model", tiny_model, "--out", out)
    assert result.exit_code == 0, result.output
    assert "indexed 240 products" in result.output
    result = run("query", "kohler toilet seat", "--index", out, "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["query"] == "kohler toilet seat" and body["no_match"] in (True, False)
    assert {"searched_as", "corrections", "did_you_mean", "mode"} <= set(body)
    hits = body["results"]
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert {"product_id", "score", "cosine", "title", "brand"} <= set(hits[0])
    assert all(-1 <= h["cosine"] <= 1.0001 for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_query_table_modes_filters_facets_explain(run, built_index):
    result = run("query", "swag light kit", "--index", built_index, "--mode", "dense", "--filter", "brand=kohler",
                 "--facets", "--explain", "-k", "3")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["rank", "score", "cosine", "id"]
    assert all("kohler" in line for line in lines[1:4])
    assert "matched" in result.output and result.output.count("brand: kohler") == 1


def test_a_sorted_query_shows_the_column_it_is_sorted_by(run, built_index):
    result = run("query", "fan", "--index", built_index, "--sort", "-price", "-k", "5")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:6] == ["rank", "score", "cosine", "id", "brand", "price"]
    start = lines[0].index("price") - 6  # the column's cells end where its name does
    prices = [float(line[start:start + 11]) for line in lines[1:6]]
    assert prices == sorted(prices, reverse=True)


def test_a_sort_takes_the_files_own_column_names():
    from searchkit.search.arrange import renamed

    names = {"price_usd": "price", "manufacturer": "brand"}
    assert renamed("-price_usd", names) == "-price" and renamed("manufacturer", names) == "brand"
    assert renamed("price", names) == "price" and renamed(None, names) is None and renamed("-", names) == "-"


def test_query_says_how_it_understood_a_misspelled_query(run, built_index):
    result = run("query", "wirless door knbo", "--index", built_index, "-k", "2")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "showing results for: wireless door knob (wirless -> wireless, knbo -> knob)"
    assert "showing results" not in run("query", "wireless door knob", "--index", built_index, "-k", "2").output


def test_query_json_with_facets_is_an_object(run, built_index):
    result = run("query", "fan", "--index", built_index, "--facets", "--json")
    data = json.loads(result.output)
    assert {"results", "facets", "no_match"} <= set(data) and data["facets"]["brand"]


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_query_fails_clearly(run, built_index, text):
    result = run("query", text, "--index", built_index)
    assert result.exit_code != 0 and "query is empty" in result.output


def test_missing_index_says_how_to_build(run, tmp_path):
    result = run("query", "fan", "--index", tmp_path / "none")
    assert result.exit_code == 1 and "searchkit build-index" in result.output


def test_bad_filter_fails_clearly(run, built_index):
    result = run("query", "fan", "--index", built_index, "--filter", "size=xl")
    assert result.exit_code == 1 and "unknown filter column 'size'" in result.output


def test_bad_catalog_fails_clearly(run, tmp_path, tiny_model):
    bad = tmp_path / "c.csv"
    bad.write_text("code,label_text\n1,lamp\n")
    result = run("build-index", bad, "--model", tiny_model, "--out", tmp_path / "idx")
    assert result.exit_code == 1 and "missing required column(s) ['product_id', 'title']" in result.output
    assert "--columns id=NAME, --columns title=NAME" in result.output
    assert not (tmp_path / "idx").exists()


def test_column_options(run, tmp_path, tiny_model):
    path = tmp_path / "c.csv"
    path.write_text("sku,name,maker\nA1,Kohler toilet seat,kohler\nA2,Delta shower head,delta\n")
    result = run("build-index", path, "--model", tiny_model, "--out", tmp_path / "idx", "--columns",
                 "id=sku,title=name,brand=maker")
    assert result.exit_code == 0, result.output
    hits = json.loads(run("query", "shower head", "--index", tmp_path / "idx", "--json", "--mode", "lexical").output
                      )["results"]
    assert hits[0]["product_id"] == "A2" and hits[0]["brand"] == "delta"


def test_evaluate_json(run, built_index, pairs_file):
    result = run("evaluate", pairs_file, "--index", built_index, "--split", "all", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["retrieval"]) == {"dense", "lexical", "hybrid"}
    assert 0 <= report["retrieval"]["lexical"]["ndcg@10"] <= 1
    assert -1 <= report["pairs"]["spearman"] <= 1


def test_python_m_entry_point():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "searchkit", "--help"], capture_output=True, text=True, check=True)
    assert "build-index" in out.stdout and "query" in out.stdout


def test_if_stale_skips_a_current_index_and_rebuilds_a_changed_one(run, tmp_path, catalog_frame, tiny_model):
    path, out = tmp_path / "c.parquet", tmp_path / "idx"
    catalog_frame.to_parquet(path, index=False)
    assert "indexed" in run("build-index", path, "--model", tiny_model, "--out", out, "--if-stale").output
    again = run("build-index", path, "--model", tiny_model, "--out", out, "--if-stale")
    assert "up to date" in again.output and "indexed" not in again.output
    catalog_frame.head(30).to_parquet(path, index=False)
    changed = run("build-index", path, "--model", tiny_model, "--out", out, "--if-stale")
    assert "changed since the index was built" in changed.output and "indexed 30 products" in changed.output
    import json
    import shutil

    words = tmp_path / "words"  # the same weights set to read whole words: the index must be rebuilt for them
    shutil.copytree(tiny_model, words)
    info = json.loads((words / "searchkit.json").read_text()) if (words / "searchkit.json").is_file() else {}
    (words / "searchkit.json").write_text(json.dumps({**info, "text": {**info.get("text", {}), "stem": False}}))
    assert "up to date" in run("build-index", path, "--model", tiny_model, "--out", out, "--if-stale").output
    rebuilt = run("build-index", path, "--model", words, "--out", out, "--if-stale")
    assert "text settings" in rebuilt.output and "indexed 30 products" in rebuilt.output
    assert json.loads((out / "manifest.json").read_text())["text"]["stem"] is False


def test_cli_evaluates_a_model_without_an_index(run, catalog_file, tiny_model, pairs_file):
    import json

    result = run("evaluate", pairs_file, "--model", tiny_model, "--catalog", catalog_file, "--split", "all",
                 "--device", "cpu", "--json")
    report = json.loads(result.output)
    assert report["index"]["model"] == tiny_model.name and report["queries"] > 0
    assert 0.0 <= report["retrieval"]["hybrid"]["ndcg@10"] <= 1.0
    both = CliRunner().invoke(main, ["evaluate", str(pairs_file), "--model", str(tiny_model), "--index", "x"])
    assert both.exit_code == 2 and "not both" in both.output


def test_evaluate_reads_a_shops_pairs_file_and_chooses_its_split(run, built_index, pairs_file, tmp_path, monkeypatch):
    """A Kaggle-style file (search_term, product_uid) graded 0..2 measures exactly as the canonical file; --split
    auto measures all of a file of queries no model learnt from, and only the test split of the training file."""
    import pandas as pd

    import searchkit.cli.search_commands

    monkeypatch.setattr(searchkit.cli.search_commands, "DEFAULT_PAIRS", str(tmp_path / "no-bundled-pairs.parquet"))
    pairs = pd.read_parquet(pairs_file)
    shop = tmp_path / "shop.csv"
    pairs.rename(columns={"query": "search_term", "product_id": "product_uid"}).assign(
        relevance=pairs["relevance"] - 1).to_csv(shop, index=False)
    canonical = json.loads(run("evaluate", pairs_file, "--index", built_index, "--split", "all", "--json").output)
    result = run("evaluate", shop, "--index", built_index, "--relevance-scale", "0:2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["split"] == "all" and "none of its" in report["split_reason"]
    assert report["retrieval"] == canonical["retrieval"] and report["pairs"] == canonical["pairs"]

    refused = CliRunner().invoke(main, ["evaluate", str(shop), "--index", str(built_index)])
    assert refused.exit_code == 1 and "outside the scale 1..3" in refused.output and "--relevance-scale" in refused.output

    # as if the models learnt from it
    monkeypatch.setattr(searchkit.cli.search_commands, "DEFAULT_PAIRS", str(pairs_file))
    text = run("evaluate", shop, "--index", built_index, "--relevance-scale", "0:2").output
    assert "split test:" in text and "training or validation split (seed 42)" in text
    bad = CliRunner().invoke(main, ["evaluate", str(shop), "--index", str(built_index), "--relevance-scale", "0-2"])
    assert bad.exit_code == 1 and "--relevance-scale '0-2': write LOW:HIGH" in bad.output


def test_every_command_shows_at_most_twelve_options():
    """A lean CLI: what users need on the command line, tuning knobs in --config FILE and the Python API."""
    import click

    ctx = click.Context(main)
    commands = dict(main.commands)
    for name, group in main.commands.items():
        if isinstance(group, click.Group):
            commands.update({f"{name} {sub}": c for sub, c in group.commands.items()})
    for name, command in commands.items():
        shown = [p for p in command.get_params(ctx) if isinstance(p, click.Option) and not p.hidden]
        assert len(shown) <= 12, (name, [p.name for p in shown])
    assert "export opensearch" in commands


def test_a_config_file_sets_what_the_options_do_not(run, tmp_path, catalog_file, tiny_model):
    from searchkit.config import load_config
    from searchkit.index.build import IndexConfig
    from searchkit.training.embedder import TrainConfig

    config = tmp_path / "build.toml"
    config.write_text('index_type = "hnsw"\ntarget_recall = 0.9\nbm25_k1 = 1\nquery_tower = false\n')
    result = run("build-index", catalog_file, "--model", tiny_model, "--out", tmp_path / "idx", "--config", config,
                 "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["index"]["type"] == "hnsw" and manifest["index"]["bm25"]["k1"] == 1.0
    assert manifest["index"]["target_recall"] == 0.9

    train = tmp_path / "train.toml"
    train.write_text('epochs = 2\nstem = false\n[split]\nseed = 7\n[pair_format]\nquery = "q"\nscale = [0, 2]\n')
    loaded = load_config(TrainConfig, train, device="cpu", epochs=None)
    assert (loaded.epochs, loaded.stem, loaded.split.seed, loaded.device) == (2.0, False, 7, "cpu")
    assert loaded.pair_format.query == "q" and loaded.pair_format.scale == (0, 2)
    assert load_config(IndexConfig, None, batch_size=8).batch_size == 8  # no file: the options alone

    config.write_text("index_typ = 'hnsw'\n")
    result = run("build-index", catalog_file, "--model", tiny_model, "--out", tmp_path / "idx", "--config", config)
    assert result.exit_code == 1 and "unknown setting(s) index_typ" in result.output and "index_type" in result.output
    config.write_text("index_type = [\n")
    result = run("build-index", catalog_file, "--model", tiny_model, "--out", tmp_path / "idx", "--config", config)
    assert result.exit_code == 1 and "not a TOML file" in result.output
    config.write_text('bulk = "gpu"\n')
    result = run("build-index", catalog_file, "--model", tiny_model, "--out", tmp_path / "idx", "--config", config)
    assert result.exit_code == 1 and "unknown bulk encoder 'gpu'" in result.output


def test_a_shops_csv_the_first_hour(run, tmp_path, tiny_model, monkeypatch):
    """sku,name,brand,colour,price as a shop keeps it: the index goes to indexes/<catalog name>, the output says how
    the columns were read, price filters by range, and filters and facets take the file's own 'colour'."""
    monkeypatch.chdir(tmp_path)
    rows = ["sku,name,brand,colour,price,upc"]
    for i in range(30):
        colour = ("grey", "white", "black")[i % 3]
        rows.append(f"S{i:03d},{colour} kohler toilet seat {i},kohler,{colour},{20 + i}.50,00{i:04d}")
    (tmp_path / "shop.csv").write_text("\n".join(rows) + "\n")
    result = run("build-index", "shop.csv", "--model", tiny_model)
    assert result.exit_code == 0, result.output
    assert "into indexes/shop " in result.output and "color <- colour" in result.output
    assert "product_id <- sku" in result.output and "title <- name" in result.output

    hits = json.loads(run("query", "toilet seat", "--index", "indexes/shop", "--filter", "price=30..40", "-k", "30",
                          "--json").output)["results"]
    assert hits and all(30 <= h["price"] <= 40 for h in hits)
    assert {h["upc"] for h in hits} <= {f"00{i:04d}" for i in range(30)}  # codes with leading zeros stay text
    out = run("query", "toilet seat", "--index", "indexes/shop", "--filter", "colour=grey", "--facets", "--json")
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    assert body["results"] and all(h["color"] == "grey" for h in body["results"])
    assert [v for v, _ in body["facets"]["color"]] == ["grey"]

    pd.read_csv(tmp_path / "shop.csv", dtype=str).to_parquet(tmp_path / "shop.parquet")
    refused = run("build-index", "shop.parquet", "--model", tiny_model)
    assert refused.exit_code != 0 and "holds the index of another catalog (shop.csv)" in refused.output
    replaced = run("build-index", "shop.parquet", "--model", tiny_model, "--out", "indexes/shop")
    assert replaced.exit_code == 0 and "replacing the index of shop.csv in indexes/shop" in replaced.output
