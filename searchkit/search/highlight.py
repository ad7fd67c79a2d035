"""A result's title with the query's matched words marked, as the keyword index matches them: by stem, after spelling
fixes and with synonyms ("swag lights" marks "Light"; "couch" marks "Sofa" when the rules say so)."""

from __future__ import annotations

import re
from html import escape

from ..data.text import Normaliser

_WORD = re.compile(r"[A-Za-z0-9]+(?:\.[0-9]+)?")


def marked(title: str, keywords: str, normaliser: Normaliser, start: str = "<mark>", end: str = "</mark>") -> str:
    """`title`, HTML-escaped, with each word whose keyword terms the query holds wrapped in start/end."""
    wanted = {t for t in keywords.split() if not t.startswith(("brand_", "color_"))}
    lexical = normaliser.lexical
    out, at = [], 0
    for found in _WORD.finditer(title or ""):
        out.append(escape(title[at:found.start()]))
        word = found.group(0)
        terms = lexical.lexical_terms(word)
        hit = bool(terms) and all(t in wanted for t in terms if not t.isdigit()) and any(
            t in wanted for t in terms)
        out.append(f"{start}{escape(word)}{end}" if hit else escape(word))
        at = found.end()
    out.append(escape((title or "")[at:]))
    return "".join(out)
