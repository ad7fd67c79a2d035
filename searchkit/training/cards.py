"""The README.md a trained model folder carries: one form for the embedder and the cross-encoder alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def metric_rows(metrics: dict[str, Any]) -> list[str]:
    """A markdown table of a validation report: floats to four places, other values as they are."""
    return ["| metric | value |", "| --- | --- |",
            *[f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]]


def write_card(out: Path, summary: list[str], training: list[str], validation: str, metrics: dict[str, Any],
               notes: list[str]) -> None:
    """Write out/README.md: the folder's name, what the model is, how it was trained, its validation table and where
    held-out figures come from."""
    lines = [f"# {out.name}", "", *summary, "", "## Training", "", *training, "",
             f"## Validation ({validation})", "", *metric_rows(metrics), "", *notes]
    (out / "README.md").write_text("\n".join(lines) + "\n")
