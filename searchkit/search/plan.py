"""One query's search, as the Searcher carries it from retrieval to results."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrange import Window
from .results import Mode
from .understanding import ParsedQuery


@dataclass(frozen=True)
class Plan:
    """One query's search: the query as understood, the page asked for, how deep the legs look, how it ranks, the
    rows the filters keep (None: all), and whether each hit carries its explanation and a highlighted title."""

    parsed: ParsedQuery
    window: Window
    depth: int
    mode: Mode
    mask: np.ndarray | None
    explain: bool = False
    highlight: bool = False
