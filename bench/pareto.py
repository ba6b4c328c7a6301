"""Speed against quality for each model variant: the Pareto table of issue 7. Run on an idle machine.

    .venv/bin/python bench/pareto.py --model teacher=models/triage-default --model student-3=models/triage-student

For each model (its latest version), in one run: a scratch copy is exported to ONNX fp32 and dynamic int8 (int8 is
kept whatever its parity, so that it can be measured; the parity is reported beside it). Then for each of fp32 and
int8: validation macro-F1 per task on data/brand_posts/validation.jsonl, the bare model's posts/s at batch 32, and
posts/s through a real `triage-serve` at concurrency 64 with 1-post and 32-post requests (unique texts, no cache
help). Writes bench/results/pareto.json; `bench/quality.py --report-only` puts the table into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.load import Texts, drive, start  # noqa: E402
from bench.pareto_report import PARETO_RESULTS  # noqa: E402
from bench.quality import RESULTS as QUALITY_RESULTS  # noqa: E402
from bench.quality import write_report  # noqa: E402
from bench.speed import exported_copy, throughput  # noqa: E402
from model.artifact import load_manifest  # noqa: E402
from model.predictor import load_predictor  # noqa: E402
from training.config import DatasetSpec  # noqa: E402
from training.datasets import label_arrays, load_dataset  # noqa: E402
from training.export import worst_agreement  # noqa: E402
from training.metrics import summary_scores  # noqa: E402

VALIDATION = ROOT / "data" / "brand_posts" / "validation.jsonl"
RESULTS = PARETO_RESULTS
SERVICE_SCENARIOS = ((64, 1), (64, 32))


def quality(model: Path, backend: str) -> dict[str, float]:
    predictor = load_predictor(model, backend=backend)
    schema = predictor.manifest.schema_
    examples = load_dataset(DatasetSpec(path=VALIDATION), schema).examples
    probs = predictor.predict_proba([e.post.text for e in examples])
    truth = label_arrays(examples, schema)
    scores = {}
    for task, y in truth.items():
        mask = y >= 0
        scores[task] = summary_scores(y[mask], probs[task][mask])["macro_f1"]
    scores["mean"] = sum(scores.values()) / len(truth)
    return scores


def service_speed(model: Path, backend: str, seconds: float, log_dir: Path) -> dict[str, dict]:
    env = {"TRIAGE_MODEL": str(model), "TRIAGE_BACKEND": backend, "TRIAGE_WATCH_SECONDS": "0",
           "TRIAGE_DATABASE_URL": f"sqlite:///{log_dir}/inbox.sqlite3"}
    process, url = start([sys.executable, "-m", "service.cli"], env, log_dir / f"{model.name}-{backend}.log")
    try:
        return {f"{c}x{s}": asyncio.run(drive(url, c, s, seconds, Texts())) for c, s in SERVICE_SCENARIOS}
    finally:
        process.terminate()
        process.wait(timeout=60)


def measure(name: str, model: Path, seconds: float, scratch: Path) -> list[dict]:
    version_dir, manifest = load_manifest(model)
    copy, export = exported_copy(version_dir, scratch / name)
    layers = (manifest.encoder or {}).get("layers")
    texts = [Texts().next() for _ in range(512)]
    rows = []
    for variant in ("fp32", "int8"):
        backend = f"onnx-{variant}"
        row = {
            "variant": f"{name} {variant}", "model": str(model), "version": manifest.version, "backend": backend,
            "layers": layers, "quality": quality(copy, backend),
            "parity_min_agreement": worst_agreement(export["parity"][variant]),
            "bare_posts_per_s_batch_32": throughput(load_predictor(copy, backend=backend), texts, 32, seconds),
            "service": service_speed(copy, backend, seconds, scratch),
        }
        print(f"{row['variant']:>18}: mean macro-F1 {row['quality']['mean']:.3f}  "
              f"bare {row['bare_posts_per_s_batch_32']:6.1f}/s  " + "  ".join(
                  f"service {k} {v['posts_per_s']:6.1f}/s (p50 {v['p50_ms']:.0f} ms, p99 {v['p99_ms']:.0f} ms)"
                  for k, v in row["service"].items()), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=PATH",
                        help="a model to measure; the first one is the reference for the quality bound")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    models = [(spec.partition("=")[0], Path(spec.partition("=")[2])) for spec in args.model]
    results = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "command": " ".join(["bench/pareto.py", *sys.argv[1:]]), "validation": str(VALIDATION.relative_to(ROOT)),
               "rows": []}
    with tempfile.TemporaryDirectory() as scratch:
        for name, model in models:
            results["rows"] += measure(name, model, args.seconds, Path(scratch))
    reference = results["rows"][0]["quality"]["mean"]
    for row in results["rows"]:
        row["within_1_point"] = row["quality"]["mean"] >= reference - 0.01
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    if args.output == RESULTS and QUALITY_RESULTS.is_file():
        write_report(json.loads(QUALITY_RESULTS.read_text(encoding="utf-8")))
        print("regenerated BENCHMARKS.md")


if __name__ == "__main__":
    main()
