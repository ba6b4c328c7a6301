"""The linear backend through the CLI: fit, artifact contents, evaluate, custom label sets, refusals."""

import json
from pathlib import Path

import numpy as np
import pytest

from model.predictor import load_predictor
from tests.cli_helpers import latest_version, manifest_of, triage_train
from tests.posts_factory import make_posts, write_jsonl
from training.paths import PROJECT_ROOT


@pytest.fixture
def linear_model(tmp_path: Path, data_files: tuple[Path, Path]) -> Path:
    train, validation = data_files
    # The command line of the issue, verbatim, with the shipped default config.
    result = triage_train(
        "fit", "--config", PROJECT_ROOT / "configs" / "default.yaml", "--backend", "linear",
        "--train", train, "--validation", validation, "--output", tmp_path / "models",
    )
    assert result.exit_code == 0, result.output
    return latest_version(tmp_path / "models", "triage-default")


def test_fit_writes_a_complete_artifact(linear_model: Path, data_files: tuple[Path, Path]) -> None:
    manifest = manifest_of(linear_model)
    assert manifest["backend"] == "linear" and manifest["version"] == linear_model.name
    assert [t["name"] for t in manifest["tasks"]] == ["intent", "sentiment", "needs_response", "urgency"]
    assert set(manifest["calibration"]) == set(manifest["metrics"]["validation"]) == {
        "intent", "sentiment", "needs_response", "urgency"
    }
    assert 0 <= manifest["metrics"]["mean_macro_f1"] <= 1
    train_print = manifest["data"]["train"][0]
    # Files given with --train replace the config's and declare no licence of their own.
    assert train_print["rows"] == 60 and train_print["license"] == "unspecified" and len(train_print["sha256"]) == 64
    assert {"vectorizer.joblib", "heads.joblib", "report.json", "report.md"} <= set(manifest["files"])
    assert manifest["packages"]["scikit-learn"] and manifest["config"]["backend"] == "linear"
    assert not (linear_model.parent / ".runs").exists() or not any((linear_model.parent / ".runs").iterdir())
    report = json.loads((linear_model / "report.json").read_text())
    assert report["tasks"]["intent"]["n"] == 24


def test_predictions_round_trip_through_the_artifact(linear_model: Path, data_files: tuple[Path, Path]) -> None:
    predictor = load_predictor(linear_model.parent)  # the NAME directory means its latest version
    texts = ["@PebbleBank my card was charged twice, fix it now", "win a free cruise, click the link"]
    probs = predictor.predict_proba(texts)
    assert probs["intent"].shape == (2, 7) and np.allclose(probs["intent"].sum(axis=1), 1)
    again = load_predictor(linear_model).predict_proba(list(reversed(texts)))
    assert np.allclose(again["urgency"][::-1], probs["urgency"])


def test_evaluate_with_slices_and_baseline(linear_model: Path, data_files: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = triage_train(
        "evaluate", "--model", linear_model, "--data", data_files[1], "--output", out,
        "--slice", "source", "--baseline", linear_model, "--bootstrap", "100",
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert set(report["slices"]["values"]) == {"app", "shop"}
    assert report["baseline"]["deltas"]["intent"]["macro_f1"]["delta"] == 0
    intent = report["tasks"]["intent"]
    assert intent["intervals"]["macro_f1"][0] <= intent["macro_f1"] <= intent["intervals"]["macro_f1"][1]
    assert (out / "report.md").is_file() and (out / "plots" / "confusion_intent.png").is_file()


def test_evaluate_refuses_a_tampered_artifact(linear_model: Path, data_files: tuple[Path, Path]) -> None:
    (linear_model / "heads.joblib").write_bytes(b"not the model")
    result = triage_train("evaluate", "--model", linear_model, "--data", data_files[1])
    assert result.exit_code == 2
    assert "checksum mismatch for heads.joblib" in result.output


def test_fit_reports_bad_data_with_file_line_and_field(config_file: Path, tmp_path: Path) -> None:
    rows = make_posts(copies=1)
    rows[6]["urgency"] = "yesterday"
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    result = triage_train("fit", "--config", config_file, "--train", bad, "--output", tmp_path / "m")
    assert result.exit_code == 2
    assert f"{bad}:7: field 'urgency': unknown label 'yesterday'" in result.output


def test_custom_binary_label_set(tmp_path: Path) -> None:
    rows = [{"tweet": r["text"], "is_complaint": int(r["intent"] == "complaint")} for r in make_posts(copies=6)]
    write_jsonl(tmp_path / "train.jsonl", rows[:48])
    write_jsonl(tmp_path / "validation.jsonl", rows[48:])
    (tmp_path / "complaints.yaml").write_text(
        "name: complaints\nbackend: linear\ntasks:\n  complaint: ['no', 'yes']\n"
        "columns: {text: tweet, complaint: is_complaint}\n"
        "train: [train.jsonl]\nvalidation: [validation.jsonl]\n"
    )
    result = triage_train("fit", "--config", tmp_path / "complaints.yaml", "--output", tmp_path / "models")
    assert result.exit_code == 0, result.output
    predictor = load_predictor(tmp_path / "models" / "complaints")
    prediction = predictor.predict_proba(["the charger broke again and support ignored me"])
    assert list(prediction) == ["complaint"] and prediction["complaint"].shape == (1, 2)
    out = tmp_path / "eval"
    result = triage_train("evaluate", "--model", tmp_path / "models" / "complaints",
                          "--data", tmp_path / "validation.jsonl", "--output", out, "--no-plots")
    assert result.exit_code == 0, result.output
    assert list(json.loads((out / "report.json").read_text())["tasks"]) == ["complaint"]


def test_training_text_in_validation_is_dropped(
    config_file: Path, data_files: tuple[Path, Path], tmp_path: Path
) -> None:
    _, validation = data_files
    leaked = write_jsonl(tmp_path / "leaky.jsonl", make_posts(copies=5) + make_posts(copies=1, start=5))
    for row in (rows := [json.loads(line) for line in leaked.read_text().splitlines()])[60:]:
        row["id"] = "copy-" + row["id"]
    write_jsonl(leaked, rows)
    result = triage_train("fit", "--config", config_file, "--train", leaked, "--validation", validation,
                          "--output", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert "dropped 12 training rows" in result.output
    overlap = manifest_of(latest_version(tmp_path / "m", "tiny"))["data"]["overlap_removed"]
    assert overlap["dropped"] == 12 and overlap["by_file"] == {str(leaked): 12}


def test_a_join_on_text_file_labels_the_training_rows_not_the_holdout(tmp_path: Path) -> None:
    posts = make_posts(copies=6)
    write_jsonl(tmp_path / "train.jsonl", [{"id": r["id"], "text": r["text"], "complaint": r["intent"] == "complaint"}
                                           for r in posts])
    write_jsonl(tmp_path / "moods.jsonl", [{"id": f"m{i}", "text": r["text"].upper(), "mood": r["sentiment"]}
                                           for i, r in enumerate(posts)])
    (tmp_path / "joined.yaml").write_text(
        "name: joined\nbackend: linear\ntasks:\n  complaint: ['no', 'yes']\n  mood: [negative, neutral, positive]\n"
        "train: [train.jsonl, {path: moods.jsonl, join_on_text: true}]\nholdout: {fraction: 0.2}\n"
    )
    result = triage_train("fit", "--config", tmp_path / "joined.yaml", "--output", tmp_path / "models")
    assert result.exit_code == 0, result.output
    data = manifest_of(latest_version(tmp_path / "models", "joined"))["data"]
    (join,) = data["labels_joined"]
    assert join["labelled"] == data["train_rows_used"] and join["rows"] == len(posts)
    assert join["unmatched"] == len(posts) - data["train_rows_used"]  # the holdout's texts got no mood labels
    assert f"labels joined by text onto {join['labelled']} training rows" in result.output
    prediction = load_predictor(tmp_path / "models" / "joined").predict_proba(["my order is late again"])
    assert list(prediction) == ["complaint", "mood"]
