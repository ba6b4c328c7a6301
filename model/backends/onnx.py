"""ONNX Runtime backend: the exported transformer (all task heads in one pass), fp32 or dynamic int8.

Imports only `tokenizers`, `numpy` and `onnxruntime`, never torch: a serving process stays small (~100 MB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from model.artifact import ENCODER_DIR, ArtifactError, Manifest
from model.predictor import Predictor

ONNX_VARIANTS = ("int8", "fp32")


class OnnxPredictor(Predictor):
    def __init__(
        self, version_dir: Path, manifest: Manifest, batch_size: int = 32, variant: str = "int8",
        threads: int | None = None, graph_root: Path | None = None, spin: bool = True,
    ):
        """`graph_root` (default: the version directory) is where the export's files are read from.

        `spin=False` stops ONNX Runtime's worker threads from busy-waiting between runs: slightly slower alone, but
        they no longer take the CPU from a server's event loop on a small machine.
        """
        super().__init__(version_dir, manifest, batch_size)
        export = getattr(manifest, "onnx", None) or {}
        if variant not in ONNX_VARIANTS or variant not in export.get("files", {}):
            raise ArtifactError(f"{version_dir}: no ONNX {variant} export (run `triage-train export --model ...`)")
        self.backend = f"onnx-{variant}"
        self.tokenizer = Tokenizer.from_file(str(version_dir / ENCODER_DIR / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=manifest.max_length or 128)
        self.tokenizer.no_padding()  # each batch is padded to its own longest post in `_run`
        self.pad_id = export["pad_id"]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str((graph_root or version_dir) / export["files"][variant]), options, providers=["CPUExecutionProvider"]
        )
        self.outputs = [output.name for output in self.session.get_outputs()]

    def _encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, tokenised once: batches are then sorted by token count (measured: 4% padding
        against 29% when sorted by characters, see BENCHMARKS.md)."""
        return [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]

    def _logits(self, texts: list[str]) -> dict[str, np.ndarray]:
        return self._run(self._encode(texts))

    def _run(self, batch: list[list[int]]) -> dict[str, np.ndarray]:
        longest = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), longest), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        values = self.session.run(self.outputs, {"input_ids": input_ids, "attention_mask": attention_mask})
        return {
            name.removeprefix("logits_"): logits.astype(np.float64)
            for name, logits in zip(self.outputs, values, strict=True)
        }
