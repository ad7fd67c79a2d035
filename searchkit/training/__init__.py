"""Training (the [train] extra): embedder, cross-encoder, query tower, teacher, relevance fit, judgments."""
