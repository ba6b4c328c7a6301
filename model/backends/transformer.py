"""Transformer backend in eager PyTorch: the shared encoder and per-task heads, batched with dynamic padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer

from model.artifact import ENCODER_DIR, Manifest
from model.multitask import MultiTaskModel
from model.predictor import Predictor


class TransformerPredictor(Predictor):
    backend = "torch"

    def __init__(self, version_dir: Path, manifest: Manifest, batch_size: int = 32):
        super().__init__(version_dir, manifest, batch_size)
        encoder = manifest.encoder or {}
        self.tokenizer = AutoTokenizer.from_pretrained(version_dir / ENCODER_DIR)
        self.network = MultiTaskModel.load(
            version_dir, {t.name: len(t.labels) for t in self.tasks}, pooling=encoder.get("pooling", "mean")
        )
        self.max_length = manifest.max_length or 128

    @torch.inference_mode()
    def _logits(self, texts: list[str]) -> dict[str, np.ndarray]:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        logits = self.network(**inputs)
        return {task: values.float().numpy() for task, values in logits.items()}
