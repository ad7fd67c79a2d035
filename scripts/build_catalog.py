"""Build catalog/homedepot-products.parquet and catalog/homedepot-pairs.parquet from ../shared/data/homedepot/, and
both again as .csv.gz (the same rows; the base install reads them without pyarrow).

    python scripts/build_catalog.py [--src ../shared/data/homedepot] [--out catalog]

Products get a `brand` column: the longest brand from brands.csv that the title starts with (the raw data has no
brand field), as brands.csv spells it. Titles write a brand's "and" as a symbol ("BLACK+DECKER", "Knape & Vogt" for
"black and decker", "knape and vogt"), which the text pipeline's words drop, so each brand is also looked for without
its "and". Output is deterministic (sorted by product id / pair id), so re-running gives identical files.
"""

from __future__ import annotations

import argparse
import html
from pathlib import Path

import pandas as pd

from searchkit.data.text import BrandMatcher, words


def brand_spellings(names) -> dict[str, str]:
    """Each way a title may write a brand, as words, -> the brand's own words: those words themselves, and the same
    without "and" ("black decker" -> "black and decker")."""
    out: dict[str, str] = {}
    for name in sorted(names, key=len):  # a longer spelling never overrides a brand's own words
        own = " ".join(words(name))
        if not own:
            continue
        out.setdefault(own, own)
        bare = " ".join(w for w in own.split() if w != "and")
        if bare and bare != own:
            out.setdefault(bare, own)
    return out


def build(src: Path, out: Path) -> None:
    products = pd.read_csv(src / "products.csv", dtype={"product_uid": str}, keep_default_na=False)
    pairs = pd.read_csv(src / "pairs.csv", dtype={"product_uid": str}, keep_default_na=False)
    brands = pd.read_csv(src / "brands.csv", keep_default_na=False)

    spelled = brand_spellings(brands["name"])
    matcher = BrandMatcher.from_names(spelled)
    titles = products["product_title"].map(html.unescape).str.strip()  # "Knape &amp; Vogt" -> "Knape & Vogt"
    catalog = pd.DataFrame(
        {
            "product_id": products["product_uid"],
            "title": titles,
            "brand": [spelled.get(" ".join(matcher.match_prefix(words(t)) or ()), "") for t in titles],
            "color": products["product_color"].str.strip(),
            "description": products["product_description"].map(html.unescape).str.strip(),
        }
    ).sort_values("product_id", kind="stable")
    rated = pd.DataFrame(
        {
            "query": pairs["search_term"].str.strip(),
            "product_id": pairs["product_uid"],
            "relevance": pairs["relevance"].astype("float64"),  # float32 turned 2.33 into 2.3299999
        }
    )
    rated = rated.iloc[pairs["id"].argsort(kind="stable")]
    missing = set(rated["product_id"]) - set(catalog["product_id"])
    if missing:
        raise SystemExit(f"pairs.csv names {len(missing)} products missing from products.csv, e.g. {sorted(missing)[:3]}")
    out.mkdir(parents=True, exist_ok=True)
    catalog.to_parquet(out / "homedepot-products.parquet", index=False, compression="zstd")
    catalog.to_csv(out / "homedepot-products.csv.gz", index=False,
                   compression={"method": "gzip", "compresslevel": 9, "mtime": 0})
    rated.to_parquet(out / "homedepot-pairs.parquet", index=False, compression="zstd")
    rated.to_csv(out / "homedepot-pairs.csv.gz", index=False,
                 compression={"method": "gzip", "compresslevel": 9, "mtime": 0})
    left = catalog[catalog["brand"] == ""]
    print(f"{len(left)} products without a brand ({len(left) / len(catalog):.1%}); their commonest first words: "
          + ", ".join(f"{w} ({n})" for w, n in left["title"].str.split().str[0].value_counts().head(8).items()))
    print(f"{len(catalog)} products ({(catalog['brand'] != '').mean():.1%} with a brand), {len(rated)} pairs -> {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/homedepot")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "catalog")
    args = parser.parse_args()
    build(args.src, args.out)


if __name__ == "__main__":
    main()
