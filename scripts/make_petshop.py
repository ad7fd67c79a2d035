"""Write benchmarks/sets/petshop-products.csv: a second shop's catalog (a pet shop, ~600 products) for trying
searchkit away from Home Depot. Products and their accessories are written as pet shops title them ("X for Y",
"Replacement X", "X Cover"), with brands, colours, prices, stock and popularity, from a seeded grid.

    python scripts/make_petshop.py [--out benchmarks/sets/petshop-products.csv]
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

BRANDS = ["PetSafe", "Kong", "Purina", "Hill's Science Diet", "Frisco", "Tetra", "Fluval", "Aqueon", "Catit",
          "Prevue", "Kaytee", "Midwest", "Petmate", "Flexi", "Furhaven", "Blue Buffalo", "Zilla", "Exo Terra",
          "Outward Hound", "Nylabone", "Litter-Robot", "Iris", "Vivaglory", "Marineland"]
COLOURS = ["Black", "Gray", "Blue", "Red", "Brown", "Beige", "Pink", "Green", "White", "Navy"]
SIZES = ["Small", "Medium", "Large", "X-Large"]

# (title pattern, brands, price range, colour?) per product; {size} {colour} {n} filled from the grid
PRODUCTS = [
    ("{b} {attr} Dog Bed, {size}", ["Furhaven", "Frisco", "Petmate", "Kong", "Midwest"], (25, 140), True,
     ["Orthopedic", "Memory Foam Orthopedic", "Bolster", "Waterproof", "Cooling Gel", "Donut Cuddler", "Quilted"]),
    ("{b} Replacement Cover for {size} Dog Bed", ["Furhaven", "Frisco", "Kong"], (15, 45), True, [""]),
    ("{b} Waterproof Liner for {attr} Dog Beds", ["Furhaven", "Frisco"], (12, 30), False, ["Orthopedic", "Bolster"]),
    ("{b} {attr} Dog Crate, {size}", ["Midwest", "Petmate", "Frisco"], (40, 220), False,
     ["Folding Metal", "Double Door", "Heavy Duty", "Plastic Travel"]),
    ("{b} Crate Pad for {size} Dog Crate", ["Midwest", "Frisco"], (15, 45), True, [""]),
    ("{b} Crate Cover for {size} Wire Dog Crates", ["Midwest", "Frisco"], (20, 50), True, [""]),
    ("{b} Divider Panel for {size} Dog Crate", ["Midwest"], (10, 30), False, [""]),
    ("{b} {n} Gallon {attr} Aquarium Kit", ["Tetra", "Fluval", "Aqueon", "Marineland"], (40, 300), False,
     ["Glass", "LED", "Starter", "Curved Glass", "Nano"]),
    ("{b} {attr} Aquarium Filter for {n} Gallon Tanks", ["Tetra", "Fluval", "Aqueon", "Marineland"], (15, 120),
     False, ["Power", "Canister", "Internal", "Sponge"]),
    ("{b} Replacement Filter Cartridges for Aquarium Filters ({n}-Pack)", ["Tetra", "Aqueon", "Marineland"], (5, 25),
     False, [""]),
    ("{b} {n}W Submersible Aquarium Heater", ["Tetra", "Fluval", "Aqueon"], (15, 60), False, [""]),
    ("{b} Suction Cup Clips for Aquarium Heaters", ["Aqueon"], (3, 8), False, [""]),
    ("{b} LED Light for {n} Gallon Aquariums", ["Fluval", "Marineland", "Aqueon"], (25, 150), False, [""]),
    ("{b} Aquarium Gravel, {colour}, {n} lb.", ["Aqueon", "Tetra"], (8, 30), True, [""]),
    ("{b} Aquarium Background Decor, {n} in.", ["Tetra"], (8, 20), False, [""]),
    ("{b} {attr} Litter Box", ["PetSafe", "Catit", "Petmate", "Iris", "Litter-Robot"], (20, 600), True,
     ["Automatic Self-Cleaning", "Hooded", "Top Entry", "High Sided", "Jumbo"]),
    ("{b} Litter Box Liners ({n}-Count)", ["Petmate", "Iris"], (5, 15), False, [""]),
    ("{b} Litter Scoop for Litter Boxes", ["Petmate", "Iris", "Catit"], (5, 15), True, [""]),
    ("{b} Carbon Filter for Litter Box", ["PetSafe", "Catit"], (6, 18), False, [""]),
    ("{b} Clumping Cat Litter, {n} lb.", ["Purina", "Frisco", "Blue Buffalo"], (10, 30), False, [""]),
    ("{b} {attr} Bird Cage", ["Prevue", "Kaytee"], (40, 300), True, ["Flight", "Wrought Iron", "Small", "Parakeet"]),
    ("{b} Bird Cage Cover, {size}", ["Prevue", "Kaytee"], (15, 40), True, [""]),
    ("{b} Seed Guard for Bird Cages", ["Prevue", "Kaytee"], (8, 20), False, [""]),
    ("{b} Perch Variety Pack for Bird Cages", ["Prevue", "Kaytee"], (8, 20), False, [""]),
    ("{b} {attr} Hamster Cage", ["Kaytee", "Prevue", "Midwest"], (25, 120), True, ["Deluxe", "Two-Level", "Starter"]),
    ("{b} Water Bottle for Hamster Cages, {n} oz.", ["Kaytee"], (4, 12), False, [""]),
    ("{b} Silent Exercise Wheel for Hamster Cages", ["Kaytee"], (10, 25), True, [""]),
    ("{b} Paper Bedding for Small Animals, {n} L", ["Kaytee"], (10, 30), False, [""]),
    ("{b} {n} in. {attr} Cat Tree", ["Frisco", "Catit", "Furhaven"], (40, 220), True,
     ["Cat Condo", "Sisal Scratching", "Multi-Level", "Modern"]),
    ("{b} Replacement Sisal Post for Cat Trees, {n} in.", ["Frisco", "Catit"], (10, 25), False, [""]),
    ("{b} Replacement Hammock for Cat Trees", ["Frisco"], (10, 20), True, [""]),
    ("{b} {attr} Pet Fountain, {n} oz.", ["PetSafe", "Catit", "Vivaglory"], (25, 80), True,
     ["Drinkwell", "Stainless Steel", "Ceramic", "Flower"]),
    ("{b} Replacement Filters for Pet Fountains ({n}-Pack)", ["PetSafe", "Catit"], (6, 20), False, [""]),
    ("{b} Replacement Pump for Pet Fountain", ["PetSafe", "Catit"], (15, 30), False, [""]),
    ("{b} {attr} Dog Leash, {n} ft.", ["Flexi", "Kong", "Frisco", "Outward Hound"], (10, 45), True,
     ["Retractable", "Nylon", "Reflective", "Leather", "Hands-Free"]),
    ("{b} Leash Holder Wall Hook", ["Frisco"], (8, 20), True, [""]),
    ("{b} Waste Bag Dispenser for Dog Leashes", ["Frisco", "Outward Hound"], (5, 12), True, [""]),
    ("{b} {attr} Dog Bowl, {n} cups", ["Frisco", "Petmate", "Outward Hound", "Kong"], (6, 35), True,
     ["Stainless Steel", "Slow Feeder", "Ceramic", "Elevated Stainless Steel", "Non-Skid"]),
    ("{b} Silicone Mat for Dog Bowls", ["Frisco", "Petmate"], (6, 15), True, [""]),
    ("{b} {attr} Cat Carrier", ["Petmate", "Frisco", "Catit"], (20, 80), True,
     ["Soft-Sided", "Hard-Sided", "Top Load", "Expandable"]),
    ("{b} Fleece Pad for Pet Carriers", ["Frisco"], (8, 18), True, [""]),
    ("{b} {attr} Dog Food, {n} lb. Bag", ["Purina", "Hill's Science Diet", "Blue Buffalo"], (15, 80), False,
     ["Adult Chicken & Rice Dry", "Puppy Lamb Dry", "Small Breed Dry", "Grain-Free Salmon Dry"]),
    ("{b} Puppy Chow Complete Dry Puppy Food, {n} lb.", ["Purina"], (15, 45), False, [""]),
    ("{b} Airtight Food Storage Container for Dog Food, {n} lb.", ["Iris", "Frisco"], (20, 45), True, [""]),
    ("{b} {attr} Terrarium, {n} Gallon", ["Zilla", "Exo Terra"], (50, 250), False,
     ["Glass Reptile", "Bearded Dragon Starter", "Front Opening"]),
    ("{b} Heat Lamp Bulb for Terrariums, {n}W", ["Zilla", "Exo Terra"], (8, 25), False, [""]),
    ("{b} Reptile Carpet for {n} Gallon Terrariums", ["Zilla"], (8, 20), True, [""]),
    ("{b} {attr} Dog Toy", ["Kong", "Nylabone", "Outward Hound"], (5, 25), True,
     ["Classic Rubber Chew", "Squeaky Plush", "Rope Tug", "Puzzle Treat"]),
    ("{b} Dog Nail Grinder", ["Frisco", "PetSafe"], (15, 40), True, [""]),
    ("{b} Replacement Sanding Bands for Nail Grinders ({n}-Pack)", ["Frisco"], (5, 12), False, [""]),
]


def rows(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    out, seen = [], set()
    for pattern, brands, (low, high), coloured, attrs in PRODUCTS:
        for brand in brands:
            for attr in attrs:
                for size in rng.sample(SIZES, 2):
                    colour = rng.choice(COLOURS) if coloured else ""
                    n = rng.choice([2, 3, 5, 6, 10, 12, 20, 24, 29, 40, 55, 75])
                    title = pattern.format(b=brand, attr=attr, size=size, colour=colour, n=n).replace("  ", " ")
                    if coloured and "{colour}" not in pattern:
                        title += f", {colour}" if "," not in title else ""
                    if title in seen:
                        continue
                    seen.add(title)
                    out.append({"sku": f"PS{len(out) + 1:05d}", "name": title, "brand": brand, "colour": colour,
                                "price": f"{rng.uniform(low, high):.2f}", "stock": rng.choice([0, 3, 8, 15, 40, 120]),
                                "popularity": round(rng.random(), 3)})
    return out


def write_products(products: list[dict], out: Path) -> None:
    """The products as a CSV file, a header of their fields first (also scripts/make_electronics.py)."""
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(products[0]))
        writer.writeheader()
        writer.writerows(products)
    print(f"wrote {len(products)} products to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/sets/petshop-products.csv"))
    write_products(rows(), parser.parse_args().out)


if __name__ == "__main__":
    main()
