"""Quality benchmarks against published results: train, select and score one protocol with one backend.

    .venv/bin/python bench/quality.py --protocol complaints --backend linear
    .venv/bin/python bench/quality.py --protocol tweeteval_sentiment --backend transformer [--epochs 1] [--folds 3]
    .venv/bin/python bench/quality.py --protocol tweeteval_sentiment --backend distill \
        --teacher transformer/epochs=1 --teacher transformer/adapted   # an ensemble distilled into one model
    .venv/bin/python bench/quality.py --protocol complaints --backend soup \
        --ingredient transformer/epochs=4 --ingredient transformer/seed=29,epochs=4   # their weights averaged
    .venv/bin/python bench/quality.py --render        # only regenerate BENCHMARKS.md from the JSON

Protocols (data, splits and rules): `training/benchmarks.py`. Models: `configs/benchmarks/*.yaml` and
`configs/brand_intent.yaml`. Each run merges one row (keyed protocol/backend/variant) into
bench/results/quality.json and regenerates BENCHMARKS.md from it. A transformer row also scores the ONNX fp32 and
int8 exports (the int8 graph is scored even when the export's parity gate refuses to serve it).

Work goes to runs/quality/PROTOCOL/BACKEND/VARIANT/: each finished split (fold) is saved there, with its dev and test
probabilities (for bench/ensemble.py), and an interrupted fit is resumed from its last epoch checkpoint, so re-running
the same command continues where it stopped. `--config` trains the protocol with another config (auxiliary tasks).

`--backend distill` trains, per split, one transformer on the labels and on the mean softened outputs of the
`--teacher` rows' models for that split (`triage-train distill`; all of the first teacher's layers unless
`--set distill.keep_layers=[...]`); `--student transformer/VARIANT` starts each student from another row's model
instead (e.g. one seed taught by an ensemble of others). `--backend soup` averages, per split, the weights of the
`--ingredient` rows' models (`triage-train soup`; nothing is trained). A teacher, student or ingredient row must have
kept its split models: the last split's always is, every fold's only with --keep-models.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from bench.emoji_ablation_report import emoji_section  # noqa: E402
from bench.pareto_report import pareto_section  # noqa: E402
from bench.quality_report import render  # noqa: E402
from bench.runtime_report import runtime_section  # noqa: E402
from training.benchmarks import (  # noqa: E402
    PROTOCOLS,
    Protocol,
    ProtocolError,
    Split,
    benchmark_splits,
    protocol_config_path,
    write_examples,
)
from training.config import DatasetSpec, DistillConfig, TrainConfig, load_config, parse_override  # noqa: E402
from training.datasets import Example, label_arrays  # noqa: E402
from training.evaluation import build_report  # noqa: E402
from training.metrics import HEADLINE_METRICS, summary_scores  # noqa: E402
from training.paths import shared_data_dir  # noqa: E402
from training.provenance import git_commit  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "quality.json"
REPORT = ROOT / "BENCHMARKS.md"
RUNS = ROOT / "runs" / "quality"
MODEL_ROWS = ("transformer/", "distill/", "soup/")  # rows whose split models are transformers (teach, start, average)


def log(message: str) -> None:
    print(f"[{datetime.now(UTC).strftime('%H:%M:%S')}] {message}", flush=True)


class QualityError(Exception):
    """A benchmark that cannot run as asked (a missing row or model); the message says what to run first."""


def result_rows(protocol: Protocol, names: list[str]) -> list[dict[str, Any]]:
    """The rows named BACKEND/VARIANT of a protocol in the results file."""
    rows = json.loads(RESULTS.read_text())["rows"] if RESULTS.is_file() else {}
    missing = [name for name in names if f"{protocol.name}/{name}" not in rows]
    if missing:
        raise QualityError(f"no row {', '.join(missing)} for {protocol.name} in {RESULTS}: run it with "
                           "bench/quality.py first")
    return [rows[f"{protocol.name}/{name}"] for name in names]


def row_workdir(row: dict[str, Any]) -> Path:
    """Where a row's splits were run. Rows written before "workdir" was recorded: the directory named after the
    variant (true unless run with --folds)."""
    return RUNS / row.get("workdir", f"{row['protocol']}/{row['backend']}/{row['variant'].replace('/', '_')}")


def split_model(workdir: Path, split: Split) -> Path:
    """The model a row published for one split (its NAME directory), if it was kept."""
    found = sorted(path.parent for path in workdir.glob(f"models/*-{split.name}/latest"))
    if not found:
        raise QualityError(f"{workdir}: no model kept for split {split.name}; re-run that row with --keep-models")
    return found[0]


def encoder_layers(workdir: Path) -> list[int]:
    """Every encoder layer index of a transformer row's models."""
    from transformers import AutoConfig

    from model.artifact import ENCODER_DIR, load_manifest

    found = sorted(workdir.glob("models/*/latest"))
    if not found:
        raise QualityError(f"{workdir}: no model kept; re-run that row (with --keep-models for every fold)")
    version_dir = load_manifest(found[0].parent)[0]
    return list(range(AutoConfig.from_pretrained(version_dir / ENCODER_DIR).num_hidden_layers))


def hardware() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import torch

    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{model}, {cores} CPU cores{gpu}"


# ---- scoring ------------------------------------------------------------------------------------------------------
def score(probs: dict[str, np.ndarray], test: list[Example], config: TrainConfig, protocol: Protocol,
          n_bootstrap: int) -> dict[str, Any]:
    schema = config.label_schema()
    slices = None
    if protocol.slice_column:
        slices = [None if e.extras.get(protocol.slice_column) is None else str(e.extras[protocol.slice_column])
                  for e in test]
    report = build_report(schema, label_arrays(test, schema), probs, slices=slices, slice_name=protocol.slice_column,
                          n_bootstrap=n_bootstrap, seed=config.seed)
    result: dict[str, Any] = {
        "tasks": {
            task: {name: metrics[name] for name in HEADLINE_METRICS} | {"intervals": metrics["intervals"]}
            for task, metrics in report["tasks"].items()
        },
    }
    if slices is not None:
        result["slices"] = report["slices"]["values"]
    if protocol.subset:
        name, column, excluded = protocol.subset
        task = protocol.task or schema.names[0]
        rows = [i for i, e in enumerate(test) if str(e.extras.get(column)) not in excluded and task in e.labels]
        truth = np.array([test[i].labels[task] for i in rows])
        result["subset"] = {name: summary_scores(truth, probs[task][rows])} if rows else {}
    return result


def score_transformer(version_dir: Path, dev_file: Path, split: Split, config: TrainConfig, protocol: Protocol,
                      n_bootstrap: int, probs: SplitProbabilities, int8_fallback: int | None) -> dict[str, Any]:
    """Export (parity on the dev split; int8 need not pass, after keeping at most `int8_fallback` matmuls fp32,
    default the export's), then score torch, ONNX fp32 and ONNX int8.

    Each backend's test probabilities, and the served backend's dev probabilities, are added to `probs`."""
    from bench.speed import predictors
    from model.artifact import load_manifest
    from training.export import run_export, worst_agreement
    from training.quantize import kept_fp32

    manifest = load_manifest(version_dir)[1]
    if not getattr(manifest, "onnx", None):
        fallback = {} if int8_fallback is None else {"max_fp32_fallback": int8_fallback}
        # Only the protocol's head is scored, so only its parity decides whether int8 is served (auxiliary heads of
        # a multi-task config are measured and recorded, not gated).
        gate = [protocol.task] if protocol.task else None
        run_export(version_dir, [dev_file], require_int8=False, gate_tasks=gate, log=log, **fallback)
        manifest = load_manifest(version_dir)[1]
    texts = [e.post.text for e in split.test]
    export = manifest.onnx
    served = "onnx-int8" if "int8" in export["files"] else "onnx-fp32"
    backends = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (predictor, _description) in predictors(version_dir, Path(scratch)).items():
            key = name.replace("torch fp32", "torch").replace("onnx ", "onnx-")
            log(f"scoring {key} on {len(texts)} test rows")
            probs.test[key] = predictor.predict_proba(texts, progress=True)
            backends[key] = score(probs.test[key], split.test, config, protocol, n_bootstrap)
            if key == served:
                probs.dev = predictor.predict_proba([e.post.text for e in split.dev])
    gated = export.get("parity_gate_tasks")
    worst = worst_agreement(export["parity"]["int8"], gated)
    kept = kept_fp32(export)  # none unless int8 is served
    int8 = (f"argmax agreement with torch on the dev split {100 * worst:.1f}% "
            + (f"(gated on {', '.join(gated)}); " if gated else "(worst task); ")
            + ("served" if served == "onnx-int8" else f"not served ({export['int8_rejected']['reason']})")
            + (f"; {len(kept)} matmuls kept fp32" if kept else ""))
    return {"backends": backends, "served": served, "int8": int8}


@dataclass
class SplitProbabilities:
    """One split's probabilities, kept for ensembles (bench/ensemble.py): the served backend's on the dev rows (to
    choose ensemble weights) and every backend's on the test rows."""

    dev: dict[str, np.ndarray] = field(default_factory=dict)
    test: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def save_probabilities(path: Path, dev: dict[str, np.ndarray], test: dict[str, dict[str, np.ndarray]]) -> None:
    """Saved as keys dev/TASK and test/BACKEND/TASK."""
    arrays = {f"dev/{task}": p for task, p in dev.items()}
    arrays |= {f"test/{backend}/{task}": p for backend, probs in test.items() for task, p in probs.items()}
    np.savez_compressed(path, **arrays)


def load_probabilities(path: Path) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """(dev probabilities per task, test probabilities per backend and task) as saved by save_probabilities."""
    dev: dict[str, np.ndarray] = {}
    test: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path) as saved:
        for key in saved.files:
            part, *rest = key.split("/")
            if part == "dev":
                dev[rest[0]] = saved[key]
            else:
                test.setdefault(rest[0], {})[rest[1]] = saved[key]
    return dev, test


# ---- one split ----------------------------------------------------------------------------------------------------
def run_split(split: Split, config: TrainConfig, protocol: Protocol, workdir: Path, keep_model: bool,
              n_bootstrap: int, teachers: list[Path] | None = None,
              int8_fallback: int | None = None, student: Path | None = None,
              ingredients: list[Path] | None = None) -> dict[str, Any]:
    """Fit on split.train (selecting on split.dev), score split.test; saved to workdir/SPLIT.json (resumable).

    With `teachers` (the work directories of transformer rows), `config` is a DistillConfig and the model is distilled
    from those rows' models for this split, starting from the first teacher's or `student`'s (another row's). With
    `ingredients` (work directories too), the model is the average of the weights of those rows' models for this
    split."""
    from model.artifact import load_manifest
    from model.predictor import load_predictor
    from training.distill import run_distill
    from training.fit import RUNS_DIR, run_fit
    from training.soup import run_soup

    done = workdir / f"{split.name}.json"
    if done.is_file():
        log(f"{split.name}: already scored ({done}); skipping")
        return json.loads(done.read_text())
    schema = config.label_schema()
    data = workdir / "data" / split.name
    train_file = write_examples(data / "train.jsonl", split.train, schema)
    dev_file = write_examples(data / "dev.jsonl", split.dev, schema)
    licences = "; ".join(sorted({spec.license for spec in config.train}))
    fold_config = config.model_copy(update={
        "name": f"{config.name}-{split.name}",
        "columns": {},
        "train": [DatasetSpec(path=train_file, license=licences)],
        "validation": [DatasetSpec(path=dev_file, license=licences)],
        "holdout": None,
    })
    if teachers:
        # The held-out fold joins `exclude`, so no unlabelled row repeats a text the split is scored on.
        test_file = write_examples(data / "test.jsonl", split.test, schema)
        fold_config = fold_config.model_copy(update={
            "teacher": [str(split_model(w, split)) for w in teachers],
            "student_from": str(split_model(student, split)) if student else None,
            "exclude": [*fold_config.exclude, DatasetSpec(path=test_file, license=licences)]})
    models = workdir / "models"
    name_dir = models / fold_config.name
    started = time.perf_counter()
    if (name_dir / "latest").is_file():
        version_dir = name_dir / (name_dir / "latest").read_text().strip()
        log(f"{split.name}: reusing the published model {version_dir}")
        train_seconds = None
    else:
        if ingredients:  # nothing trained, so nothing to resume
            log(f"{split.name}: averaging {len(ingredients)} models trained on {len(split.train)} rows, calibrating "
                f"on {len(split.dev)}")
            version_dir = run_soup(fold_config, [str(split_model(w, split)) for w in ingredients], models, log=log)
        else:
            interrupted = sorted(p for p in (name_dir / RUNS_DIR).glob("*") if (p / "run.json").is_file())
            resume = interrupted[-1] if interrupted else None
            log(f"{split.name}: fitting {config.backend} on {len(split.train)} rows, selecting on {len(split.dev)}"
                + (f" (resuming {resume})" if resume else ""))
            train = run_distill if teachers else run_fit
            version_dir = train(fold_config, models, resume=resume, log=log)
        train_seconds = time.perf_counter() - started
    manifest = load_manifest(version_dir)[1]
    training = getattr(manifest, "training", None) or {}
    result: dict[str, Any] = {
        "split": split.name,
        "train_rows": manifest.data.get("train_rows_used", len(split.train)),
        "dev_rows": len(split.dev),
        "test_rows": len(split.test),
        "overlap": split.overlap | {"train_vs_dev": manifest.data.get("overlap_removed", {}).get("dropped", 0)},
        "labels_joined": split.joined,
        "train_seconds": round(train_seconds if train_seconds is not None else training.get("wall_seconds", 0), 1),
        "best_epoch": training.get("best_epoch"),
        "epochs_run": training.get("epochs_run"),
    }
    unlabelled = (getattr(manifest, "distillation", None) or {}).get("unlabelled")
    if unlabelled and unlabelled["files"]:
        result["unlabelled"] = {"rows_used": unlabelled["rows_used"],
                                "dropped_as_evaluation_texts": unlabelled["overlap_removed"]["dropped"]}
    probs = SplitProbabilities()
    if config.backend == "linear":
        predictor = load_predictor(version_dir)
        probs.test["linear"] = predictor.predict_proba([e.post.text for e in split.test])
        probs.dev = predictor.predict_proba([e.post.text for e in split.dev])
        result |= {"backends": {"linear": score(probs.test["linear"], split.test, config, protocol, n_bootstrap)},
                   "served": "linear"}
    else:
        result |= score_transformer(version_dir, dev_file, split, config, protocol, n_bootstrap, probs, int8_fallback)
    save_probabilities(workdir / f"{split.name}.probs.npz", probs.dev, probs.test)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    done.write_text(json.dumps(result, indent=2))
    if not keep_model:
        shutil.rmtree(name_dir, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    return result


# ---- aggregation --------------------------------------------------------------------------------------------------
def joined_labels(results: list[dict[str, Any]]) -> dict[str, int]:
    """Per join_on_text file (by name): training rows its labels reached, summed over splits."""
    totals: dict[str, int] = {}
    for result in results:
        for join in result.get("labels_joined", []):
            name = Path(join["file"]).name
            totals[name] = totals.get(name, 0) + join["labelled"]
    return totals


def summarise(values: list[float], interval: list[float] | None) -> dict[str, Any]:
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "n": len(values),
        "folds": values if len(values) > 1 else None,
        "ci": interval if len(values) == 1 else None,
    }


def aggregate(results: list[dict[str, Any]]) -> dict[str, Any]:
    scores: dict[str, Any] = {}
    for backend in results[0]["backends"]:
        tasks = {}
        for task in results[0]["backends"][backend]["tasks"]:
            per_split = [r["backends"][backend]["tasks"][task] for r in results]
            tasks[task] = {
                metric: summarise([s[metric] for s in per_split], (per_split[0]["intervals"] or {}).get(metric))
                for metric in HEADLINE_METRICS
            }
        scores[backend] = {"tasks": tasks}
    return scores


def build_row(args: argparse.Namespace, protocol: Protocol, config: TrainConfig, splits_total: int,
              results: list[dict[str, Any]], wall: float, variant: str, overrides: dict[str, Any]) -> dict[str, Any]:
    first = results[0]
    served = Counter(r["served"] for r in results)
    params = config.transformer if config.backend == "transformer" else config.linear
    settings = params.model_dump(mode="json")
    if args.backend == "soup":
        settings = {"ingredients": args.ingredient, "max_length": params.max_length}
    elif isinstance(config, DistillConfig):
        settings |= {"teachers": args.teacher, "student": args.student or args.teacher[0],
                     "distill": config.distill.model_dump(mode="json"),
                     "unlabelled": [{"file": f"{spec.path.parent.name}/{spec.path.name}", "where": spec.where,
                                     "max_rows": spec.max_rows} for spec in config.unlabelled]}
    row = {
        "protocol": protocol.name,
        "backend": args.backend,
        "variant": variant,
        "task": protocol.task or config.label_schema().names[0],
        "metric": protocol.metric,
        "split": protocol.split,
        "config": config_label(args, protocol),
        "overrides": overrides,
        "settings": settings,
        "splits_total": splits_total,
        "splits_run": len(results),
        "scores": aggregate(results),
        "served": served.most_common(1)[0][0],
        "int8": first.get("int8") if len(results) == 1 else int8_by_split(results),
        "best_epochs": [r["best_epoch"] for r in results],
        "train_rows": sum(r["train_rows"] for r in results),
        "dev_rows": sum(r["dev_rows"] for r in results),
        "test_rows": sum(r["test_rows"] for r in results),
        "overlap_dropped": {
            "train": sum(r["overlap"]["train"]["dropped"] for r in results),
            "dev": sum(r["overlap"]["dev"]["dropped"] for r in results),
        },
        "labels_joined": joined_labels(results),
        "licences": sorted({spec.license for spec in [*config.train, *getattr(config, "unlabelled", [])]}),
        "train_seconds": round(sum(r["train_seconds"] for r in results), 1),
        "wall_seconds": round(wall, 1),
        "hardware": hardware(),
        "command": command(args),
        "git_commit": git_commit(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "per_split": [{k: v for k, v in r.items() if k != "backends"} for r in results],
    }
    if protocol.slice_column and len(results) == 1:
        row["slice_column"] = protocol.slice_column
        row["slices"] = {b: s.get("slices", {}) for b, s in first["backends"].items()}
    if protocol.subset:
        name = protocol.subset[0]
        backend = "linear" if config.backend == "linear" else "torch"
        values = [r["backends"][backend]["subset"][name][protocol.metric] for r in results]
        row["subset_scores"] = {f"{name} ({backend})": summarise(values, None)}
    return row


def int8_by_split(results: list[dict[str, Any]]) -> str | None:
    if "onnx-int8" not in results[0]["backends"]:
        return None
    passed = sum(r["served"] == "onnx-int8" for r in results)
    where = ("in every fold" if passed == len(results)
             else f"in {passed} of {len(results)} folds; the others serve ONNX fp32")
    return ("passed the export's parity gate (argmax agreement with torch >= 99% on the dev split) and is served "
            + where)


def config_label(args: argparse.Namespace, protocol: Protocol) -> str:
    """The config a row was trained with, relative to the project when it is inside it."""
    if args.config is None:
        return protocol.config
    path = args.config.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def command(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python", "bench/quality.py", "--protocol", args.protocol, "--backend", args.backend]
    for teacher in args.teacher or []:
        parts += ["--teacher", teacher]
    if args.student:
        parts += ["--student", args.student]
    for ingredient in args.ingredient or []:
        parts += ["--ingredient", ingredient]
    if args.config is not None:
        parts += ["--config", config_label(args, PROTOCOLS[args.protocol])]
    if args.epochs is not None:
        parts += ["--epochs", str(args.epochs)]
    if args.folds is not None:
        parts += ["--folds", str(args.folds)]
    for item in args.set or []:
        parts += ["--set", item]
    if args.variant:
        parts += ["--variant", args.variant]
    if args.int8_fallback is not None:
        parts += ["--int8-fallback", str(args.int8_fallback)]
    if args.shared_data != shared_data_dir():
        parts += ["--shared-data", str(args.shared_data)]
    return " ".join(parts)


def merge(row: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    path = path or RESULTS
    results = json.loads(path.read_text()) if path.is_file() else {"rows": {}}
    results["rows"][f"{row['protocol']}/{row['backend']}/{row['variant']}"] = row
    results["rows"] = dict(sorted(results["rows"].items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results


def write_report(results: dict[str, Any], path: Path | None = None) -> None:
    sections = emoji_section() + pareto_section() + runtime_section()  # each empty until its benchmark has run
    (path or REPORT).write_text(render(results) + sections, encoding="utf-8")


# ---- main ---------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS))
    parser.add_argument("--backend", choices=["linear", "transformer", "distill", "soup"])
    parser.add_argument("--shared-data", type=Path, default=shared_data_dir())
    parser.add_argument("--config", type=Path,
                        help="another config for the protocol (e.g. with auxiliary tasks); its first training file "
                             "must be the protocol's own, and the protocol's rules still apply")
    parser.add_argument("--teacher", action="append",
                        help="with --backend distill: a row of transformer models (transformer/VARIANT; or distill/, "
                             "soup/) whose split models teach (repeat for an ensemble)")
    parser.add_argument("--student", help="with --backend distill: a row of transformer models (as --teacher) whose "
                             "split models the students start from (default: the first teacher's)")
    parser.add_argument("--ingredient", action="append",
                        help="with --backend soup: a row of transformer models (as --teacher) whose split models "
                             "are averaged (two or more)")
    parser.add_argument("--epochs", type=int, help="transformer epochs (default: the config's)")
    parser.add_argument("--folds", type=int, help="run only the first N folds of a cross-validated protocol")
    parser.add_argument("--set", action="append", help="any config field, e.g. transformer.learning_rate=4e-5")
    parser.add_argument("--variant", help="row name (default: 'reference', or the overrides)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for the 95%% interval of a test set")
    parser.add_argument("--keep-models", action="store_true", help="keep every fold's artifact (default: the last)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 helps when another job shares the cores)")
    parser.add_argument("--int8-fallback", type=int, metavar="N",
                        help="keep at most N matmuls fp32 when int8 misses the parity bar (default: the export's; "
                             "0 skips ranking them by sensitivity, which takes minutes per split)")
    parser.add_argument("--render", action="store_true", help="only regenerate BENCHMARKS.md from the JSON")
    args = parser.parse_args(argv)
    if not args.render and not (args.protocol and args.backend):
        parser.error("--protocol and --backend are required (or --render)")
    if (args.backend == "distill") != bool(args.teacher):
        parser.error("--backend distill needs --teacher transformer/VARIANT (one or more); other backends take none")
    if args.student and args.backend != "distill":
        parser.error("--student is for --backend distill")
    if (args.backend == "soup") != bool(args.ingredient) or len(args.ingredient or []) == 1:
        parser.error("--backend soup needs two or more --ingredient transformer/VARIANT; other backends take none")
    if any(not row.startswith(MODEL_ROWS)
           for row in [*(args.teacher or []), *(args.ingredient or []), args.student or "transformer/"]):
        parser.error("--teacher, --student and --ingredient name a row of transformer models: transformer/VARIANT, "
                     "distill/VARIANT or soup/VARIANT")
    if args.int8_fallback is not None and args.int8_fallback < 0:
        parser.error(f"--int8-fallback must be 0 or more, got {args.int8_fallback}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        run(args)
    except (QualityError, ProtocolError) as err:
        raise SystemExit(f"error: {err}") from None


def run(args: argparse.Namespace) -> None:
    if args.render:
        write_report(json.loads(RESULTS.read_text()))
        log(f"wrote {REPORT}")
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    os.environ["TRIAGE_SHARED_DATA"] = str(args.shared_data.resolve())
    protocol = PROTOCOLS[args.protocol]
    overrides: dict[str, Any] = dict(parse_override(item) for item in args.set or [])
    if args.epochs is not None:
        overrides["transformer.epochs"] = args.epochs
    # The work directory depends on the settings only, so a run limited with --folds reuses (and extends) the folds
    # that a longer run with the same settings has finished.
    teachers = "+".join(teacher.removeprefix("transformer/") for teacher in args.teacher or [])
    ingredients = "+".join(row.removeprefix("transformer/") for row in args.ingredient or [])
    settings = args.variant or ",".join(
        ([f"teachers={teachers}"] if teachers else [])
        + ([f"ingredients={ingredients}"] if ingredients else [])
        + ([f"student={args.student.removeprefix('transformer/')}"] if args.student else [])
        + ([f"config={args.config.stem}"] if args.config else [])
        + [f"{k.removeprefix('transformer.').removeprefix('linear.')}={v}" for k, v in sorted(overrides.items())]
    ) or "reference"
    variant = settings if args.variant or args.folds is None else f"{settings},folds={args.folds}"
    teacher_dirs = student_dir = ingredient_dirs = None
    if args.backend == "soup":
        ingredient_dirs = [row_workdir(row) for row in result_rows(protocol, args.ingredient)]
        config = load_config(args.config or protocol_config_path(protocol), overrides | {"backend": "transformer"})
    elif args.backend == "distill":
        teacher_dirs = [row_workdir(row) for row in result_rows(protocol, args.teacher)]
        student_dir = row_workdir(result_rows(protocol, [args.student])[0]) if args.student else None
        if "distill.keep_layers" not in overrides:  # an ensemble into one model of a member's size
            overrides["distill.keep_layers"] = encoder_layers(student_dir or teacher_dirs[0])
        config = load_config(args.config or protocol_config_path(protocol), overrides | {"backend": "transformer"},
                             kind=DistillConfig)
    else:
        config = load_config(args.config or protocol_config_path(protocol), overrides | {"backend": args.backend})
    workdir = RUNS / protocol.name / args.backend / settings.replace("/", "_")
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log(f"{protocol.name} / {args.backend} / {variant}: preparing splits (work in {workdir})")
    splits = benchmark_splits(protocol, config, args.shared_data, workdir)
    chosen = splits[: args.folds] if args.folds else splits
    results = []
    for number, split in enumerate(chosen, 1):
        log(f"split {number}/{len(chosen)} ({split.name}): train {len(split.train)}, dev {len(split.dev)}, "
            f"test {len(split.test)}; dropped as duplicates of test texts: {split.overlap}"
            + "".join(f"; labels of {Path(j['file']).name} joined onto {j['labelled']} training rows"
                      for j in split.joined))
        keep = args.keep_models or number == len(chosen)
        results.append(run_split(split, config, protocol, workdir, keep, args.bootstrap, teacher_dirs,
                                 args.int8_fallback, student_dir, ingredient_dirs))
        headline = results[-1]["backends"][results[-1]["served"]]["tasks"]
        log(f"split {split.name}: " + ", ".join(f"{t} {protocol.metric} {100 * m[protocol.metric]:.1f}"
                                               for t, m in headline.items()))
    # Splits finished by an earlier, interrupted invocation count with their own times.
    wall = max(time.perf_counter() - started, sum(r["wall_seconds"] for r in results))
    row = build_row(args, protocol, config, len(splits), results, wall, variant, overrides)
    row["workdir"] = str(workdir.relative_to(RUNS))  # where bench/ensemble.py finds the splits' probabilities
    write_report(merge(row))
    for backend, summary in row["scores"].items():
        for task, metrics in summary["tasks"].items():
            value = metrics[protocol.metric]
            log(f"{backend} {task} {protocol.metric}: {100 * value['mean']:.1f}"
                + (f" ± {100 * value['std']:.1f} over {value['n']} folds" if value["n"] > 1 else ""))
    log(f"row {protocol.name}/{args.backend}/{variant} written to {RESULTS} and {REPORT}")


if __name__ == "__main__":
    main()
