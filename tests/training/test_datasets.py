"""Dataset validation: every error names file, line and field; partial labels; formats; overlap removal."""

import json
from pathlib import Path

import pandas as pd
import pytest

from model.schema import LabelSchema
from tests.posts_factory import make_posts, write_jsonl
from training.config import DatasetSpec
from training.datasets import (
    DatasetError,
    check_trainable,
    drop_overlap,
    join_labels,
    load_dataset,
    load_datasets,
)
from training.paths import DEFAULT_SCHEMA

SCHEMA = LabelSchema.from_yaml(DEFAULT_SCHEMA)


def load(path: Path, **spec):
    return load_dataset(DatasetSpec(path=path, **spec), SCHEMA)


def error_of(path: Path, **spec) -> str:
    with pytest.raises(DatasetError) as caught:
        load(path, **spec)
    return str(caught.value)


def rows_with(change: dict, at: int = 2) -> list[dict]:
    rows = make_posts(copies=1)
    rows[at - 1].update(change)
    return rows


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"intent": "rant"}, "intent", "unknown label 'rant'; expected one of ['complaint'"),
        ({"text": "   "}, "text", "empty text"),
        ({"text": 42}, "text", "Input should be a valid string"),
        ({"author_followers": "many"}, "author.followers", "valid integer"),
        ({"author_followers": -3}, "author.followers", "greater than or equal to 0"),
        ({"sentiment": ["negative"]}, "sentiment", "expected a label (string), got list"),
        ({"needs_response": "maybe"}, "needs_response", "unknown label 'maybe'"),
    ],
)
def test_row_errors_name_file_line_and_field(tmp_path: Path, change: dict, field: str, message: str) -> None:
    path = write_jsonl(tmp_path / "posts.jsonl", rows_with(change, at=3))
    error = error_of(path)
    assert f"{path}:3: field '{field}'" in error
    assert message in error


def test_missing_text_field(tmp_path: Path) -> None:
    rows = make_posts(copies=1)
    del rows[1]["text"]
    path = write_jsonl(tmp_path / "posts.jsonl", rows)
    assert f"{path}:2: field 'text': missing" in error_of(path)


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    rows = make_posts(copies=1)
    rows[4]["id"] = rows[1]["id"]
    path = write_jsonl(tmp_path / "posts.jsonl", rows)
    assert f"{path}:5: field 'id': duplicate id '{rows[1]['id']}' (first at {path}:2)" in error_of(path)


def test_bad_encoding_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    lines = [json.dumps(r).encode() for r in make_posts(copies=1)[:3]]
    lines[2] = lines[2].replace(b"win", b"w\xffn") if b"win" in lines[2] else lines[2][:-2] + b"\xff\"}"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert f"{path}:3: bad encoding: byte 0xff" in error_of(path)


def test_invalid_json_line(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps(make_posts(copies=1)[0]) + "\n{broken\n")
    assert f"{path}:2: invalid JSON" in error_of(path)


def test_missing_csv_column(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    pd.DataFrame(make_posts(copies=1)).drop(columns=["text"]).to_csv(path, index=False)
    error = error_of(path)
    assert f"{path}: missing column 'text'" in error and "the file has columns" in error


def test_missing_mapped_column(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    pd.DataFrame(make_posts(copies=1)).to_csv(path, index=False)
    assert "missing column 'label' (for 'intent')" in error_of(path, columns={"intent": "label"})


def test_file_without_any_label_column(tmp_path: Path) -> None:
    rows = [{"id": r["id"], "text": r["text"]} for r in make_posts(copies=1)]
    path = write_jsonl(tmp_path / "posts.jsonl", rows)
    assert "no row labels any task" in error_of(path)


def test_all_problems_of_several_files_are_reported_together(tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", rows_with({"intent": "rant"}))
    second = write_jsonl(tmp_path / "b.jsonl", rows_with({"urgency": "asap"}, at=4))
    with pytest.raises(DatasetError) as caught:
        load_datasets([DatasetSpec(path=first), DatasetSpec(path=second)], SCHEMA)
    assert [p.split(": field")[0] for p in caught.value.problems] == [f"{first}:2", f"{second}:4"]


def test_csv_jsonl_and_parquet_read_the_same(tmp_path: Path) -> None:
    rows = make_posts(copies=2)
    jsonl = load(write_jsonl(tmp_path / "p.jsonl", rows))
    frame = pd.DataFrame(rows)
    frame.to_csv(tmp_path / "p.csv", index=False)
    frame.to_parquet(tmp_path / "p.parquet")
    for other in (load(tmp_path / "p.csv"), load(tmp_path / "p.parquet")):
        assert [(e.post, e.labels) for e in other.examples] == [(e.post, e.labels) for e in jsonl.examples]
    assert jsonl.examples[0].post.author.followers == rows[0]["author_followers"]
    assert jsonl.examples[0].extras == {"source": rows[0]["source"]}


def test_lines_format_reads_a_text_file_with_aligned_label_files(tmp_path: Path) -> None:
    # a blank text line is skipped with its labels; a line break other than "\n" stays inside its text
    (tmp_path / "text.txt").write_text("my parcel never came \nlove the new\u2028app\n\nwhat time do you open\n")
    (tmp_path / "sentiment.txt").write_text("0\n2\n0\n1\n")
    (tmp_path / "intent.txt").write_text("complaint\npraise\nspam\n\n")  # an empty label leaves the row unlabelled
    dataset = load(tmp_path / "text.txt", values={"sentiment": {"0": "negative", "1": "neutral", "2": "positive"}},
                   label_files={"sentiment": tmp_path / "sentiment.txt", "intent": tmp_path / "intent.txt"})
    assert [(e.post.text, e.labels) for e in dataset.examples] == [
        ("my parcel never came", {"intent": 0, "sentiment": 0}),
        ("love the new\u2028app", {"intent": 4, "sentiment": 2}),
        ("what time do you open", {"sentiment": 1}),
    ]
    assert [e.post.id for e in dataset.examples] == ["1", "2", "4"]


def test_lines_format_errors_name_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "text.txt").write_text("one\ntwo\nthree\n")
    (tmp_path / "short.txt").write_text("negative\n")
    assert "short.txt: 1 label lines for the 3 lines of" in error_of(
        tmp_path / "text.txt", label_files={"sentiment": tmp_path / "short.txt"})
    (tmp_path / "labels.txt").write_text("negative\nneutral\nangry\n")
    message = error_of(tmp_path / "text.txt", label_files={"sentiment": tmp_path / "labels.txt"})
    assert f"{tmp_path / 'text.txt'}:3: field 'sentiment': unknown label 'angry'" in message
    assert "'label_files' maps unknown tasks ['mood']" in error_of(
        tmp_path / "text.txt", label_files={"mood": tmp_path / "labels.txt"})
    with pytest.raises(ValueError, match="go with format 'lines'"):
        DatasetSpec(path=tmp_path / "posts.jsonl", label_files={"sentiment": tmp_path / "labels.txt"})


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pd.DataFrame(rows_with({"intent": "rant"}, at=2)).to_parquet(path)
    assert f"{path}: row 2: field 'intent'" in error_of(path)


def test_partial_labels_and_line_numbers_as_ids(tmp_path: Path) -> None:
    rows = [{"text": "only sentiment here", "sentiment": "positive"}, {"text": "only intent", "intent": "spam"}]
    dataset = load(write_jsonl(tmp_path / "partial.jsonl", rows))
    assert [e.labels for e in dataset.examples] == [{"sentiment": 2}, {"intent": 5}]
    assert [e.post.id for e in dataset.examples] == ["1", "2"]


def test_nested_post_fields_and_column_and_value_mapping(tmp_path: Path) -> None:
    rows = [
        {"tweet": "please fix my router", "label": 0, "author": {"followers": 12, "verified": True}},
        {"tweet": "lovely service", "label": 2, "engagement": {"likes": 3}},
    ]
    dataset = load(
        write_jsonl(tmp_path / "mapped.jsonl", rows),
        columns={"text": "tweet", "sentiment": "label"},
        values={"sentiment": {"0": "negative", "1": "neutral", "2": "positive"}},
    )
    assert [e.labels for e in dataset.examples] == [{"sentiment": 0}, {"sentiment": 2}]
    assert dataset.examples[0].post.author.verified and dataset.examples[1].post.engagement.likes == 3


@pytest.mark.parametrize(("raw", "expected"), [(True, 1), (False, 0), ("true", 1), ("No", 0), (1, 1), ("yes", 1)])
def test_boolean_task_coercion(tmp_path: Path, raw, expected: int) -> None:
    dataset = load(write_jsonl(tmp_path / "b.jsonl", [{"text": "hello there", "needs_response": raw}]))
    assert dataset.examples[0].labels == {"needs_response": expected}


def test_overlap_with_evaluation_is_dropped_and_reported(tmp_path: Path) -> None:
    train = load(write_jsonl(tmp_path / "train.jsonl", make_posts(copies=2))).examples
    evaluation = [train[3], train[7]]
    kept, report = drop_overlap(train, evaluation)
    assert len(kept) == len(train) - 2 and report.dropped == 2
    assert report.by_file == {str(tmp_path / "train.jsonl"): 2}
    assert all(e.post.id not in {train[3].post.id, train[7].post.id} for e in kept)


def test_check_trainable_names_the_task(tmp_path: Path) -> None:
    rows = [{"text": f"text number {i}", "intent": "spam", "sentiment": "neutral" if i % 2 else "positive"}
            for i in range(4)]
    examples = load(write_jsonl(tmp_path / "one.jsonl", rows)).examples
    with pytest.raises(DatasetError, match="task 'intent': the training data labels 1 distinct value"):
        check_trainable(SCHEMA, examples)


def test_join_on_text_adds_labels_to_rows_of_the_same_text_and_reports_what_it_did(tmp_path: Path) -> None:
    rows = load(write_jsonl(tmp_path / "own.jsonl", [
        {"id": "1", "text": "My parcel is lost @shop", "intent": "complaint"},
        {"id": "2", "text": "Do you ship to Norway?", "intent": "question"},
        {"id": "3", "text": "Great service today", "intent": "praise", "sentiment": "positive"},
    ])).examples
    extra = load(write_jsonl(tmp_path / "extra.jsonl", [
        {"id": "a", "text": "my parcel is lost   @other", "sentiment": "negative", "urgency": "high"},  # same key
        {"id": "b", "text": "my PARCEL is lost @shop", "sentiment": "positive"},  # same text again: the first wins
        {"id": "c", "text": "Great service today", "sentiment": "negative"},  # the row's own label wins
        {"id": "d", "text": "a post nobody else has", "sentiment": "neutral"},
    ]), join_on_text=True)
    joined, (report,) = join_labels(rows, [extra])
    names = {task.name: task for task in SCHEMA.tasks}
    assert joined[0].labels == {"intent": names["intent"].index("complaint"),
                                "sentiment": names["sentiment"].index("negative"),
                                "urgency": names["urgency"].index("high")}
    assert joined[1] is rows[1] and joined[2].labels == rows[2].labels
    assert rows[0].labels == {"intent": names["intent"].index("complaint")}  # the input rows are not changed
    assert report.as_dict() == {"file": str(tmp_path / "extra.jsonl"), "rows": 4, "unmatched": 1, "labelled": 1,
                                "conflicts": 1}
