"""Inference speed of one transformer model across backends, plus its ranking quality. Run on an idle machine.

    .venv/bin/python bench/speed.py --model models/triage-default [--shared-data ../shared/data]

Prints, for eager PyTorch fp32, ONNX Runtime fp32 and ONNX Runtime int8 (all in one run, so the ratios are fair):
posts/s at batch 1 and 32 and p50/p95 single-post latency, with ratios to eager. An int8 graph the export refused
(parity under the bar) is still measured, from the same export on a scratch copy, and marked as such. Then the
ranking metrics (NDCG@k, precision@k against three baselines) on data/ validation and on brand_intent validation.
Writes everything to bench/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from model.artifact import load_manifest  # noqa: E402
from model.predictor import Predictor, load_predictor  # noqa: E402
from training.config import DatasetSpec  # noqa: E402
from training.datasets import load_dataset  # noqa: E402
from training.evaluate import ranking_for  # noqa: E402
from training.export import run_export  # noqa: E402
from training.paths import shared_data_dir  # noqa: E402
from training.quantize import kept_fp32  # noqa: E402


def throughput(predictor: Predictor, texts: list[str], batch_size: int, min_seconds: float) -> float:
    predictor.batch_size = batch_size
    predictor.predict_proba(texts[:batch_size])  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < min_seconds:
        predictor.predict_proba(texts)
        done += len(texts)
    return done / (time.perf_counter() - started)


def latency_ms(predictor: Predictor, texts: list[str]) -> tuple[float, float]:
    timings = []
    for text in texts:
        started = time.perf_counter()
        predictor.predict_proba([text])
        timings.append((time.perf_counter() - started) * 1000)
    quantiles = statistics.quantiles(timings, n=20)
    return statistics.median(timings), quantiles[18]


def exported_copy(version_dir: Path, scratch: Path, **options: Any) -> tuple[Path, dict[str, Any]]:
    """Copy a version into `scratch` and export it there as `triage-train export` does, keeping int8 whatever its
    parity (a benchmark measures what the gate refused): (the copy, the export's manifest section)."""
    copy = Path(shutil.copytree(version_dir, scratch / version_dir.name))
    options.setdefault("log", lambda _: None)
    return copy, run_export(copy, min_int8_agreement=0.0, require_int8=False, **options)


def predictors(model: Path, scratch: Path, full_int8: bool = False) -> dict[str, tuple[Predictor, str]]:
    """{name: (predictor, description)} for torch fp32, ONNX fp32 and ONNX int8; with `full_int8`, also the fully
    quantised int8 copy when the served one keeps matmuls in fp32 for parity."""
    version_dir, manifest = load_manifest(model)
    export = getattr(manifest, "onnx", None)
    if not export:
        raise SystemExit(f"{model}: not exported; run `triage-train export --model {model}` first")
    found = {"torch fp32": (load_predictor(model, backend="torch"), "eager PyTorch"),
             "onnx fp32": (load_predictor(model, backend="onnx-fp32"), "ONNX Runtime")}
    if "int8" in export["files"]:
        kept = len(kept_fp32(export))
        found["onnx int8"] = (load_predictor(model, backend="onnx-int8"),
                              "ONNX Runtime dynamic int8 (served" + (f", {kept} matmuls kept fp32)" if kept else ")"))
        if kept and full_int8:
            copy, _ = exported_copy(version_dir, scratch)
            found["onnx int8 full"] = (load_predictor(copy, backend="onnx-int8"),
                                       "ONNX Runtime dynamic int8, every matmul quantised (NOT served: parity)")
    else:
        # Measured anyway, from the same export run on a scratch copy: the export refused to ship it.
        copy, _ = exported_copy(version_dir, scratch)
        found["onnx int8"] = (load_predictor(copy, backend="onnx-int8"),
                              "ONNX Runtime dynamic int8 (NOT served: " + export["int8_rejected"]["reason"] + ")")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "triage-default")
    parser.add_argument("--shared-data", type=Path, default=shared_data_dir())
    parser.add_argument("--seconds", type=float, default=8.0, help="minimum timing per throughput figure")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "speed.json")
    args = parser.parse_args()

    schema = load_manifest(args.model)[1].schema_
    own = load_dataset(DatasetSpec(path=ROOT / "data" / "brand_posts" / "validation.jsonl"), schema)
    texts = [e.post.text for e in own.examples]
    results: dict = {"model": str(args.model), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "when": datetime.now(UTC).isoformat(timespec="seconds"), "texts": len(texts), "backends": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (predictor, description) in predictors(args.model, Path(scratch), full_int8=True).items():
            p50, p95 = latency_ms(predictor, texts[:200])
            row = {"description": description,
                   "posts_per_s_batch_1": throughput(predictor, texts[:100], 1, args.seconds),
                   "posts_per_s_batch_32": throughput(predictor, texts, 32, args.seconds),
                   "p50_ms": p50, "p95_ms": p95}
            results["backends"][name] = row
            print(f"{name:>10}: batch 1 {row['posts_per_s_batch_1']:6.1f}/s  "
                  f"batch 32 {row['posts_per_s_batch_32']:6.1f}/s  p50 {p50:5.1f} ms  p95 {p95:5.1f} ms  "
                  f"({description})", flush=True)
    eager = results["backends"]["torch fp32"]
    for row in results["backends"].values():
        row["ratio_to_eager_batch_32"] = row["posts_per_s_batch_32"] / eager["posts_per_s_batch_32"]
        row["ratio_to_eager_batch_1"] = row["posts_per_s_batch_1"] / eager["posts_per_s_batch_1"]
    print("ratios to eager (batch 32): " + ", ".join(
        f"{n} {r['ratio_to_eager_batch_32']:.2f}x" for n, r in results["backends"].items()))

    predictor = load_predictor(args.model)
    sets = {"data/brand_posts/validation.jsonl": own}
    brand_intent = args.shared_data / "brand_intent" / "validation.jsonl"
    if brand_intent.is_file():
        sets["brand_intent/validation.jsonl"] = load_dataset(DatasetSpec(path=brand_intent), schema)
    else:
        print(f"(no ranking on brand_intent: {brand_intent} not found)")
    results["ranking"] = {}
    for name, dataset in sets.items():
        examples = dataset.examples
        probs = predictor.predict_proba([e.post.text for e in examples])
        ranking = ranking_for(predictor, examples, probs, None, print)
        results["ranking"][name] = ranking
        for order, scores in ranking["orders"].items():
            print(f"{name} {order:>27}: " + "  ".join(f"{m} {v:.3f}" for m, v in scores.items()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"results written to {args.output}")


if __name__ == "__main__":
    main()
