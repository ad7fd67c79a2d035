"""The model distribution's build: the cross-encoder's and the grader's int8 graphs are made here (from the skeletons
in their onnx/ folders and their weights, with numpy, onnx and onnxruntime: searchkit.models.cross_encoder.
ship_graphs, read from the searchkit checkout this folder belongs to) and shipped in place of those weights, which
the base install never reads otherwise. The embedder ships its weights: an index is built from them."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PACKAGE = "searchkit_homedepot_model"


class BuildWithGraphs(build_py):
    def run(self):
        super().run()
        checkout = HERE.parents[1]
        if not (checkout / "searchkit" / "models" / "cross_encoder.py").is_file():
            raise SystemExit(f"{HERE}: build this distribution from its place in a searchkit checkout")
        sys.path.insert(0, str(checkout))
        from searchkit.models.cross_encoder import ship_graphs

        out = Path(self.build_lib) / PACKAGE
        for name in ship_graphs(HERE, out):  # the weights and skeletons those graphs replace
            (out / name).unlink(missing_ok=True)


setup(cmdclass={"build_py": BuildWithGraphs})
