"""Write benchmarks/sets/electronics-products.csv: a third, small shop's catalog (consumer electronics, ~130
products: 20 kinds of product from a few brands each, some in "pro" and "mini" versions) for trying searchkit on a
catalog far smaller than Home Depot's, where every word is used by a handful of products. Its own column names
(sku, name, manufacturer, colour, price_usd, category, in_stock, description), from a seeded grid.

    python scripts/make_electronics.py [--out benchmarks/sets/electronics-products.csv]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_petshop import write_products  # noqa: E402

BRANDS = ["Northwind", "Acme Audio", "Brightline", "Kestrel", "Orbit"]
COLOURS = ["Black", "White", "Silver", "Blue", "Red", ""]
# (product, category, typical price)
KINDS = [("wireless earbuds", "Audio", 49), ("over-ear headphones", "Audio", 129), ("bluetooth speaker", "Audio", 79),
         ("usb-c charger 65w", "Power", 35), ("power bank 20000mah", "Power", 45), ("hdmi cable 2m", "Cables", 12),
         ("usb-c to lightning cable", "Cables", 19), ("mechanical keyboard", "Computer", 99),
         ("wireless mouse", "Computer", 29), ("27 inch 4k monitor", "Computer", 329), ("webcam 1080p", "Computer", 59),
         ("smartwatch", "Wearables", 199), ("fitness tracker", "Wearables", 79), ("phone case", "Accessories", 15),
         ("screen protector", "Accessories", 9), ("laptop stand", "Accessories", 39), ("robot vacuum", "Home", 299),
         ("smart plug", "Home", 19), ("wifi router", "Network", 149), ("mesh wifi system", "Network", 279)]


def products(seed: int = 3) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for kind, category, price in KINDS:
        for brand in rng.sample(BRANDS, 3):
            for version in ["", " pro", " mini"][: rng.randint(1, 3)]:
                colour = rng.choice(COLOURS)
                name = f"{brand} {kind}{version}"
                rows.append({"sku": f"EL-{len(rows) + 1:04d}", "name": name, "manufacturer": brand, "colour": colour,
                             "price_usd": f"{price * rng.uniform(0.8, 1.4):.2f}", "category": category,
                             "in_stock": rng.choice(["true", "false", "true"]),
                             "description": f"The {name} in {colour or 'assorted colours'}. "
                                            "Great for home and office."})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/sets/electronics-products.csv"))
    write_products(products(), parser.parse_args().out)


if __name__ == "__main__":
    main()
