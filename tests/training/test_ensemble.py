"""bench/ensemble.py: weights chosen on dev only, probabilities saved per split, and one real run end to end; and
bench/quality.py --backend distill (a row's split models as teachers) and --backend soup on tiny models."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench import emoji_ablation, ensemble, quality
from model.posts import Post
from training.benchmarks import PROTOCOLS, Split, protocol_config_path
from training.config import load_config
from training.datasets import Example

COMPLAINTS = PROTOCOLS["complaints"]


def rows(labels: list[int]) -> list[Example]:
    return [Example(post=Post(id=str(i), text=f"own text {i}"), labels={"complaint": y}, file="own.jsonl", line=i)
            for i, y in enumerate(labels)]


def test_weight_grid_covers_the_simplex_and_puts_the_equal_split_first() -> None:
    grid = ensemble.weight_grid(2, 0.25)
    assert grid[0] == (0.5, 0.5)
    assert sorted(set(grid)) == [(0.0, 1.0), (0.25, 0.75), (0.5, 0.5), (0.75, 0.25), (1.0, 0.0)]
    assert all(sum(w) == pytest.approx(1) for w in ensemble.weight_grid(3, 0.1))
    assert len(set(ensemble.weight_grid(3, 0.1))) == 66 + 1  # the grid, and the exact equal split
    with pytest.raises(ensemble.EnsembleError):
        ensemble.weight_grid(2, 0.3)


def test_weights_follow_the_member_that_is_right_on_dev() -> None:
    config = load_config(protocol_config_path(COMPLAINTS))
    dev = rows([0, 1, 0, 1])
    right = {"complaint": np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])}
    wrong = {"complaint": np.array([[0.1, 0.9], [0.9, 0.1], [0.2, 0.8], [0.8, 0.2]])}
    weights, value = ensemble.choose_weights([wrong, right], dev, config, COMPLAINTS, 0.1)
    assert value == 1.0 and weights[1] > weights[0]
    equal, equal_value = ensemble.choose_weights([wrong, right], dev, config, COMPLAINTS, None)
    assert equal == (0.5, 0.5) and equal_value < value  # no step: the equal split, whatever dev prefers
    averaged = ensemble.combine([wrong, right], (0.5, 0.5))["complaint"]
    assert np.allclose(averaged, (wrong["complaint"] + right["complaint"]) / 2)


def test_probabilities_round_trip_and_a_member_without_them_is_refused(tmp_path: Path) -> None:
    dev = {"complaint": np.array([[0.3, 0.7]])}
    test = {"torch": {"complaint": np.array([[0.6, 0.4], [0.1, 0.9]])}, "onnx-fp32": {"complaint": np.zeros((2, 2))}}
    quality.save_probabilities(tmp_path / "fold-1.probs.npz", dev, test)
    dev_again, test_again = quality.load_probabilities(tmp_path / "fold-1.probs.npz")
    assert np.array_equal(dev_again["complaint"], dev["complaint"])
    assert set(test_again) == {"torch", "onnx-fp32"} and np.array_equal(test_again["torch"]["complaint"],
                                                                          test["torch"]["complaint"])
    split = Split(name="fold-2", train=[], dev=rows([1]), test=rows([0, 1]))
    with pytest.raises(ensemble.EnsembleError, match="fold-2 has no saved probabilities"):
        ensemble.member_split(tmp_path, split, ["complaint"])
    (tmp_path / "fold-1.json").write_text(json.dumps({"served": "torch"}))
    with pytest.raises(ensemble.EnsembleError, match="different data"):
        other = Split(name="fold-1", train=[], dev=rows([1, 0]), test=rows([0, 1]))
        ensemble.member_split(tmp_path, other, ["complaint"])
    matching = Split(name="fold-1", train=[], dev=rows([1]), test=rows([0, 1]))
    _dev, _test, served = ensemble.member_split(tmp_path, matching, ["complaint"])
    with pytest.raises(ensemble.EnsembleError, match="no probabilities for"):
        ensemble.member_split(tmp_path, matching, ["complaint", "irony"])
    assert served == "torch"


@pytest.mark.shared_data
def test_an_ensemble_of_two_linear_rows_on_two_complaints_folds(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in (quality, ensemble):
        monkeypatch.setattr(module, "RESULTS", tmp_path / "quality.json")
    monkeypatch.setattr(quality, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(quality, "REPORT", tmp_path / "BENCHMARKS.md")
    common = ["--protocol", "complaints", "--backend", "linear", "--folds", "2", "--bootstrap", "0",
              "--shared-data", str(shared_data)]
    quality.main([*common, "--variant", "soft", "--set", "linear.C=0.5"])
    quality.main([*common, "--set", "linear.C=8"])  # row "C=8,folds=2", its work in runs/.../C=8
    ensemble.main(["--protocol", "complaints", "--member", "linear/soft", "--member", "linear/C=8,folds=2",
                   "--shared-data", str(shared_data), "--bootstrap", "0"])
    saved = json.loads((tmp_path / "quality.json").read_text())["rows"]
    row = saved["complaints/ensemble/linear/soft + linear/C=8,folds=2"]
    assert row["splits_run"] == 2 and len(row["settings"]["weights"]) == 2
    folds = row["scores"]["ensemble"]["tasks"]["complaint"]["macro_f1"]["folds"]
    assert all(0.6 < value <= 1 for value in folds)
    assert "weighted mean of the probabilities of `linear/soft`, `linear/C=8,folds=2`" in (
        tmp_path / "BENCHMARKS.md").read_text()

    ensemble.main(["--protocol", "complaints", "--member", "linear/soft", "--member", "linear/C=8,folds=2",
                   "--shared-data", str(shared_data), "--bootstrap", "0", "--equal-weights"])
    equal = json.loads((tmp_path / "quality.json").read_text())["rows"][
        "complaints/ensemble/linear/soft + linear/C=8,folds=2 (equal weights)"]
    assert equal["settings"]["weights"] == [[0.5, 0.5], [0.5, 0.5]] and equal["command"].endswith("--equal-weights")
    assert "equal weights (none chosen on dev)" in (tmp_path / "BENCHMARKS.md").read_text()


@pytest.mark.shared_data
def test_a_transformer_row_distils_into_one_model_per_split(
    shared_data: Path, tiny_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quality, "RESULTS", tmp_path / "quality.json")
    monkeypatch.setattr(quality, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(quality, "REPORT", tmp_path / "BENCHMARKS.md")
    common = ["--protocol", "complaints", "--folds", "2", "--bootstrap", "0", "--shared-data", str(shared_data),
              "--epochs", "1", "--set", "transformer.max_length=48"]
    quality.main([*common, "--backend", "transformer", "--variant", "tiny", "--keep-models", "--set",
                  f"transformer.encoder={tiny_encoder}"])
    quality.main([*common, "--backend", "distill", "--teacher", "transformer/tiny"])

    row = json.loads((tmp_path / "quality.json").read_text())["rows"][
        "complaints/distill/teachers=tiny,epochs=1,max_length=48,folds=2"]
    assert row["backend"] == "distill" and row["splits_run"] == 2
    assert row["settings"]["teachers"] == ["transformer/tiny"] and row["settings"]["distill"]["keep_layers"] == [0, 1]
    assert set(row["scores"]) == {"torch", "onnx-fp32", "onnx-int8"}
    assert "--backend distill --teacher transformer/tiny" in row["command"]
    (student,) = (tmp_path / "runs" / "complaints" / "distill").glob("*/models/*-fold1/latest")  # the last is kept
    manifest = json.loads((student.parent / student.read_text().strip() / "manifest.json").read_text())
    assert [t["name"] for t in manifest["distillation"]["teachers"]] == ["bench-complaints-fold1"]
    assert "distilled per split from the models of `transformer/tiny`" in (tmp_path / "BENCHMARKS.md").read_text()

    quality.main([*common, "--backend", "transformer", "--variant", "tiny2", "--keep-models", "--set",
                  f"transformer.encoder={tiny_encoder}", "--set", "seed=5"])
    quality.main([*common, "--backend", "distill", "--teacher", "transformer/tiny", "--student", "transformer/tiny2"])
    row = json.loads((tmp_path / "quality.json").read_text())["rows"][
        "complaints/distill/teachers=tiny,student=tiny2,epochs=1,max_length=48,folds=2"]
    assert row["settings"]["student"] == "transformer/tiny2"
    assert "--teacher transformer/tiny --student transformer/tiny2 --epochs 1" in row["command"]
    (student,) = (tmp_path / "runs" / "complaints" / "distill").glob("*student=tiny2*/models/*-fold1/latest")
    distillation = json.loads((student.parent / student.read_text().strip() / "manifest.json").read_text())[
        "distillation"]
    (tiny2,) = (tmp_path / "runs" / "complaints" / "transformer" / "tiny2" / "models").glob("*-fold1/latest")
    assert distillation["started_from"]["version"] == tiny2.read_text().strip()
    assert distillation["teachers"][0]["version"] != distillation["started_from"]["version"]
    assert "starts from the layers [0, 1] of `transformer/tiny2`" in (tmp_path / "BENCHMARKS.md").read_text()

    # A soup of the two rows: per split, the mean of the weights of their models for that split.
    soup_of_both = ["--backend", "soup", "--ingredient", "transformer/tiny", "--ingredient", "transformer/tiny2"]
    quality.main([*common, *soup_of_both, "--keep-models"])
    row = json.loads((tmp_path / "quality.json").read_text())["rows"][
        "complaints/soup/ingredients=tiny+tiny2,epochs=1,max_length=48,folds=2"]
    assert row["splits_run"] == 2 and set(row["scores"]) == {"torch", "onnx-fp32", "onnx-int8"}
    assert row["settings"] == {"ingredients": ["transformer/tiny", "transformer/tiny2"], "max_length": 48}
    assert "--backend soup --ingredient transformer/tiny --ingredient transformer/tiny2" in row["command"]
    (soup,) = (tmp_path / "runs" / "complaints" / "soup").glob("*/models/*-fold1/latest")
    ingredients = json.loads((soup.parent / soup.read_text().strip() / "manifest.json").read_text())["soup"][
        "ingredients"]
    assert [i["version"] for i in ingredients] == [
        (tmp_path / "runs" / "complaints" / "transformer" / variant / "models" / "bench-complaints-fold1" / "latest")
        .read_text().strip() for variant in ("tiny", "tiny2")]
    assert "the mean of the weights of the models of `transformer/tiny`, `transformer/tiny2`" in (
        tmp_path / "BENCHMARKS.md").read_text()
    with pytest.raises(SystemExit):
        quality.main([*common, "--backend", "soup", "--ingredient", "transformer/tiny"])  # one is no soup
    soup_row = "soup/ingredients=tiny+tiny2,epochs=1,max_length=48,folds=2"
    quality.main([*common, "--backend", "distill", "--teacher", "transformer/tiny", "--student", soup_row])
    row = json.loads((tmp_path / "quality.json").read_text())["rows"][
        f"complaints/distill/teachers=tiny,student={soup_row},epochs=1,max_length=48,folds=2"]
    assert row["settings"]["student"] == soup_row and row["splits_run"] == 2

    # Unlabelled texts: every complaints tweet (so each split's dev and test texts must be dropped, and its training
    # texts are duplicates) plus three customers' texts of our own, the only ones a student may learn from, and a
    # brand's reply that `where` leaves out.
    with (shared_data / "complaints_preotiuc2019" / "complaints-data.csv").open(newline="", encoding="utf-8") as f:
        tweets = [{"text": line[1], "side": "customer"} for line in csv.reader(f)]
    own = [{"text": f"my parcel number {i} never arrived and nobody answers", "side": "customer"} for i in range(3)]
    reply = {"text": "So sorry about the wait, please DM us your order number", "side": "brand"}
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text("".join(json.dumps(row) + "\n" for row in [*tweets, *own, reply]))
    config = yaml.safe_load(protocol_config_path(COMPLAINTS).read_text())
    config["unlabelled"] = [{"path": str(unlabelled), "license": "own texts and the benchmark's",
                             "where": {"side": "customer"}}]
    (tmp_path / "distill.yaml").write_text(yaml.safe_dump(config))
    quality.main([*common, "--backend", "distill", "--teacher", "transformer/tiny", "--variant", "unlabelled",
                  "--config", str(tmp_path / "distill.yaml")])
    row = json.loads((tmp_path / "quality.json").read_text())["rows"]["complaints/distill/unlabelled"]
    assert [split["unlabelled"]["rows_used"] for split in row["per_split"]] == [3, 3]
    assert all(split["unlabelled"]["dropped_as_evaluation_texts"] >= split["test_rows"] for split in row["per_split"])
    assert "own texts and the benchmark's" in row["licences"]
    assert "plus 3 unlabelled texts per split from `" in (tmp_path / "BENCHMARKS.md").read_text()
    assert "unlabelled.jsonl` where side = customer, learned from" in (tmp_path / "BENCHMARKS.md").read_text()
    config["unlabelled"] = [{"path": str(shared_data / "brand_intent" / "train.jsonl")}]
    (tmp_path / "forbidden.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit, match="must not train on brand_intent"):
        quality.main([*common, "--backend", "distill", "--teacher", "transformer/tiny", "--variant", "forbidden",
                      "--config", str(tmp_path / "forbidden.yaml")])

    # The emoji step measured on a row's own models (the named treatment must reproduce the row's probabilities):
    # only the test rows with emoji can change their prediction.
    monkeypatch.setattr(emoji_ablation, "RESULTS", tmp_path / "emoji.json")
    monkeypatch.setattr(emoji_ablation, "QUALITY_RESULTS", tmp_path / "quality.json")
    emoji_ablation.main(["--protocol", "complaints", "--row", "transformer/tiny", "--shared-data", str(shared_data)])
    entry = json.loads((tmp_path / "emoji.json").read_text())["rows"]["complaints/transformer/tiny"]
    assert entry["splits"] == 2 and entry["test_rows_with_emoji"] == sum(
        split["rows_with_emoji"] for split in entry["per_split"])
    assert entry["summary"]["named"]["changed_predictions"] == 0
    assert all(s["changed_predictions"] <= entry["test_rows_with_emoji"] for s in entry["summary"].values())

    shutil.rmtree(tmp_path / "runs" / "complaints" / "transformer" / "tiny" / "models" / "bench-complaints-fold0")
    with pytest.raises(SystemExit, match="no model kept for split fold0; re-run that row with --keep-models"):
        quality.main([*common, "--backend", "distill", "--teacher", "transformer/tiny", "--variant", "again"])
    with pytest.raises(SystemExit, match="no row transformer/missing"):
        quality.main([*common, "--backend", "distill", "--teacher", "transformer/missing"])
    with pytest.raises(SystemExit):
        quality.main([*common, "--backend", "distill"])  # no teacher: a usage error
    with pytest.raises(SystemExit):
        quality.main([*common, "--backend", "transformer", "--student", "transformer/tiny"])  # not distilling
