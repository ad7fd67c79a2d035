"""The query tower: training, the model-folder format, the index's query graph and its fallbacks."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from searchkit import IndexConfig, IndexFormatError, Searcher, build_index
from searchkit.arrays import is_mapped
from searchkit.cli import main
from searchkit.cli.common import BACKENDS as CLI_BACKENDS
from searchkit.data.splits import split_pairs
from searchkit.data.text import words
from searchkit.errors import ModelError, SearchkitError
from searchkit.models.encoder import SentenceTransformerEncoder, model_fingerprint
from searchkit.models.files import QUERY_TOWER_DIR
from searchkit.models.query_tower import assemble, piece_embeddings, token_table, tower_info
from searchkit.search.loading import BACKENDS
from searchkit.training.pseudo_queries import title_spans
from searchkit.training.query_tower import QueryTowerConfig, tower_texts, train_query_tower


@pytest.fixture(scope="session")
def distilled_model(tmp_path_factory, tiny_model, pairs_file, catalog_file):
    """The tiny 2-layer model with a 1-layer query encoder distilled for a few steps."""
    import torch
    from safetensors.torch import load_file, save_file

    model = tmp_path_factory.mktemp("query-tower") / "tiny"
    shutil.copytree(tiny_model, model)
    # the seeded tiny BERT's second layer barely changes its input; make it matter, so that dropping it costs
    weights = load_file(str(model / "model.safetensors"))
    generator = torch.Generator().manual_seed(3)
    for name, value in weights.items():
        if name.startswith("encoder.layer.1.") and name.endswith("weight") and value.dim() == 2:
            weights[name] = torch.randn(value.shape, generator=generator) * 0.3
    save_file(weights, str(model / "model.safetensors"))
    report = train_query_tower(QueryTowerConfig(model=model, pairs=pairs_file, catalog=catalog_file, layers=1, epochs=4,
                                   batch_size=32, lr=5e-4, holdout=64))
    return model, report


def test_title_spans_are_short_seeded_title_words(catalog_frame):
    spans = title_spans(catalog_frame, per_product=3, seed=1)
    assert spans == title_spans(catalog_frame, per_product=3, seed=1) and spans != title_spans(catalog_frame, 3, 2)
    assert len(spans) == 3 * sum(1 for t in catalog_frame["title"] if words(t))
    vocabulary = {w for col in ("title", "brand", "color") for v in catalog_frame[col] for w in words(v)}
    assert all(1 <= len(s.split()) <= 5 + 3 and set(s.split()) <= vocabulary for s in spans)


def test_distill_texts_hold_no_validation_or_test_query(catalog_frame, pairs_file):
    import pandas as pd

    pairs = pd.read_parquet(pairs_file)
    parts = split_pairs(pairs)
    texts = set(tower_texts(pairs, catalog_frame, lambda q: "Q:" + q, QueryTowerConfig(spans_per_product=0)))
    assert texts == {"Q:" + " ".join(words(q)) for q in set(parts["train"]["query"])}
    held_out = set(parts["val"]["query"]) | set(parts["test"]["query"])
    assert held_out and not texts & {"Q:" + " ".join(words(q)) for q in held_out}


def test_distill_writes_a_small_tower_that_learned(distilled_model):
    model, report = distilled_model
    folder = model / QUERY_TOWER_DIR
    assert sorted(p.name for p in folder.iterdir()) == ["distill.json", "layers.safetensors"]
    assert json.loads((folder / "distill.json").read_text())["parent_fingerprint"] == report["parent_fingerprint"]
    from safetensors import safe_open

    with safe_open(str(folder / "layers.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert keys and all(k.startswith("encoder.layer.0.") for k in keys)  # one layer, no embeddings
        assert {str(f.get_tensor(k).dtype) for k in keys} == {"torch.float16"}
    assert report["agreement_after"]["cosine_mean"] > report["agreement_before"]["cosine_mean"] + 0.05
    assert report["steps"] == len(report["history"]) or report["history"][-1]["step"] == report["steps"]


def test_assembled_tower_embeds_like_the_report_says(distilled_model, tmp_path, catalog_frame):
    model, report = distilled_model
    tower = SentenceTransformerEncoder(assemble(model, tmp_path / "q"))
    full = SentenceTransformerEncoder(model)
    assert tower.model[0].auto_model.config.num_hidden_layers == 1
    texts = [" ".join(words(t)[:3]) for t in catalog_frame["title"][:40]]
    cosines = (tower.encode(texts) * full.encode(texts)).sum(1)
    assert cosines.mean() > report["agreement_before"]["cosine_mean"]


def test_tower_fingerprint_and_stale_tower_refused(distilled_model, tmp_path, catalog_file, tiny_model):
    model, _ = distilled_model
    assert model_fingerprint(model) != model_fingerprint(model, query_tower=False)
    assert tower_info(model)["layers"] == 1 and tower_info(tiny_model) is None
    stale = tmp_path / "stale"
    shutil.copytree(tiny_model, stale)  # other weights than the tower was distilled from
    shutil.copytree(model / QUERY_TOWER_DIR, stale / QUERY_TOWER_DIR)
    with pytest.raises(ModelError, match="distilled from other weights"):
        tower_info(stale)
    with pytest.raises(ModelError, match="distilled from other weights"):
        build_index(catalog_file, tmp_path / "idx", model=stale)
    assert not (tmp_path / "idx").exists()
    assert build_index(catalog_file, tmp_path / "idx", model=stale, config=IndexConfig(query_tower=False)).rows


def resumed(distilled: tuple, tmp_path, **settings) -> tuple:
    """A copy of a distilled model, distilled once more with resume=True; checks that the run started where the
    first one ended (same held-out texts; fp16 weights in between) and returns (copy, report)."""
    model = tmp_path / "m"
    shutil.copytree(distilled[0], model)
    report = train_query_tower(QueryTowerConfig(model=model, resume=True, batch_size=32, holdout=64, **settings))
    first = distilled[1]
    assert report["resumed_from"]["agreement_after"] == first["agreement_after"]
    assert report["agreement_before"]["cosine_mean"] == pytest.approx(first["agreement_after"]["cosine_mean"],
                                                                      abs=2e-3)
    return model, report


def test_resume_continues_the_tower_with_the_ranking_term(distilled_model, tmp_path, pairs_file, catalog_file):
    model, report = resumed(distilled_model, tmp_path, pairs=pairs_file, catalog=catalog_file, layers=1, epochs=1,
                            lr=1e-4, kl_weight=1.0)
    assert 0 <= report["agreement_after"]["top10_overlap"] <= 1  # the catalog overlap is measured
    with pytest.raises(SearchkitError, match="has 1 layers, not 2"):
        train_query_tower(QueryTowerConfig(model=model, pairs=pairs_file, catalog=catalog_file, layers=2, resume=True,
                              max_steps=1, batch_size=8))
    fresh = tmp_path / "fresh"
    shutil.copytree(distilled_model[0], fresh)
    shutil.rmtree(fresh / QUERY_TOWER_DIR)
    with pytest.raises(SearchkitError, match="no query encoder to resume from"):
        train_query_tower(QueryTowerConfig(model=fresh, pairs=pairs_file, catalog=catalog_file, layers=1, resume=True,
                              max_steps=1, batch_size=8))


def test_too_many_layers_refused(tiny_model, pairs_file, catalog_file, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    with pytest.raises(SearchkitError, match="has 2 layers"):
        train_query_tower(QueryTowerConfig(model=model, pairs=pairs_file, catalog=catalog_file, layers=2, max_steps=1,
                              batch_size=8, holdout=8))
    assert not (model / QUERY_TOWER_DIR).exists()


@pytest.fixture(scope="session")
def tower_index(tmp_path_factory, distilled_model, catalog_file):
    import searchkit.index.graphs

    out = tmp_path_factory.mktemp("tower") / "idx"
    keep = searchkit.index.graphs.QUERY_TOWER_MIN_OVERLAP, searchkit.index.graphs.QUERY_INT8_MIN_COSINE
    searchkit.index.graphs.QUERY_TOWER_MIN_OVERLAP = 0.0  # the tiny tower's overlap is whatever a few steps give
    # and the tiny model's int8 graph is as close to fp32 as quantising it happens to get (worst cosine 0.94 with
    # onnxruntime 1.32); the CLI test below needs both query graphs kept, test_onnx tests the gate itself
    searchkit.index.graphs.QUERY_INT8_MIN_COSINE = 0.0
    try:
        build_index(catalog_file, out, model=distilled_model[0])
    finally:
        searchkit.index.graphs.QUERY_TOWER_MIN_OVERLAP, searchkit.index.graphs.QUERY_INT8_MIN_COSINE = keep
    return out


def test_index_keeps_and_uses_the_query_graph(tower_index):
    check = json.loads((tower_index / "manifest.json").read_text())["model"]["query_tower"]
    assert check["used_for_queries"] and check["layers"] == 1 and 0 <= check["top10_overlap_mean"] <= 1
    assert -1 <= check["cosine_to_full_min"] <= check["cosine_to_full_mean"] <= 1
    auto = Searcher.from_dir(tower_index)
    assert auto.encoder.path.name == "query-int8.onnx"
    full = Searcher.from_dir(tower_index, backend="onnx")
    queries = ["kohler toilet seat", "swag light kit", "fan"]
    a, b = auto.embed_queries(queries), full.embed_queries(queries)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-4) and not np.allclose(a, b, atol=1e-3)
    alone = np.vstack([auto.embed_queries([q]) for q in queries])
    auto._cache.clear()
    assert np.allclose(alone, auto.embed_queries(queries), atol=1e-6)  # one at a time, whatever the batch
    hits = auto.search("kohler toilet seat", k=5)
    assert len(hits) == 5 and all(a.score >= b.score for a, b in zip(hits, hits[1:]))


def test_query_graph_dropped_when_it_disagrees(tmp_path, distilled_model, catalog_file, monkeypatch):
    import searchkit.index.graphs

    monkeypatch.setattr(searchkit.index.graphs, "QUERY_TOWER_MIN_OVERLAP", 1.01)
    manifest = build_index(catalog_file, tmp_path / "idx", model=distilled_model[0])
    assert manifest.model.query_tower["used_for_queries"] is False
    assert "query-int8.onnx" not in manifest.files and not (tmp_path / "idx" / "query-int8.onnx").exists()
    assert Searcher.from_dir(tmp_path / "idx").encoder.path.name != "query-int8.onnx"
    with pytest.raises(IndexFormatError, match="no usable query-int8.onnx"):
        Searcher.from_dir(tmp_path / "idx", backend="query-tower")


def fast_config(folder) -> str:
    """A distillation config file for a quick run (--config)."""
    path = folder / "distill.toml"
    path.write_text("max_steps = 2\nbatch_size = 8\n")
    return str(path)


def test_cli_distill_and_backend_choice(tmp_path, tiny_model, pairs_file, catalog_file, tower_index):
    assert CLI_BACKENDS == list(BACKENDS)
    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    result = CliRunner().invoke(main, ["distill", str(pairs_file), "--model", str(model), "--catalog",
                                       str(catalog_file), "--layers", "1", "--config", fast_config(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "1-layer query encoder" in result.output and (model / QUERY_TOWER_DIR / "layers.safetensors").is_file()
    for backend in ("query-tower", "onnx-int8"):
        out = CliRunner().invoke(main, ["query", "kohler toilet seat", "--index", str(tower_index), "--backend",
                                        backend, "--json", "-k", "3"])
        assert out.exit_code == 0, out.output
        assert len(json.loads(out.output)["results"]) == 3


# -- the static query encoder (layers=0): a token table ---------------------------------------------------------------


@pytest.fixture(scope="session")
def static_model(tmp_path_factory, distilled_model, pairs_file, catalog_file):
    """The same tiny model (second layer made to matter) with a token table distilled for a few epochs."""
    model = tmp_path_factory.mktemp("static") / "tiny"
    shutil.copytree(distilled_model[0], model, ignore=shutil.ignore_patterns(QUERY_TOWER_DIR))
    report = train_query_tower(QueryTowerConfig(model=model, pairs=pairs_file, catalog=catalog_file, layers=0, epochs=6,
                                   batch_size=32, holdout=64))
    return model, report


def test_static_defaults_differ_from_layers():
    static, layered = QueryTowerConfig(layers=0).resolved(), QueryTowerConfig(layers=3).resolved()
    assert (static.epochs, static.lr, static.spans_per_product) == (2.0, 2e-3, 2)
    assert (layered.epochs, layered.lr, layered.spans_per_product) == (3.0, 1e-4, 4)
    assert QueryTowerConfig(layers=0, lr=1e-3, epochs=1).resolved().lr == 1e-3
    with pytest.raises(SearchkitError, match="bad distillation settings"):
        QueryTowerConfig(layers=-1)


def test_static_tower_is_one_table_that_learned_and_left_unseen_rows_alone(static_model, pairs_file,
                                                                           catalog_frame):
    import pandas as pd
    from transformers import AutoModel, AutoTokenizer

    model, report = static_model
    assert report["layers"] == 0 and tower_info(model)["layers"] == 0
    table = token_table(model)
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    assert table.dtype == np.float16 and table.shape == (tokenizer.vocab_size, 32)
    assert report["agreement_after"]["cosine_mean"] > report["agreement_before"]["cosine_mean"] + 0.02
    start = piece_embeddings(AutoModel.from_pretrained(str(model)), tokenizer).numpy()
    assert not start[tokenizer.all_special_ids].any()  # special rows start at zero (then learn a bias)
    from searchkit.index.texts import normalise_catalog

    normaliser = normalise_catalog(catalog_frame, SentenceTransformerEncoder(model).info.text)[0]
    texts = tower_texts(pd.read_parquet(pairs_file), catalog_frame, normaliser.query,
                          QueryTowerConfig(layers=0).resolved())  # as distill made them: brand tokens, stems
    seen = {i for ids in tokenizer(texts)["input_ids"] for i in ids}
    unseen = sorted(set(range(tokenizer.vocab_size)) - seen)
    assert unseen and np.allclose(table[unseen], start[unseen], atol=2e-3)  # no gradient, no decay: untouched
    moved = np.abs(table[sorted(seen)].astype(np.float32) - start[sorted(seen)]).max(axis=1)
    assert (moved > 1e-2).mean() > 0.5
    with pytest.raises(ModelError, match="token table, not transformer layers"):
        assemble(model, model.parent / "out")


def test_static_encoder_embeds_as_the_trained_table(static_model, tmp_path):
    from transformers import AutoTokenizer

    from searchkit.models.encoder import StaticEncoder, describe_model
    from searchkit.models.query_tower import load_tower, shallow_model
    from searchkit.training.query_tower import _embed

    model, _ = static_model
    np.save(tmp_path / "t.npy", token_table(model))
    encoder = StaticEncoder(tmp_path / "t.npy", model, describe_model(model, 32))
    student = shallow_model(model, 0)
    load_tower(student, model, 0)
    queries = ["kohler toilet seat", "swag light kit", "fan", ""]
    expected = _embed(student, AutoTokenizer.from_pretrained(str(model)), queries, "cpu").detach().numpy()
    got = encoder.encode(queries)
    assert np.allclose(got, expected, atol=1e-5)  # mean pooling and the sum point the same way
    assert np.allclose(np.vstack([encoder.encode([q]) for q in queries]), got)  # alone or in a batch
    np.save(tmp_path / "short.npy", token_table(model)[:10])
    with pytest.raises(ModelError, match="rows for a vocabulary"):
        StaticEncoder(tmp_path / "short.npy", model, describe_model(model, 32))
    with pytest.raises(ModelError, match="not vocabulary x 48"):
        StaticEncoder(tmp_path / "t.npy", model, describe_model(model, 48))


def test_index_keeps_and_uses_the_token_table(static_model, catalog_file, tmp_path, monkeypatch):
    import searchkit.index.graphs

    model, _ = static_model
    monkeypatch.setattr(searchkit.index.graphs, "QUERY_TOWER_MIN_OVERLAP", 1.01)  # a table has its own, higher bar
    monkeypatch.setattr(searchkit.index.graphs, "QUERY_TABLE_MIN_OVERLAP", 0.0)
    manifest = build_index(catalog_file, tmp_path / "idx", model=model)
    check = manifest.model.query_tower
    assert check["min_overlap_required"] == 0.0
    assert check["top10_overlap_mean"] <= check["top10_near_overlap_mean"] <= 1  # the table's check counts near-ties
    assert check["used_for_queries"] and check["layers"] == 0 and check["file"] == "query-tokens.npy"
    assert "query-tokens.npy" in manifest.files and "query-int8.onnx" not in manifest.files
    auto = Searcher.from_dir(tmp_path / "idx")
    assert auto.encoder.path.name == "query-tokens.npy"
    from tokenizers import Tokenizer

    table = token_table(model).astype(np.float32)
    ids = Tokenizer.from_file(str(model / "tokenizer.json")).encode(auto._parse("kohler toilet seat").normalised).ids
    expected = table[ids].sum(0) / np.linalg.norm(table[ids].sum(0))
    assert np.allclose(auto.embed_queries(["kohler toilet seat"])[0], expected, atol=1e-5)
    hits = auto.search("kohler toilet seat", k=5)
    assert len(hits) == 5 and all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    mapped = Searcher.from_dir(tmp_path / "idx", mmap=True)
    assert is_mapped(mapped.encoder.table) and type(mapped.encoder.table) is np.ndarray
    assert np.allclose(mapped.embed_queries(["fan"]), auto.embed_queries(["fan"]))
    import importlib.util

    from searchkit.index import layout
    from searchkit.search.loading import pick_backend

    files, stored = layout.IndexFiles(tmp_path / "idx"), layout.read_manifest(tmp_path / "idx")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a))
    assert pick_backend("auto", files, stored) == "query-tower"  # a table needs no onnxruntime
    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)
    # a table that disagrees is dropped, and asking for it names the file
    monkeypatch.setattr(searchkit.index.graphs, "QUERY_TOWER_MIN_OVERLAP", 0.0)
    monkeypatch.setattr(searchkit.index.graphs, "QUERY_TABLE_MIN_OVERLAP", 1.01)
    manifest = build_index(catalog_file, tmp_path / "idx2", model=model)
    assert manifest.model.query_tower["used_for_queries"] is False and "query-tokens.npy" not in manifest.files
    assert not (tmp_path / "idx2" / "query-tokens.npy").exists()
    with pytest.raises(IndexFormatError, match="no usable query-tokens.npy"):
        Searcher.from_dir(tmp_path / "idx2", backend="query-tower")


def test_resume_continues_the_token_table(static_model, tmp_path, pairs_file, catalog_file):
    model, _ = resumed(static_model, tmp_path, pairs=pairs_file, catalog=catalog_file, layers=0, max_steps=2)
    with pytest.raises(SearchkitError, match="has 0 layers, not 1"):
        train_query_tower(QueryTowerConfig(model=model, pairs=pairs_file, catalog=catalog_file, layers=1, resume=True,
                              max_steps=1, batch_size=8))


def test_cli_distills_a_token_table(tmp_path, tiny_model, pairs_file, catalog_file):
    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    result = CliRunner().invoke(main, ["distill", str(pairs_file), "--model", str(model), "--catalog",
                                       str(catalog_file), "--layers", "0", "--config", fast_config(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "static (token table) query encoder" in result.output and tower_info(model)["layers"] == 0


def test_titles_only_distils_from_another_shops_catalog(tmp_path, tiny_model, catalog_frame):
    """A catalog with its own column names and no rated queries: the texts are its title spans alone."""
    assert set(tower_texts(None, catalog_frame, lambda q: q, QueryTowerConfig(spans_per_product=1))) == set(
        title_spans(catalog_frame, 1, 42))
    theirs = tmp_path / "theirs.parquet"
    catalog_frame.rename(columns={"product_id": "code", "title": "label_text"}).to_parquet(theirs, index=False)
    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    args = ["distill", str(tmp_path / "no-such-pairs.parquet"), "--model", str(model), "--catalog", str(theirs),
            "--layers", "0", "--config", fast_config(tmp_path)]
    refused = CliRunner().invoke(main, [*args, "--titles-only"])
    assert refused.exit_code != 0 and "theirs.parquet" in refused.output and not (model / QUERY_TOWER_DIR).exists()
    result = CliRunner().invoke(main, [*args, "--titles-only", "--columns", "id=code,title=label_text"])
    assert result.exit_code == 0, result.output
    info = tower_info(model)
    assert info["layers"] == 0 and info["config"]["pairs"] is None
    assert info["config"]["columns"]["product_id"] == "code" and info["config"]["columns"]["title"] == "label_text"
    assert info["texts"] <= len(catalog_frame) * 2  # 2 title spans per product, no queries (PAIRS does not exist)


def test_a_near_copy_of_the_whole_models_result_counts_as_found():
    """The token table's build check: of two near-copies ("... 2-pack", "... 3-pack") either counts as found, a product
    the whole model ranks well below its own top k does not."""
    from searchkit.index.graphs import NEAR_TIE, near_overlap

    query = np.array([[1.0, 0.0]])
    angles = np.array([0.10, 0.20, 0.20 + NEAR_TIE / 4, 0.90])  # rows 1 and 2: near-copies, row 3: far
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    truth = np.array([[0, 1]])  # the whole model's top 2
    assert near_overlap(vectors, query, truth, np.array([[0, 2]])) == 1.0  # the copy it did not pick: found
    assert near_overlap(vectors, query, truth, np.array([[0, 3]])) == 0.5
    assert near_overlap(vectors, query, truth, np.array([[0, -1]])) == 0.5  # fewer found than asked for
    assert near_overlap(vectors, query, truth, np.array([[2, 1]]), tie=0.0) == 0.5  # no tolerance: the copy is missed
