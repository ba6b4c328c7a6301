"""`triage-train fit`: load and check the data, train a backend, calibrate, evaluate, and publish an artifact."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from model.artifact import FORMAT_VERSION, Manifest, new_version, publish, write_manifest
from model.calibration import softmax
from model.predictor import load_predictor
from model.schema import LabelSchema
from model.text import NORMALISATION_VERSION
from training.calibration import fit_temperature
from training.config import ConfigError, TrainConfig
from training.datasets import (
    Dataset,
    Example,
    LabelJoin,
    OverlapReport,
    check_trainable,
    drop_overlap,
    join_labels,
    label_arrays,
    load_datasets,
    row_and_label_sets,
)
from training.evaluation import build_report, mean_macro_f1
from training.provenance import git_commit, package_versions
from training.report import write_report
from training.splits import stratified_split

RUNS_DIR = ".runs"
RUN_FILE = "run.json"


def _prepare_run(config: TrainConfig, name_dir: Path, resume: Path | None) -> tuple[str, Path]:
    """A fresh run directory, or the one being resumed (refused when its config differs).

    Under `accelerate launch`, the main process picks the version and every process uses it.
    """
    resolved = config.model_dump(mode="json", by_alias=True)
    if resume is None:
        processes = PartialState()
        version = [new_version() if processes.is_main_process else ""]
        if processes.num_processes > 1:
            broadcast_object_list(version)
        run_dir = name_dir / RUNS_DIR / version[0]
        if processes.is_main_process:
            run_dir.mkdir(parents=True, exist_ok=False)
            (run_dir / RUN_FILE).write_text(json.dumps({"version": version[0], "config": resolved}, indent=2))
        processes.wait_for_everyone()
        return version[0], run_dir
    run_file = resume / RUN_FILE
    if not run_file.is_file():
        raise ConfigError(f"--resume {resume}: not a run directory (no {RUN_FILE})")
    recorded = json.loads(run_file.read_text())
    if recorded["config"] != resolved:
        before = recorded["config"]
        changed = sorted(k for k in set(resolved) | set(before) if resolved.get(k) != before.get(k))
        raise ConfigError(f"--resume {resume}: the config differs from the interrupted run's in {changed}")
    return recorded["version"], resume


def _carve_holdout(
    config: TrainConfig, schema: LabelSchema, train: list[Example]
) -> tuple[list[Example], list[Example]]:
    """Deterministic and stratified; identity is file name + id, so the split is the same on any machine."""
    holdout = config.holdout
    task = holdout.stratify or schema.names[0]
    if task not in schema:
        raise ConfigError(f"holdout.stratify: unknown task {task!r}; tasks are {schema.names}")
    return stratified_split(
        train, holdout.fraction, stratum=lambda e: e.labels.get(task),
        identity=lambda e: f"{Path(e.file).name}:{e.post.id}", salt=holdout.salt,
    )


def _calibrate_and_report(
    staging: Path, manifest: Manifest, schema: LabelSchema, validation: list[Example], calibrate: bool
) -> Manifest:
    """Temperatures and metrics measured on the artifact as saved (a round trip through the predictor)."""
    predictor = load_predictor(staging)
    logits = predictor.predict_logits([e.post.text for e in validation])
    truth = label_arrays(validation, schema)
    temperatures = {}
    for task in schema.tasks:
        mask = truth[task.name] >= 0
        fitted = fit_temperature(logits[task.name][mask], truth[task.name][mask]) if calibrate else 1.0
        temperatures[task.name] = fitted
    probs = {task: softmax(values, temperatures[task]) for task, values in logits.items()}
    files = [d["path"] for d in manifest.data["validation"]] or ["holdout from the training files"]
    report = build_report(
        schema, truth, probs,
        model={"name": manifest.name, "version": manifest.version, "backend": manifest.backend},
        data={"split": "validation", "rows": len(validation), "files": files},
        seed=manifest.seed,
    )
    write_report(report, staging)
    metrics = {
        "validation": {
            task: {key: values[key] for key in ("accuracy", "macro_f1", "macro_recall", "ece")}
            for task, values in report["tasks"].items()
        },
        "mean_macro_f1": mean_macro_f1(report),
    }
    return manifest.model_copy(update={"calibration": temperatures, "metrics": metrics})


@dataclass
class TrainingData:
    """The rows a run trains and validates on, and what was dropped on the way (recorded in the manifest)."""

    train_sets: list[Dataset]
    validation_sets: list[Dataset]
    train: list[Example]
    validation: list[Example]
    overlap: OverlapReport
    unlabelled_skipped: int
    label_joins: list[LabelJoin] = field(default_factory=list)

    def manifest_section(self, config: TrainConfig, schema: LabelSchema) -> dict[str, Any]:
        return {
            "train": [d.fingerprint(schema) for d in self.train_sets],
            "validation": [d.fingerprint(schema) for d in self.validation_sets],
            "holdout": config.holdout.model_dump() | {"rows": len(self.validation)} if config.holdout else None,
            "overlap_removed": self.overlap.as_dict(),
            "unlabelled_rows_skipped": self.unlabelled_skipped,
            "train_rows_used": len(self.train),
            **({"labels_joined": [j.as_dict() for j in self.label_joins]} if self.label_joins else {}),
        }


def load_training_data(config: TrainConfig, schema: LabelSchema, log: Callable[[str], None]) -> TrainingData:
    """Training and validation rows: holdout carved, validation texts dropped from training, rows without labels
    skipped, and every task checked to be trainable."""
    train_sets = load_datasets(config.train, schema, config.columns)
    validation_sets = load_datasets(config.validation, schema, config.columns)
    validation = [e for d in validation_sets for e in d.examples]
    row_sets, label_sets = row_and_label_sets(train_sets)
    train = [e for d in row_sets for e in d.examples]
    if config.holdout is not None:
        train, validation = _carve_holdout(config, schema, train)
        log(f"holdout: {len(validation)} training rows set aside for validation ({config.holdout.fraction:.0%})")
    train, overlap = drop_overlap(train, validation)
    if overlap.dropped:
        log(f"dropped {overlap.dropped} training rows whose text is also in the validation data: {overlap.by_file}")
    # Joined after the holdout is carved: extra annotations train the model, and never change what it is selected on.
    train, joins = join_labels(train, label_sets)
    for join in joins:
        log(f"{join.file}: labels joined by text onto {join.labelled} training rows; {join.unmatched} of its "
            f"{join.rows} rows match no training row; {join.conflicts} labels differing from a row's own ignored")
    unlabelled = sum(1 for e in train if not e.labels)
    train = [e for e in train if e.labels]
    check_trainable(schema, train)
    if not validation:
        log("no validation data: no early stopping, no calibration, no validation metrics")
    return TrainingData(train_sets, validation_sets, train, validation, overlap, unlabelled, joins)


def fresh_staging(name_dir: Path, version: str) -> Path:
    """An empty staging directory for the version being built."""
    staging = name_dir / f".staging-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def publish_artifact(
    staging: Path,
    config: TrainConfig,
    schema: LabelSchema,
    version: str,
    data: TrainingData,
    details: dict[str, Any],
    run_dir: Path,
    keep_checkpoints: bool,
) -> Path:
    """Write the manifest, calibrate and report on validation, publish ROOT/NAME/VERSION, clean the run up.

    `details` holds the backend's manifest fields (encoder, max_length, training, and any extra sections).
    """
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        name=config.name,
        version=version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        backend=config.backend,
        tasks=schema.tasks,
        normalisation_version=NORMALISATION_VERSION,
        seed=config.seed,
        config=config.model_dump(mode="json", by_alias=True),
        data=data.manifest_section(config, schema),
        packages=package_versions(),
        git_commit=git_commit(),
        **details,
    )
    manifest = write_manifest(staging, manifest)
    if data.validation:
        manifest = _calibrate_and_report(staging, manifest, schema, data.validation, config.calibrate)
        write_manifest(staging, manifest)
    target = publish(staging, staging.parent, version)
    if not keep_checkpoints:
        shutil.rmtree(run_dir, ignore_errors=True)
    return target


def run_fit(
    config: TrainConfig,
    output_root: Path,
    resume: Path | None = None,
    keep_checkpoints: bool = False,
    log: Callable[[str], None] = print,
) -> Path | None:
    """Train, calibrate, evaluate and publish ROOT/NAME/VERSION. Returns the version directory
    (None on the non-main processes of a multi-GPU run)."""
    schema = config.label_schema()
    data = load_training_data(config, schema, log)
    train, validation = data.train, data.validation

    name_dir = output_root / config.name
    version, run_dir = _prepare_run(config, name_dir, resume)
    log(f"training {config.backend} model {config.name} version {version} on {len(train)} rows "
        f"(validation {len(validation)}); run directory {run_dir} (resume with --resume {run_dir})")

    details: dict[str, Any] = {"encoder": None, "max_length": None}
    if config.backend == "linear":
        from training.linear import train_linear

        staging = fresh_staging(name_dir, version)
        details.update(train_linear(config, schema, train, staging))
    else:
        from training.transformer import TransformerTrainer

        trainer = TransformerTrainer(config, schema, run_dir)
        training = trainer.fit(train, validation, resume=resume is not None)
        if not trainer.accelerator.is_main_process:
            return None
        staging = fresh_staging(name_dir, version)
        trainer.save_best(staging)
        details.update(encoder=trainer.encoder_details(), max_length=config.transformer.max_length, training=training)
    return publish_artifact(staging, config, schema, version, data, details, run_dir, keep_checkpoints)
