"""Query understanding: what was typed, checked, spelled against the catalog's words and normalised twice — once as
the embedder reads text, once as the keyword index does. Pure functions over a Normaliser and a SpellCorrector."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import QueryError
from .spell import Correction, SpellCorrector
from .text import Normaliser, words

MAX_QUERY_CHARS = 1000


@dataclass(frozen=True)
class ParsedQuery:
    text: str  # as typed
    understood: str  # words after the spelling fallback
    corrections: list[Correction]
    normalised: str  # model input: stemmed unless the model reads whole words, with a brand token
    keywords: str  # BM25 input: stemmed, with a brand token (the same text when the model reads stemmed text)


def check_query(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise QueryError("the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is {len(query)} characters long; at most {MAX_QUERY_CHARS} are accepted")
    return query.strip()


def compounds(normaliser: Normaliser) -> bool:
    """Whether queries' compound words are looked up both ways (keyword text 2 on; see searchkit.spell)."""
    return normaliser.keyword_text >= 2


def understand(query: str, normaliser: Normaliser, corrector: SpellCorrector | None) -> tuple[str, list[Correction]]:
    """The query as searched: words unknown to the catalog replaced by their closest catalog word, or (keyword text 2)
    split into the two catalog words they glue together. corrector None: the words as typed."""
    tokens = words(check_query(query))
    if corrector is None:
        return " ".join(tokens), []
    fixed, corrections = corrector.correct(tokens, compounds=compounds(normaliser))
    return " ".join(fixed), corrections


def parse(query: str, normaliser: Normaliser, corrector: SpellCorrector | None) -> ParsedQuery:
    """The query understood, then written as the embedder and the keyword index read it."""
    understood, corrections = understand(query, normaliser, corrector)
    normalised = normaliser.query(understood)
    lexical = normaliser.lexical
    joined = corrector.joined(understood.split()) if compounds(normaliser) and corrector is not None else []
    keywords = " ".join([understood, *joined])  # "back splash" also looks for "backsplash"
    return ParsedQuery(query, understood, corrections, normalised,
                       normalised if lexical is normaliser and not joined else lexical.query(keywords))
