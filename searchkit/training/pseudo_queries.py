"""Query-like texts made from catalog titles, for training without rated queries: word spans of titles and the
patterns shoppers type (brand + product type, measure + product type, product type + colour). Plain words, not yet
normalised: callers normalise them as they do queries."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.text import UNITS, words

PATTERNS = ("span", "brand_type", "measure_type", "type_color")


def title_spans(products: pd.DataFrame, per_product: int, seed: int) -> list[str]:
    """Short query-like word spans of each title (1-5 words), 15% led by the brand, 10% ending in a colour word."""
    rng = np.random.default_rng(seed)
    out = []
    for title, brand, color in zip(products["title"], products["brand"], products["color"], strict=True):
        tokens = words(title)
        for _ in range(per_product if tokens else 0):
            n = int(rng.integers(1, 6))
            start = int(rng.integers(0, max(1, len(tokens) - n + 1)))
            span, roll = tokens[start:start + n], rng.random()
            if roll < 0.15 and words(brand):
                span = words(brand) + span
            elif roll < 0.25 and words(color):
                span = span + words(color)[:1]
            out.append(" ".join(span))
    return out


def product_type(tokens: list[str]) -> list[str]:
    """A title's product type as shoppers name it: its last one or two words that are not numbers or units
    ("... 52 in. white ceiling fan" -> ["ceiling", "fan"])."""
    plain = [t for t in tokens if not any(c.isdigit() for c in t) and t not in UNITS and len(t) > 1]
    return plain[-2:]


def title_measure(tokens: list[str]) -> list[str]:
    """The title's first measure: a number and the unit after it ("3/4 in", "18 volt"), or [] when it has none."""
    for i, token in enumerate(tokens[:-1]):
        if any(c.isdigit() for c in token) and tokens[i + 1] in UNITS:
            return tokens[i:i + 2]
    return []


def pseudo_queries(products: pd.DataFrame, count: int, seed: int) -> list[str]:
    """`count` distinct query-like texts from titles of randomly drawn products: half title spans, the rest brand +
    type, measure + type or type + colour where the product has them (else a span)."""
    rng = np.random.default_rng(seed)
    out: dict[str, None] = {}
    order = rng.permutation(len(products))
    titles, brands, colors = (products[c].tolist() for c in ("title", "brand", "color"))
    for row in np.resize(order, 3 * len(order)) if len(order) else []:
        if len(out) >= count:
            break
        tokens = words(titles[row])
        if not tokens:
            continue
        roll = rng.random()  # [0, 0.5): a span; then a sixth each for the three patterns
        kind = PATTERNS[0] if roll < 0.5 else PATTERNS[min(3, 1 + int((roll - 0.5) * 6))]
        kind_type = product_type(tokens)
        text: list[str] = []
        if kind == "brand_type" and words(brands[row]) and kind_type:
            text = words(brands[row]) + kind_type
        elif kind == "measure_type" and title_measure(tokens) and kind_type:
            text = title_measure(tokens) + kind_type
        elif kind == "type_color" and words(colors[row]) and kind_type:
            text = kind_type + words(colors[row])[:1]
        if not text:
            n = int(rng.integers(2, 6))
            start = int(rng.integers(0, max(1, len(tokens) - n + 1)))
            text = tokens[start:start + n]
        out.setdefault(" ".join(text), None)
    return list(out)
