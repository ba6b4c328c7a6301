"""The predictor contract: posts (or texts) in, each task's calibrated probabilities and label out.

Every backend normalises with `model.text.normalise`, sorts inputs by length (in tokens where the backend tokenises
up front, else in characters), batches them (padding per batch in the transformer), applies the manifest's per-task
temperature, and returns results in input order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from model.artifact import ArtifactError, Manifest, load_manifest
from model.calibration import softmax
from model.posts import Post
from model.schema import TaskSpec
from model.text import normalise

Distribution = dict[str, dict[str, float]]  # {task: {label: probability}} for one post


def distributions(tasks: Sequence[TaskSpec], probabilities: dict[str, np.ndarray]) -> list[Distribution]:
    """Per-task probability arrays (rows = posts) as one {task: {label: probability}} per post."""
    rows = {task.name: probabilities[task.name].tolist() for task in tasks}
    return [
        {task.name: dict(zip(task.labels, rows[task.name][i], strict=True)) for task in tasks}
        for i in range(len(next(iter(rows.values()), [])))
    ]


@dataclass(frozen=True)
class Prediction:
    id: str
    labels: dict[str, str]
    probabilities: dict[str, dict[str, float]]


class Predictor(ABC):
    backend: str = ""

    def __init__(self, version_dir: Path, manifest: Manifest, batch_size: int = 32):
        self.version_dir = version_dir
        self.manifest = manifest
        self.batch_size = batch_size
        self.tasks = manifest.tasks

    @abstractmethod
    def _logits(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Raw logits per task for one batch of already normalised texts."""

    def _encode(self, texts: list[str]) -> list[Any]:
        """The model's inputs for normalised texts, one each; by default the texts themselves.

        Batches are sorted by len() of these: characters by default, tokens where a backend returns token ids."""
        return texts

    def _run(self, batch: list[Any]) -> dict[str, np.ndarray]:
        """Raw logits per task for one batch of `_encode` outputs."""
        return self._logits(batch)

    def predict_logits(self, texts: Sequence[str], progress: bool = False) -> dict[str, np.ndarray]:
        """Uncalibrated logits per task, in input order (length-sorted batches inside)."""
        return self.logits_of_normalised([normalise(t) for t in texts], progress)

    def logits_of_normalised(self, normalised: Sequence[str], progress: bool = False) -> dict[str, np.ndarray]:
        """As predict_logits, for texts already passed through `normalise` (callers that cache by that key)."""
        encoded = self._encode(list(normalised))
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = {t.name: np.zeros((len(normalised), len(t.labels)), dtype=np.float64) for t in self.tasks}
        starts = range(0, len(order), self.batch_size)
        for start in tqdm(starts, desc="predicting", unit="batch", disable=not progress, leave=False):
            chunk = order[start : start + self.batch_size]
            logits = self._run([encoded[i] for i in chunk])
            for task, values in logits.items():
                out[task][chunk] = values
        return out

    def calibrate(self, logits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Logits to probabilities with each task's temperature from the manifest."""
        return {task: softmax(values, self.manifest.calibration.get(task, 1.0)) for task, values in logits.items()}

    def predict_proba(self, texts: Sequence[str], progress: bool = False) -> dict[str, np.ndarray]:
        """Calibrated probabilities per task: arrays of shape (len(texts), len(labels))."""
        return self.calibrate(self.predict_logits(texts, progress))

    def predict(self, posts: Sequence[Post], progress: bool = False) -> list[Prediction]:
        probabilities = self.predict_proba([p.text for p in posts], progress)
        return [
            Prediction(id=post.id, labels={task: max(d, key=d.__getitem__) for task, d in probs.items()},
                       probabilities=probs)
            for post, probs in zip(posts, distributions(self.tasks, probabilities), strict=True)
        ]


BACKENDS = ("auto", "linear", "torch", "onnx-fp32", "onnx-int8")


def load_predictor(
    path: str | Path, backend: str = "auto", batch_size: int = 32, threads: int | None = None, spin: bool = True
) -> Predictor:
    """Load any artifact (version or NAME directory) after verifying its checksums.

    backend "auto" serves the fastest the artifact holds: ONNX int8, else ONNX fp32, else eager torch (or linear).
    `threads` and `spin` tune ONNX Runtime (see OnnxPredictor).
    """
    if backend not in BACKENDS:
        raise ArtifactError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    version_dir, manifest = load_manifest(path, verify=True)
    if manifest.backend == "linear":
        if backend not in ("auto", "linear"):
            raise ArtifactError(f"{version_dir}: a linear model cannot be served by the {backend} backend")
        from model.backends.linear import LinearPredictor

        return LinearPredictor(version_dir, manifest, batch_size=max(batch_size, 256))
    if backend == "linear":
        raise ArtifactError(f"{version_dir}: a transformer model cannot be served by the linear backend")
    if backend == "auto":
        exported = (getattr(manifest, "onnx", None) or {}).get("files", {})
        backend = "onnx-int8" if "int8" in exported else "onnx-fp32" if "fp32" in exported else "torch"
    if backend.startswith("onnx-"):
        from model.backends.onnx import OnnxPredictor

        return OnnxPredictor(version_dir, manifest, batch_size=batch_size, variant=backend.removeprefix("onnx-"),
                             threads=threads, spin=spin)
    from model.backends.transformer import TransformerPredictor

    return TransformerPredictor(version_dir, manifest, batch_size=batch_size)
