"""`triage-train export`: add ONNX graphs (fp32 and dynamic int8) of a transformer artifact, with measured parity.

The exported graph runs the encoder and every task head in one pass. The int8 copy is quantised from a smoothed
graph (training/smoothing.py: the same function, with activation outliers moved into the weights), calibrated on
the model's training texts. Parity against eager PyTorch is measured on other real texts (by default the validation
files named in the manifest): argmax agreement per task and the largest calibrated-probability difference. Files are
written first and the manifest last, so a failed export leaves the artifact as it was.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer

from model.artifact import ENCODER_DIR, ONNX_DIR, ArtifactError, Manifest, load_manifest, write_manifest
from model.backends.onnx import OnnxPredictor
from model.multitask import MultiTaskModel
from model.predictor import Predictor, load_predictor
from training.config import DatasetSpec
from training.datasets import load_datasets
from training.quantize import quantise, rank_by_sensitivity
from training.smoothing import DEFAULT_ALPHA, smooth_linears

OPSET = 17
FP32_FILE = f"{ONNX_DIR}/model.onnx"
INT8_FILE = f"{ONNX_DIR}/model.int8.onnx"
SMOOTHED_FILE = "smoothed.onnx"  # scratch: the smoothed fp32 graph the int8 copy is quantised from
MAX_CALIBRATION_TEXTS = 4096
MAX_SENSITIVITY_TEXTS = 1024  # calibration texts that rank matmuls for the fp32 fallback (one int8 pass per matmul)
DEFAULT_MAX_FP32_FALLBACK = 4


class ExportFailed(Exception):
    """The export ran but its result is not good enough to serve (parity under the bar)."""


class _AllHeads(nn.Module):
    """input_ids, attention_mask -> one logits tensor per task, in manifest order."""

    def __init__(self, network: MultiTaskModel, tasks: list[str]):
        super().__init__()
        self.network = network
        self.tasks = tasks

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.network(input_ids, attention_mask)
        return tuple(logits[task] for task in self.tasks)


def export_graph(version_dir: Path, manifest: Manifest, target: Path,
                  smoothing: tuple[float, list[str]] | None = None) -> list[str]:
    """Trace the model to `target`; with `smoothing` (alpha, calibration texts), smooth it first.

    Returns the names of the smoothed layers (none without smoothing)."""
    tasks = [t.name for t in manifest.tasks]
    encoder = manifest.encoder or {}
    network = MultiTaskModel.load(version_dir, {t.name: len(t.labels) for t in manifest.tasks},
                                  pooling=encoder.get("pooling", "mean"))
    tokenizer = AutoTokenizer.from_pretrained(version_dir / ENCODER_DIR)
    smoothed: list[str] = []
    if smoothing:
        alpha, texts = smoothing
        smoothed = smooth_linears(network, tokenizer, texts, alpha=alpha, max_length=manifest.max_length or 128)
    sample = tokenizer(["a short post", "a somewhat longer post to give the graph two lengths"],
                       padding=True, return_tensors="pt")
    outputs = [f"logits_{task}" for task in tasks]
    with warnings.catch_warnings():
        # Tracer notes about attention-mask branches and index ops: expected for this graph; parity checks the result.
        warnings.simplefilter("ignore")
        _trace(network, tasks, sample, outputs, target)
    return smoothed


def _trace(network: MultiTaskModel, tasks: list[str], sample: Any, outputs: list[str], target: Path) -> None:
    torch.onnx.export(
        _AllHeads(network, tasks).eval(),
        (sample["input_ids"], sample["attention_mask"]),
        str(target),
        input_names=["input_ids", "attention_mask"],
        output_names=outputs,
        dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
        | {name: {0: "batch"} for name in outputs},
        opset_version=OPSET,
        dynamo=False,  # the legacy exporter writes one self-contained file, and ran slightly faster here
    )


def parity(reference: Predictor, candidate: Predictor, texts: list[str]) -> dict[str, dict[str, float]]:
    """Per task: share of texts where both predict the same label, and the largest probability difference."""
    expected, actual = reference.predict_proba(texts), candidate.predict_proba(texts)
    return {
        task: {
            "agreement": float(np.mean(expected[task].argmax(1) == actual[task].argmax(1))),
            "max_prob_diff": float(np.abs(expected[task] - actual[task]).max()),
        }
        for task in expected
    }


def _texts(manifest: Manifest, data: list[Path] | None, split: str, option: str) -> tuple[list[str], list[str]]:
    """Texts of `data`, or else of the manifest's `split` files; with the file names they came from."""
    if not data:
        data = [Path(d["path"]) for d in manifest.data.get(split) or []]
        if not data:
            raise ArtifactError(f"the manifest names no {split} file: pass {option} FILE")
        missing = [str(p) for p in data if not p.is_file()]
        if missing:
            raise ArtifactError(f"{split} data named in the manifest is not here: {missing}; pass {option} FILE")
    columns = manifest.config.get("columns", {})
    datasets = load_datasets([DatasetSpec(path=p) for p in data], manifest.schema_, columns)
    return [e.post.text for d in datasets for e in d.examples], [str(p) for p in data]


def run_export(
    model: Path,
    data: list[Path] | None = None,
    min_int8_agreement: float = 0.99,
    require_int8: bool = True,
    smooth_alpha: float = DEFAULT_ALPHA,
    calibration: list[Path] | None = None,
    max_fp32_fallback: int = DEFAULT_MAX_FP32_FALLBACK,
    gate_tasks: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Export fp32 and int8 graphs, measure parity against eager PyTorch, then record them in the manifest.

    The int8 copy is quantised from a graph smoothed with `smooth_alpha` (0: no smoothing) on `calibration` texts
    (default: the manifest's training files, at most MAX_CALIBRATION_TEXTS). When its argmax agreement on any task is
    under `min_int8_agreement`, up to `max_fp32_fallback` of its matmuls are kept in fp32, most sensitive first
    (ranked on the calibration texts, training/quantize.py), one more at a time until it passes. An int8 copy that
    still misses the bar is never added: with `require_int8` that fails the export (ExportFailed, artifact
    unchanged); without it, only the fp32 graph is added and the rejected int8 parity is recorded.
    `gate_tasks` limits the bar, and the fallback's ranking, to those tasks (default: every task), for a model whose
    other heads only helped training (auxiliary tasks): every head's parity is still measured and recorded.
    """
    version_dir, manifest = load_manifest(model)
    if manifest.backend != "transformer":
        raise ArtifactError(f"{version_dir}: only transformer models export to ONNX (this one is {manifest.backend})")
    gated = gated_tasks(manifest, gate_tasks)
    texts, sources = _texts(manifest, data, "validation", "--data")

    @functools.cache
    def calibration_set() -> tuple[list[str], list[str]]:
        """(texts, their files), read only when smoothing or the fp32 fallback needs them."""
        texts, sources = _texts(manifest, calibration, "train", "--calibration")
        return texts[:MAX_CALIBRATION_TEXTS], sources

    smoothing = (smooth_alpha, calibration_set()[0]) if smooth_alpha else None
    tokenizer = AutoTokenizer.from_pretrained(version_dir / ENCODER_DIR)
    with tempfile.TemporaryDirectory(dir=version_dir.parent) as scratch:
        staged = Path(scratch)
        (staged / ONNX_DIR).mkdir()
        started = time.perf_counter()
        export_graph(version_dir, manifest, staged / FP32_FILE)
        smoothed = export_graph(version_dir, manifest, staged / SMOOTHED_FILE, smoothing) if smoothing else []
        int8_source = staged / (SMOOTHED_FILE if smoothing else FP32_FILE)
        quantise(int8_source, staged / INT8_FILE)
        log(f"exported and quantised in {time.perf_counter() - started:.1f} s; measuring parity on {len(texts)} texts")
        export: dict[str, Any] = {
            "files": {"fp32": FP32_FILE, "int8": INT8_FILE},
            "opset": OPSET,
            "quantization": "dynamic int8, per-channel weights"
            + (f", smoothed activations (alpha {smooth_alpha})" if smoothing else ""),
            "pad_id": tokenizer.pad_token_id,
            "pad_token": tokenizer.pad_token,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if smoothing:
            export["smoothing"] = {"alpha": smooth_alpha, "layers": len(smoothed), "calibration": calibration_set()[1],
                                   "calibration_texts": len(smoothing[1])}

        def staged_graph(path: str, variant: str = "int8") -> OnnxPredictor:
            trial = manifest.model_copy(update={"onnx": export | {"files": {variant: path}}})
            return OnnxPredictor(version_dir, trial, variant=variant, graph_root=staged)

        eager = load_predictor(version_dir, backend="torch")
        results = {variant: parity(eager, staged_graph(export["files"][variant], variant), texts)
                   for variant in ("fp32", "int8")}
        log_parity("fp32", results["fp32"], log)
        log_parity("int8", results["int8"], log)
        if worst_agreement(results["int8"], gated) < min_int8_agreement and max_fp32_fallback:
            ranking_texts = calibration_set()[0][:MAX_SENSITIVITY_TEXTS]
            fp32_probabilities = staged_graph(FP32_FILE, "fp32").predict_proba(ranking_texts)
            ranking = rank_by_sensitivity(  # on the gated tasks' error: the others' cannot fail the bar
                int8_source, staged / INT8_FILE, staged,
                lambda graph: staged_graph(graph.name).predict_proba(ranking_texts),
                {task: fp32_probabilities[task] for task in gated}, log)
            kept: list[str] = []
            for node, _error in ranking[:max_fp32_fallback]:
                kept.append(node)
                quantise(int8_source, staged / INT8_FILE, kept)
                results["int8"] = parity(eager, staged_graph(INT8_FILE), texts)
                log_parity(f"int8 with {len(kept)} fp32 matmul{'s' if len(kept) > 1 else ''}", results["int8"], log)
                if worst_agreement(results["int8"], gated) >= min_int8_agreement:
                    break
            export["fp32_fallback"] = {"matmuls": kept, "of": len(ranking), "ranked_on": calibration_set()[1],
                                       "ranking_texts": len(ranking_texts)}
            export["quantization"] += f", {len(kept)} of {len(ranking)} matmuls kept fp32"
        export["parity"] = {"data": sources, "texts": len(texts), "reference": "torch fp32", **results}
        if gate_tasks:
            export["parity_gate_tasks"] = gated
        worst = worst_agreement(results["int8"], gated)
        if worst < min_int8_agreement:
            message = f"int8 argmax agreement {worst:.4f} is under {min_int8_agreement:.2f}"
            if gate_tasks:
                message += f" on {', '.join(gated)}"
            if "fp32_fallback" in export:
                message += f" with {len(export['fp32_fallback']['matmuls'])} matmuls kept fp32"
            if require_int8:
                raise ExportFailed(f"{message}: the artifact was left unchanged")
            log(f"{message}: the int8 copy is NOT added; serving will use the fp32 ONNX graph")
            (staged / INT8_FILE).unlink()
            del export["files"]["int8"]
            export["int8_rejected"] = {"reason": message, "min_agreement": min_int8_agreement}
        shutil.rmtree(version_dir / ONNX_DIR, ignore_errors=True)
        shutil.move(str(staged / ONNX_DIR), str(version_dir / ONNX_DIR))
    write_manifest(version_dir, manifest.model_copy(update={"onnx": export}))
    return export


def gated_tasks(manifest: Manifest, gate_tasks: Sequence[str] | None) -> list[str]:
    """The tasks whose int8 parity decides the export: `gate_tasks`, checked against the model's, or all of them."""
    names = [task.name for task in manifest.tasks]
    unknown = sorted(set(gate_tasks or ()) - set(names))
    if unknown:
        raise ArtifactError(f"no task {', '.join(unknown)} in {manifest.name} (its tasks: {', '.join(names)})")
    return [name for name in names if name in gate_tasks] if gate_tasks else names


def worst_agreement(results: dict[str, dict[str, float]], tasks: Sequence[str] | None = None) -> float:
    """The lowest argmax agreement over `tasks` (default: all): what the parity bar is compared with."""
    return min(r["agreement"] for task, r in results.items() if tasks is None or task in tasks)


def log_parity(variant: str, results: dict[str, dict[str, float]], log: Callable[[str], None]) -> None:
    log(f"{variant} parity: " + ", ".join(
        f"{task} {r['agreement']:.4f} (max diff {r['max_prob_diff']:.3f})" for task, r in results.items()))
