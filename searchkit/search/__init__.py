"""The query path: Searcher, loading, understanding, retrieval, filters, rules, rerank, explain, results.

Nothing here imports training code or torch (tests/test_layout.py)."""
