import json

import numpy as np
import pytest

from searchkit import Searcher, SearchkitError, TrainConfig, build_index, train
from searchkit.data.splits import SplitConfig
from searchkit.models.encoder import describe_model


def quick_config(folder, extra: str = "") -> str:
    """A training config file for a quick run (--config): one step of batch 8, plus `extra` TOML."""
    path = folder / "train.toml"
    path.write_text(("max_steps = 1\neval_steps = 100\nbatch_size = 8\n" if "max_steps" not in extra else
                     "eval_steps = 100\nbatch_size = 8\n") + extra)
    return str(path)


@pytest.mark.parametrize("recipe", ["mnrl", "seed", "hardneg", "multitask"])
def test_few_steps_make_a_loadable_model(tmp_path, tiny_model, catalog_file, pairs_file, recipe):
    out = tmp_path / f"m-{recipe}"
    config = TrainConfig(pairs=pairs_file, catalog=catalog_file, out=out, recipe=recipe, base_model=tiny_model,
                         max_steps=3, eval_steps=2, save_steps=2, batch_size=8, eval_queries=10, eval_corpus=30,
                         split=SplitConfig(val_fraction=0.3, test_fraction=0.1))
    assert train(config) == out
    info = json.loads((out / "searchkit.json").read_text())
    assert info["recipe"]["name"] == recipe and info["max_steps"] == 3
    assert info["text"]["query_brand"] == ("first_word" if recipe == "seed" else "detect")
    assert info["data"]["train_queries"] > 0 and "val_pairs_spearman_cosine" in info["validation"]
    assert "## Training" in (out / "README.md").read_text()
    assert any((out / "checkpoints").glob("checkpoint-*"))
    model = describe_model(out, 32)
    assert model.name == out.name and model.text.query_brand == info["text"]["query_brand"]
    # an index built with it searches with the model's own text settings
    build_index(catalog_file, tmp_path / "idx", model=out)
    searcher = Searcher.from_dir(tmp_path / "idx")
    assert searcher.normaliser.config == model.text
    assert searcher.search("toilet seat", k=3)


def test_resume_continues_from_checkpoint(tmp_path, tiny_model, catalog_file, pairs_file):
    common = dict(pairs=pairs_file, catalog=catalog_file, out=tmp_path / "m", base_model=tiny_model,
                  eval_steps=100, save_steps=2, batch_size=8, eval_queries=10, eval_corpus=30)
    train(TrainConfig(max_steps=2, **common))
    train(TrainConfig(max_steps=4, resume=True, **common))
    state = json.loads((tmp_path / "m" / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4


def test_unknown_recipe_refused():
    with pytest.raises(SearchkitError, match="unknown recipe"):
        TrainConfig(recipe="magic").resolved_recipe()


def test_multitask_trains_both_objectives(tmp_path, tiny_model, catalog_file, pairs_file):
    from searchkit.data.catalog import read_catalog, read_pairs
    from searchkit.data.text import TextConfig
    from searchkit.training.embedder import RECIPES, catalog_normaliser, training_sets

    products = read_catalog(catalog_file)
    pairs = read_pairs(pairs_file)
    sets = training_sets(pairs, products, RECIPES["multitask"], catalog_normaliser(products, TextConfig()))
    assert set(sets) == {"main", "graded"}
    assert set(sets["main"]) == {"anchor", "positive", "negative"} and set(sets["graded"]) == {"sentence1", "sentence2",
                                                                                                 "score"}
    assert len(sets["graded"]["score"]) == len(pairs) > len(sets["main"]["anchor"])
    out = tmp_path / "mt"
    train(TrainConfig(pairs=pairs_file, catalog=catalog_file, out=out, recipe="multitask", base_model=tiny_model,
                      max_steps=4, eval_steps=100, save_steps=100, batch_size=8, eval_queries=10, eval_corpus=30))
    info = json.loads((out / "searchkit.json").read_text())
    assert set(info["data"]["train_rows"]) == {"main", "graded"}
    assert info["init_model"] == tiny_model.name and info["history"][-1].startswith("recipe multitask from")


def test_whole_word_model_keeps_stemmed_keyword_search(tmp_path, tiny_model, catalog_file, pairs_file):
    """--no-stem: the model reads whole words, in training, at index time and at query time; BM25 still stems."""
    from click.testing import CliRunner

    from searchkit.cli import main
    from searchkit.index.lexical import LexicalIndex
    from searchkit.index.texts import product_texts

    out = tmp_path / "whole"
    result = CliRunner().invoke(main, ["train", str(pairs_file), "--catalog", str(catalog_file), "--out", str(out),
                                       "--recipe", "hardneg", "--base-model", str(tiny_model), "--config",
                                       quick_config(tmp_path, "stem = false\nmax_steps = 2\n")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "searchkit.json").read_text())["text"]["stem"] is False
    build_index(catalog_file, tmp_path / "idx", model=out)
    searcher = Searcher.from_dir(tmp_path / "idx")
    parsed = searcher._parse("kohler elongated ceiling fan")
    assert parsed.normalised == "kohler elongated ceiling fan brand_kohler"
    assert parsed.keywords == "kohler elong ceil fan brand_kohler"
    assert searcher._embed([parsed]).shape == (1, 32)
    assert parsed.normalised in searcher._cache  # the model embedded the whole words
    # the stored keyword index is the stemmed one: the same scores as BM25 over stemmed product texts
    stemmed = LexicalIndex.build(product_texts(searcher.products, searcher.normaliser.lexical))
    assert np.allclose(searcher.lexical.scores(parsed.keywords), stemmed.scores(parsed.keywords))
    assert searcher.lexical.scores(parsed.keywords).max() > 0 and searcher.lexical.scores(parsed.normalised).max() < (
        searcher.lexical.scores(parsed.keywords).max())
    hits = searcher.search("kohler elongated ceiling fan", k=5, mode="lexical", explain=True)
    assert hits and "ceil" in hits[0].explain["matched_terms"]


def test_train_reads_a_shops_pairs_file_and_records_its_format(tmp_path, tiny_model, catalog_file, pairs_file):
    """search_term / product_uid graded 0..2: the same training rows as the canonical file, and the card says how
    the file was read (so `evaluate --split auto` can read it back)."""
    import pandas as pd
    from click.testing import CliRunner

    from searchkit.cli import main
    from searchkit.data.catalog import PairFormat, read_pairs
    from searchkit.data.splits import split_pairs
    from searchkit.eval.metrics import RELEVANT

    pairs = pd.read_parquet(pairs_file)
    shop = tmp_path / "judgements.csv"
    pairs.rename(columns={"query": "search_term", "product_id": "product_uid"}).assign(
        relevance=pairs["relevance"] - 1).to_csv(shop, index=False)
    out = tmp_path / "m"
    result = CliRunner().invoke(main, ["train", str(shop), "--catalog", str(catalog_file), "--out", str(out),
                                       "--recipe", "mnrl", "--base-model", str(tiny_model), "--relevance-scale", "0:2",
                                       "--config", quick_config(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "searchkit.json").read_text())["data"]
    train_part = split_pairs(read_pairs(pairs_file))["train"]
    assert data["train_rows"] == int((train_part["relevance"] >= RELEVANT).sum())
    assert data["pairs"] == str(shop) and PairFormat.from_dict(data["pair_format"]) == PairFormat(scale=(0, 2))


def test_split_by_pair_trains_on_that_split_and_evaluate_refuses_it(tmp_path, tiny_model, catalog_file, pairs_file):
    """--split-by pair (only to reproduce the reference card's measurement): the card records it, training uses that
    split's training part, and `searchkit evaluate` refuses the model, whose query splits hold pairs it learnt from."""
    from click.testing import CliRunner

    from searchkit.cli import main
    from searchkit.data.catalog import read_pairs
    from searchkit.data.splits import split_pairs

    out = tmp_path / "m"
    result = CliRunner().invoke(main, ["train", str(pairs_file), "--catalog", str(catalog_file), "--out", str(out),
                                       "--recipe", "seed", "--base-model", str(tiny_model), "--config",
                                       quick_config(tmp_path, '[split]\nby = "pair"\n')],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "searchkit.json").read_text())
    assert info["split"]["by"] == "pair"
    assert info["data"]["train_rows"] == len(split_pairs(read_pairs(pairs_file), SplitConfig(by="pair"))["train"])
    assert "split by pair" in (out / "README.md").read_text()
    result = CliRunner().invoke(main, ["evaluate", str(pairs_file), "--model", str(out), "--catalog",
                                       str(catalog_file)])
    assert result.exit_code != 0 and "random pair split" in result.output and "reproduce_card.py" in result.output
