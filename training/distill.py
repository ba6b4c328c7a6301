"""`triage-train distill`: a student trained on one or more teacher artifacts' soft outputs plus the labels.

The student's encoder is the (first) teacher's, or `student_from`'s, with some layers kept (default every other one:
0, 2, 4 of MiniLM-L6; all of them to distil an ensemble into one model of a member's size), its weights copied; its
heads start from that model's heads. Per task the loss is

    alpha * T^2 * KL(teacher softmax(z_t / T) || student softmax(z_s / T))     on every row
  + (1 - alpha) * cross-entropy                                                 on the rows that label the task

With several teachers (an ensemble), softmax(z_t / T) is the mean of their softened distributions (see
`ensemble_logits`); they must share tasks and labels, and may differ in encoder and tokenizer.

Unlabelled texts (JSONL, CSV or Parquet) add rows that only the soft loss sees; any whose text is also in an
evaluation set (validation, holdout, `exclude` files) is dropped and reported. Teacher logits are computed once, up
front, and cached in the run directory. Everything else is the transformer fit: batching, optimiser and warmup, early
stopping on mean validation macro-F1, checkpoints and --resume, calibration, and a normal versioned artifact whose
manifest adds a `distillation` section.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import PartialState
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel

from model.artifact import ENCODER_DIR, Manifest, load_manifest
from model.multitask import MultiTaskModel
from model.predictor import load_predictor
from model.schema import LabelSchema
from model.text import dedup_key
from training.config import ConfigError, DatasetSpec, DistillConfig, TrainConfig, UnlabelledSpec
from training.datasets import DatasetError, Example, drop_overlap, scan_dataset
from training.fit import _prepare_run, fresh_staging, load_training_data, publish_artifact
from training.transformer import TransformerTrainer, multitask_cross_entropy

TEACHER_LOGITS_FILE = "teacher_logits.npz"


# ---- the student's encoder ------------------------------------------------------------------------------------------
def default_keep_layers(n_layers: int) -> list[int]:
    """Every other layer, from the first: 6 layers -> [0, 2, 4]."""
    return list(range(0, n_layers, 2))


def layer_list_name(encoder: PreTrainedModel) -> str:
    """The dotted name of the encoder's list of transformer layers (e.g. 'encoder.layer' in BERT)."""
    count = encoder.config.num_hidden_layers
    for name, module in encoder.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return name
    raise ConfigError(f"cannot find the {count} transformer layers of a {encoder.config.model_type} encoder")


def check_keep_layers(keep_layers: list[int], n_layers: int) -> None:
    if not keep_layers or max(keep_layers) >= n_layers:
        raise ConfigError(f"distill.keep_layers {keep_layers}: the teacher's encoder has layers 0..{n_layers - 1}")


def student_encoder(teacher: PreTrainedModel, keep_layers: list[int]) -> PreTrainedModel:
    """A fresh encoder of the teacher's architecture with len(keep_layers) layers, each copied from the teacher.

    Embeddings, pooler and every other weight outside the layer list are copied as they are.
    """
    check_keep_layers(keep_layers, teacher.config.num_hidden_layers)
    layers = layer_list_name(teacher) + "."
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(keep_layers)
    student = type(teacher)(config)
    source = teacher.state_dict()
    state = {}
    for key in student.state_dict():
        if key.startswith(layers):
            index, rest = key[len(layers):].split(".", 1)
            state[key] = source[f"{layers}{keep_layers[int(index)]}.{rest}"].clone()
        else:
            state[key] = source[key].clone()
    student.load_state_dict(state, strict=True)
    return student


# ---- the loss -------------------------------------------------------------------------------------------------------
def distillation_loss(
    student: dict[str, torch.Tensor],
    teacher: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    temperature: float,
    alpha: float,
    class_weights: dict[str, torch.Tensor | None] | None = None,
    task_weights: dict[str, float] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """alpha * soft + (1 - alpha) * hard, each summed over tasks (weighted per task).

    soft: T^2 * KL(teacher || student) on temperature-softened distributions, averaged over every row;
    hard: the multi-task cross-entropy, over the rows that label each task (IGNORE_INDEX rows skipped).
    """
    hard = multitask_cross_entropy(student, labels, class_weights, task_weights, device=device)
    soft = torch.zeros((), device=device)
    for task, logits in student.items():
        kl = F.kl_div(F.log_softmax(logits / temperature, dim=-1),
                      F.log_softmax(teacher[task].to(logits.device) / temperature, dim=-1),
                      log_target=True, reduction="batchmean")
        soft = soft + (task_weights or {}).get(task, 1.0) * temperature**2 * kl
    return alpha * soft + (1.0 - alpha) * hard


# ---- unlabelled texts -----------------------------------------------------------------------------------------------
def read_texts(spec: DatasetSpec, log: Callable[[str], None]) -> tuple[list[Example], dict[str, Any]]:
    """The valid rows of a file, read for their text only (labels ignored); invalid rows are skipped and counted."""
    dataset, problems = scan_dataset(spec, ())
    if not dataset.examples:
        raise DatasetError(problems or [f"{spec.path}: no rows"])
    if problems:
        log(f"{spec.path}: skipped {len(problems)} invalid rows, e.g. {problems[0]}")
    return dataset.examples, {"path": str(spec.path), "sha256": dataset.sha256, "rows": len(dataset.examples),
                              "invalid_rows": len(problems), "license": spec.license}


def read_excluded(specs: list[DatasetSpec], log: Callable[[str], None]) -> tuple[list[Example], list[dict[str, Any]]]:
    """The rows of `exclude` files (evaluation texts to keep out of training), and each file's fingerprint."""
    rows: list[Example] = []
    fingerprints = []
    for spec in specs:
        examples, fingerprint = read_texts(spec, log)
        rows.extend(examples)
        fingerprints.append(fingerprint)
    return rows, fingerprints


def matching_rows(spec: UnlabelledSpec, rows: list[Example]) -> list[Example]:
    """The rows whose columns hold the values of `spec.where` (all rows without one)."""
    missing = [column for column in spec.where if not any(column in e.extras for e in rows)]
    if missing:
        raise DatasetError([f"{spec.path}: 'where' names {missing}, which no row has (or the post reads as one of "
                            f"its fields); its other columns: {sorted({k for e in rows for k in e.extras})}"])
    return [e for e in rows if all(str(e.extras.get(column)) == value for column, value in spec.where.items())]


def load_unlabelled(
    specs: list[UnlabelledSpec],
    held_out: list[Example],
    labelled: list[Example],
    log: Callable[[str], None] = print,
) -> tuple[list[Example], dict[str, Any]]:
    """Unlabelled rows for the soft loss, and a report for the manifest.

    Dropped, in this order: rows whose text is also in an evaluation set (`held_out`; reported), rows repeating a
    labelled training text or an earlier unlabelled text; then each file keeps its first `max_rows` rows.
    """
    kept: list[Example] = []
    files: list[dict[str, Any]] = []
    overlap_by_file: dict[str, int] = {}
    overlap_examples: list[str] = []
    seen = {dedup_key(e.post.text) for e in labelled}
    for spec in specs:
        rows, fingerprint = read_texts(spec, log)
        rows = matching_rows(spec, rows)
        matching = len(rows)
        rows, overlap = drop_overlap(rows, held_out)
        if overlap.dropped:
            log(f"dropped {overlap.dropped} unlabelled rows whose text is also in an evaluation set: {overlap.by_file}")
            overlap_by_file.update(overlap.by_file)
            overlap_examples.extend(overlap.examples[: 10 - len(overlap_examples)])
        fresh = []
        for example in rows:
            key = dedup_key(example.post.text)
            if key not in seen:
                seen.add(key)
                fresh.append(example)
        used = fresh[: spec.max_rows] if spec.max_rows else fresh
        kept.extend(used)
        selected = f"{matching} matching {spec.where}, " if spec.where else ""
        log(f"unlabelled {spec.path}: {len(used)} rows used of {fingerprint['rows']} ({selected}{overlap.dropped} "
            f"dropped as evaluation texts, {len(rows) - len(fresh)} as duplicates of training or earlier rows)")
        files.append(fingerprint | {"overlap_removed": overlap.dropped, "duplicates_removed": len(rows) - len(fresh),
                                    "max_rows": spec.max_rows, "used": len(used)}
                     | ({"where": spec.where, "matching": matching} if spec.where else {}))
    report = {
        "files": files,
        "rows_used": len(kept),
        "overlap_removed": {"dropped": sum(overlap_by_file.values()), "by_file": overlap_by_file,
                            "examples": overlap_examples},
    }
    return kept, report


# ---- teacher logits -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Teacher:
    """A transformer artifact distillation reads: a teacher, or the model the student starts from."""

    directory: Path
    manifest: Manifest

    @property
    def summary(self) -> dict[str, Any]:
        return {"name": self.manifest.name, "version": self.manifest.version,
                "layers": AutoConfig.from_pretrained(self.directory / ENCODER_DIR).num_hidden_layers,
                "validation_mean_macro_f1": self.manifest.metrics.get("mean_macro_f1")}


def _rows_key(teacher: Manifest, texts: list[str]) -> str:
    digest = hashlib.sha256(f"{teacher.name}@{teacher.version}".encode())
    for text in texts:
        digest.update(b"\0" + text.encode("utf-8"))
    return digest.hexdigest()


def teacher_logits(
    teacher_dir: Path, texts: list[str], cache: Path | None, batch_size: int = 64, log: Callable[[str], None] = print
) -> dict[str, np.ndarray]:
    """The teacher's raw logits per task for every text: once, batched, without gradients, with a progress bar.

    Cached in `cache` (a file in the run directory), so a resumed run does not recompute them.
    """
    predictor = load_predictor(teacher_dir, backend="torch", batch_size=batch_size)
    key = _rows_key(predictor.manifest, texts)
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            if str(stored["key"]) == key:
                log(f"teacher logits read from {cache}")
                return {t.name: stored[t.name] for t in predictor.tasks}
    log(f"teacher logits of {predictor.manifest.name}@{predictor.manifest.version} for {len(texts)} rows "
        "(once, before training)")
    raw = predictor.predict_logits(texts, progress=True)
    logits = {task: values.astype(np.float32) for task, values in raw.items()}
    if cache is not None and PartialState().is_main_process:
        tmp = cache.with_name(f".{cache.stem}.tmp.npz")
        np.savez(tmp, key=np.array(key), **logits)
        os.replace(tmp, cache)
    return logits


def ensemble_logits(per_teacher: list[dict[str, np.ndarray]], temperature: float) -> dict[str, np.ndarray]:
    """Logits whose temperature-softened distribution is the mean of the teachers' softened distributions.

    T * log(mean_k softmax(z_k / T)), computed as a log-sum-exp (no underflow); one teacher's logits are returned as
    they are (the result would differ from them by a constant per row, which the softmax ignores).
    """
    if len(per_teacher) == 1:
        return per_teacher[0]
    combined = {}
    for task in per_teacher[0]:
        log_probs = torch.stack([F.log_softmax(torch.from_numpy(z[task]).double() / temperature, dim=-1)
                                 for z in per_teacher])
        mean = torch.logsumexp(log_probs, dim=0) - math.log(len(per_teacher))
        combined[task] = (temperature * mean).float().numpy()
    return combined


def soft_targets(teachers: list[Teacher], texts: list[str], run_dir: Path, temperature: float, batch_size: int,
                 log: Callable[[str], None] = print) -> dict[str, np.ndarray]:
    """The (ensembled) teacher logits for every text; each teacher's are cached in the run directory."""
    per_teacher = [
        teacher_logits(t.directory, texts, run_dir / teacher_logits_file(i), batch_size=batch_size, log=log)
        for i, t in enumerate(teachers)
    ]
    return ensemble_logits(per_teacher, temperature)


def teacher_logits_file(index: int) -> str:
    return TEACHER_LOGITS_FILE if index == 0 else f"teacher_logits.{index}.npz"


# ---- the trainer ----------------------------------------------------------------------------------------------------
class DistillTrainer(TransformerTrainer):
    """The transformer trainer with a student built from `start` (by default the first teacher) and the distillation
    loss.

    Set `teacher_logits` (one array per task, rows in the order of the training rows) before `fit`.
    """

    def __init__(self, config: DistillConfig, schema: LabelSchema, run_dir: Path, teachers: list[Teacher],
                 keep_layers: list[int], start: Teacher | None = None):
        super().__init__(config, schema, run_dir)
        self.teachers = teachers
        self.start = start or teachers[0]
        self.keep_layers = keep_layers
        self.distill = config.distill
        self.teacher_logits: dict[str, torch.Tensor] = {}

    def _network(self) -> tuple[Any, MultiTaskModel]:
        start = self.start.directory  # the student's weights and tokenizer
        tokenizer = AutoTokenizer.from_pretrained(start / ENCODER_DIR)
        label_counts = {t.name: len(t.labels) for t in self.schema.tasks}
        source = MultiTaskModel.load(start, label_counts, pooling=self.params.pooling)
        encoder = student_encoder(source.encoder, self.keep_layers)
        network = MultiTaskModel(encoder, label_counts, self.params.pooling, self.params.dropout)
        network.heads.load_state_dict(source.heads.state_dict())
        return tokenizer, network

    def _batch_loss(self, logits: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        index = batch["index"].cpu()
        teacher = {task: values[index] for task, values in self.teacher_logits.items()}
        return distillation_loss(logits, teacher, batch["labels"], self.distill.temperature, self.distill.alpha,
                                 self.class_weights, self.params.task_weights, device=self.accelerator.device)

    def encoder_details(self) -> dict[str, Any]:
        return super().encoder_details() | {
            "source": "distilled from " + " + ".join(f"{t.manifest.name}@{t.manifest.version}" for t in self.teachers),
            "kept_layers": self.keep_layers,
        }


def transformer_artifact(path: str, flag: str, role: str) -> Teacher:
    """The artifact at `path` (checked against its manifest), refused unless it is a transformer."""
    directory, manifest = load_manifest(path, verify=True)
    if manifest.backend != "transformer":
        raise ConfigError(f"{flag} {path}: a {manifest.backend} model; {role} must be a transformer")
    return Teacher(directory, manifest)


def check_same_tasks(first: Teacher, others: list[tuple[Teacher, str]], first_role: str) -> LabelSchema:
    """The first artifact's label schema, once every other (artifact, flag) has the same tasks and labels in order."""
    schema = first.manifest.schema_
    for other, flag in others:
        if other.manifest.schema_.tasks != schema.tasks:
            raise ConfigError(f"{flag} {other.directory}: its tasks and labels differ from those of the {first_role}, "
                              f"{first.directory} ({other.manifest.schema_.names} against {schema.names})")
    return schema


def check_config_tasks(config: TrainConfig, schema: LabelSchema, whose: str) -> None:
    """A config that names its tasks must name the models' (leaving them out takes the models')."""
    if (config.schema_file is not None or config.tasks is not None) and config.label_schema().tasks != schema.tasks:
        raise ConfigError(f"the config's tasks differ from {whose} ({schema.names}); leave 'schema' out")


def resolve_teachers(config: DistillConfig) -> tuple[list[Teacher], Teacher, LabelSchema, DistillConfig]:
    """The teachers, the model the student starts from (`student_from`, else the first teacher), their label schema,
    and the config with the start's pooling and tokenizer and every resolved path filled in (so a resumed run is
    refused when `latest` moved on). All must be transformers with the same tasks and labels, in the same order."""
    if not config.teacher:
        raise ConfigError("no teacher: pass --teacher MODEL or set 'teacher' in the config")
    teachers = [transformer_artifact(path, "--teacher", "the teacher") for path in config.teacher]
    first = teachers[0]
    start = (transformer_artifact(config.student_from, "--student-from", "the student's start")
             if config.student_from else first)
    schema = check_same_tasks(first, [*((t, "--teacher") for t in teachers[1:]), (start, "--student-from")],
                              "first teacher")
    check_config_tasks(config, schema, "the teacher's")
    pooling = (start.manifest.encoder or {}).get("pooling", "mean")
    transformer = config.transformer.model_copy(update={"pooling": pooling,
                                                        "encoder": str(start.directory / ENCODER_DIR)})
    config = config.model_copy(update={"teacher": [str(t.directory.resolve()) for t in teachers],
                                       "student_from": str(start.directory.resolve()) if config.student_from else None,
                                       "transformer": transformer})
    return teachers, start, schema, config


def run_distill(
    config: DistillConfig,
    output_root: Path,
    resume: Path | None = None,
    keep_checkpoints: bool = False,
    log: Callable[[str], None] = print,
) -> Path | None:
    """Distil the teacher into a student and publish ROOT/NAME/VERSION (None on non-main processes)."""
    teachers, start, schema, config = resolve_teachers(config)
    n_layers = AutoConfig.from_pretrained(start.directory / ENCODER_DIR).num_hidden_layers
    keep_layers = config.distill.keep_layers or default_keep_layers(n_layers)
    check_keep_layers(keep_layers, n_layers)

    data = load_training_data(config, schema, log)
    excluded_rows, excluded = read_excluded(config.exclude, log)
    held_out = [*data.validation, *excluded_rows]
    unlabelled, unlabelled_report = load_unlabelled(config.unlabelled, held_out, data.train, log)
    rows = data.train + unlabelled

    name_dir = output_root / config.name
    version, run_dir = _prepare_run(config, name_dir, resume)
    names = " + ".join(f"{t.manifest.name}@{t.manifest.version}" for t in teachers)
    log(f"distilling {names} into {config.name} version {version}, starting from {start.manifest.name}@"
        f"{start.manifest.version} ({n_layers} layers): layers {keep_layers}, T={config.distill.temperature}, "
        f"alpha={config.distill.alpha}; {len(data.train)} labelled + {len(unlabelled)} unlabelled rows "
        f"(validation {len(data.validation)}); run directory {run_dir} (resume with --resume {run_dir})")

    trainer = DistillTrainer(config, schema, run_dir, teachers, keep_layers, start)
    soft = soft_targets(teachers, [e.post.text for e in rows], run_dir, config.distill.temperature,
                        batch_size=config.transformer.eval_batch_size, log=log)
    trainer.teacher_logits = {task: torch.from_numpy(values) for task, values in soft.items()}
    training = trainer.fit(rows, data.validation, resume=resume is not None)
    if not trainer.accelerator.is_main_process:
        return None
    staging = fresh_staging(name_dir, version)
    trainer.save_best(staging)
    summaries = [t.summary for t in teachers]
    distillation = {
        "teacher": summaries[0],
        "teachers": summaries,
        "started_from": start.summary,
        "kept_layers": keep_layers,
        "temperature": config.distill.temperature,
        "alpha": config.distill.alpha,
        "labelled_rows": len(data.train),
        "unlabelled": unlabelled_report,
        "excluded": excluded,
    }
    details = {"encoder": trainer.encoder_details(), "max_length": config.transformer.max_length,
               "training": training, "distillation": distillation}
    return publish_artifact(staging, config, schema, version, data, details, run_dir, keep_checkpoints)
