"""Dynamic int8 quantisation, and the fp32 fallback that keeps an int8 copy within the parity bar.

Most of a transformer's int8 error comes from a few matrix multiplications (on the default model: the feed-forward
layers of the first encoder layers). When the plain int8 copy misses the parity bar, the export keeps the most
sensitive ones in fp32 and quantises the rest, which keeps most of int8's speed (the accuracy-aware "fallback" of
quantisation toolkits).

Sensitivity is ranked on calibration texts (by default the model's training texts), never on the texts the parity
gate measures: for each quantisable matmul, the int8 graph is built with only that node left in fp32 and its
probabilities compared with the fp32 graph's; the node whose fp32 fallback removes the most error ranks first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

# Gemm nodes (the task heads) are quantised too, but renamed on the way, so they cannot be kept fp32 by name; they are
# small and were never among the sensitive nodes measured.
FALLBACK_OPS = ("MatMul",)


def quantise(source: Path, target: Path, keep_fp32: Sequence[str] = ()) -> None:
    """Dynamic int8 with per-channel weight scales (measured the best of the plain dynamic settings, see the issue
    notes); the nodes named in `keep_fp32` stay fp32."""
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     nodes_to_exclude=list(keep_fp32))


def quantised_matmuls(source: Path, int8: Path) -> list[str]:
    """Names of the MatMul nodes of `source` that its int8 copy `int8` quantised, in graph order.

    Read from the result rather than predicted: which matmuls dynamic quantisation takes depends on the graph
    (with weights: always; between two activations, e.g. attention scores: in some exports)."""
    def fp32_matmuls(graph: Path) -> list[str]:
        nodes = onnx.load(str(graph), load_external_data=False).graph.node
        return [node.name for node in nodes if node.op_type in FALLBACK_OPS]

    still_fp32 = set(fp32_matmuls(int8))
    return [name for name in fp32_matmuls(source) if name not in still_fp32]


def kept_fp32(export: Mapping[str, Any]) -> list[str]:
    """The matmuls a manifest's `onnx` section says its int8 graph keeps in fp32 (none when int8 was not added)."""
    return export.get("fp32_fallback", {}).get("matmuls", []) if "int8" in export.get("files", {}) else []


def probability_error(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> float:
    """Mean over texts of the L1 distance between the two probability vectors, summed over `reference`'s tasks."""
    return float(sum(np.abs(reference[task] - candidate[task]).sum(1).mean() for task in reference))


def rank_by_sensitivity(
    source: Path,
    int8: Path,
    scratch: Path,
    score: Callable[[Path], dict[str, np.ndarray]],
    reference: dict[str, np.ndarray],
    log: Callable[[str], None] = print,
) -> list[tuple[str, float]]:
    """The matmuls of `source` that its int8 copy `int8` quantised, most sensitive first, each with the error left
    when that node alone stays fp32.

    `score(graph)` gives an int8 graph's probabilities on the calibration texts; `reference` is the fp32 graph's on
    the same texts, for the tasks whose error counts (the others are ignored). Builds one int8 graph per node in
    `scratch`.
    """
    nodes = quantised_matmuls(source, int8)
    started, errors = time.perf_counter(), []
    log(f"ranking {len(nodes)} matmuls by int8 sensitivity")
    for done, node in enumerate(nodes, start=1):
        trial = scratch / "sensitivity.int8.onnx"
        quantise(source, trial, [node])
        errors.append((node, probability_error(reference, score(trial))))
        if done % 10 == 0 or done == len(nodes):
            log(f"  {done}/{len(nodes)} ranked ({time.perf_counter() - started:.0f} s)")
    return sorted(errors, key=lambda pair: pair[1])
