"""Deterministic test data: generated catalogs and pairs, and a tiny sentence-transformer built in code."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pandas as pd

BRANDS = ["Hampton Bay", "Kohler", "Home Decorators Collection", "Delta", "Glacier Bay", "Crown Bolt", "Westinghouse",
          "Café Lumière", ""]
NOUNS = ["ceiling fan", "toilet seat", "vanity light", "swag light kit", "kitchen faucet", "shower head",
         "door knob", "deck screw", "pendant lamp", "garden hose", "wall outlet", "bath towel bar"]
ADJECTIVES = ["elongated", "round", "modern", "classic", "outdoor", "wireless", "heavy duty", "compact"]
COLORS = ["White", "Biscuit", "Brushed Nickel", "Chrome", "Black", "Oil Rubbed Bronze", ""]


def make_catalog(n: int = 240, seed: int = 7, rare_brand: str | None = None, rare_count: int = 0) -> pd.DataFrame:
    """A seeded grid of brands x adjectives x nouns x colours, with duplicate titles, unicode and empty fields."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        brand, noun, adj, color = rng.choice(BRANDS), rng.choice(NOUNS), rng.choice(ADJECTIVES), rng.choice(COLORS)
        if rare_brand and i < rare_count:
            brand = rare_brand
        title = " ".join(x for x in (brand, adj, noun) if x) + (f" in {color}" if color else "")
        if i % 37 == 5 and rows:  # an exact duplicate title under another id
            title, brand, color = rows[-1]["title"], rows[-1]["brand"], rows[-1]["color"]
        rows.append({"product_id": f"P{i:05d}", "title": title, "brand": brand.lower(), "color": color,
                     "description": "" if i % 3 else f"A {adj} {noun}.", "price": round(5 + rng.random() * 95, 2)})
    return pd.DataFrame(rows)


def make_pairs(catalog: pd.DataFrame, seed: int = 7, queries: int = 60) -> pd.DataFrame:
    """Rated pairs: a query names a noun (and maybe a brand); products with that noun are relevant."""
    rng = random.Random(seed)
    rows = []
    for _ in range(queries):
        noun = rng.choice(NOUNS)
        brand = rng.choice([b for b in BRANDS if b] + ["", ""])
        query = f"{brand.lower()} {noun}".strip() + rng.choice(["", " " + rng.choice(ADJECTIVES)])
        sample = catalog.sample(8, random_state=rng.randrange(10**6))
        for _, product in sample.iterrows():
            relevance = 1.0 + (noun in product["title"].lower()) * 1.33 + (bool(brand) and product["brand"] ==
                                                                           brand.lower()) * 0.67
            rows.append({"query": query, "product_id": product["product_id"], "relevance": min(relevance, 3.0)})
        matching = catalog[catalog["title"].str.lower().str.contains(noun)].head(2)
        for _, product in matching.iterrows():
            rows.append({"query": query, "product_id": product["product_id"], "relevance": 3.0})
    return pd.DataFrame(rows).drop_duplicates(["query", "product_id"]).reset_index(drop=True)


def _vocabulary() -> list[str]:
    from searchkit.data.text import CachedStemmer, words

    stem = CachedStemmer()
    found: set[str] = set()
    for text in BRANDS + NOUNS + ADJECTIVES + COLORS + ["in a query with some extra words"]:
        for word in words(text.replace("é", "e")) + words(text):
            found.update({word, stem(word)})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return specials + sorted(found | {"brand", "color", "_", *string.ascii_lowercase, *string.digits})


def make_tiny_model(path: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-d BERT with a word-level vocabulary of the test words, seeded, as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(seed)
    vocab = _vocabulary()
    raw = path.parent / f"{path.name}-hf"
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = models.Transformer(str(raw), max_seq_length=48)
    pooling = models.Pooling(transformer.get_embedding_dimension(), "mean")
    SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu").save(str(path))
    return path
