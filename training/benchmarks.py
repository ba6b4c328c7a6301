"""Benchmark protocols: what each public benchmark trains on, selects on and is scored on, and the rules that keep
the numbers honest (issue 5). `bench/quality.py` runs them; this module only decides the data.

- Each benchmark trains on its own training split only. Model selection uses a validation split: the benchmark's
  own (TweetEval's val), a stratified holdout carved from the training rows (Banking77, brand_intent), or, under
  cross-validation (complaints), a dev part carved from each fold's training rows. The test split gives the score.
- Training and dev rows whose text exactly duplicates a test text (after normalisation, ignoring case) are dropped
  and reported (`training.datasets.drop_overlap`).
- Extra annotations of the protocol's own posts (`join_on_text` files) label the training part of each split only,
  never its dev or test rows.
- brand_intent was built from five shared datasets: a model scored on brand_intent must not train on them, and a
  complaints model must not train on brand_intent (`check_training_sources`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from model.schema import LabelSchema
from training.config import DatasetSpec, TrainConfig
from training.datasets import Example, OverlapReport, drop_overlap, join_labels, load_datasets, row_and_label_sets
from training.paths import PROJECT_ROOT
from training.splits import stratified_split

Item = TypeVar("Item")

# The datasets brand_intent was built from (see ../shared/data/brand_intent/SOURCE.md).
BRAND_INTENT_SOURCES = (
    "twitter_us_airline_sentiment",
    "customer_support_on_twitter_head5000",
    "complaints_preotiuc2019",
    "sanders_twitter_brand_sentiment",
    "crowdflower_brand_product_emotions",
)
# Per benchmark: shared dataset folders whose rows must never be trained on.
FORBIDDEN_TRAINING: dict[str, tuple[str, ...]] = {
    "brand_intent": BRAND_INTENT_SOURCES,
    "complaints": ("brand_intent",),
}


class ProtocolError(ValueError):
    """A benchmark set-up that breaks the protocol's rules; the message names the file and the rule."""


@dataclass(frozen=True)
class Protocol:
    """One benchmark. `config` (relative to the project root) gives the model, the training data and the dev split.

    `test_file` (relative to the shared data) is scored with the column and value mapping of the config's first
    training file. With `folds`, there is no test file: the config's training rows are split into stratified folds.
    """

    name: str
    config: str
    task: str | None  # the task the headline metric is on; None: every task of the schema
    metric: str  # a key of training.metrics.summary_scores: accuracy, macro_f1 or macro_recall
    split: str  # how the scored split is described in reports
    test_file: str | None = None
    folds: int = 0
    fold_stratify_extra: str | None = None  # a column whose values are balanced across folds too
    slice_column: str | None = None
    headerless: dict[str, tuple[str, ...]] = field(default_factory=dict)  # CSV file name -> its column names
    subset: tuple[str, str, tuple[str, ...]] | None = None  # (name, column, values excluded): an extra score


PROTOCOLS: dict[str, Protocol] = {
    "tweeteval_sentiment": Protocol(
        name="tweeteval_sentiment", config="configs/benchmarks/tweeteval_sentiment.yaml", task="sentiment",
        metric="macro_recall", split="official test (12,284 tweets)",
        test_file="tweeteval/sentiment/hf_parquet/test.parquet",
    ),
    "complaints": Protocol(
        name="complaints", config="configs/benchmarks/complaints.yaml", task="complaint", metric="macro_f1",
        split="10-fold stratified cross-validation (3,449 tweets)", folds=10, fold_stratify_extra="domain",
        slice_column="domain", headerless={"complaints-data.csv": ("tweet_id", "text", "complaint", "domain")},
        subset=("brand domains only", "domain", ("random_reply", "random_tweet")),
    ),
    "banking77": Protocol(
        name="banking77", config="configs/benchmarks/banking77.yaml", task="intent", metric="accuracy",
        split="official test (3,080 queries)", test_file="banking77/test.csv",
    ),
    "brand_intent": Protocol(
        name="brand_intent", config="configs/brand_intent.yaml", task=None, metric="macro_f1",
        split="validation (578 tweets)", test_file="brand_intent/validation.jsonl", slice_column="source",
    ),
}


@dataclass
class Split:
    """One train / dev / test split of a benchmark (a fold under cross-validation)."""

    name: str
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    overlap: dict[str, Any] = field(default_factory=dict)


# ---- rules --------------------------------------------------------------------------------------------------------
def training_sources(config: TrainConfig) -> list[DatasetSpec]:
    """Every file a config's model learns from: train, validation (model selection) and, for a distillation config,
    the unlabelled texts, which train the student through the teachers' outputs."""
    return [*config.train, *config.validation, *getattr(config, "unlabelled", [])]


def check_training_sources(protocol: str, specs: Sequence[DatasetSpec]) -> None:
    """Refuse training files from a dataset this benchmark must not train on (matched by folder name)."""
    forbidden = FORBIDDEN_TRAINING.get(protocol, ())
    problems = [
        f"{spec.path}: a {protocol} model must not train on {folder} (see ../shared/data/brand_intent/SOURCE.md)"
        for spec in specs
        for folder in forbidden
        if folder in Path(spec.path).parts
    ]
    if problems:
        raise ProtocolError("\n".join(problems))


def apply_overlap_rule(split: Split) -> Split:
    """Drop train and dev rows whose text exactly duplicates a test text; the counts go into `split.overlap`."""
    train, train_report = drop_overlap(split.train, split.test)
    dev, dev_report = drop_overlap(split.dev, split.test)
    overlap = {"train": _overlap_summary(train_report), "dev": _overlap_summary(dev_report)}
    return Split(name=split.name, train=train, dev=dev, test=split.test, overlap=overlap)


def _overlap_summary(report: OverlapReport) -> dict[str, Any]:
    by_file = {f"{Path(k).parent.name}/{Path(k).name}": v for k, v in report.by_file.items()}
    return {"dropped": report.dropped, "by_file": by_file}


# ---- folds --------------------------------------------------------------------------------------------------------
def _rank(salt: str, key: str) -> str:
    return hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()


def assign_folds(
    items: Sequence[Item], k: int, stratum: Callable[[Item], Hashable], identity: Callable[[Item], str],
    salt: str = "tweet-triage-folds",
) -> list[int]:
    """A fold index in [0, k) per item, stratified and deterministic.

    Within each stratum, items are ranked by sha256(salt:identity) and dealt round-robin; each stratum continues
    where the previous one stopped, so every stratum's count per fold differs by at most one, and so do fold sizes.
    """
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    if len(items) < k:
        raise ValueError(f"{len(items)} rows cannot fill {k} folds")
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        groups[stratum(item)].append(index)
    folds = [0] * len(items)
    dealt = 0
    for key in sorted(groups, key=repr):
        ranked = sorted(groups[key], key=lambda i: _rank(salt, identity(items[i])))
        for position, index in enumerate(ranked):
            folds[index] = (dealt + position) % k
        dealt += len(ranked)
    return folds


def cross_validation_splits(
    examples: list[Example], k: int, dev_fraction: float, stratum: Callable[[Example], Hashable],
    dev_stratum: Callable[[Example], Hashable], salt: str = "tweet-triage",
) -> list[Split]:
    """k splits: fold i is the test part; a stratified dev part is carved from the other folds' rows."""
    folds = assign_folds(examples, k, stratum, example_identity, salt=f"{salt}:folds")
    splits = []
    for fold in range(k):
        test = [e for e, f in zip(examples, folds, strict=True) if f == fold]
        rest = [e for e, f in zip(examples, folds, strict=True) if f != fold]
        train, dev = stratified_split(rest, dev_fraction, stratum=dev_stratum, identity=example_identity,
                                      salt=f"{salt}:dev:{fold}")
        splits.append(Split(name=f"fold{fold}", train=train, dev=dev, test=test))
    return splits


def example_identity(example: Example) -> str:
    """Stable across machines: the file's folder and name, and the row's id."""
    path = Path(example.file)
    return f"{path.parent.name}/{path.name}:{example.post.id}"


# ---- data ---------------------------------------------------------------------------------------------------------
def with_header(spec: DatasetSpec, names: Sequence[str], workdir: Path) -> DatasetSpec:
    """A copy of a header-less CSV file with a header row (in `workdir`), for the training package's reader."""
    text = Path(spec.path).read_text(encoding="utf-8-sig")
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(names)
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / Path(spec.path).name
    target.write_text(buffer.getvalue() + text, encoding="utf-8")
    return spec.model_copy(update={"path": target})


def _readable(protocol: Protocol, specs: Sequence[DatasetSpec], workdir: Path) -> list[DatasetSpec]:
    return [
        with_header(spec, protocol.headerless[Path(spec.path).name], workdir / "headed")
        if Path(spec.path).name in protocol.headerless else spec
        for spec in specs
    ]


def benchmark_splits(protocol: Protocol, config: TrainConfig, shared: Path, workdir: Path) -> list[Split]:
    """Every split the protocol scores, after the source and overlap rules."""
    check_training_sources(protocol.name, training_sources(config))
    schema = config.label_schema()
    train_sets = load_datasets(_readable(protocol, config.train, workdir), schema, config.columns)
    row_sets, label_sets = row_and_label_sets(train_sets)
    rows = [e for d in row_sets for e in d.examples if e.labels]
    if protocol.folds:
        # Folds are cut from the protocol's own data (the first training file); the rows of any further files are
        # auxiliary and only ever join the training part (after the overlap rule, below).
        own = [e for e in row_sets[0].examples if e.labels]
        auxiliary = [e for d in row_sets[1:] for e in d.examples if e.labels]
        task = protocol.task or schema.names[0]
        extra = protocol.fold_stratify_extra

        def stratum(e: Example) -> Hashable:
            return (e.labels.get(task), e.extras.get(extra) if extra else None)

        fraction = config.holdout.fraction if config.holdout else 0.1
        splits = cross_validation_splits(own, protocol.folds, fraction, stratum, stratum,
                                         salt=config.holdout.salt if config.holdout else "tweet-triage")
        for split in splits:
            split.train = [*split.train, *auxiliary]
    else:
        test_spec = config.train[0].model_copy(update={"path": shared / protocol.test_file})
        (test,) = load_datasets([test_spec], schema, config.columns)
        train, dev = dev_split(config, schema, rows)
        splits = [Split(name="test", train=train, dev=dev, test=test.examples)]
    splits = [apply_overlap_rule(split) for split in splits]
    # Extra annotations (join_on_text files) label the training part only: dev and test rows keep the protocol's
    # own labels, so model selection and the score are unchanged by them.
    for split in splits:
        split.train, joins = join_labels(split.train, label_sets)
        split.joined = [join.as_dict() for join in joins]
    return splits


def dev_split(config: TrainConfig, schema: LabelSchema, train: list[Example]) -> tuple[list[Example], list[Example]]:
    """The config's validation files, else its holdout carved exactly as `triage-train fit` carves it."""
    if config.validation:
        validation = load_datasets(config.validation, schema, config.columns)
        return train, [e for d in validation for e in d.examples]
    if config.holdout is None:
        raise ProtocolError(f"{config.name}: a benchmark needs model selection data: give 'validation' or 'holdout'")
    task = config.holdout.stratify or schema.names[0]
    return stratified_split(
        train, config.holdout.fraction, stratum=lambda e: e.labels.get(task),
        identity=lambda e: f"{Path(e.file).name}:{e.post.id}", salt=config.holdout.salt,
    )


def write_examples(path: Path, examples: Sequence[Example], schema: LabelSchema) -> Path:
    """JSONL in the training package's plain format (post fields, one column per task, other columns kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            row: dict[str, Any] = example.post.model_dump(mode="json", exclude_none=True)
            row["id"] = example_identity(example)
            for task in schema.tasks:
                if task.name in example.labels:
                    row[task.name] = task.labels[example.labels[task.name]]
            for key, value in example.extras.items():
                row.setdefault(key, value)
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return path


def protocol_config_path(protocol: Protocol) -> Path:
    return PROJECT_ROOT / protocol.config
