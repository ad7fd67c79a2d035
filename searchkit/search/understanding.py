"""Query understanding: what was typed, checked, spelled against the catalog's words and normalised twice — once as
the embedder reads text, once as the keyword index does. Pure functions over a Normaliser and a SpellCorrector."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data.intent import NO_TYPE, ProductTypes, QueryType
from ..data.spell import Correction, SpellCorrector, Together
from ..data.text import Normaliser, words
from ..errors import QueryError
from .rules import NO_RULES, Rules

MAX_QUERY_CHARS = 1000  # the longest query accepted, in Python, the CLI and HTTP alike
MAX_K = 100  # the most results one search returns over HTTP and in the CLI (a page of them: Python takes more)


@dataclass(frozen=True)
class ParsedQuery:
    text: str  # as typed
    understood: str  # words after the spelling fallback
    corrections: list[Correction]
    normalised: str  # model input: stemmed unless the model reads whole words, with a brand token
    keywords: str  # BM25 input: stemmed, with a brand token (the same text when the model reads stemmed text)
    intent: QueryType = NO_TYPE  # the product type it asks for (searchkit.data.intent)
    did_you_mean: list[Correction] = field(default_factory=list)  # offered, not searched (SpellCorrector.suggestions)

    @property
    def offer(self) -> str | None:
        """The query with the "did you mean" words in, or None when there is nothing to offer."""
        if not self.did_you_mean:
            return None
        swap = {c.original: c.corrected for c in self.did_you_mean}
        return " ".join(swap.get(w, w) for w in self.understood.split())


def check_query(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise QueryError("the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is {len(query)} characters long; at most {MAX_QUERY_CHARS} are accepted")
    return query.strip()


def compounds(normaliser: Normaliser) -> bool:
    """Whether queries' compound words are looked up both ways (keyword text 2 on; see searchkit.data.spell)."""
    return normaliser.keyword_text >= 2


def together_in(lexical, normaliser: Normaliser) -> Together:
    """How many products hold a word with the query's other words, from a keyword index (candidates for a typo are
    ranked by it)."""
    keyword = normaliser.lexical

    def together(word: str, others: list[str]) -> int:
        return lexical.together([t for w in [word, *others] for t in keyword.lexical_terms(w)])

    return together


def understand(query: str, normaliser: Normaliser, corrector: SpellCorrector | None,
               together: Together | None = None) -> tuple[str, list[Correction]]:
    """The query as searched: words a shopper could not mean replaced by the catalog word they most likely meant, or
    (keyword text 2) split into the two catalog words they glue together (see searchkit.data.spell). corrector None: the
    words as typed."""
    tokens = words(check_query(query))
    if corrector is None:
        return " ".join(tokens), []
    fixed, corrections = corrector.correct(tokens, compounds=compounds(normaliser), together=together)
    return " ".join(fixed), corrections


def parse(query: str, normaliser: Normaliser, corrector: SpellCorrector | None,
          types: ProductTypes | None = None, together: Together | None = None, rules: Rules = NO_RULES
          ) -> ParsedQuery:
    """The query understood, then written as the embedder and the keyword index read it (with the rules' synonyms:
    always in the keyword text, in the embedded text when the rules say so), with the product type it asks for when
    the catalog's types are given."""
    understood, corrections = understand(query, normaliser, corrector, together)
    synonyms = rules.expansions(understood.split())
    normalised = normaliser.query(" ".join([understood, *synonyms]) if rules.embed_synonyms else understood)
    lexical = normaliser.lexical
    joined = corrector.joined(understood.split()) if compounds(normaliser) and corrector is not None else []
    joined += synonyms
    keywords = " ".join([understood, *joined])  # "back splash" also looks for "backsplash"
    intent = types.of_query(understood.split(), normaliser.stemmer) if types is not None else NO_TYPE
    offers = corrector.suggestions(understood.split(), together) if corrector is not None else []
    return ParsedQuery(query, understood, corrections, normalised,
                       normalised if lexical is normaliser and not joined else lexical.query(keywords), intent, offers)
