"""`triage-train predict` and `rescore`: batch scoring of posts, and re-applying a policy to stored outputs.

`predict` runs the model and the policy. Its JSONL output keeps each post and its model outputs, so `rescore` can
apply another policy (or the same one at another time) without the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from model.policy import Policy, PolicyError
from model.posts import Post
from model.predictor import load_predictor
from training.config import DatasetSpec
from training.datasets import DatasetError, scan_dataset

ON_ERROR = ("fail", "skip")
OUTPUT_FORMATS = (".jsonl", ".csv", ".parquet")


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    """One CSV/Parquet row: labels, probabilities as p_<task>_<label>, the decision, reasons as text."""
    row: dict[str, Any] = {"id": record["id"], "text": record["post"]["text"]}
    for task, output in record["predictions"].items():
        row[task] = output["label"]
        row.update({f"p_{task}_{label}": round(p, 6) for label, p in output["probabilities"].items()})
    decision = record["decision"]
    row.update({key: decision[key] for key in ("priority", "tier", "route", "policy")})
    row["decision_needs_response"] = decision["needs_response"]  # beside the model's needs_response label
    row["reasons"] = "; ".join(f"{r['text']} ({r['points']:+g})" for r in decision["reasons"])
    row["model_version"] = record["model"]["version"]
    return row


def write_scored(path: Path, records: list[dict[str, Any]]) -> None:
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise DatasetError([f"{path}: output format must be one of {list(OUTPUT_FORMATS)}"])
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        return
    frame = pd.DataFrame([_flat(r) for r in records])
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def _decide(policy: Policy, records: Iterable[tuple[Post, dict[str, Any], dict[str, Any]]], now: datetime | None):
    scored = []
    for post, predictions, model in records:
        probabilities = {task: output["probabilities"] for task, output in predictions.items()}
        decision = policy.apply(post, probabilities, now=now)
        scored.append({"id": post.id, "post": post.model_dump(mode="json", exclude_none=True), "model": model,
                       "predictions": predictions, "decision": decision.model_dump(mode="json")})
    return scored


def _report_problems(problems: list[str], on_error: str, log: Callable[[str], None]) -> None:
    if not problems:
        return
    if on_error == "fail":
        raise DatasetError([*problems, "(use --on-error skip to score the valid rows and skip these)"])
    for problem in problems[:20]:
        log(f"skipped: {problem}")
    if len(problems) > 20:
        log(f"... and {len(problems) - 20} more skipped rows")


def run_predict(
    model: Path, input: Path, output: Path, policy_file: Path | None = None, on_error: str = "fail",
    backend: str = "auto", columns: dict[str, str] | None = None, now: datetime | None = None,
    batch_size: int = 32, log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Score every valid post of `input` and write model outputs plus the policy's decision to `output`."""
    policy = Policy.load(policy_file)
    predictor = load_predictor(model, backend=backend, batch_size=batch_size)
    try:
        policy.check_tasks(predictor.tasks)
    except PolicyError as err:
        raise DatasetError([f"{predictor.version_dir}: {err}"]) from err
    dataset, problems = scan_dataset(DatasetSpec(path=input), [], columns)  # label columns, if any, are ignored
    _report_problems(problems, on_error, log)
    posts = [e.post for e in dataset.examples]
    manifest = predictor.manifest
    log(f"scoring {len(posts)} posts with {manifest.name} {manifest.version} ({predictor.backend}), policy {policy.id}")
    model_info = {"name": manifest.name, "version": manifest.version, "backend": predictor.backend}
    predictions = predictor.predict(posts, progress=True)
    outputs = [
        {task: {"label": p.labels[task], "probabilities": p.probabilities[task]} for task in p.labels}
        for p in predictions
    ]
    scored = _decide(policy, ((post, out, model_info) for post, out in zip(posts, outputs, strict=True)), now)
    write_scored(output, scored)
    return {"scored": len(scored), "skipped": len(problems)}


def run_rescore(
    input: Path, output: Path, policy_file: Path | None = None, now: datetime | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Apply a policy to the stored model outputs of a `predict` JSONL file (no model needed)."""
    policy = Policy.load(policy_file)
    records, problems = [], []
    for number, line in enumerate(input.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            records.append((Post.model_validate(raw["post"]), raw["predictions"], raw["model"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValidationError) as err:
            field = err.args[0] if isinstance(err, KeyError) else type(err).__name__
            problems.append(f"{input}:{number}: not a `triage-train predict` JSONL record (field {field!r})")
    if problems:
        raise DatasetError(problems)
    try:
        scored = _decide(policy, records, now)
    except PolicyError as err:
        raise DatasetError([f"{input}: {err}"]) from err
    write_scored(output, scored)
    log(f"re-scored {len(scored)} posts with policy {policy.id}")
    return {"scored": len(scored)}
