"""Labelled datasets: JSONL, CSV or Parquet files, validated row by row into posts and (partial) labels.

Every problem names the file, the line (or Parquet row) and the field. A row may label only some tasks; several
datasets can mix in one run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from model.posts import Post
from model.schema import LabelSchema, TaskSpec
from model.text import dedup_key
from training.config import DatasetSpec

MAX_REPORTED_PROBLEMS = 25

# Post fields and the flat column each is read from unless the config maps it elsewhere.
POST_FIELDS = {
    "id": "id",
    "text": "text",
    "brand": "brand",
    "author.handle": "author_handle",
    "author.followers": "author_followers",
    "author.verified": "author_verified",
    "engagement.retweets": "retweets",
    "engagement.likes": "likes",
    "engagement.replies": "replies",
    "created_at": "created_at",
    "lang": "lang",
}
_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f"}


class DatasetError(ValueError):
    """One or more invalid rows; each problem reads 'FILE:LINE: field 'F': what is wrong'."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        super().__init__("\n".join(shown + ([f"... and {more} more problems"] if more > 0 else [])))


@dataclass
class Example:
    """A validated row: the post, its label index per labelled task, and where it came from."""

    post: Post
    labels: dict[str, int]
    file: str
    line: int
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Dataset:
    spec: DatasetSpec
    examples: list[Example]
    sha256: str

    def fingerprint(self, schema: LabelSchema) -> dict[str, Any]:
        return {
            "path": str(self.spec.path),
            "sha256": self.sha256,
            "rows": len(self.examples),
            "labelled": {t.name: sum(t.name in e.labels for e in self.examples) for t in schema.tasks},
            "license": self.spec.license,
        }


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DatasetError(
            [f"{path}:{line}: bad encoding: byte 0x{data[err.start]:02x} at column {column} is not valid UTF-8"]
        ) from err


Records = Iterator[tuple[int, dict[str, Any]]]


def _jsonl_records(path: Path, text: str) -> Records:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError([f"{path}:{number}: invalid JSON: {err.msg} (column {err.colno})"]) from err
        if not isinstance(record, dict):
            raise DatasetError([f"{path}:{number}: expected a JSON object, got {type(record).__name__}"])
        yield number, record


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise DatasetError([f"{path}: cannot read: {err.strerror or err}"]) from err


def _lines_records(spec: DatasetSpec, text: str, columns: dict[str, str], labels: dict[str, str]) -> list[
        tuple[int, dict[str, Any]]]:
    """Format 'lines': line i of the text file, with line i of each task's label file (TweetEval's layout).

    Lines end at "\n" only (tweets may hold other Unicode line breaks). A blank text line is skipped with its labels,
    as blank JSONL lines are: TweetEval's hate split has a few.
    """
    texts = _lines(text)
    columns_of = {task: columns.get(task, task) for task in labels}
    label_lines = {task: _lines(content) for task, content in labels.items()}
    for task, lines in label_lines.items():
        if len(lines) != len(texts):
            raise DatasetError([f"{spec.label_files[task]}: {len(lines)} label lines for the {len(texts)} lines of "
                                f"{spec.path} (task '{task}'); the files must be aligned line by line"])
    return [
        (number, {columns.get("text", "text"): line.strip()}
         | {columns_of[task]: lines[number - 1].strip() or None for task, lines in label_lines.items()})
        for number, line in enumerate(texts, 1) if line.strip()
    ]


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _csv_records(path: Path, text: str) -> tuple[list[str], Records]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = list(reader.fieldnames or [])

    def rows() -> Records:
        for row in reader:
            if None in row:
                raise DatasetError([f"{path}:{reader.line_num}: row has more fields than the header's {len(header)}"])
            yield reader.line_num, {k: (None if v == "" else v) for k, v in row.items()}

    return header, rows()


def _parquet_records(path: Path) -> tuple[list[str], Records]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several unrelated types for unreadable files
        raise DatasetError([f"{path}: not a readable Parquet file ({err})"]) from err
    return list(table.column_names), enumerate(table.to_pylist(), 1)


def coerce_label(task: TaskSpec, raw: Any, values: dict[str, str]) -> int | None:
    """Map a raw cell onto the task's label index; None when the row does not label this task."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool | int | str) and str(raw) in values:
        raw = values[str(raw)]
    if isinstance(raw, bool) or (task.is_boolean and isinstance(raw, int | str)):
        flag = str(raw).strip().lower()
        if flag in _TRUE:
            return 1
        if flag in _FALSE:
            return 0
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        raise ValueError(f"expected a label (string), got {type(raw).__name__}")
    label = raw.strip()
    if label not in task.labels:
        raise ValueError(f"unknown label {label!r}; expected one of {list(task.labels)}")
    return task.index(label)


def _build_post(record: dict[str, Any], columns: dict[str, str], default_id: str) -> dict[str, Any]:
    def cell(field_name: str) -> Any:
        return record.get(columns.get(field_name, POST_FIELDS[field_name]))

    author = record.get("author") if isinstance(record.get("author"), dict) else {
        "handle": cell("author.handle"),
        "followers": cell("author.followers"),
        "verified": cell("author.verified"),
    }
    engagement = record.get("engagement") if isinstance(record.get("engagement"), dict) else {
        "retweets": cell("engagement.retweets"),
        "likes": cell("engagement.likes"),
        "replies": cell("engagement.replies"),
    }
    raw_id = cell("id")
    post = {
        "id": str(raw_id) if isinstance(raw_id, int | str) and not isinstance(raw_id, bool) else raw_id,
        "text": cell("text"),
        "brand": cell("brand"),
        "author": {k: v for k, v in author.items() if v is not None},
        "engagement": {k: v for k, v in engagement.items() if v is not None},
        "created_at": cell("created_at"),
        "lang": cell("lang"),
    }
    if post["id"] is None:
        post["id"] = default_id
    if post["text"] is None:
        raise KeyError("text")
    return {k: v for k, v in post.items() if v is not None}


def scan_dataset(
    spec: DatasetSpec, tasks: Sequence[TaskSpec], columns: dict[str, str] | None = None
) -> tuple[Dataset, list[str]]:
    """Read one file: the valid rows, and a problem (file, line, field) for each invalid row.

    Problems that spoil the whole file (unreadable, bad encoding, invalid JSON, missing columns) raise DatasetError.
    """
    path = spec.path
    columns = {**(columns or {}), **spec.columns}
    for option, mapping in (("values", spec.values), ("label_files", spec.label_files)):
        unknown = set(mapping) - {t.name for t in tasks}
        if unknown:
            names = [t.name for t in tasks]
            raise DatasetError([f"{path}: '{option}' maps unknown tasks {sorted(unknown)}; tasks are {names}"])
    data = _read(path)
    fmt = spec.resolved_format
    header: list[str] | None = None
    if fmt == "parquet":
        header, records = _parquet_records(path)
    elif fmt == "lines":
        label_bytes = {task: _read(file) for task, file in spec.label_files.items()}
        records = _lines_records(spec, _decode(path, data), columns,
                                 {task: _decode(spec.label_files[task], raw) for task, raw in label_bytes.items()})
        data += b"".join(label_bytes.values())  # the recorded checksum covers the label files too
    else:
        text = _decode(path, data)
        if fmt == "csv":
            header, records = _csv_records(path, text)
        else:
            records = _jsonl_records(path, text)
    if header is not None:
        _check_header(path, header, columns)

    label_columns = {t.name: columns.get(t.name, t.name) for t in tasks}
    used_columns = set(label_columns.values()) | {columns.get(f, c) for f, c in POST_FIELDS.items()}
    used_columns |= {"author", "engagement"}
    problems: list[str] = []
    examples: list[Example] = []
    seen_ids: dict[str, str] = {}
    for line, record in records:
        where = f"{path}: row {line}" if fmt == "parquet" else f"{path}:{line}"
        example = _parse_row(where, line, record, tasks, columns, label_columns, spec.values, problems)
        if example is None:
            continue
        first = seen_ids.setdefault(example.post.id, where)
        if first != where:
            problems.append(f"{where}: field 'id': duplicate id {example.post.id!r} (first at {first})")
            continue
        example.file = str(path)
        example.extras = {k: v for k, v in record.items() if k not in used_columns}
        examples.append(example)
    if not problems and not examples:
        problems.append(f"{path}: no rows")
    return Dataset(spec=spec, examples=examples, sha256=hashlib.sha256(data).hexdigest()), problems


def load_dataset(spec: DatasetSpec, schema: LabelSchema, columns: dict[str, str] | None = None) -> Dataset:
    """Read and validate one labelled file. Raises DatasetError listing every problem found (file, line, field)."""
    dataset, problems = scan_dataset(spec, schema.tasks, columns)
    if not problems and not any(e.labels for e in dataset.examples):
        label_columns = {({**(columns or {}), **spec.columns}).get(t.name, t.name) for t in schema.tasks}
        problems.append(
            f"{spec.path}: no row labels any task; looked for columns {sorted(label_columns)} "
            "(map them with 'columns' in the config)"
        )
    if problems:
        raise DatasetError(problems)
    return dataset


def _check_header(path: Path, header: list[str], columns: dict[str, str]) -> None:
    text_column = columns.get("text", "text")
    missing = [(f, c) for f, c in columns.items() if c not in header]
    if text_column not in header:
        missing.insert(0, ("text", text_column))
    if missing:
        names = ", ".join(f"'{c}' (for '{f}')" if f != c else f"'{c}'" for f, c in dict(missing).items())
        raise DatasetError([f"{path}: missing column {names}; the file has columns {header}"])


def _parse_row(
    where: str,
    line: int,
    record: dict[str, Any],
    tasks: Sequence[TaskSpec],
    columns: dict[str, str],
    label_columns: dict[str, str],
    values: dict[str, dict[str, str]],
    problems: list[str],
) -> Example | None:
    before = len(problems)
    try:
        post = Post.model_validate(_build_post(record, columns, default_id=str(line)))
    except KeyError:
        problems.append(f"{where}: field '{columns.get('text', 'text')}': missing (every row needs a text)")
        return None
    except ValidationError as err:
        for problem in err.errors():
            field_name = ".".join(str(p) for p in problem["loc"])
            message = "empty text" if problem["msg"].endswith("text is empty") else problem["msg"]
            problems.append(f"{where}: field '{field_name}': {message}")
        return None
    labels: dict[str, int] = {}
    for task in tasks:
        column = label_columns[task.name]
        try:
            index = coerce_label(task, record.get(column), values.get(task.name, {}))
        except ValueError as err:
            problems.append(f"{where}: field '{column}': {err}")
            continue
        if index is not None:
            labels[task.name] = index
    if len(problems) > before:
        return None
    return Example(post=post, labels=labels, file="", line=line)


def load_datasets(
    specs: list[DatasetSpec], schema: LabelSchema, columns: dict[str, str] | None = None
) -> list[Dataset]:
    """Load several files, reporting the problems of all of them together."""
    loaded, problems = [], []
    for spec in specs:
        try:
            loaded.append(load_dataset(spec, schema, columns))
        except DatasetError as err:
            problems.extend(err.problems)
    if problems:
        raise DatasetError(problems)
    return loaded


@dataclass
class OverlapReport:
    dropped: int
    by_file: dict[str, int]
    examples: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"dropped": self.dropped, "by_file": self.by_file, "examples": self.examples}


def drop_overlap(train: list[Example], evaluation: list[Example]) -> tuple[list[Example], OverlapReport]:
    """Drop training rows whose text exactly duplicates an evaluation text (after normalisation, ignoring case)."""
    held_out = {dedup_key(e.post.text) for e in evaluation}
    kept: list[Example] = []
    by_file: dict[str, int] = {}
    shown: list[str] = []
    for example in train:
        if dedup_key(example.post.text) in held_out:
            by_file[example.file] = by_file.get(example.file, 0) + 1
            if len(shown) < 10:
                shown.append(f"{example.file}:{example.line} (id {example.post.id})")
        else:
            kept.append(example)
    return kept, OverlapReport(dropped=len(train) - len(kept), by_file=by_file, examples=shown)


@dataclass
class LabelJoin:
    """What joining one `join_on_text` file's labels onto the training rows did."""

    file: str
    rows: int  # the file's labelled rows
    unmatched: int  # of those, rows whose text no training row has (their labels are unused)
    labelled: int  # training rows that gained at least one label
    conflicts: int  # labels a training row already had with another value (the row's own label is kept)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def row_and_label_sets(datasets: Sequence[Dataset]) -> tuple[list[Dataset], list[Dataset]]:
    """(the datasets that give training rows, the `join_on_text` ones that only add labels to them)."""
    return ([d for d in datasets if not d.spec.join_on_text], [d for d in datasets if d.spec.join_on_text])


def join_labels(rows: list[Example], label_sets: Sequence[Dataset]) -> tuple[list[Example], list[LabelJoin]]:
    """`rows` with the labels of each label set's rows of the same text (dedup_key) added, and a report per set.

    A row keeps a label it already has; within a label set, the first row of a text wins. The input rows are not
    changed: a row that gains labels is a new Example."""
    reports = []
    for dataset in label_sets:
        annotations = [(dedup_key(e.post.text), e.labels) for e in dataset.examples if e.labels]
        by_text: dict[str, dict[str, int]] = {}
        for key, labels in annotations:
            by_text.setdefault(key, labels)
        matched: set[str] = set()
        labelled = conflicts = 0
        joined = []
        for row in rows:
            key = dedup_key(row.post.text)
            extra = by_text.get(key)
            if extra is None:
                joined.append(row)
                continue
            matched.add(key)
            conflicts += sum(1 for task, label in extra.items() if row.labels.get(task, label) != label)
            added = {task: label for task, label in extra.items() if task not in row.labels}
            labelled += bool(added)
            joined.append(replace(row, labels={**row.labels, **added}) if added else row)
        rows = joined
        unmatched = sum(1 for key, _ in annotations if key not in matched)
        reports.append(LabelJoin(file=str(dataset.spec.path), rows=len(annotations), unmatched=unmatched,
                                 labelled=labelled, conflicts=conflicts))
    return rows, reports


def label_arrays(examples: list[Example], schema: LabelSchema, missing: int = -1) -> dict[str, Any]:
    """Per task, an int array over all rows: the label index, or `missing` where the row does not label the task."""
    import numpy as np

    return {
        task.name: np.array([e.labels.get(task.name, missing) for e in examples], dtype=np.int64)
        for task in schema.tasks
    }


def check_trainable(schema: LabelSchema, train: list[Example]) -> None:
    """Every task needs at least two distinct labels in the training rows."""
    problems = []
    for task in schema.tasks:
        seen = {e.labels[task.name] for e in train if task.name in e.labels}
        if len(seen) < 2:
            found = [task.labels[i] for i in sorted(seen)]
            problems.append(
                f"task '{task.name}': the training data labels {len(seen)} distinct value(s) {found}; "
                "at least two are needed (add data or drop the task from the schema)"
            )
    if problems:
        raise DatasetError(problems)
