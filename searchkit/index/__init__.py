"""Catalog to index folder, and keeping it current: layout and manifest, ANN, BM25, build, update."""
