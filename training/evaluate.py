"""`triage-train evaluate`: score a model on labelled files and write report.json, report.md and plots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from model.policy import Policy, PolicyError
from model.predictor import Predictor, distributions, load_predictor
from training.config import DatasetSpec
from training.datasets import DatasetError, Example, label_arrays, load_datasets
from training.evaluation import build_report
from training.ranking import gains, ranking_report
from training.report import write_report

POST_ATTRIBUTES = ("brand", "lang")


def _slice_values(examples: list[Example], column: str) -> list[str | None]:
    if column in POST_ATTRIBUTES:
        return [getattr(e.post, column) for e in examples]
    if not any(column in e.extras for e in examples):
        available = sorted({k for e in examples for k in e.extras} | set(POST_ATTRIBUTES))
        raise DatasetError([f"--slice {column}: no such column in the data; columns available: {available}"])
    return [None if e.extras.get(column) is None else str(e.extras[column]) for e in examples]


def _baseline_probs(baseline: Predictor, main: Predictor, texts: list[str], log: Callable[[str], None]):
    """The baseline's probabilities for the tasks it shares with the model, with the same label set."""
    probs = baseline.predict_proba(texts, progress=True)
    own = {t.name: t.labels for t in main.tasks}
    shared = {}
    for task in baseline.tasks:
        if own.get(task.name) == task.labels:
            shared[task.name] = probs[task.name]
        else:
            log(f"baseline: task {task.name!r} is not comparable (missing from the model or different labels)")
    return shared


def ranking_for(
    predictor: Predictor, examples: list[Example], probs: dict, policy_file: Path | None, log: Callable[[str], None]
) -> dict[str, Any] | None:
    """Ranking metrics over the rows that label both needs_response and urgency (None when not applicable)."""
    policy = Policy.load(policy_file)
    try:
        policy.check_tasks(predictor.tasks)
    except PolicyError as err:
        log(f"no ranking evaluation: {err}")
        return None
    tasks = {t.name: t for t in predictor.tasks}
    rows = [i for i, e in enumerate(examples) if "needs_response" in e.labels and "urgency" in e.labels]
    if not rows:
        return None
    label = {name: [task.labels[examples[i].labels[name]] for i in rows] for name, task in tasks.items()
             if name in ("needs_response", "urgency")}
    every_row = distributions(predictor.tasks, probs)
    per_row = [every_row[i] for i in rows]
    return ranking_report([examples[i].post for i in rows], per_row, gains(label["needs_response"], label["urgency"]),
                          policy)


def run_evaluate(
    model: Path,
    data: list[Path],
    output: Path,
    baseline: Path | None = None,
    slice_column: str | None = None,
    columns: dict[str, str] | None = None,
    n_bootstrap: int = 1000,
    plots: bool = True,
    policy_file: Path | None = None,
    backend: str = "auto",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    predictor = load_predictor(model, backend=backend)
    manifest = predictor.manifest
    schema = manifest.schema_
    mapping = {**manifest.config.get("columns", {}), **(columns or {})}
    datasets = load_datasets([DatasetSpec(path=path) for path in data], schema, mapping)
    examples = [e for d in datasets for e in d.examples]
    texts = [e.post.text for e in examples]
    slices = _slice_values(examples, slice_column) if slice_column else None
    log(f"evaluating {manifest.name} {manifest.version} ({manifest.backend}) on {len(examples)} rows")
    probs = predictor.predict_proba(texts, progress=True)
    baseline_info, baseline_probs = None, None
    if baseline is not None:
        other = load_predictor(baseline)
        baseline_probs = _baseline_probs(other, predictor, texts, log)
        baseline_info = {"name": other.manifest.name, "version": other.manifest.version, "path": str(other.version_dir)}
    report = build_report(
        schema,
        label_arrays(examples, schema),
        probs,
        slices=slices,
        slice_name=slice_column,
        baseline_probs=baseline_probs,
        model={"name": manifest.name, "version": manifest.version, "backend": predictor.backend,
               "path": str(predictor.version_dir), "baseline": baseline_info},
        data={"files": [d.fingerprint(schema) for d in datasets], "rows": len(examples)},
        n_bootstrap=n_bootstrap,
        seed=manifest.seed,
    )
    ranking = ranking_for(predictor, examples, probs, policy_file, log)
    if ranking is not None:
        report["ranking"] = ranking
    write_report(report, output, plots=plots)
    return report
