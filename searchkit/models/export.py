"""ONNX graphs: a mean-pooled sentence-transformers model or a cross-encoder as one graph (rebuilt from the folder's
skeleton, searchkit.models.skeleton, or traced with torch), and graphs quantised to per-channel int8 weights,
optionally with per-row activation scales (see per_row_activations). Reading and running graphs is
searchkit.models.encoder's (onnxruntime, no torch)."""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path

from .files import CONFIG_FILE
from .skeleton import rebuild_graph

log = logging.getLogger(__name__)

PRE_PROCESSED = {"onnx.quant.pre_process": "onnxruntime.quant"}  # onnxruntime.quantization.quant_utils


def quantize_graph(source: Path, target: Path, per_row: bool = False) -> None:
    """Write `target`: the fp32 graph `source` with per-channel dynamic int8 weights (per-tensor lost more); per_row:
    with each token's activations scaled on their own (per_row_activations), so a text embeds the same in any batch."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The graph is quantised as exported, without onnxruntime's optional pre-processing (which would rewrite it and
    # move every vector); marking it as pre-processed keeps the quantiser from advising it on the root logger.
    model = onnx.load(str(source))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **PRE_PROCESSED})
    quantize_dynamic(model, str(target), per_channel=True, weight_type=QuantType.QInt8)
    if per_row:
        onnx.save(per_row_activations(onnx.load(str(target))), str(target))


def per_row_activations(model):
    """Rewrite a quantize_dynamic graph so each row (token) of a matmul's input gets its own int8 scale instead of one
    scale over the whole input tensor. With one scale per run, a text's embedding depended on its batch-mates (the
    loudest token of the batch set everyone's step), so a catalog change moved its unchanged neighbours' vectors on a
    rebuild and an update could not match a rebuild; per row, a text embeds identically alone or in any batch, and
    closer to fp32 (1,024 titles: mean cosine to fp32 0.9967 vs 0.9921; docs/updates.md).

    Each DynamicQuantizeLinear(x) becomes a symmetric per-row quantisation, scale = max|row| / 127, stored as uint8
    with the fixed zero point 128 (onnxruntime's fast u8 x s8 kernels take a scalar zero point only); each
    MatMulInteger -> Cast -> Mul(scale) chain on it becomes MatMulIntegerToFloat (the weights' scales fused) times the
    row scales."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants: dict[str, np.ndarray] = {
                 "rows_127": np.array(127.0, np.float32), "rows_tiny": np.array(1e-12, np.float32),
                 "rows_one": np.array(1.0, np.float32), "rows_zero_point": np.array(128, np.uint8),
                 "rows_flat": np.array([-1], np.int64), "rows_last": np.array([-1], np.int64),
                 "rows_end": np.array([2 ** 62], np.int64)}
    replaced: dict[int, list] = {}
    dropped: set[int] = set()
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            continue
        x = node.input[0]
        quantized, scale, _ = node.output
        p = f"{x}_rows"
        replaced[id(node)] = [
            helper.make_node("ReduceMin", [x], [f"{p}_min"], axes=[-1], keepdims=1),
            helper.make_node("ReduceMax", [x], [f"{p}_max"], axes=[-1], keepdims=1),
            helper.make_node("Neg", [f"{p}_min"], [f"{p}_negmin"]),
            helper.make_node("Max", [f"{p}_max", f"{p}_negmin"], [f"{p}_absmax"]),
            helper.make_node("Div", [f"{p}_absmax", "rows_127"], [f"{p}_step"]),
            helper.make_node("Max", [f"{p}_step", "rows_tiny"], [f"{p}_scale"]),
            helper.make_node("Reshape", [f"{p}_scale", "rows_flat"], [f"{p}_scales"]),
            helper.make_node("Shape", [f"{p}_scales"], [f"{p}_count"]),
            helper.make_node("ConstantOfShape", [f"{p}_count"], [f"{p}_zero_points"],
                             value=numpy_helper.from_array(np.array([128], np.uint8))),
            helper.make_node("Shape", [x], [f"{p}_shape"]),
            helper.make_node("Slice", [f"{p}_shape", "rows_last", "rows_end"], [f"{p}_width"]),
            helper.make_node("Concat", ["rows_flat", f"{p}_width"], [f"{p}_matrix"], axis=0),
            helper.make_node("Reshape", [x, f"{p}_matrix"], [f"{p}_x2d"]),
            helper.make_node("QuantizeLinear", [f"{p}_x2d", f"{p}_scales", f"{p}_zero_points"], [f"{p}_q2d"],
                             axis=0),
            helper.make_node("Reshape", [f"{p}_q2d", f"{p}_shape"], [quantized]),
        ]
        for matmul in consumers[quantized]:
            cast = _only(consumers[matmul.output[0]], "Cast")
            mul = _only(consumers[cast.output[0]], "Mul")
            both = next(i for i in mul.input if i != cast.output[0])
            scales = producers[both]
            if matmul.op_type != "MatMulInteger" or scales.op_type != "Mul" or scale not in scales.input:
                raise ValueError(f"unexpected quantised matmul pattern at {matmul.name}")
            weight_scale = next(i for i in scales.input if i != scale)
            a, weights, _, weight_zero_point = matmul.input
            out = mul.output[0]
            replaced[id(matmul)] = [
                helper.make_node("MatMulIntegerToFloat", [a, weights, "rows_one", weight_scale, "rows_zero_point",
                                                          weight_zero_point], [f"{out}_unscaled"],
                                 domain="com.microsoft"),
                helper.make_node("Mul", [f"{out}_unscaled", f"{p}_scale"], [out]),
            ]
            dropped.update({id(cast), id(mul)})
            if all(id(c) in dropped for c in consumers[both]):
                dropped.add(id(scales))
    nodes = [n for node in graph.node if id(node) not in dropped for n in replaced.get(id(node), [node])]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in constants.items())
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model


def _only(nodes: list, op_type: str):
    if len(nodes) != 1 or nodes[0].op_type != op_type:
        raise ValueError(f"unexpected quantised matmul pattern: {[n.op_type for n in nodes]} where one {op_type}")
    return nodes[0]


def mean_pooled(model_dir: Path) -> bool:
    modules = json.loads((model_dir / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    pooling = json.loads((model_dir / "1_Pooling" / CONFIG_FILE).read_text()) if (
        model_dir / "1_Pooling" / CONFIG_FILE).is_file() else {}
    mean = pooling.get("pooling_mode") == "mean" or (
        bool(pooling.get("pooling_mode_mean_tokens"))
        and not any(v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"))
    return kinds[:2] == ["Transformer", "Pooling"] and set(kinds[2:]) <= {"Normalize"} and mean


def export_onnx(model_dir: str | Path, out_path: str | Path) -> bool:
    """Write transformer + mean pooling + L2 normalisation as one ONNX graph (fp32): rebuilt from the folder's
    skeleton where it has one (no torch), else traced with torch. False when the model is not a plain mean-pooled
    encoder (then queries are embedded with torch)."""
    model_dir, out_path = Path(model_dir), Path(out_path)
    if not mean_pooled(model_dir):
        log.info("%s: not a mean-pooled encoder; no ONNX export", model_dir)
        return False
    if not rebuild_graph(model_dir, out_path):
        trace_encoder(model_dir, out_path)
    return True


def mean_pool(hidden, attention_mask):
    """Sentence-transformers' mean pooling then L2 normalisation, in torch: the one the exported graphs and the query
    tower's training both use."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), p=2, dim=1)


def trace_encoder(model_dir: Path, out_path: Path) -> None:
    """The embedder's fp32 graph, traced with torch (the [train] extra)."""
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            return mean_pool(hidden, attention_mask)

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


def export_reranker(folder: Path, graph: Path) -> None:
    """The classifier as one ONNX graph (input ids, mask, token types -> one logit per pair), int8 per channel: from
    the folder's skeleton where it has one (no torch), else traced with torch."""
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "reranker.onnx"
        if not rebuild_graph(folder, fp32):
            trace_reranker(folder, fp32)
        quantize_graph(fp32, graph)


def trace_reranker(folder: Path, fp32: Path) -> None:
    """The classifier's fp32 graph, traced with torch (the [train] extra)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        str(folder), num_labels=1, attn_implementation="eager", dtype=torch.float32, local_files_only=True).eval()

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
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Logit(model), (ids, mask, types), str(fp32),
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logit"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                        "logit": {0: "pairs"}},
                          opset_version=17, dynamo=False)


