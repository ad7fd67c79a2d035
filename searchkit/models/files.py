"""File names inside a model folder and in the graph cache: the ONLY module that knows them (the index folder's
names live in searchkit.index.layout, which takes the reranker's from here, since an index's reranker/ mirrors a
model's)."""

TOKENIZER_FILE = "tokenizer.json"  # Hugging Face tokenizers' one-file form, beside every model's weights
SBERT_CONFIG_FILE = "sentence_bert_config.json"
CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
TORCH_WEIGHTS_FILE = "pytorch_model.bin"
RERANKER_DIR = "reranker"  # inside a model folder: the reranker build-index takes by default
RERANKER_INFO = "reranker.json"
MODEL_INFO_FILE = "searchkit.json"  # written by `searchkit train`: the model's name and the text pipeline it expects
QUERY_TOWER_DIR = "query_encoder"  # the model's query tower (searchkit.models.query_tower)
QUERY_TOWER_WEIGHTS = "layers.safetensors"
QUERY_TOWER_CONFIG = "distill.json"
GRADER_DIR = "grader"  # inside a reranker folder: the relevance estimate's second embedder
# the graph cache's names (searchkit.models.graph_cache), one folder per model fingerprint
ENCODER_GRAPH_NAME = "encoder.onnx"
ENCODER_INT8_GRAPH_NAME = "encoder.int8-rows.onnx"  # per-row activation scales (export.per_row_activations)
QUERY_GRAPH_NAME = "query.int8-rows.onnx"
RERANKER_GRAPH_NAME = "reranker-int8.onnx"
GRADER_GRAPH_NAME = "grader-int8.onnx"
# a model folder's fp32 graph without its weights (searchkit.models.skeleton): rebuilt where torch is not installed
SKELETON_DIR = "onnx"
SKELETON_GRAPH = "skeleton.onnx"
SKELETON_MAP = "skeleton.json"
# a graph shipped made in a model distribution that leaves out the weights it came from (the cross-encoder's and the
# grader's int8 graphs; searchkit.models.graph_cache.ship): SKELETON_DIR/<the graph's name>, described by this record
READY_RECORD = "ready.json"
