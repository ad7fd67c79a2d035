"""Encoders (torch, ONNX, static), graph export and cache, the query tower at query time, the cross-encoder."""
