"""Benchmark protocol code (training/benchmarks.py, bench/quality*.py) on tiny data written for these tests."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from model.posts import Post
from model.schema import LabelSchema
from training.benchmarks import (
    BRAND_INTENT_SOURCES,
    PROTOCOLS,
    ProtocolError,
    Split,
    apply_overlap_rule,
    assign_folds,
    benchmark_splits,
    check_training_sources,
    cross_validation_splits,
    protocol_config_path,
    training_sources,
    with_header,
    write_examples,
)
from training.config import DatasetSpec, DistillConfig, TrainConfig, load_config
from training.datasets import Example, load_dataset
from training.metrics import summary_scores

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = LabelSchema.from_mapping({"complaint": ["no", "yes"]})
TOPICS = ("parcel", "invoice", "router", "refund", "login", "delivery", "screen", "battery")


def example(number: int, label: int, domain: str = "retail", text: str | None = None, file: str = "own.csv") -> Example:
    text = text or f"note {number}: the {TOPICS[number % len(TOPICS)]} story, take {number}"
    return Example(post=Post(id=str(number), text=text), labels={"complaint": label}, file=f"/x/{file}", line=number,
                   extras={"domain": domain})


def pool(n: int = 200) -> list[Example]:
    """n rows: a third complaints, spread over three domains; one domain has no complaints at all."""
    rows = []
    for i in range(n):
        domain = ("retail", "travel", "random")[i % 3]
        rows.append(example(i, int(domain != "random" and i % 2 == 0), domain))
    return rows


def stratum(e: Example) -> tuple[int, str]:
    return e.labels["complaint"], e.extras["domain"]


# ---- folds --------------------------------------------------------------------------------------------------------
def test_folds_are_stratified_balanced_and_deterministic() -> None:
    rows = pool()
    folds = assign_folds(rows, 10, stratum, lambda e: e.post.id)
    assert folds == assign_folds(list(rows), 10, stratum, lambda e: e.post.id)
    assert sorted(Counter(folds).values())[-1] - sorted(Counter(folds).values())[0] <= 1
    for key in {stratum(e) for e in rows}:
        per_fold = Counter(f for e, f in zip(rows, folds, strict=True) if stratum(e) == key)
        counts = [per_fold.get(f, 0) for f in range(10)]
        assert max(counts) - min(counts) <= 1, (key, counts)
    # another salt deals the rows differently, still stratified
    assert folds != assign_folds(rows, 10, stratum, lambda e: e.post.id, salt="other")


def test_fold_assignment_refuses_too_few_rows() -> None:
    with pytest.raises(ValueError, match="cannot fill"):
        assign_folds(pool(5), 10, stratum, lambda e: e.post.id)
    with pytest.raises(ValueError, match="at least 2 folds"):
        assign_folds(pool(), 1, stratum, lambda e: e.post.id)


def test_cross_validation_carves_the_dev_part_from_the_training_folds_only() -> None:
    rows = pool()
    splits = cross_validation_splits(rows, 5, 0.1, stratum, stratum)
    assert [s.name for s in splits] == [f"fold{i}" for i in range(5)]
    tested = Counter(e.post.id for s in splits for e in s.test)
    assert tested == Counter(e.post.id for e in rows)  # every row is tested exactly once
    for split in splits:
        train, dev, test = ({e.post.id for e in part} for part in (split.train, split.dev, split.test))
        assert not (train & dev) and not (train & test) and not (dev & test)
        assert len(train | dev | test) == len(rows)
        # the dev part is ~10% of the training folds, stratum by stratum
        rest = Counter(stratum(e) for e in split.train + split.dev)
        carved = Counter(stratum(e) for e in split.dev)
        assert all(carved[key] == round(count * 0.1) for key, count in rest.items())


# ---- metric -------------------------------------------------------------------------------------------------------
def test_macro_recall_matches_a_hand_computed_example() -> None:
    # truth: 4 negative, 2 neutral, 4 positive
    truth = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    predicted = np.array([0, 0, 0, 1, 1, 2, 2, 2, 0, 1])
    probs = np.eye(3)[predicted]
    # recall: negative 3/4, neutral 1/2, positive 2/4 -> (0.75 + 0.5 + 0.5) / 3
    scores = summary_scores(truth, probs)
    assert scores["macro_recall"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    assert scores["accuracy"] == pytest.approx(6 / 10)
    # precision: negative 3/4, neutral 1/3, positive 2/3; F1 = 2tp / (support + predicted) per class
    assert scores["macro_f1"] == pytest.approx((6 / 8 + 2 / 5 + 4 / 7) / 3)


def test_tweeteval_protocol_scores_macro_recall_on_the_official_test_split() -> None:
    protocol = PROTOCOLS["tweeteval_sentiment"]
    assert (protocol.metric, protocol.task, protocol.folds) == ("macro_recall", "sentiment", 0)
    assert protocol.test_file.endswith("test.parquet")
    assert PROTOCOLS["complaints"].folds == 10 and PROTOCOLS["complaints"].metric == "macro_f1"


# ---- rules --------------------------------------------------------------------------------------------------------
def test_overlap_rule_drops_training_and_dev_rows_identical_to_test_texts() -> None:
    test = [example(1, 1, text="@shopA where is my parcel, ordered three weeks ago"), example(2, 0)]
    train = [
        example(10, 1, text="@shopB Where is my parcel, ordered three weeks ago"),  # same after @user and case
        example(11, 0, text="a new text about an invoice"),
        example(12, 0, text=test[1].post.text),
    ]
    dev = [example(20, 1, text="@someone WHERE IS MY PARCEL, ordered three weeks ago"), example(21, 0)]
    split = apply_overlap_rule(Split(name="test", train=train, dev=dev, test=test))
    assert [e.post.id for e in split.train] == ["11"]
    assert [e.post.id for e in split.dev] == ["21"]
    assert split.test == test
    assert split.overlap == {"train": {"dropped": 2, "by_file": {"x/own.csv": 2}},
                             "dev": {"dropped": 1, "by_file": {"x/own.csv": 1}}}


@pytest.mark.parametrize("source", BRAND_INTENT_SOURCES)
def test_brand_intent_models_must_not_train_on_its_sources(source: str) -> None:
    allowed = DatasetSpec(path=Path("/data/brand_intent/train.jsonl"))
    with pytest.raises(ProtocolError, match=source):
        check_training_sources("brand_intent", [allowed, DatasetSpec(path=Path(f"/data/{source}/file.csv"))])
    check_training_sources("brand_intent", [allowed, DatasetSpec(path=Path("/project/data/brand_posts/train.jsonl"))])


def test_complaints_models_must_not_train_on_brand_intent() -> None:
    own = DatasetSpec(path=Path("/data/complaints_preotiuc2019/complaints-data.csv"))
    check_training_sources("complaints", [own])
    with pytest.raises(ProtocolError, match="must not train on brand_intent"):
        check_training_sources("complaints", [own, DatasetSpec(path=Path("/data/brand_intent/train.jsonl"))])


def test_the_protocol_refuses_a_config_that_breaks_the_source_rule(tmp_path: Path) -> None:
    forbidden = tmp_path / "twitter_us_airline_sentiment" / "tweets.jsonl"
    forbidden.parent.mkdir()
    forbidden.write_text(json.dumps({"id": "1", "text": "a post", "complaint": "yes"}) + "\n")
    config = tmp_path / "bad.yaml"
    config.write_text(f"name: bad\nbackend: linear\ntasks: {{complaint: ['no', 'yes']}}\ntrain: ['{forbidden}']\n"
                      "holdout: {fraction: 0.1}\n")
    with pytest.raises(ProtocolError):
        benchmark_splits(PROTOCOLS["brand_intent"], load_config(config), tmp_path, tmp_path / "work")


def test_cross_validation_folds_come_from_the_first_file_and_auxiliary_rows_only_train(tmp_path: Path) -> None:
    from training.benchmarks import Protocol

    own = tmp_path / "own.jsonl"
    own.write_text("".join(json.dumps({"id": str(e.post.id), "text": e.post.text, "domain": e.extras["domain"],
                                       "complaint": ["no", "yes"][e.labels["complaint"]]}) + "\n" for e in pool(60)))
    aux = tmp_path / "aux.jsonl"
    aux.write_text("".join(json.dumps({"id": f"a{i}", "text": f"an extra tweet about {TOPICS[i % 8]} number {i}",
                                       "mood": ["calm", "angry"][i % 2]}) + "\n" for i in range(12)))
    config = tmp_path / "multi.yaml"
    config.write_text(f"name: multi\nbackend: linear\ntasks: {{complaint: ['no', 'yes'], mood: [calm, angry]}}\n"
                      f"train: ['{own}', '{aux}']\nholdout: {{fraction: 0.1}}\n")
    protocol = Protocol(name="tiny", config=str(config), task="complaint", metric="macro_f1", split="3 folds",
                        folds=3, fold_stratify_extra="domain")
    splits = benchmark_splits(protocol, load_config(config), tmp_path, tmp_path / "work")
    assert sum(len(s.test) for s in splits) == 60  # every own row is tested once, no auxiliary row ever is
    for split in splits:
        assert all("complaint" in e.labels for e in [*split.test, *split.dev])
        assert sum("mood" in e.labels for e in split.train) == 12


def test_joined_labels_reach_the_training_part_only(tmp_path: Path) -> None:
    from training.benchmarks import Protocol

    rows = pool(60)
    own = tmp_path / "own.jsonl"
    own.write_text("".join(json.dumps({"id": str(e.post.id), "text": e.post.text, "domain": e.extras["domain"],
                                       "complaint": ["no", "yes"][e.labels["complaint"]]}) + "\n" for e in rows))
    notes = tmp_path / "notes.csv"  # another annotation of the same posts (and one post the protocol lacks)
    notes.write_text("id,tweet,mood\n" + "".join(f'{i},"{e.post.text.upper()}",{["calm", "angry"][i % 2]}\n'
                                                 for i, e in enumerate(rows)) + '99,"a post of its own",calm\n')
    config = tmp_path / "joined.yaml"
    config.write_text(f"name: joined\nbackend: linear\ntasks: {{complaint: ['no', 'yes'], mood: [calm, angry]}}\n"
                      f"train: ['{own}', {{path: '{notes}', join_on_text: true, columns: {{text: tweet}}}}]\n"
                      "holdout: {fraction: 0.1}\n")
    protocol = Protocol(name="tiny", config=str(config), task="complaint", metric="macro_f1", split="3 folds",
                        folds=3, fold_stratify_extra="domain")
    splits = benchmark_splits(protocol, load_config(config), tmp_path, tmp_path / "work")
    assert sum(len(s.test) for s in splits) == 60  # the joined file adds no rows
    for split in splits:
        assert all(set(e.labels) == {"complaint"} for e in [*split.test, *split.dev])
        assert all(set(e.labels) == {"complaint", "mood"} for e in split.train)
        assert split.joined == [{"file": str(notes), "rows": 61, "unmatched": 61 - len(split.train),
                                 "labelled": len(split.train), "conflicts": 0}]


def test_benchmark_configs_follow_the_source_rules() -> None:
    variants = {"tweeteval_sentiment": ["configs/benchmarks/tweeteval_sentiment_multitask.yaml"],
                "complaints": ["configs/benchmarks/complaints_multitask.yaml",
                               "configs/benchmarks/complaints_distill_twcs.yaml"]}
    for protocol in PROTOCOLS.values():
        for path in [protocol_config_path(protocol), *(ROOT / p for p in variants.get(protocol.name, []))]:
            config = load_config(path, kind=DistillConfig if "distill" in path.name else TrainConfig)
            check_training_sources(protocol.name, training_sources(config))
            assert config.validation or config.holdout, path  # model selection never uses the test split
            assert config.label_schema().names[0] == (protocol.task or config.label_schema().names[0]), path


# ---- data plumbing ------------------------------------------------------------------------------------------------
def test_headerless_csv_is_read_with_named_columns_and_written_back_as_plain_jsonl(tmp_path: Path) -> None:
    raw = tmp_path / "plain.csv"
    raw.write_text('101,"@shopA my order never came, again",1,retail\n102,lovely weather today,0,random_tweet\n')
    spec = DatasetSpec(path=raw, columns={"id": "tweet_id"}, values={"complaint": {"0": "no", "1": "yes"}})
    headed = with_header(spec, ("tweet_id", "text", "complaint", "domain"), tmp_path / "work")
    dataset = load_dataset(headed, SCHEMA)
    assert [(e.post.id, e.labels, e.extras) for e in dataset.examples] == [
        ("101", {"complaint": 1}, {"domain": "retail"}), ("102", {"complaint": 0}, {"domain": "random_tweet"})]
    plain = write_examples(tmp_path / "out.jsonl", dataset.examples, SCHEMA)
    again = load_dataset(DatasetSpec(path=plain), SCHEMA)
    assert [(e.post.text, e.labels, e.extras) for e in again.examples] == [
        (e.post.text, e.labels, e.extras) for e in dataset.examples]
    assert [e.post.id for e in again.examples] == ["work/plain.csv:101", "work/plain.csv:102"]


def linear_row(variant: str = "reference", hardware: str = "a test machine") -> dict:
    """A finished complaints row as bench/quality.py writes it."""
    summary = {"mean": 0.81234, "std": 0.0219, "n": 10, "folds": [0.8] * 10, "ci": None}
    return {
        "protocol": "complaints", "backend": "linear", "variant": variant, "task": "complaint",
        "metric": "macro_f1", "split": "10-fold", "config": "configs/benchmarks/complaints.yaml", "overrides": {},
        "settings": {"word_ngrams": [1, 2], "char_ngrams": [2, 5], "C": 4.0}, "splits_total": 10, "splits_run": 10,
        "scores": {"linear": {"tasks": {"complaint": {"macro_f1": summary}}}}, "served": "linear",
        "best_epochs": [None] * 10, "train_rows": 27720, "dev_rows": 3060, "test_rows": 3449,
        "overlap_dropped": {"train": 140, "dev": 19}, "licences": ["none stated"], "train_seconds": 60.0,
        "wall_seconds": 72.0, "hardware": hardware, "command": "bench/quality.py --protocol complaints",
        "finished_at": "2026-11-26T00:00:00+00:00", "git_commit": None, "labels_joined": {"notes.csv": 2788},
    }


def test_report_renders_the_numbers_of_the_json_beside_the_anchors(tmp_path: Path) -> None:
    from bench.quality import merge
    from bench.quality_report import render

    results = merge(linear_row(), tmp_path / "quality.json")
    assert list(results["rows"]) == ["complaints/linear/reference"]
    text = render(json.loads((tmp_path / "quality.json").read_text()))
    assert "**81.2 ± 2.2 (10 folds)**" in text and "| Jin & Aletras 2021 | published | 88.2 |" in text
    assert "`bench/quality.py --protocol complaints`" in text and "a test machine" in text
    assert "labels of `notes.csv` joined by text onto 2788 training rows (never onto dev or test rows)" in text
    assert "## TweetEval sentiment" in text and "Not run yet." in text


@pytest.mark.shared_data
def test_complaints_folds_on_the_shared_data(shared_data: Path, tmp_path: Path) -> None:
    protocol = PROTOCOLS["complaints"]
    splits = benchmark_splits(protocol, load_config(protocol_config_path(protocol)), shared_data, tmp_path)
    assert len(splits) == 10 and sum(len(s.test) for s in splits) == 3449
    sizes = [len(s.test) for s in splits]
    assert max(sizes) - min(sizes) <= 1
    complaints = [sum(e.labels["complaint"] for e in s.test) for s in splits]
    assert sum(complaints) == 1232 and max(complaints) - min(complaints) <= 9  # at most one per (label, domain)
    for split in splits:
        assert 0.08 < len(split.dev) / (len(split.train) + len(split.dev)) < 0.11


@pytest.mark.shared_data
def test_complaints_multitask_joins_the_xci_labels_onto_the_training_folds(shared_data: Path, tmp_path: Path) -> None:
    config = load_config(ROOT / "configs/benchmarks/complaints_multitask.yaml")
    splits = benchmark_splits(PROTOCOLS["complaints"], config, shared_data, tmp_path)
    plain = benchmark_splits(PROTOCOLS["complaints"], load_config(protocol_config_path(PROTOCOLS["complaints"])),
                             shared_data, tmp_path / "plain")
    for split, same in zip(splits, plain, strict=True):  # the same folds and dev parts as the single-task protocol
        assert [e.post.id for e in split.test] == [e.post.id for e in same.test]
        assert [e.post.id for e in split.dev] == [e.post.id for e in same.dev]
        assert all(set(e.labels) == {"complaint"} for e in [*split.test, *split.dev])
        (join,) = split.joined
        assert join["labelled"] >= 0.99 * len(split.train) and join["conflicts"] <= 2
        severe = [e for e in split.train if "severity" in e.labels]
        assert sum((e.labels["severity"] > 0) != bool(e.labels["complaint"]) for e in severe) <= 2


def test_each_row_records_the_command_that_reproduces_it() -> None:
    from bench.quality import command, parse_args

    argv = ["--protocol", "complaints", "--backend", "transformer", "--epochs", "2", "--folds", "3",
            "--set", "transformer.learning_rate=4e-5"]
    assert command(parse_args(argv)) == ".venv/bin/python bench/quality.py " + " ".join(argv)
    other = ["--protocol", "tweeteval_sentiment", "--backend", "transformer",
             "--config", "configs/benchmarks/tweeteval_sentiment_multitask.yaml"]
    assert command(parse_args(other)) == ".venv/bin/python bench/quality.py " + " ".join(other)
    quick = ["--protocol", "complaints", "--backend", "transformer", "--int8-fallback", "0"]
    assert command(parse_args(quick)) == ".venv/bin/python bench/quality.py " + " ".join(quick)
    with pytest.raises(SystemExit):
        parse_args(["--protocol", "complaints"])  # a backend is required
    with pytest.raises(SystemExit):
        parse_args([*quick[:-1], "-1"])


def test_device_merge_takes_only_the_rows_run_on_the_gpu_machine(tmp_path: Path, monkeypatch) -> None:
    import bench.quality
    from bench.device.merge import main as merge_device_rows

    monkeypatch.setattr(bench.quality, "RESULTS", tmp_path / "local.json")
    monkeypatch.setattr(bench.quality, "REPORT", tmp_path / "BENCHMARKS.md")
    bench.quality.merge(linear_row(hardware="this machine"))  # a local row the device's copy holds an older version of
    device = tmp_path / "device.json"
    bench.quality.merge(linear_row(hardware="older copy"), device)
    bench.quality.merge(linear_row("gpu,reference", hardware="GPU NVIDIA H200"), device)
    merge_device_rows([str(device)])
    rows = json.loads((tmp_path / "local.json").read_text())["rows"]
    assert {key: row["hardware"] for key, row in rows.items()} == {
        "complaints/linear/reference": "this machine", "complaints/linear/gpu,reference": "GPU NVIDIA H200"}
    assert "`gpu,reference`" in (tmp_path / "BENCHMARKS.md").read_text()
    bench.quality.merge(linear_row(), tmp_path / "cpu-only.json")
    with pytest.raises(SystemExit, match="no row whose variant starts with 'gpu,'"):
        merge_device_rows([str(tmp_path / "cpu-only.json")])


def test_device_encoder_travels_as_fp16_and_widens_back_to_a_loadable_fp32_checkpoint(
        tiny_encoder: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel

    from bench.device.pack import copy_encoder

    copy_encoder(tiny_encoder, tmp_path / "fp16", "float16")
    copy_encoder(tmp_path / "fp16", tmp_path / "fp32", "float32")
    original, packed = load_file(tiny_encoder / "model.safetensors"), load_file(tmp_path / "fp16/model.safetensors")
    widened = load_file(tmp_path / "fp32/model.safetensors")
    assert set(packed) == set(original) == set(widened)
    for name, tensor in original.items():
        assert packed[name].dtype == torch.float16 and widened[name].dtype == tensor.dtype == torch.float32
        assert (widened[name] - tensor).abs().max() <= 1e-3 * max(1.0, tensor.abs().max().item()), name
    assert AutoModel.from_pretrained(tmp_path / "fp32").dtype == torch.float32
    config_files = {p.name for p in tiny_encoder.iterdir() if p.suffix in {".json", ".txt"}}
    assert config_files and config_files == {p.name for p in (tmp_path / "fp32").iterdir()} - {"model.safetensors"}
