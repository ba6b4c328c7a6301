"""Evaluation reports over a multi-task schema: per-task metrics, slices, and a comparison with a baseline.

Rows carry labels for only some tasks (y_true is -1 where a row does not label a task), so each task is scored on
its own labelled rows. A task with no labelled rows is skipped rather than failing the run: a small evaluation set
may simply not cover every task yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from model.schema import LabelSchema
from training.metrics import classification_metrics, paired_delta, summary_scores

NO_SLICE = "(none)"


def _labelled_rows(
    schema: LabelSchema, y_true: dict[str, np.ndarray], probs: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Boolean masks of the labelled rows per evaluable task, and the schema tasks that cannot be evaluated."""
    masks: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    n_rows: int | None = None
    for task in schema.tasks:
        if task.name not in probs or task.name not in y_true:
            skipped.append(task.name)
            continue
        labels = np.asarray(y_true[task.name])
        task_probs = np.asarray(probs[task.name])
        if task_probs.ndim != 2 or task_probs.shape != (len(labels), len(task.labels)):
            raise ValueError(
                f"task {task.name!r}: probs shape {task_probs.shape} does not match "
                f"{len(labels)} rows x {len(task.labels)} labels"
            )
        if n_rows is not None and len(labels) != n_rows:
            raise ValueError(f"task {task.name!r} has {len(labels)} rows, other tasks have {n_rows}")
        n_rows = len(labels)
        if labels.size and (labels.min() < -1 or labels.max() >= len(task.labels)):
            raise ValueError(f"task {task.name!r}: labels must be -1 or in [0, {len(task.labels)})")
        mask = labels >= 0
        if mask.any():
            masks[task.name] = mask
        else:
            skipped.append(task.name)
    return masks, skipped


def _slice_section(
    slices: Sequence[str | None],
    slice_name: str | None,
    masks: dict[str, np.ndarray],
    y_true: dict[str, np.ndarray],
    probs: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Point scores per slice value (no bootstrap: slices are for spotting gaps, and many are small)."""
    keys = np.array([NO_SLICE if value is None else str(value) for value in slices], dtype=object)
    values: dict[str, Any] = {}
    for value in sorted(set(keys), key=lambda v: (v == NO_SLICE, v)):
        in_slice = keys == value
        tasks: dict[str, Any] = {}
        for name, mask in masks.items():
            rows = in_slice & mask
            if rows.any():
                labels = np.asarray(y_true[name])[rows].astype(np.int64)
                tasks[name] = {"n": int(rows.sum()), **summary_scores(labels, np.asarray(probs[name])[rows])}
        values[value] = {"n": int(in_slice.sum()), "tasks": tasks}
    return {"name": slice_name, "values": values}


def build_report(
    schema: LabelSchema,
    y_true: dict[str, np.ndarray],
    probs: dict[str, np.ndarray],
    *,
    slices: Sequence[str | None] | None = None,
    slice_name: str | None = None,
    baseline_probs: dict[str, np.ndarray] | None = None,
    model: dict | None = None,
    data: dict | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """A JSON-serialisable evaluation report for every schema task that has labelled rows and predictions.

    y_true[task] is an int array over all rows (-1 = row does not label the task); probs[task] is (n_rows, k).
    Schema tasks without predictions, labels or labelled rows are listed under "skipped_tasks". `slices` gives one
    value per row (None goes under "(none)"); `baseline_probs` adds baseline scores and paired deltas
    (model minus baseline) for the tasks present in both.
    """
    masks, skipped = _labelled_rows(schema, y_true, probs)
    tasks: dict[str, Any] = {}
    for name, mask in masks.items():
        labels = np.asarray(y_true[name])[mask].astype(np.int64)
        tasks[name] = classification_metrics(
            labels, np.asarray(probs[name])[mask], schema[name].labels, n_bootstrap=n_bootstrap, seed=seed
        )
    report: dict[str, Any] = {"tasks": tasks, "skipped_tasks": skipped, "model": model or {}, "data": data or {}}

    if slices is not None:
        n_rows = len(next(iter(masks.values()))) if masks else len(slices)
        if len(slices) != n_rows:
            raise ValueError(f"slices has {len(slices)} values but there are {n_rows} rows")
        report["slices"] = _slice_section(slices, slice_name, masks, y_true, probs)

    if baseline_probs is not None:
        baseline_tasks: dict[str, Any] = {}
        deltas: dict[str, Any] = {}
        for name, mask in masks.items():
            if name not in baseline_probs:
                continue
            labels = np.asarray(y_true[name])[mask].astype(np.int64)
            base = np.asarray(baseline_probs[name])
            if base.shape != np.asarray(probs[name]).shape:
                raise ValueError(f"task {name!r}: baseline probs shape {base.shape} differs from {probs[name].shape}")
            baseline_tasks[name] = summary_scores(labels, base[mask])
            deltas[name] = paired_delta(
                labels, np.asarray(probs[name])[mask], base[mask], n_bootstrap=n_bootstrap, seed=seed
            )
        report["baseline"] = {"tasks": baseline_tasks, "deltas": deltas}
    return report


def mean_macro_f1(report: dict[str, Any]) -> float:
    """Mean macro-F1 over the evaluated tasks: one number for early stopping and model selection.

    Every task weighs the same regardless of its size, so a small task is not drowned out by a large one.
    """
    tasks = report.get("tasks") or {}
    if not tasks:
        raise ValueError("the report has no evaluated tasks")
    return float(np.mean([metrics["macro_f1"] for metrics in tasks.values()]))
