"""Torch on a CUDA device, without faiss-gpu: encoding, in-memory evaluation and training steps agree with the CPU.
Skipped where torch sees no CUDA device (the `cuda` marker in conftest); research/gpu_recipes.py --tests runs them."""

import json

import numpy as np
import pytest

from searchkit import TrainConfig, train
from searchkit.data.catalog import read_pairs
from searchkit.eval.evaluate import evaluate
from searchkit.eval.in_memory import in_memory_searcher
from searchkit.eval.selection import EvalConfig
from searchkit.models.encoder import SentenceTransformerEncoder

pytestmark = pytest.mark.cuda

TEXTS = ["kohler toilet seat", "swag light kit with chain", "white paint", "fan"]


def test_cuda_encoding_matches_cpu(tiny_model):
    cpu = SentenceTransformerEncoder(tiny_model, device="cpu").encode(TEXTS)
    gpu = SentenceTransformerEncoder(tiny_model, device="cuda").encode(TEXTS, batch_size=1024)
    assert gpu.dtype == np.float32 and np.allclose(np.linalg.norm(gpu, axis=1), 1.0, atol=1e-3)
    assert ((cpu * gpu).sum(1) > 0.999).all()


def test_in_memory_evaluation_on_cuda_matches_cpu(catalog_file, pairs_file, tiny_model):
    pairs, config = read_pairs(pairs_file), EvalConfig(split="all")
    cpu = evaluate(in_memory_searcher(catalog_file, tiny_model, device="cpu"), pairs, config)
    gpu = evaluate(in_memory_searcher(catalog_file, tiny_model, device="cuda"), pairs, config)
    assert gpu["pairs"]["spearman"] == pytest.approx(cpu["pairs"]["spearman"], abs=0.01)
    for mode in ("dense", "hybrid"):
        assert gpu["retrieval"][mode]["ndcg@10"] == pytest.approx(cpu["retrieval"][mode]["ndcg@10"], abs=0.02)


def test_training_steps_on_cuda(tmp_path, tiny_model, catalog_file, pairs_file):
    out = tmp_path / "m"
    train(TrainConfig(pairs=pairs_file, catalog=catalog_file, out=out, recipe="multitask", base_model=tiny_model,
                      device="cuda", max_steps=3, eval_steps=100, save_steps=100, batch_size=8, eval_queries=10,
                      eval_corpus=30))
    info = json.loads((out / "searchkit.json").read_text())
    assert info["max_steps"] == 3 and "val_pairs_spearman_cosine" in info["validation"]
    assert SentenceTransformerEncoder(out, device="cuda").encode(TEXTS).shape == (4, 32)
