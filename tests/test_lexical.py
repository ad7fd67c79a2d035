"""BM25 top-k with common words deferred (MaxScore) gives exactly what scoring every product gives."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from searchkit.index import lexical
from searchkit.index.lexical import LexicalIndex, Scores

WORDS = [f"w{i}" for i in range(60)]


def _corpus(n: int = 3000, seed: int = 7) -> list[str]:
    """Titles of 2-8 words drawn with Zipf-like weights: a few words are in most titles, most in a few."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(WORDS) + 1) ** 1.1
    weights /= weights.sum()
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 9)), p=weights)) for _ in range(n)]


def _queries(n: int = 150, seed: int = 3) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS + ["unknownword"], size=int(rng.integers(1, 5)), replace=False))
            for _ in range(n)]


def _reference(scores: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every positive row sorted by score, then row; the first k."""
    if mask is not None:
        scores = np.where(mask, scores, 0)
    rows = np.flatnonzero(scores > 0)
    rows = rows[np.lexsort((rows, -scores[rows]))][:k]
    return rows, scores[rows]


@pytest.fixture(scope="module")
def index() -> LexicalIndex:
    return LexicalIndex.build(_corpus())


@pytest.fixture()
def small_defer(monkeypatch):
    """Defer any word in at least 50 titles, and count how often a deferred word had to be merged after all."""
    monkeypatch.setattr(lexical, "DEFER_FROM", 50)
    calls = {"merged": 0}
    original = Scores.merge

    def counted(self):
        calls["merged"] += 1
        original(self)

    monkeypatch.setattr(Scores, "merge", counted)
    return calls


@pytest.mark.parametrize("k", [1, 10, 100])
def test_top_k_with_deferred_words_is_exact(index, small_defer, k):
    rng = np.random.default_rng(k)
    mask = rng.random(index.rows) < 0.5
    deferred, several = 0, 0
    for query in _queries():
        full = index.scores(query)
        with index.scored(query) as scores:
            deferred += bool(scores.deferred)
            several += len(scores.deferred) > 1
        for m in (None, mask):
            rows, values = index.search(query, k, m)
            want_rows, want_values = _reference(full, k, m)
            assert rows.tolist() == want_rows.tolist(), (query, k)
            assert np.allclose(values, want_values, atol=1e-5)
    assert deferred > 50 and several > 20  # the pruned path ran, often with several deferred words...
    if k == 100:
        assert small_defer["merged"] > 0  # ...and, for a deep top k, deferred words were merged after all


def test_scores_of_rows_include_the_deferred_words(index, small_defer):
    rows = np.arange(0, index.rows, 7)
    for query in _queries(40):
        with index.scored(query) as scores:
            assert np.allclose(scores.of(rows), index.scores(query)[rows], atol=1e-5)


def test_buffer_is_clean_after_each_query_and_after_an_error(index, small_defer):
    for query in _queries(20):
        index.search(query, 10)
    with pytest.raises(RuntimeError), index.scored("w0 w1 w2"):
        raise RuntimeError("boom")
    assert not index._local.free.any()
    with index.scored("w0 w1") as outer, index.scored("w3") as inner:  # nested: separate buffers
        assert outer.array is not inner.array
        assert np.allclose(outer.of(np.arange(index.rows)), index.scores("w0 w1"), atol=1e-5)
        assert np.allclose(inner.array, index.scores("w3"))


def test_a_column_not_in_row_order_is_never_deferred(small_defer):
    # column 0 ("common") lists its rows in descending order: binary search on it would be wrong
    rows = 200
    common = np.arange(rows - 1, -1, -1, dtype=np.int32)
    rare = np.array([3, 50, 120], dtype=np.int32)
    data = np.concatenate([np.linspace(1.0, 2.0, rows, dtype=np.float32), np.array([5, 6, 7], np.float32)])
    index = LexicalIndex(data, np.concatenate([common, rare]), np.array([0, rows, rows + 3]),
                         {"common": 0, "rare": 1}, rows)
    with index.scored("common rare") as scores:
        assert not scores.deferred
    got, _ = index.search("common rare", 5)
    assert got.tolist() == _reference(index.scores("common rare"), 5)[0].tolist()


def test_concurrent_queries_do_not_share_a_buffer(index, small_defer):
    queries = _queries(60)
    want = {q: _reference(index.scores(q), 10)[0].tolist() for q in queries}
    errors = []

    def run(offset: int) -> None:
        for q in queries[offset:] + queries[:offset]:
            if index.search(q, 10)[0].tolist() != want[q]:
                errors.append(q)

    threads = [threading.Thread(target=run, args=(i * 15,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_a_build_writes_the_same_bytes_in_any_process(tmp_path):
    """bm25s numbers words in set order, which Python's string hashing varies from process to process; the index
    renumbers them, so two builds of one catalog write the same files (and score alike)."""
    import os
    import subprocess
    import sys

    script = ("import sys; from pathlib import Path; from searchkit.index.lexical import LexicalIndex; "
              "from tests.test_lexical import _corpus; out = Path(sys.argv[1]); out.mkdir(); "
              "LexicalIndex.build(_corpus(400)).save(out)")
    root = Path(__file__).resolve().parents[1]
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", script, str(tmp_path / seed)], check=True, env=env, cwd=root)
    names = sorted(p.name for p in (tmp_path / "1").iterdir())
    assert names and all((tmp_path / "1" / n).read_bytes() == (tmp_path / "2" / n).read_bytes() for n in names)
    import bm25s

    reference = bm25s.BM25(k1=lexical.BM25_K1, b=lexical.BM25_B, method="lucene")
    reference.index([t.split() for t in _corpus(400)], show_progress=False)
    loaded = LexicalIndex.load(tmp_path / "1")
    for query in _queries(20):
        known = [w for w in query.split() if w in reference.vocab_dict]
        want = reference.get_scores(known) if known else np.zeros(loaded.rows)
        assert np.allclose(loaded.scores(query), want, atol=1e-5)
