"""ONNX graphs: a mean-pooled sentence-transformers model or a cross-encoder exported as one graph, and graphs
quantised to per-channel int8 weights. The only module that writes ONNX; reading and running graphs is
searchkit.encoder's (onnxruntime, no torch)."""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def quantize_graph(source: Path, target: Path) -> None:
    """Write `target`: the fp32 graph `source` with per-channel dynamic int8 weights (per-tensor lost more)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # onnxruntime's root-logger advice to "run pre-processing" first
    try:
        quantize_dynamic(str(source), str(target), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


def _mean_pooled(model_dir: Path) -> bool:
    modules = json.loads((model_dir / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text()) if (
        model_dir / "1_Pooling" / "config.json").is_file() else {}
    mean = pooling.get("pooling_mode") == "mean" or (
        bool(pooling.get("pooling_mode_mean_tokens"))
        and not any(v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"))
    return kinds[:2] == ["Transformer", "Pooling"] and set(kinds[2:]) <= {"Normalize"} and mean


def export_onnx(model_dir: str | Path, out_path: str | Path) -> bool:
    """Write transformer + mean pooling + L2 normalisation as one ONNX graph (fp32). False when the model is not
    a plain mean-pooled encoder (then queries are embedded with torch)."""
    model_dir, out_path = Path(model_dir), Path(out_path)
    if not _mean_pooled(model_dir):
        log.info("%s: not a mean-pooled encoder; no ONNX export", model_dir)
        return False
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would clutter a build's log

    class Pooled(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", dtype=torch.float32).eval()
    dummy = torch.tensor([[101, 2000, 2001, 102], [101, 2000, 102, 0]], dtype=torch.long).clamp(
        max=model.config.vocab_size - 1)
    mask = (torch.arange(4)[None, :] < torch.tensor([[4], [3]])).long()
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(model), (dummy, mask, torch.zeros_like(dummy)), str(out_path),
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["embedding"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                          "embedding": {0: "batch"}},
            opset_version=17, dynamo=False,
        )
    return True


def export_reranker(folder: Path, graph: Path) -> None:
    """The classifier as one ONNX graph (input ids, mask, token types -> one logit per pair), int8 per channel."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    model = AutoModelForSequenceClassification.from_pretrained(
        str(folder), num_labels=1, attn_implementation="eager", dtype=torch.float32).eval()

    class Logit(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).logits[:, 0]

    ids = torch.tensor([[2, 3, 4, 5, 6], [2, 3, 4, 5, 0]]).clamp(max=model.config.vocab_size - 1)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    types = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 1, 0]])
    axes = {0: "pairs", 1: "tokens"}
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp32 = Path(tmp) / "reranker.onnx"
        torch.onnx.export(Logit(model), (ids, mask, types), str(fp32),
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logit"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                        "logit": {0: "pairs"}},
                          opset_version=17, dynamo=False)
        quantize_graph(fp32, graph)


