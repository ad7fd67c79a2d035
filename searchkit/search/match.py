"""Whether anything in the catalog is a close match for a query, from what the search already has: the best result's
embedding similarity, how many of the query's words the best result holds, how many of its words the catalog never
uses, and how many are everyday words the catalog hardly uses ("frozen pizza", "yoga pants" in a hardware store: the
shopper wants something the shop does not sell). A "no match" search still returns its results, to be shown as
related products, not as matches.

The thresholds were chosen for the shipped embedder on the validation split of the bundled pairs (real queries)
beside out-of-catalog queries written for the purpose (docs/intent.md); another embedder's cosines sit elsewhere, so
a Searcher takes its own MatchRule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# words that say for whom or in what state a product is wanted, never what it is: not counted as rare words
RARE_IGNORED = frozenset({"for", "and", "the", "with", "men", "mens", "women", "womens", "used", "new"})
# two-letter words that never name a product; other two-letter words ("tv", "pc") count like longer ones
SHORT_FUNCTION_WORDS = frozenset({"a", "an", "as", "at", "be", "by", "do", "if", "in", "is", "it", "my", "no", "of",
                                  "on", "or", "so", "to", "up", "us", "we"})
# words that say how much or how good, never what: "headphones under 100" asks for headphones
QUALIFIERS = frozenset({"under", "below", "over", "above", "cheap", "cheaper", "cheapest", "best", "good", "top",
                        "rated"})


def content_words(words: list[str]) -> list[str]:
    """The query's words that say what is wanted: alphabetic, two letters or more, not a two-letter function word nor
    a qualifier (numbers and measures are left to the cosine)."""
    return [w for w in words if w.isalpha() and w not in QUALIFIERS and (
        len(w) >= 3 or (len(w) == 2 and w not in SHORT_FUNCTION_WORDS))]


def word_shares(words: list[str], corrector: Any, limit: int) -> tuple[float, float]:
    """Of the query's content words: the share the catalog never uses, and the share (RARE_IGNORED aside) that are
    everyday words at most `limit` products use (corrector: the catalog's searchkit.data.spell.SpellCorrector; None:
    neither is counted)."""
    content = content_words(words)
    if corrector is None or not content:
        return 0.0, 0.0
    rare = [w for w in content if w not in RARE_IGNORED]
    return (sum(not corrector.known(w) for w in content) / len(content),
            sum(corrector.is_word(w) and corrector.uses(w) <= limit for w in rare) / len(rare) if rare else 0.0)


@dataclass(frozen=True)
class MatchRule:
    min_cosine: float = 0.25  # below this best cosine, no match whatever else
    unknown_share: float = 0.5  # a query this much made of words the catalog never uses ("sushi", "macbook air") ...
    unknown_cosine: float = 0.45  # ... matches only with a best cosine of at least this
    min_coverage: float = 0.34  # a query whose best result holds at most this share of its words ...
    coverage_cosine: float = 0.35  # ... matches only with a best cosine of at least this
    rare_uses: int = 20  # an everyday word used by at most this many products is one the shop hardly sells ...
    rare_catalog_share: float = 0.01  # ... unless that is this share of the catalog or more: a line a small shop sells
    rare_share: float = 0.34  # ... a query this much made of such words ...
    rare_coverage: float = 0.5  # ... whose best result holds at most this share of its words ...
    rare_cosine: float = 0.55  # ... matches only with a best cosine of at least this

    def rare_limit(self, products: int) -> int:
        """The most products an everyday word may be used by and still be one the shop hardly sells: rare_uses, or in
        a catalog so small that this is a sizeable share of it, rare_catalog_share of its products (at least 1)."""
        return min(self.rare_uses, max(1, int(self.rare_catalog_share * products)))

    @property
    def settled(self) -> float:
        """A best cosine from which the query matches whatever its words (the word counts need not be taken)."""
        return max(self.unknown_cosine, self.coverage_cosine, self.rare_cosine)

    def no_match(self, best_cosine: float, best_coverage: float, unknown_share: float, words: int,
                 rare_share: float = 0.0) -> bool:
        """best_cosine / best_coverage: the highest over the results; unknown_share: the share of the query's content
        words (content_words) that the catalog never uses; words: how many words the query has at all;
        rare_share: the share of its content words that are everyday words (the embedder's vocabulary, synonyms,
        popular queries) used by at most rare_limit(the catalog's size) products."""
        if words == 0:
            return True
        if best_cosine < self.min_cosine:
            return True
        if unknown_share >= self.unknown_share and best_cosine < self.unknown_cosine:
            return True
        if rare_share >= self.rare_share and best_coverage <= self.rare_coverage and best_cosine < self.rare_cosine:
            return True
        return best_coverage <= self.min_coverage and best_cosine < self.coverage_cosine
