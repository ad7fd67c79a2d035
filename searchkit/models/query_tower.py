"""A model's query tower, read: the layers or token table `searchkit train-query-tower` writes into a model folder
(query_encoder/), checked against the weights they were distilled from, rebuilt as a loadable model or a table.
Training them is searchkit.training.query_tower's; building an index and loading one only read them, here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..errors import ModelError, SearchkitError
from .encoder import model_fingerprint
from .files import QUERY_TOWER_CONFIG, QUERY_TOWER_DIR, QUERY_TOWER_WEIGHTS, SAFETENSORS_FILE, TORCH_WEIGHTS_FILE


def shallow_model(model_dir: Path, layers: int):
    """The model's transformer with only its first `layers` layers; token embeddings frozen (shared, not saved).
    layers=0: a TokenVectors table started from the whole model's embedding of each word piece alone."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="eager")
    if layers == 0:
        from transformers import AutoTokenizer

        return _token_vectors(piece_embeddings(model, AutoTokenizer.from_pretrained(str(model_dir))))
    total = model.config.num_hidden_layers
    if not 1 <= layers < total:
        raise SearchkitError(f"{model_dir} has {total} layers; a query encoder takes 1 to {total - 1} of them")
    model.encoder.layer = model.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    for p in model.embeddings.parameters():
        p.requires_grad = False
    return model


def piece_embeddings(model, tokenizer, batch: int = 2048):
    """The transformer's mean-pooled, normalised output for each vocabulary id alone ([CLS] id [SEP]); zero for the
    special tokens ([CLS], [SEP], [PAD]...), which a token table then learns as a bias like any other row."""
    import torch

    vocab, cls, sep = model.config.vocab_size, tokenizer.cls_token_id, tokenizer.sep_token_id
    table = torch.zeros(vocab, model.config.hidden_size)
    model.eval()
    with torch.no_grad():
        for first in range(0, vocab, batch):
            ids = torch.arange(first, min(vocab, first + batch))
            x = torch.stack([torch.full_like(ids, cls), ids, torch.full_like(ids, sep)], dim=1)
            hidden = model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state.mean(1)
            table[first:first + len(ids)] = torch.nn.functional.normalize(hidden, dim=1)
    table[[i for i in tokenizer.all_special_ids if 0 <= i < vocab]] = 0
    return table


def _token_vectors(table):
    """A static query encoder as a torch module: last_hidden_state = each input id's row (pooled like the layers')."""
    import torch

    class TokenVectors(torch.nn.Module):
        def __init__(self, table):
            super().__init__()
            self.token_vectors = torch.nn.Parameter(table)

        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            return SimpleNamespace(last_hidden_state=self.token_vectors[input_ids])

    return TokenVectors(table)


def load_tower(student, model_dir: Path, layers: int) -> None:
    """Overwrite the student's layers (or token table) with those of model_dir's query encoder."""
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(model_dir / QUERY_TOWER_DIR / QUERY_TOWER_WEIGHTS))
    missing, unexpected = student.load_state_dict({k: v.to(torch.float32) for k, v in weights.items()}, strict=False)
    if unexpected or any(k.startswith("encoder.layer.") or k == "token_vectors" for k in missing):
        raise ModelError(f"{model_dir / QUERY_TOWER_DIR}: weights do not fit a {layers}-layer encoder")


def tower_info(model_dir: str | Path) -> dict | None:
    """The query encoder's report when model_dir has one that was distilled from these very weights, else None.
    A query encoder left over from other weights (the model was retrained since) is refused with the reason."""
    folder = Path(model_dir) / QUERY_TOWER_DIR
    if not folder.is_dir():
        return None
    try:
        info = json.loads((folder / QUERY_TOWER_CONFIG).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder / QUERY_TOWER_CONFIG}: unreadable ({exc})") from exc
    if not (folder / QUERY_TOWER_WEIGHTS).is_file():
        raise ModelError(f"{folder}: no {QUERY_TOWER_WEIGHTS}")
    if info.get("parent_fingerprint") != model_fingerprint(model_dir, query_tower=False):
        raise ModelError(f"{folder} was distilled from other weights than {model_dir}'s; run "
                         f"`searchkit train-query-tower` again or delete {folder}")
    return info


def assemble(model_dir: str | Path, out_dir: str | Path, info: dict | None = None) -> Path:
    """A sentence-transformers folder of the query encoder: the model's embeddings + the distilled layers.
    info: tower_info(model_dir) when the caller already checked it (it hashes the model's weights)."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    info = info or tower_info(model_dir)
    if info is None:
        raise ModelError(f"{model_dir}: no {QUERY_TOWER_DIR}/ (run `searchkit train-query-tower`)")
    if int(info["layers"]) == 0:
        raise ModelError(f"{model_dir / QUERY_TOWER_DIR} is a token table, not transformer layers (see token_table)")
    student_model = shallow_model(model_dir, int(info["layers"]))
    load_tower(student_model, model_dir, int(info["layers"]))
    shutil.copytree(model_dir, out_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
        QUERY_TOWER_DIR, SAFETENSORS_FILE, TORCH_WEIGHTS_FILE, "checkpoints", "*.onnx"))
    student_model.save_pretrained(str(out_dir))
    return out_dir


def token_table(model_dir: str | Path, info: dict | None = None) -> np.ndarray:
    """The static query encoder's table (vocabulary x dimension, fp16) of a model distilled with layers=0; read
    without torch. info: tower_info(model_dir) when the caller already checked it."""
    from safetensors.numpy import load_file

    model_dir = Path(model_dir)
    info = info or tower_info(model_dir)
    if info is None or int(info["layers"]) != 0:
        raise ModelError(f"{model_dir}: no static query encoder (run `searchkit train-query-tower --layers 0`)")
    path = model_dir / QUERY_TOWER_DIR / QUERY_TOWER_WEIGHTS
    table = load_file(str(path)).get("token_vectors")
    if table is None or table.ndim != 2:
        raise ModelError(f"{path}: no token_vectors table")
    return table.astype(np.float16, copy=False)
