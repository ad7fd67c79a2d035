"""Searcher: normalise a query exactly as the catalog was, embed it, search, return ranked products.

Modes: dense (embeddings + FAISS), lexical (BM25 over the same words, always stemmed, with measures written one way
from keyword text 2; see searchkit.data.text), hybrid (both candidate lists merged, see searchkit.search.retrieval) and rerank
(hybrid, then the index's cross-encoder reorders the top; see searchkit.search.explain and searchkit.models.cross_encoder).
Every result's `score` is the score that ranked it (non-increasing with rank in every mode) and `cosine` the
embedding similarity of query and product beside it. Queries are embedded by the index's query tower
when it has one (see searchkit.models.query_tower).

The Searcher is a front over parts that read alone: loading (searchkit.search.loading), query understanding
(searchkit.search.understanding), retrieval and fusion (searchkit.search.retrieval), rerank and explain
(searchkit.search.explain), and the product table (searchkit.data.products).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..data.intent import ProductTypes
from ..data.products import ProductTable
from ..data.spell import Correction, SpellCorrector, Together
from ..data.suggest import Suggester, for_catalog
from ..data.text import Normaliser
from ..errors import IndexFormatError, IndexMismatchError, ModelError, QueryError
from ..index import layout
from ..index.ann import hybrid_knob_name
from ..models.encoder import Encoder
from . import explain as second
from .arrange import RELEVANT, Window, by_rules, renamed, sort_judges, sorted_relevant
from .filters import FilterIndex, Filters
from .highlight import marked
from .loading import LoadOptions, load_parts
from .match import MatchRule, word_shares
from .plan import Plan
from .relevance import RelevanceModel
from .results import DEFAULT_MODE, MODES, Mode, SearchResult, SearchResults, check_mode
from .retrieval import Fusion, Legs, Ranked, Retriever
from .rules import NO_RULES, Rules
from .rules import loads as rules_loads
from .threads import apply_search_threads
from .understanding import MAX_K, MAX_QUERY_CHARS, ParsedQuery, check_query, parse, together_in, understand

__all__ = ["Searcher", "SearchResult", "SearchResults", "MatchRule", "Fusion", "MODES", "DEFAULT_MODE",
           "MAX_QUERY_CHARS", "MAX_K", "check_query",
           "check_mode"]

QUERY_CACHE_SIZE = 4096
# hybrid and lexical: a lone query whose words' posting lists hold this many entries in all runs its BM25 leg
# beside the embedding (+ vector search) instead of after it; below it the thread hand-off costs more than it saves
# (docs/design-notes.md)
OVERLAP_FROM = 20_000
MATCH_DEPTH = 10  # "no match" is judged on the first this many results


class Searcher:
    """Thread-safe search over one index. Build with `Searcher.from_dir(path)`; the constructor takes parts."""

    def __init__(self, index: Any, products: Any, encoder: Encoder, manifest: layout.Manifest,
                 normaliser: Normaliser, lexical: Any = None, corrector: SpellCorrector | None = None,
                 fusion: Fusion = Fusion(), reranker: Any = None, types: ProductTypes | None = None):
        """reranker: a searchkit.models.cross_encoder.Reranker, or a callable making one on first use (mode "rerank" only)."""
        self.catalog = ProductTable.of(products)
        if index.ntotal != len(self.catalog):
            raise IndexFormatError(f"the faiss index holds {index.ntotal} vectors for {len(self.catalog)} products")
        if index.d != encoder.info.dimension:
            raise IndexMismatchError(
                f"the index has dimension {index.d}, the model {encoder.info.name} embeds in {encoder.info.dimension}"
            )
        self.encoder = encoder
        self.manifest = manifest
        self.normaliser = normaliser
        self.retriever = Retriever(index, lexical, fusion, types)
        self.types = types
        self.corrector = corrector  # None or spell_correct=False: queries are used as typed
        self.spell_correct = True
        self._reranker = reranker
        self._reranker_lock = threading.Lock()
        self.search_params: dict[str, int] = {}  # the ANN knobs in use (hybrid's leg's too; from_dir sets them)
        self._encode_lock = threading.Lock()
        self._inflight_lock = threading.Lock()
        self._inflight = 0  # searches running now: legs overlap only for a searcher's sole search
        self.match_rule = MatchRule()  # when a search says "no match" (searchkit.search.match)
        self.root: Path | None = None  # the index folder (from_dir): its rules and completions
        self.rules: Rules = NO_RULES
        self.rules_stamp: tuple[Any, ...] | None = None
        self.cache_size = QUERY_CACHE_SIZE  # recent query embeddings kept (0: none); head queries repeat a lot
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    @classmethod
    def from_dir(cls, path: str | Path, model: str | Path | None = None, device: str | None = None,
                 verify: bool = True, backend: str = "auto",
                 encode_threads: int | None = 1, mmap: bool = False,
                 target_recall: float | None = None, rerank_depth: int | None = None) -> Searcher:
        """Load and validate an index folder. `model`, when given, must be the model the index was built with.

        backend: "query-tower" / "onnx-int8" / "onnx" embed queries with onnxruntime or a token table (no torch import),
        "torch" with sentence-transformers; "auto" prefers them in that order (see loading.pick_backend).
        encode_threads: onnxruntime threads per query batch (None: all cores). faiss's own threads are the
        process's to set: see set_search_threads.
        mmap: map the vectors, BM25 arrays and token table instead of reading them (a large index opens sooner, and
        processes serving one index share one copy in the page cache: `searchkit query` and the server's workers).
        Safe because searchkit never rewrites an index file in place; a file rewritten in place under a mapping by
        another program would kill the process.
        target_recall: for an approximate index, search with the cheapest efSearch / nprobe whose recall@10 the build
        measured at or above this (its calibration curve, in the manifest) instead of the one the build chose.
        rerank_depth: the hybrid candidates mode rerank reads (None: its cross-encoder's own; fewer answer sooner)."""
        parts = load_parts(path, LoadOptions(model=model, device=device, verify=verify, backend=backend,
                                             encode_threads=encode_threads, mmap=mmap,
                                             target_recall=target_recall, rerank_depth=rerank_depth))
        searcher = cls(parts.index, parts.products, parts.encoder, parts.manifest, parts.normaliser, parts.lexical,
                       parts.corrector, reranker=parts.reranker, types=parts.types)
        searcher.search_params = parts.search_params
        searcher.root = parts.root
        searcher.load_rules()
        return searcher

    # -- the merchandiser's rules and completions (searchkit.search.rules, searchkit.data.suggest) ----------------------

    def set_rules(self, rules: Rules) -> None:
        """Search with these rules from now on (their synonyms are words the spelling corrector keeps)."""
        self.rules = rules
        if self.corrector is not None:
            self.corrector.extra = frozenset(rules.vocabulary())

    def load_rules(self) -> None:
        """Read the rules installed in the index folder (none: no rules)."""
        if self.root is None:
            return
        stamp = layout.rules_stamp(self.root)
        text = layout.read_rules_text(self.root)
        self.set_rules(rules_loads(text) if text else NO_RULES)
        self.rules_stamp = stamp

    def rules_changed(self) -> bool:
        return self.root is not None and layout.rules_stamp(self.root) != self.rules_stamp

    @cached_property
    def suggester(self) -> Suggester:
        """The index's completions (built with it), or the catalog's own for a searcher made in memory."""
        saved = layout.read_suggest(layout.IndexFiles(self.root)) if self.root is not None else {}
        if saved:
            return Suggester.from_dict(saved)
        table = self.catalog

        def column(name: str) -> list[Any] | None:
            return table.values(name) if name in table.columns else None

        return for_catalog(column("title") or [], column("brand") or [None] * len(self), column("category"))

    def warm(self, columns: tuple[str, ...] = ("brand", "color", "price")) -> None:
        """Read now what the first searches would read on first use (facet columns, the spelling dictionary, the
        completions), so a server's first shopper does not wait for them."""
        for name in columns:
            if name in self.filter_index.names:
                self.filter_index.column(name)
        if self.corrector is not None:
            _ = self.corrector.dictionary
        _ = self.suggester
        self.search("warm up", k=1)

    def suggest(self, prefix: str, k: int = 8) -> list[str]:
        """Up to k completions of what a shopper has typed so far, most products first (searchkit.data.suggest)."""
        if not isinstance(prefix, str) or len(prefix) > MAX_QUERY_CHARS:
            raise QueryError(f"a prefix is at most {MAX_QUERY_CHARS} characters of text")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise QueryError(f"k must be 1..{MAX_K}, not {k!r}")
        return self.suggester.complete(prefix, k)

    def __len__(self) -> int:
        return len(self.catalog)

    @property
    def index(self) -> Any:
        return self.retriever.index

    @property
    def lexical(self) -> Any:
        return self.retriever.lexical

    @property
    def fusion(self) -> Fusion:
        return self.retriever.fusion

    @fusion.setter
    def fusion(self, fusion: Fusion) -> None:
        self.retriever.fusion = fusion

    @property
    def table(self) -> ProductTable:
        """The products as stored (searchkit.data.products)."""
        return self.catalog

    @property
    def products(self) -> Any:
        """The catalog as a pandas DataFrame (built on first use: filters, facets, evaluation)."""
        return self.catalog.frame

    @cached_property
    def filter_index(self) -> FilterIndex:
        """The catalog's columns as filters and facets read them (each read on its first use)."""
        return FilterIndex(self.table)

    @property
    def _row_of(self) -> dict[str, int]:
        return self.catalog.row_of

    @cached_property
    def column_names(self) -> dict[str, str]:
        """The catalog file's own names of the columns searchkit renamed (e.g. {"colour": "color", "sku":
        "product_id"}), so filters and facets take the names the shop's file used."""
        return self.manifest.catalog.own_names

    def _own_names(self, filters: Filters) -> Filters:
        return {self.column_names.get(name, name): value for name, value in filters.items()}

    @property
    def reranker(self) -> Any:
        """The cross-encoder of mode "rerank", or None when the index has none."""
        with self._reranker_lock:
            if callable(self._reranker) and not hasattr(self._reranker, "scores"):
                self._reranker = self._reranker()
            return self._reranker

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes this searcher can run."""
        return tuple(m for m in MODES if (m == Mode.DENSE or self.lexical is not None)
                     and (m != Mode.RERANK or self._reranker is not None))

    # -- queries and their embeddings ------------------------------------------------------------------------------

    @property
    def _speller(self) -> SpellCorrector | None:
        return self.corrector if self.spell_correct else None

    @cached_property
    def _together(self) -> Together | None:
        return together_in(self.lexical, self.normaliser) if self.lexical is not None else None

    def understand(self, query: str) -> tuple[str, list[Correction]]:
        """The query as searched, and the spelling corrections or compound splits that made it so."""
        return understand(query, self.normaliser, self._speller, self._together)

    def did_you_mean(self, query: str) -> str | None:
        """The query with words offered for those searched as typed that the catalog does not use ("did you mean"),
        or None."""
        return self._parse(query).offer

    def _parse(self, query: str) -> ParsedQuery:
        return parse(query, self.normaliser, self._speller, self.types, self._together, self.rules)

    def _embed(self, parsed: list[ParsedQuery]) -> np.ndarray:
        """Query embeddings; the last `cache_size` distinct normalised queries are remembered (LRU)."""
        texts = [p.normalised for p in parsed]
        if not texts:
            return np.zeros((0, self.encoder.info.dimension), dtype=np.float32)
        with self._encode_lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            fresh = dict(zip(missing, self.encoder.encode(missing, batch_size=64), strict=True)) if missing else {}
            out = np.vstack([fresh[t] if t in fresh else self._cache[t] for t in texts])
            if self.cache_size > 0:
                for text in dict.fromkeys(texts):
                    if text in fresh:
                        self._cache[text] = fresh[text]
                    self._cache.move_to_end(text)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            return out

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        """Unit query vectors as searches embed them (normalised as queries are, by the query encoder in use)."""
        return self._embed([self._parse(q) for q in queries])

    embed = embed_queries

    # -- search ----------------------------------------------------------------------------------------------------

    def search_batch(self, queries: list[str], k: int = 10, mode: Mode | str = DEFAULT_MODE,
                     filters: Filters | None = None, explain: bool = False, *, offset: int = 0,
                     sort: str | None = None, highlight: bool = False, counted: int = 0) -> list[SearchResults]:
        """offset: results to skip (a page); sort: a column to order the relevant results by ("price", "-price"; see
        searchkit.search.arrange); highlight: mark the query's words in each title; counted: also rank this many rows and
        keep them as the results' `rows`, for facet counts over what a shopper can page through."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise QueryError(f"k must be a positive integer, not {k!r}")
        window = Window(min(k, len(self)), offset, renamed(sort, self.column_names), min(counted, len(self)))
        mode = check_mode(mode)
        if mode != Mode.DENSE and self.lexical is None:
            raise QueryError(f"mode {mode!r} needs a keyword index, and this searcher has none; use mode 'dense'")
        if mode == Mode.RERANK and self._reranker is None:
            raise QueryError("mode 'rerank' needs a cross-encoder, and this index has none; build it with "
                             "`searchkit build-index --reranker DIR` or use mode 'hybrid'")
        if not queries:
            return []
        apply_search_threads()
        mask = self.filter_index.mask(self._own_names(filters)) if filters else None
        parsed = [self._parse(q) for q in queries]
        hidden = max((len(r.hide) for p in parsed for r in self.rules.for_query(p.understood)), default=0)
        depth = min(window.depth(hidden), len(self))
        depth = depth if mode == Mode.DENSE else max(depth, self.fusion.depth)
        if mode == Mode.RERANK:
            depth = max(depth, self.reranker.settings.depth)
        plans = [Plan(p, window, depth, mode, mask, explain, highlight) for p in parsed]
        with self._inflight_lock:
            self._inflight += 1
            alone = self._inflight == 1
        try:
            if mode != Mode.DENSE and len(plans) == 1 and alone and (
                    self.lexical.postings(parsed[0].keywords) >= OVERLAP_FROM):
                return [self._overlapped(plans[0])]
            vectors = self._embed(parsed)
            none = (np.zeros(0, int), np.zeros(0))
            dense = self.retriever.dense(vectors, depth, mask, self._effort(mode)) if mode != Mode.LEXICAL else (
                [none] * len(queries))
            return [self._results(plan, v, d) for plan, v, d in zip(plans, vectors, dense, strict=True)]
        finally:
            with self._inflight_lock:
                self._inflight -= 1

    @cached_property
    def _pool(self) -> Any:
        from concurrent.futures import ThreadPoolExecutor

        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="searchkit-dense")

    def _dense_leg(self, plan: Plan) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        apply_search_threads()
        vectors = self._embed([plan.parsed])
        if plan.mode == Mode.LEXICAL:  # the embedding only gives the results' cosines
            return vectors[0], (np.zeros(0, int), np.zeros(0))
        return vectors[0], self.retriever.dense(vectors, plan.depth, plan.mask, self._effort(plan.mode))[0]

    def _effort(self, mode: Mode) -> int | None:
        """Hybrid's dense leg (rerank's too) searches with the effort `searchkit calibrate` measured for it, if any."""
        kind = self.manifest.index.type
        return self.search_params.get(hybrid_knob_name(kind)) if mode in (Mode.HYBRID, Mode.RERANK) else None

    def _overlapped(self, plan: Plan) -> SearchResults:
        """One hybrid or lexical query whose BM25 leg is costly: BM25 on this thread while a worker embeds the query
        (and, for hybrid, searches the vectors; onnxruntime and faiss release the GIL), so the legs overlap on two
        cores. The same results as the sequential path."""
        future = self._pool.submit(self._dense_leg, plan)
        with self.lexical.scored(plan.parsed.keywords) as bm25:
            lex = self.lexical.top(bm25, plan.depth, plan.mask)
            vector, dense = future.result()
            return self._scored_results(plan, Legs(vector, dense, bm25, lex))

    def _results(self, plan: Plan, vector: np.ndarray, dense: tuple[np.ndarray, np.ndarray]) -> SearchResults:
        if plan.mode == Mode.DENSE and not (plan.explain and self.lexical is not None):
            return self._scored_results(plan, Legs(vector, dense))
        with self.lexical.scored(plan.parsed.keywords) as bm25:  # its buffer is reused once the results are built
            return self._scored_results(plan, Legs(vector, dense, bm25))

    def _ranked(self, plan: Plan, legs: Legs, rules: Rules) -> Ranked:
        parsed, k = plan.parsed, plan.depth
        if plan.mode != Mode.RERANK:
            if rules.empty and plan.window.sort is None:  # nothing rearranges the ranking: the page and the no-match
                k = min(k, max(plan.window.depth(), MATCH_DEPTH))  # check read its head only
            return self.retriever.rank(legs, k, plan.mode, plan.mask, parsed.keywords, parsed.intent)
        reranker = self.reranker
        hybrid = self.retriever.rank(legs, max(k, reranker.settings.depth), Mode.HYBRID, plan.mask, parsed.keywords,
                                     parsed.intent)
        head = self.catalog.records([r for r, _ in hybrid[:reranker.settings.depth]])
        return second.reranked(reranker, parsed.understood, hybrid, head)[:k]

    def _scored_results(self, plan: Plan, legs: Legs) -> SearchResults:
        parsed, window, mode, explain, bm25 = plan.parsed, plan.window, plan.mode, plan.explain, legs.bm25
        if not parsed.understood:  # no word at all (emoji, punctuation): nothing to search for
            return SearchResults([], no_match=True)
        rules = self.rules
        applied = rules.for_query(parsed.understood)
        asked_for, covered = sort_judges(parsed, self.types, self.lexical)
        arranged, pinned = by_rules(self._ranked(plan, legs, rules), rules, applied, self.filter_index, self._row_of,
                                    plan.mask)
        ranked = sorted_relevant(arranged, pinned, self.filter_index, window, asked_for, covered)
        every = np.array([r for r, _ in ranked], dtype=np.int64)
        ranked = ranked[window.offset:window.offset + window.k]
        rows = every[window.offset:window.offset + window.k]
        cosines = self.retriever.cosines(legs.vector, rows)
        records = self.catalog.records(rows.tolist())
        terms = second.product_terms(self.normaliser, records) if explain else [set()] * len(records)
        graded = {}
        if explain and mode == Mode.RERANK and (model := second.try_model(lambda: self.relevance_model)) is not None:
            graded = second.graded(model, self.reranker, parsed, ranked, records, cosines, terms)
        out = []
        for rank, ((row, signals), cosine, record, words) in enumerate(
                zip(ranked, cosines, records, terms, strict=True), start=window.offset + 1):
            why = None
            if explain:
                lexical = signals.get("lexical", float(bm25.of(np.array([row]))[0]) if bm25 is not None else None)
                why = second.explanation(mode, parsed, signals, float(cosine), lexical, words)
                if rank - window.offset - 1 in graded:
                    why["relevance"] = graded[rank - window.offset - 1]
                if signals.get("rules"):
                    why["rules"] = signals["rules"]
            fields = {key: v for key, v in record.items() if key != "product_id"}  # plain values already
            mark = marked(str(fields.get("title") or ""), parsed.keywords, self.normaliser) if plan.highlight else None
            out.append(SearchResult(str(record["product_id"]), signals["score"], rank, float(cosine), fields, why,
                                    tuple(signals.get("rules", ())), mark))
        head = np.array([r for r, _ in arranged[:MATCH_DEPTH]], dtype=np.int64)  # relevance, not a sort, judges a match
        near = cosines[:len(head)] if window.sort is None and window.offset == 0 and len(rows) >= len(head) else (
            self.retriever.cosines(legs.vector, head))  # the first page's cosines are the head's, when it holds it
        results = SearchResults(out, no_match=self._no_match(parsed, head, near),
                                searched_as=parsed.understood,
                                corrections=[[c.original, c.corrected] for c in parsed.corrections],
                                did_you_mean=parsed.offer, redirect=next((r.redirect for r in applied if r.redirect),
                                                                         None))
        results.rows = every  # every ranked row, `counted` of them when asked (search_with_facets)
        return results

    def _no_match(self, parsed: ParsedQuery, rows: np.ndarray, cosines: np.ndarray) -> bool:
        """Whether none of the results is a close match (searchkit.search.match), judged on the first MATCH_DEPTH rows (and
        their cosines); the word counts are taken only when the best cosine leaves the answer open."""
        words = parsed.understood.split()
        head = rows[:MATCH_DEPTH]
        best = float(cosines[:len(head)].max()) if len(head) else 0.0
        rule = self.match_rule
        if not words or best < rule.min_cosine:
            return True
        if best >= rule.settled:
            return False
        unknown, rare_share = word_shares(words, self.corrector, rule.rare_limit(len(self)))
        coverage = float(self.lexical.coverage(parsed.keywords, head).max()) if (
            self.lexical is not None and len(head)) else 1.0
        return rule.no_match(best, coverage, unknown, len(words), rare_share)

    def search(self, query: str, k: int = 10, mode: Mode | str = DEFAULT_MODE, filters: Filters | None = None,
               explain: bool = False, offset: int = 0, sort: str | None = None, highlight: bool = False
               ) -> SearchResults:
        """The k results from `offset` on (see search_batch)."""
        return self.search_batch([query], k, mode=mode, filters=filters, explain=explain, offset=offset, sort=sort,
                                 highlight=highlight)[0]

    def search_with_facets(self, query: str, k: int = 10, mode: Mode | str = DEFAULT_MODE,
                           filters: Filters | None = None, explain: bool = False, depth: int = RELEVANT,
                           columns: tuple[str, ...] = ("brand", "color"),
                           offset: int = 0, sort: str | None = None, highlight: bool = False,
                           ) -> tuple[SearchResults, dict[str, list[tuple[str, int]]]]:
        """The results (as `search`) and facet counts over the `depth` products a shopper pages through, from one
        search: the same counts on every page of one order (a sort keeps to the type asked for: searchkit.search.arrange)."""
        hits = self.search_batch([query], k=k, mode=mode, filters=filters, explain=explain, offset=offset,
                                 sort=sort, highlight=highlight, counted=depth)[0]
        rows = (hits.rows if hits.rows is not None else np.zeros(0, dtype=np.int64))[:depth]
        counts = self.filter_index.counts(rows, tuple(self.column_names.get(c, c) for c in columns))
        return hits, {name: counts[self.column_names.get(name, name)] for name in columns
                          if self.column_names.get(name, name) in counts}

    def facets(self, query: str, filters: Filters | None = None, depth: int = 100, mode: Mode | str = DEFAULT_MODE,
               columns: tuple[str, ...] = ("brand", "color")) -> dict[str, list[tuple[str, int]]]:
        """Counts of brand/colour values among the top `depth` candidates matching the filters."""
        return self.search_with_facets(query, 1, mode, filters, depth=depth, columns=columns)[1]

    def similarity(self, query: str, product_ids: list[str]) -> list[float]:
        """Cosine of the query with each given product, as the index scores them."""
        rows = self.catalog.rows_of_ids(product_ids)
        return [float(x) for x in self.retriever.cosines(self.embed_queries([query])[0], rows)]

    def product(self, product_id: str) -> dict[str, Any]:
        return self.catalog.product(product_id)

    # -- graded relevance (searchkit.search.relevance, searchkit.search.explain) ---------------------------------------

    @cached_property
    def relevance_model(self) -> RelevanceModel:
        """The index's fitted relevance estimate; ModelError when it has none, IndexMismatchError when it was fitted
        on another embedder, BM25 or reranker than this index's."""
        return second.relevance_model(self._second_stage(), self.relevance_parts())

    def _second_stage(self) -> Any:
        """The reranker the relevance estimate reads, with BM25 beside it; ModelError when the index lacks either."""
        reranker = self.reranker if self.lexical is not None else None
        if reranker is None:
            raise ModelError("relevance needs an index with BM25 and a reranker (build it from a model that carries "
                             "reranker/, or with --reranker)")
        return reranker

    def relevance_parts(self) -> tuple[str, tuple[float, float, int], str, str]:
        """What a relevance fit depends on (explain.relevance_parts)."""
        return second.relevance_parts(self.manifest, self.normaliser)

    def pair_signals(self, query: str, product_ids: list[str]) -> np.ndarray:
        """The relevance estimate's features of each (query, product) pair (relevance.feature_names)."""
        rows = self.catalog.rows_of_ids(product_ids)
        reranker = self._second_stage()
        parsed = self._parse(query)
        records = self.catalog.records(rows.tolist())
        return second.signals(reranker, parsed, records, self.retriever.cosines(self._embed([parsed])[0], rows),
                              reranker.scores(parsed.understood, records), self.lexical.scores(parsed.keywords)[rows],
                              second.product_terms(self.normaliser, records))

    def relevance(self, query: str, product_ids: list[str]) -> list[float]:
        """Estimated relevance of each product to the query on the raters' 1 (not) .. 3 (highly relevant) scale."""
        return [float(x) for x in self.relevance_model.predict(self.pair_signals(query, product_ids))]
