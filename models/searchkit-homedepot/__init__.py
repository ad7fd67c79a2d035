"""searchkit's fine-tuned model, installed as package data: the folder holding this file is the model folder."""

from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent
