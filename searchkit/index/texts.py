"""The texts an index holds of a catalog, for a build and an update alike: what the model embeds, what BM25
reads, text.json and suggest.json."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from ..data.intent import catalog_types
from ..data.suggest import for_catalog
from ..data.text import KEYWORD_TEXT, BrandMatcher, CachedStemmer, Normaliser, TextConfig, words


def product_texts(products: pd.DataFrame, normaliser: Normaliser) -> list[str]:
    return [
        normaliser.product(t, b, c)
        for t, b, c in zip(products["title"], products["brand"], products["color"], strict=True)
    ]


def keyword_texts(products: pd.DataFrame, normaliser: Normaliser, texts: list[str]) -> list[str]:
    """Every product's BM25 text: `texts` (the model's) when the model reads stemmed text, else stemmed anew."""
    return texts if normaliser.lexical is normaliser else product_texts(products, normaliser.lexical)


def catalog_vocabulary(products: pd.DataFrame) -> dict[str, int]:
    """Each word of the catalog's titles, brands and colours with the number of products that use it."""
    counts: Counter[str] = Counter()
    for row in zip(products["title"], products["brand"], products["color"], strict=True):
        counts.update({w for field in row for w in words(field)})
    return dict(sorted(counts.items()))


def text_record(products: pd.DataFrame, normaliser: Normaliser, stemmer: CachedStemmer) -> dict:
    """What text.json holds, for a build and an update alike: the text settings, the catalog's brands, the stems of
    its words, its vocabulary (spelling) and every product's type (searchkit.data.intent)."""
    categories = products["category"] if "category" in products.columns else None
    types = catalog_types(products["title"], products["brand"], stemmer, categories)
    return {"config": normaliser.config.to_dict(), "brands": normaliser.brands.names(), "stems": stemmer.table(),
            "vocab": catalog_vocabulary(products), "types": types}


def completions(products: pd.DataFrame) -> dict:
    """What suggest.json holds: the catalog's completions (searchkit.data.suggest)."""
    categories = products["category"] if "category" in products.columns else None
    return for_catalog(products["title"], products["brand"], categories).to_dict()


def query_like(texts: list[str], sample: int, seed: int = 0) -> list[str]:
    """Short query-like texts: the first 2-5 words of a seeded sample of normalised product texts."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(texts), size=min(sample, len(texts)), replace=False).tolist() if texts else []
    return [" ".join(texts[i].split()[: int(rng.integers(2, 6))]) or "x" for i in picks]


def normalise_catalog(products: pd.DataFrame, text: TextConfig, keyword_text: int = KEYWORD_TEXT,
                      ) -> tuple[Normaliser, CachedStemmer, list[str]]:
    """The normaliser for the model's text settings, the catalog's brands and a keyword text version, its stemmer,
    and every product's text."""
    stemmer = CachedStemmer()
    normaliser = Normaliser(text, BrandMatcher.from_names(products["brand"].unique()), stemmer,
                            keyword_text=keyword_text)
    return normaliser, stemmer, product_texts(products, normaliser)
