"""What the hardware and ONNX Runtime offer one exported transformer (issue 7, item 2). Run on an idle machine.

    .venv/bin/python bench/runtime.py --model models/triage-default [--shared-data ../shared/data] [--seconds 5]
    .venv/bin/python bench/runtime.py --model models/triage-default --quick    # checks the script works (< 1-2 min)

In one run, all on the bare model (no service), int8 at batch 32 unless said otherwise:
1. token lengths of real posts (the artifact's tokenizer on normalised texts, special tokens included, no
   truncation): n, mean, p50/p90/p95/p99, max and the share over 32/48/64/96/128 tokens, per data set;
2. max length 128/96/64/48: posts/s and argmax agreement per task with max length 128, and the max length the
   distribution justifies;
3. length-bucketed batches (sorted by tokens, as the ONNX predictor does, or by characters) against arrival order:
   posts/s and padding;
4. ONNX Runtime session settings: threads, spinning, execution mode, graph optimisation level;
5. static int8 (QDQ, per-channel, MinMax calibration on training texts) against dynamic int8, each on the plain and
   on the smoothed fp32 graph: argmax agreement with ONNX fp32 on data/brand_posts/validation.jsonl, and posts/s;
6. the CPU's int8 instructions (VNNI, AMX) and a MatMulInteger-vs-MatMul micro-benchmark.

The int8 graph of items 2-4 is the one the artifact serves or, when the export refused it (parity), a temporary one
exported in a scratch copy exactly as `triage-train export` builds it. Writes bench/results/runtime.json and
regenerates BENCHMARKS.md. `--quick` (0.5 s per figure, 128 texts, small calibration sets) writes its JSON to the
temporary directory and leaves BENCHMARKS.md alone: its figures are not measurements.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnxruntime.quantization import (  # noqa: E402
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from tokenizers import Tokenizer  # noqa: E402

from bench.quality import RESULTS as QUALITY_RESULTS  # noqa: E402
from bench.quality import write_report  # noqa: E402
from bench.runtime_report import RUNTIME_RESULTS  # noqa: E402
from bench.speed import exported_copy, throughput  # noqa: E402
from model.artifact import ENCODER_DIR, Manifest, load_manifest  # noqa: E402
from model.backends.onnx import OnnxPredictor  # noqa: E402
from model.schema import LabelSchema  # noqa: E402
from model.text import normalise  # noqa: E402
from training.config import DatasetSpec  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.export import MAX_CALIBRATION_TEXTS, export_graph  # noqa: E402
from training.paths import shared_data_dir  # noqa: E402
from training.provenance import git_commit  # noqa: E402
from training.smoothing import DEFAULT_ALPHA  # noqa: E402

TRAIN = ROOT / "data" / "brand_posts" / "train.jsonl"
VALIDATION = ROOT / "data" / "brand_posts" / "validation.jsonl"
BATCH = 32
ROUNDS = 3  # interleaved timing rounds per comparison (see `interleaved`)
MAX_LENGTHS = (128, 96, 64, 48)
OVER = (32, 48, 64, 96, 128)
TRUNCATION_BUDGET = 0.01  # a max length is justified when at most this share of every real set is longer
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
MICRO_SHAPE = (2048, 384, 1536)  # BERT-small FFN: (batch x tokens, hidden) x (hidden, 4 x hidden)
# Static int8 variants: every MatMul quantised (attention products too), or only the MatMuls with constant weights
# (as dynamic int8 does; quantize_static ignores MatMulConstBOnly in QDQ format, so the others are excluded by name).
# A failed attempt is retried once with FALLBACK extra options.
STATIC_VARIANTS = {"static int8": False, "static int8, weight MatMuls only": True}  # name: weights only
FALLBACK = {"ActivationSymmetric": True, "WeightSymmetric": True}
LEVELS = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
          "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
ORT_SETTINGS: dict[str, dict[str, Any]] = {
    "defaults (OnnxPredictor's)": {},
    "intra_op_num_threads 1": {"threads": 1},
    "intra_op_num_threads 2": {"threads": 2},
    "allow_spinning off": {"spinning": False},
    "execution mode parallel": {"parallel": True},
    "graph optimisation basic": {"level": "basic"},
    "graph optimisation extended": {"level": "extended"},
}


@dataclass(frozen=True)
class Sizes:
    seconds: float
    sample: int  # timing texts
    validation: int  # agreement texts (item 5)
    static_calibration: int  # texts for quantize_static's MinMax ranges
    smoothing_calibration: int  # texts for the smoothing scales


def log(message: str) -> None:
    print(message, flush=True)


# ---- texts ---------------------------------------------------------------------------------------------------------
def labelled_texts(path: Path, schema: LabelSchema) -> list[str]:
    return [e.post.text for e in load_dataset(DatasetSpec(path=path), schema).examples]


def parquet_texts(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [str(t) for t in pq.read_table(path, columns=["text"]).column("text").to_pylist()]


def complaints_texts(path: Path) -> list[str]:
    import pandas as pd  # the file has no header (see its SOURCE.md)

    frame = pd.read_csv(path, header=None, names=["tweet_id", "text", "complaint", "domain"], dtype={"tweet_id": str})
    return [str(t) for t in frame["text"]]


def corpora(shared: Path, schema: LabelSchema) -> dict[str, list[str] | str]:
    """{set name: texts, or the reason it was skipped}."""
    found: dict[str, list[str] | str] = {
        "data/brand_posts (train + validation)": labelled_texts(TRAIN, schema) + labelled_texts(VALIDATION, schema)}
    readers: dict[str, tuple[Path, Callable[[Path], list[str]]]] = {
        "brand_intent validation": (shared / "brand_intent" / "validation.jsonl",
                                    lambda p: labelled_texts(p, schema)),
        "TweetEval sentiment test": (shared / "tweeteval" / "sentiment" / "hf_parquet" / "test.parquet",
                                     parquet_texts),
        "complaints_preotiuc2019": (shared / "complaints_preotiuc2019" / "complaints-data.csv", complaints_texts),
    }
    for name, (path, read) in readers.items():
        found[name] = read(path) if path.is_file() else f"skipped: {path} not found"
        if isinstance(found[name], str):
            log(f"token lengths: {name} {found[name]}")
    return found


def timing_sample(shared: Path, schema: LabelSchema, size: int) -> tuple[str, list[str]]:
    """A fixed, shuffled sample of real texts: brand_intent (validation, then train), else the project's own data."""
    brand_intent = [shared / "brand_intent" / f"{split}.jsonl" for split in ("validation", "train")]
    if brand_intent[0].is_file():
        paths = [p for p in brand_intent if p.is_file()]
    else:
        log(f"timing sample: {brand_intent[0]} not found; using data/brand_posts")
        paths = [VALIDATION, TRAIN]
    texts: list[str] = []
    for path in paths:
        texts += labelled_texts(path, schema)
    texts = texts[:size]
    random.Random(13).shuffle(texts)
    return " + ".join(str(p.relative_to(p.parent.parent)) for p in paths), texts


# ---- 1. token lengths ----------------------------------------------------------------------------------------------
def bare_tokenizer(version_dir: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(version_dir / ENCODER_DIR / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def token_counts(tokenizer: Tokenizer, texts: Sequence[str]) -> np.ndarray:
    """Tokens per text as the model sees it (normalised, special tokens included, untruncated)."""
    return np.array([len(e.ids) for e in tokenizer.encode_batch([normalise(t) for t in texts])], dtype=np.int64)


def length_stats(counts: np.ndarray) -> dict[str, Any]:
    quantiles = np.percentile(counts, [50, 90, 95, 99])
    return {"n": len(counts), "mean": float(counts.mean()),
            **{f"p{q}": float(v) for q, v in zip((50, 90, 95, 99), quantiles, strict=True)},
            "max": int(counts.max()), "share_over": {str(n): float(np.mean(counts > n)) for n in OVER}}


def justified_max_length(sets: dict[str, dict[str, Any]]) -> int | None:
    """The smallest candidate max length that truncates at most TRUNCATION_BUDGET of every measured set."""
    measured = [s for s in sets.values() if "share_over" in s]
    for length in sorted(MAX_LENGTHS):
        if measured and all(s["share_over"][str(length)] <= TRUNCATION_BUDGET for s in measured):
            return length
    return None


def token_lengths(tokenizer: Tokenizer, texts: dict[str, list[str] | str]) -> dict[str, Any]:
    sets = {name: length_stats(token_counts(tokenizer, found)) if isinstance(found, list) else {"skipped": found}
            for name, found in texts.items()}
    for name, stats in sets.items():
        if "n" in stats:
            log(f"token lengths {name:>38}: n {stats['n']:6d}  mean {stats['mean']:5.1f}  p50 {stats['p50']:4.0f}  "
                f"p95 {stats['p95']:4.0f}  p99 {stats['p99']:4.0f}  max {stats['max']:4d}  "
                + "  ".join(f">{n} {100 * s:4.1f}%" for n, s in stats["share_over"].items()))
    justified = justified_max_length(sets)
    log(f"max length justified by the distribution (≤{100 * TRUNCATION_BUDGET:.0f}% truncated per set): {justified}")
    return {"sets": sets, "truncation_budget": TRUNCATION_BUDGET, "justified_max_length": justified}


# ---- timing helpers ------------------------------------------------------------------------------------------------
def rate(run: Callable[[], int], seconds: float) -> float:
    """Posts/s of `run` (which returns how many posts it did): one warm-up call, then calls for `seconds`."""
    run()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        done += run()
    return done / (time.perf_counter() - started)


def interleaved(measures: dict[str, Callable[[float], float]], seconds: float) -> dict[str, float]:
    """Median posts/s of each measure, run round-robin for ROUNDS rounds of seconds / ROUNDS each.

    This machine's speed drifts by 20% and more within minutes (shared cores): measured one after another, a
    comparison would mostly show the drift. Interleaved rounds expose every variant to the same drift.
    """
    rounds: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(ROUNDS):
        for name, measure in measures.items():
            rounds[name].append(measure(seconds / ROUNDS))
    return {name: float(np.median(values)) for name, values in rounds.items()}


def agreement(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> dict[str, float]:
    return {task: float(np.mean(reference[task].argmax(1) == candidate[task].argmax(1))) for task in reference}


def session_options(threads: int | None = None, spinning: bool = True, parallel: bool = False,
                    level: str = "all") -> ort.SessionOptions:
    """Session options; the defaults are OnnxPredictor's (what the service runs)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if parallel:
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    return options


def with_session(predictor: OnnxPredictor, graph: Path, options: ort.SessionOptions | None = None) -> OnnxPredictor:
    """A copy of `predictor` (same tokenizer, tasks, calibration) that runs `graph` with `options`."""
    other = copy.copy(predictor)
    other.session = ort.InferenceSession(str(graph), options or session_options(), providers=["CPUExecutionProvider"])
    other.outputs = [o.name for o in other.session.get_outputs()]
    return other


# ---- 2. max length -------------------------------------------------------------------------------------------------
def max_length_sweep(predictor: OnnxPredictor, texts: list[str], counts: np.ndarray, seconds: float) -> list[dict]:
    def at(length: int) -> Callable[[float], float]:
        def measure(duration: float) -> float:
            predictor.tokenizer.enable_truncation(max_length=length)
            return throughput(predictor, texts, BATCH, duration)

        return measure

    rows, reference = [], None
    try:
        for length in MAX_LENGTHS:
            predictor.tokenizer.enable_truncation(max_length=length)
            probs = predictor.predict_proba(texts)
            reference = probs if reference is None else reference
            agree = agreement(reference, probs)
            rows.append({"max_length": length, "truncated_share": float(np.mean(counts > length)),
                         "agreement": agree, "min_agreement": min(agree.values())})
        speeds = interleaved({str(length): at(length) for length in MAX_LENGTHS}, seconds * len(MAX_LENGTHS))
    finally:
        predictor.tokenizer.enable_truncation(max_length=predictor.manifest.max_length or 128)
    for row in rows:
        row["posts_per_s"] = speeds[str(row["max_length"])]
        log(f"max length {row['max_length']:3d}: {row['posts_per_s']:7.1f} posts/s  "
            f"truncated {100 * row['truncated_share']:4.1f}%  "
            f"agreement with 128 (worst task) {row['min_agreement']:.4f}")
    return rows


# ---- 3. length-bucketed batches ------------------------------------------------------------------------------------
def padding_fraction(counts: np.ndarray, batches: list[list[int]]) -> float:
    """Mean over batches of the share of padded positions (each batch padded to its longest text)."""
    shares = [1.0 - counts[b].sum() / (len(b) * counts[b].max()) for b in batches]
    return float(np.mean(shares))


def bucketing(predictor: OnnxPredictor, texts: list[str], counts: np.ndarray, seconds: float) -> dict[str, dict]:
    """Batches of BATCH in three orders: by token count (what the ONNX predictor does), by characters (what it did
    before, and what backends that tokenise per batch still do), and as the texts arrived."""
    normalised = [normalise(t) for t in texts]
    truncated = np.minimum(counts, predictor.manifest.max_length or 128)
    arrival = list(range(len(texts)))
    orders = {"sorted by tokens": sorted(arrival, key=lambda i: truncated[i]),
              "sorted by characters": sorted(arrival, key=lambda i: len(normalised[i])),
              "arrival order": arrival}
    predictor.batch_size = BATCH

    def timed_in(order: list[int]) -> Callable[[float], float]:
        def run() -> int:  # tokenising is part of the work, as in the predictor
            encoded = predictor._encode(normalised)
            for start in range(0, len(order), BATCH):
                predictor._run([encoded[i] for i in order[start : start + BATCH]])
            return len(order)

        return lambda duration: rate(run, duration)

    speeds = interleaved({name: timed_in(order) for name, order in orders.items()}, seconds * len(orders))
    result = {}
    for name, order in orders.items():
        batches = [order[s : s + BATCH] for s in range(0, len(order), BATCH)]
        result[name] = {"posts_per_s": speeds[name], "padding_fraction": padding_fraction(truncated, batches)}
        log(f"batches {name:>20}: {result[name]['posts_per_s']:7.1f} posts/s  "
            f"padding {100 * result[name]['padding_fraction']:4.1f}% per batch")
    return result


# ---- 4. ONNX Runtime settings --------------------------------------------------------------------------------------
def ort_settings(predictor: OnnxPredictor, graph: Path, texts: list[str], seconds: float) -> list[dict]:
    sessions = {name: with_session(predictor, graph, session_options(**settings))
                for name, settings in ORT_SETTINGS.items()}
    speeds = interleaved({name: (lambda duration, p=p: throughput(p, texts, BATCH, duration))
                          for name, p in sessions.items()}, seconds * len(sessions))
    rows = []
    for name, settings in ORT_SETTINGS.items():
        rows.append({"setting": name, "options": settings, "posts_per_s": speeds[name]})
        log(f"onnxruntime {name:>28}: {speeds[name]:7.1f} posts/s")
    return rows


# ---- 5. static against dynamic int8 --------------------------------------------------------------------------------
class TextReader(CalibrationDataReader):
    """Padded batches of normalised texts, as the predictor feeds them, for quantize_static's calibration."""

    def __init__(self, tokenizer: Tokenizer, texts: list[str], batch_size: int = BATCH):
        self.batches = iter([texts[s : s + batch_size] for s in range(0, len(texts), batch_size)])
        self.tokenizer = tokenizer

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        if batch is None:
            return None
        encodings = self.tokenizer.encode_batch([normalise(t) for t in batch])
        return {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64)}


def activation_matmuls(graph: Path) -> list[str]:
    """Names of the MatMul nodes whose second input is not a constant (the attention products)."""
    model = onnx.load(str(graph), load_external_data=False)
    constants = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] not in constants]


def static_int8(source: Path, target: Path, tokenizer: Tokenizer, texts: list[str],
                weights_only: bool) -> tuple[dict | None, list[str]]:
    """quantize_static, retried with FALLBACK extra options if it fails: (the extra options that worked, errors)."""
    excluded = activation_matmuls(source) if weights_only else []
    errors = []
    for extra in ({}, FALLBACK):
        try:
            quantize_static(str(source), str(target), TextReader(tokenizer, texts), quant_format=QuantFormat.QDQ,
                            per_channel=True, op_types_to_quantize=["MatMul"], activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                            nodes_to_exclude=excluded, extra_options=dict(extra))
            return extra, errors
        except Exception as error:  # recorded, not fatal: the other variants still get measured
            errors.append(f"extra_options {extra}: {type(error).__name__}: {error}".strip()[:2000])
            log(f"quantize_static failed with {errors[-1]}")
            traceback.print_exc()
    return None, errors


def build_variants(version_dir: Path, manifest: Manifest, fp32: Path, scratch: Path, tokenizer: Tokenizer,
                   sizes: Sizes) -> dict[str, dict[str, Any]]:
    """{name: {graph, method, smoothed, ...}}: fp32, and dynamic and static int8 of the plain and smoothed graphs."""
    train = labelled_texts(TRAIN, manifest.schema_)
    smoothed = scratch / "smoothed.onnx"
    export_graph(version_dir, manifest, smoothed, smoothing=(DEFAULT_ALPHA, train[: sizes.smoothing_calibration]))
    variants: dict[str, dict[str, Any]] = {"fp32": {"graph": fp32, "method": "none (reference)", "smoothed": False}}
    for label, source in (("", fp32), (", smoothed", smoothed)):
        stem = "smoothed" if label else "plain"
        dynamic = scratch / f"dynamic-{stem}.onnx"
        quantize_dynamic(str(source), str(dynamic), weight_type=QuantType.QInt8, per_channel=True)
        variants[f"dynamic int8{label}"] = {"graph": dynamic, "method": "dynamic, per-channel", "smoothed": bool(label)}
        for number, (name, weights_only) in enumerate(STATIC_VARIANTS.items()):
            static = scratch / f"static-{stem}-{number}.onnx"
            started = time.perf_counter()
            extra, errors = static_int8(source, static, tokenizer, train[: sizes.static_calibration], weights_only)
            variants[f"{name}{label}"] = {
                "graph": static if extra is not None else None, "smoothed": bool(label), "errors": errors,
                "method": "static QDQ, per-channel, MinMax", "weights_only": weights_only, "extra_options": extra,
                "quantize_seconds": time.perf_counter() - started}
    return variants


def quantization(predictor: OnnxPredictor, version_dir: Path, fp32: Path, scratch: Path, sample: list[str],
                 sizes: Sizes) -> dict[str, Any]:
    manifest = predictor.manifest
    validation = labelled_texts(VALIDATION, manifest.schema_)[: sizes.validation]
    calibration_tokenizer = copy.deepcopy(predictor.tokenizer)  # the predictor pads per batch itself; this one pads
    calibration_tokenizer.enable_padding(pad_id=predictor.pad_id)
    variants = build_variants(version_dir, manifest, fp32, scratch, calibration_tokenizer, sizes)
    reference = with_session(predictor, fp32).predict_proba(validation)
    rows, candidates = [], {}
    for name, variant in variants.items():
        row = {"variant": name, **{k: v for k, v in variant.items() if k != "graph"}}
        if variant["graph"] is not None:
            candidates[name] = with_session(predictor, variant["graph"])
            row["agreement"] = agreement(reference, candidates[name].predict_proba(validation))
            row["min_agreement"] = min(row["agreement"].values())
        rows.append(row)
    speeds = interleaved({name: (lambda duration, p=p: throughput(p, sample, BATCH, duration))
                          for name, p in candidates.items()}, sizes.seconds * len(candidates))
    for row in rows:
        if row["variant"] in speeds:
            row["posts_per_s"] = speeds[row["variant"]]
            log(f"{row['variant']:>24}: {row['posts_per_s']:7.1f} posts/s  agreement with fp32 (worst task) "
                f"{row['min_agreement']:.4f}")
    return {"reference": "ONNX fp32", "agreement_data": str(VALIDATION.relative_to(ROOT)),
            "agreement_texts": len(validation), "calibration_data": str(TRAIN.relative_to(ROOT)),
            "static_calibration_texts": sizes.static_calibration,
            "smoothing": {"alpha": DEFAULT_ALPHA, "calibration_texts": sizes.smoothing_calibration},
            "variants": rows}


# ---- 6. CPU int8 instructions --------------------------------------------------------------------------------------
def cpu_info() -> dict[str, Any]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name") or platform.processor() or platform.machine(),
            "logical_cores": os.cpu_count(), "flags": {flag: flag in flags for flag in CPU_FLAGS}}


def matmul_model(int8: bool, m: int, k: int, n: int) -> onnx.ModelProto:
    """One MatMulInteger (uint8 activations x int8 weights, as dynamic quantisation emits) or one fp32 MatMul."""
    rng = np.random.default_rng(0)
    if int8:
        weight = numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "B")
        zero = numpy_helper.from_array(np.array(128, dtype=np.uint8), "a_zero")
        node = helper.make_node("MatMulInteger", ["A", "B", "a_zero"], ["Y"])
        inputs, output, initializers = TensorProto.UINT8, TensorProto.INT32, [weight, zero]
    else:
        weight = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "B")
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        inputs, output, initializers = TensorProto.FLOAT, TensorProto.FLOAT, [weight]
    graph = helper.make_graph([node], "matmul", [helper.make_tensor_value_info("A", inputs, [m, k])],
                              [helper.make_tensor_value_info("Y", output, [m, n])], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def gflops(model: onnx.ModelProto, m: int, k: int, n: int, seconds: float) -> float:
    session = ort.InferenceSession(model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    int8 = model.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
    a = rng.integers(0, 256, (m, k), dtype=np.uint8) if int8 else rng.standard_normal((m, k)).astype(np.float32)
    runs = rate(lambda: len(session.run(None, {"A": a})), seconds)
    return runs * 2 * m * k * n / 1e9


def optimised_ops(graph: Path, scratch: Path) -> dict[str, int]:
    """Operator counts of `graph` after ONNX Runtime's optimisations (what actually runs), Constant nodes left out."""
    options = session_options()
    options.optimized_model_filepath = str(scratch / "optimised.onnx")
    ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    nodes = onnx.load(str(scratch / "optimised.onnx"), load_external_data=False).graph.node
    counts = Counter(f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in nodes if n.op_type != "Constant")
    return dict(counts.most_common())


def int8_instructions(int8_graph: Path, scratch: Path, seconds: float) -> dict[str, Any]:
    m, k, n = MICRO_SHAPE
    fp32, int8 = gflops(matmul_model(False, m, k, n), m, k, n, seconds), gflops(matmul_model(True, m, k, n), m, k, n,
                                                                                  seconds)
    result = {"cpu": cpu_info(), "onnxruntime": ort.__version__, "providers": ort.get_available_providers(),
              "micro_benchmark": {"shape": [m, k, n], "fp32_matmul_gflops": fp32, "int8_matmulinteger_gflops": int8,
                                  "int8_over_fp32": int8 / fp32},
              "int8_graph_ops_after_optimisation": optimised_ops(int8_graph, scratch)}
    flags = ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in result["cpu"]["flags"].items())
    log(f"CPU {result['cpu']['model']}: {flags}")
    log(f"MatMul {m}x{k} x {k}x{n}: fp32 {fp32:6.1f} GFLOP/s, int8 MatMulInteger {int8:6.1f} GOP/s "
        f"({int8 / fp32:.2f}x), onnxruntime {ort.__version__}")
    return result


# ---- the int8 graph the service would run --------------------------------------------------------------------------
def quick_files(scratch: Path, lines: int) -> tuple[Path, Path]:
    """The first `lines` rows of the project's train and validation files (--quick's small export)."""
    paths = []
    for source in (TRAIN, VALIDATION):
        target = scratch / f"quick-{source.name}"
        target.write_text("".join(source.read_text(encoding="utf-8").splitlines(keepends=True)[:lines]),
                          encoding="utf-8")
        paths.append(target)
    return paths[0], paths[1]


def served_int8(model: Path, scratch: Path, quick: bool) -> tuple[Path, str]:
    """The int8 graph the artifact serves, or one exported into a scratch copy as the export builds it."""
    version_dir, manifest = load_manifest(model)
    export = getattr(manifest, "onnx", None) or {}
    if "int8" in export.get("files", {}):
        return version_dir / export["files"]["int8"], f"served int8 ({export.get('quantization', 'dynamic')})"
    train_files = [Path(d["path"]) for d in manifest.data.get("train") or []]
    calibration = None if train_files and all(p.is_file() for p in train_files) else [TRAIN]
    data = [VALIDATION]
    if quick:
        calibration_file, data_file = quick_files(scratch, 128)
        calibration, data = [calibration_file], [data_file]
    log("the artifact serves no int8 graph; exporting a temporary one (as `triage-train export` does)")
    copy_dir, made = exported_copy(version_dir, scratch / "export", data=data, calibration=calibration,
                                   log=lambda line: log(f"  export: {line}"))
    reason = export.get("int8_rejected", {}).get("reason", "no int8 in the manifest")
    return copy_dir / made["files"]["int8"], f"temporary export: {made['quantization']} (not served: {reason})"


# ---- main ----------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "triage-default")
    parser.add_argument("--shared-data", type=Path, default=shared_data_dir())
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per posts/s figure, after a warm-up")
    parser.add_argument("--texts", type=int, default=1024, help="real texts in the timing sample")
    parser.add_argument("--calibration-texts", type=int, default=512, help="training texts for static int8 ranges")
    parser.add_argument("--quick", action="store_true", help="check the script works: 0.5 s, 128 texts; not figures")
    parser.add_argument("--output", type=Path, help=f"default {RUNTIME_RESULTS} ({tempfile.gettempdir()} if --quick)")
    return parser.parse_args(argv)


def sizes_for(args: argparse.Namespace) -> Sizes:
    if args.quick:
        return Sizes(seconds=0.5, sample=128, validation=128, static_calibration=64, smoothing_calibration=128)
    return Sizes(seconds=args.seconds, sample=args.texts, validation=10**9, static_calibration=args.calibration_texts,
                 smoothing_calibration=MAX_CALIBRATION_TEXTS)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sizes = sizes_for(args)
    output = args.output or (Path(tempfile.gettempdir()) / "runtime-quick.json" if args.quick else RUNTIME_RESULTS)
    version_dir, manifest = load_manifest(args.model)
    if "fp32" not in ((getattr(manifest, "onnx", None) or {}).get("files") or {}):
        raise SystemExit(f"{args.model}: not exported; run `triage-train export --model {args.model}` first")
    cpu = cpu_info()
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{cpu['model']}, {os.cpu_count()} logical cores",
        "command": " ".join([".venv/bin/python bench/runtime.py", *sys.argv[1:]]) if argv is None else "(in-process)",
        "commit": git_commit(), "quick": args.quick, "seconds": sizes.seconds, "rounds": ROUNDS, "batch_size": BATCH,
        "model": str(args.model), "version": manifest.version, "onnxruntime": ort.__version__,
    }
    tokenizer = bare_tokenizer(version_dir)
    results["token_lengths"] = token_lengths(tokenizer, corpora(args.shared_data, manifest.schema_))
    source, sample = timing_sample(args.shared_data, manifest.schema_, sizes.sample)
    counts = token_counts(tokenizer, sample)
    results["sample"] = {"source": source, "texts": len(sample)}
    fp32 = version_dir / manifest.onnx["files"]["fp32"]
    with tempfile.TemporaryDirectory() as work:
        scratch = Path(work)
        int8, results["int8_source"] = served_int8(args.model, scratch, args.quick)
        base = OnnxPredictor(version_dir, manifest, batch_size=BATCH, variant="fp32")
        predictor = with_session(base, int8)
        results["max_length"] = max_length_sweep(predictor, sample, counts, sizes.seconds)
        results["bucketing"] = bucketing(predictor, sample, counts, sizes.seconds)
        results["ort_settings"] = ort_settings(predictor, int8, sample, sizes.seconds)
        results["quantization"] = quantization(base, version_dir, fp32, scratch, sample, sizes)
        results["int8_instructions"] = int8_instructions(int8, scratch, sizes.seconds)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {output}")
    if output == RUNTIME_RESULTS and QUALITY_RESULTS.is_file():
        write_report(json.loads(QUALITY_RESULTS.read_text(encoding="utf-8")))
        log("regenerated BENCHMARKS.md")


if __name__ == "__main__":
    main()
