"""Metrics against scikit-learn and hand arithmetic; reports built over partial labels; files written to disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from model.schema import LabelSchema
from training.evaluation import build_report, mean_macro_f1
from training.metrics import classification_metrics, expected_calibration_error, paired_delta, summary_scores
from training.report import format_estimate, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# 10 rows, 3 classes. Confusion matrix (rows true, cols predicted):
#   true 0: [2, 1, 1]   true 1: [1, 2, 0]   true 2: [0, 0, 3]
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 2, 1, 1, 0, 2, 2, 2])
LABELS = ("complaint", "question", "praise")


def probs_for(pred: np.ndarray, k: int, confidence: float = 0.7) -> np.ndarray:
    """Rows whose argmax is `pred`, with `confidence` on it and the rest spread evenly."""
    probs = np.full((len(pred), k), (1.0 - confidence) / (k - 1))
    probs[np.arange(len(pred)), pred] = confidence
    return probs


def test_scores_match_sklearn_on_small_example() -> None:
    metrics = classification_metrics(Y_TRUE, probs_for(Y_PRED, 3), LABELS, n_bootstrap=0)
    assert metrics["n"] == 10
    assert metrics["labels"] == list(LABELS)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(Y_TRUE, Y_PRED))
    assert metrics["macro_f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro", zero_division=0))
    assert metrics["macro_recall"] == pytest.approx(recall_score(Y_TRUE, Y_PRED, average="macro", zero_division=0))
    precision = precision_score(Y_TRUE, Y_PRED, average=None, zero_division=0)
    f1 = f1_score(Y_TRUE, Y_PRED, average=None, zero_division=0)
    for i, label in enumerate(LABELS):
        assert metrics["per_class"][label]["precision"] == pytest.approx(precision[i])
        assert metrics["per_class"][label]["f1"] == pytest.approx(f1[i])
    assert metrics["confusion_matrix"] == [[2, 1, 1], [1, 2, 0], [0, 0, 3]]
    assert [metrics["per_class"][label]["support"] for label in LABELS] == [4, 3, 3]
    assert metrics["intervals"] is None
    assert metrics["per_class"]["praise"]["f1_ci"] is None


def test_macro_scores_by_hand() -> None:
    metrics = classification_metrics(Y_TRUE, probs_for(Y_PRED, 3), LABELS, n_bootstrap=0)
    # Recall per class: 2/4, 2/3, 3/3 -> mean (0.5 + 0.6667 + 1) / 3 = 13/18 = 0.7222.
    assert metrics["macro_recall"] == pytest.approx(13 / 18)
    # F1 = 2tp / (support + predicted): 4/7, 4/6, 6/7 -> mean (10/7 + 2/3) / 3 = 44/63 = 0.6984.
    assert metrics["macro_f1"] == pytest.approx(44 / 63)
    assert metrics["accuracy"] == pytest.approx(0.7)


def test_macro_average_skips_labels_absent_from_truth_and_predictions() -> None:
    four = classification_metrics(Y_TRUE, probs_for(Y_PRED, 4), [*LABELS, "spam"], n_bootstrap=0)
    # "spam" is neither true nor predicted: same macro scores as with three labels, but still listed per class.
    assert four["macro_recall"] == pytest.approx(13 / 18)
    assert four["macro_f1"] == pytest.approx(44 / 63)
    assert four["per_class"]["spam"]["support"] == 0
    # A label that is predicted but never true counts (recall 0), as in scikit-learn's default.
    y_pred = Y_PRED.copy()
    y_pred[0] = 3
    metrics = classification_metrics(Y_TRUE, probs_for(y_pred, 4), [*LABELS, "spam"], n_bootstrap=0)
    assert metrics["macro_recall"] == pytest.approx(recall_score(Y_TRUE, y_pred, average="macro", zero_division=0))
    assert metrics["macro_f1"] == pytest.approx(f1_score(Y_TRUE, y_pred, average="macro", zero_division=0))


def test_random_cases_match_sklearn() -> None:
    rng = np.random.default_rng(7)
    for _ in range(25):
        n, k = int(rng.integers(1, 30)), int(rng.integers(2, 6))
        y_true, probs = rng.integers(0, k, n), rng.dirichlet(np.ones(k), n)
        y_pred = probs.argmax(axis=1)
        scores = summary_scores(y_true, probs)
        assert scores["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
        assert scores["macro_recall"] == pytest.approx(recall_score(y_true, y_pred, average="macro", zero_division=0))
        assert scores["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))


def test_bootstrap_intervals_contain_estimate_and_are_reproducible() -> None:
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 3, 300)
    probs = rng.dirichlet(np.ones(3), 300)
    probs[np.arange(150), y_true[:150]] += 1.0  # half the rows lean to the truth: scores well above chance
    probs /= probs.sum(axis=1, keepdims=True)
    metrics = classification_metrics(y_true, probs, LABELS, n_bootstrap=200, seed=1)
    for name in ("accuracy", "macro_f1", "macro_recall"):
        lo, hi = metrics["intervals"][name]
        assert 0.0 <= lo <= metrics[name] <= hi <= 1.0
        assert hi - lo > 0
    for entry in metrics["per_class"].values():
        for name in ("precision", "recall", "f1"):
            lo, hi = entry[f"{name}_ci"]
            assert lo <= entry[name] <= hi
    again = classification_metrics(y_true, probs, LABELS, n_bootstrap=200, seed=1)
    assert again["intervals"] == metrics["intervals"]
    json.dumps(metrics, allow_nan=False)


def test_ece_is_zero_for_confident_correct_predictions() -> None:
    probs = np.eye(3)[Y_TRUE]
    metrics = classification_metrics(Y_TRUE, probs, LABELS, n_bootstrap=0)
    assert metrics["ece"] == pytest.approx(0.0)
    assert metrics["reliability"]["count"][-1] == 10
    assert sum(metrics["reliability"]["count"]) == 10


def test_ece_by_hand() -> None:
    # Four rows at confidence 0.85 with 3 correct (gap |0.75 - 0.85| = 0.10) and two rows at 0.65, both correct
    # (gap |1.0 - 0.65| = 0.35): ECE = 4/6 * 0.10 + 2/6 * 0.35 = (0.4 + 0.7) / 6 = 0.18333.
    y_true = np.array([0, 0, 0, 1, 1, 0])
    probs = np.array([[0.85, 0.15]] * 4 + [[0.35, 0.65], [0.65, 0.35]])
    ece, reliability = expected_calibration_error(y_true, probs, n_bins=15)
    assert ece == pytest.approx(1.1 / 6)
    assert len(reliability["bin_edges"]) == 16
    assert reliability["count"][12] == 4 and reliability["count"][9] == 2
    assert reliability["accuracy"][12] == pytest.approx(0.75)
    assert reliability["confidence"][9] == pytest.approx(0.65)
    assert reliability["accuracy"][0] is None


def test_paired_delta() -> None:
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 3, 200)
    probs_a = probs_for(np.where(rng.random(200) < 0.8, y_true, (y_true + 1) % 3), 3)
    probs_b = probs_for(np.where(rng.random(200) < 0.6, y_true, (y_true + 1) % 3), 3)
    same = paired_delta(y_true, probs_a, probs_a, n_bootstrap=200)
    for name in ("accuracy", "macro_f1", "macro_recall"):
        assert same[name] == {"delta": 0.0, "ci": [0.0, 0.0]}
    delta = paired_delta(y_true, probs_a, probs_b, n_bootstrap=200)
    a, b = summary_scores(y_true, probs_a), summary_scores(y_true, probs_b)
    for name in ("accuracy", "macro_f1", "macro_recall"):
        assert delta[name]["delta"] == pytest.approx(a[name] - b[name])
        lo, hi = delta[name]["ci"]
        assert 0 < lo <= delta[name]["delta"] <= hi
    assert paired_delta(y_true, probs_a, probs_b, n_bootstrap=0)["accuracy"]["ci"] is None


@pytest.fixture
def schema() -> LabelSchema:
    return LabelSchema.from_mapping(
        {
            "intent": ["complaint", "question", "praise"],
            "urgent": ["no", "yes"],
            "sentiment": ["negative", "neutral", "positive"],
            "language": ["en", "other"],
        }
    )


def example_inputs() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str | None]]:
    """12 rows: intent labels rows 0-9, urgent labels every other row, sentiment labels none; no language probs."""
    intent = np.concatenate([Y_TRUE, [-1, -1]])
    urgent = np.array([1, -1, 0, -1, 1, -1, 0, -1, 0, -1, 1, -1])
    y_true = {"intent": intent, "urgent": urgent, "sentiment": np.full(12, -1)}
    probs = {
        "intent": probs_for(np.concatenate([Y_PRED, [0, 1]]), 3),
        "urgent": probs_for(np.array([1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0]), 2, confidence=0.9),
        "sentiment": probs_for(np.zeros(12, dtype=int), 3),
    }
    slices: list[str | None] = ["en"] * 5 + ["fr"] * 5 + [None, None]
    return y_true, probs, slices


def test_build_report_with_partial_labels_slices_and_baseline(schema: LabelSchema) -> None:
    y_true, probs, slices = example_inputs()
    report = build_report(
        schema,
        y_true,
        probs,
        slices=slices,
        slice_name="language",
        baseline_probs={"intent": probs["intent"]},
        model={"name": "tiny"},
        n_bootstrap=200,
    )
    assert set(report["tasks"]) == {"intent", "urgent"}
    assert report["skipped_tasks"] == ["sentiment", "language"]
    assert report["model"] == {"name": "tiny"} and report["data"] == {}

    intent = report["tasks"]["intent"]
    assert intent["n"] == 10 and intent["macro_recall"] == pytest.approx(13 / 18)
    urgent = report["tasks"]["urgent"]
    # Labelled urgent rows 0,2,4,6,8,10: true [1,0,1,0,0,1], predicted [1,0,1,1,0,1] -> 5 of 6 correct.
    assert urgent["n"] == 6 and urgent["accuracy"] == pytest.approx(5 / 6)
    assert urgent["confusion_matrix"] == [[2, 1], [0, 3]]

    section = report["slices"]
    assert section["name"] == "language"
    assert list(section["values"]) == ["en", "fr", "(none)"]
    assert [v["n"] for v in section["values"].values()] == [5, 5, 2]
    assert section["values"]["en"]["tasks"]["intent"]["n"] == 5
    assert section["values"]["en"]["tasks"]["urgent"]["n"] == 3
    assert set(section["values"]["(none)"]["tasks"]) == {"urgent"}  # intent has no labels in rows 10-11
    assert section["values"]["en"]["tasks"]["intent"]["accuracy"] == pytest.approx(3 / 5)

    assert set(report["baseline"]["tasks"]) == {"intent"}
    assert report["baseline"]["tasks"]["intent"]["macro_f1"] == pytest.approx(intent["macro_f1"])
    for name in ("accuracy", "macro_f1", "macro_recall"):
        assert report["baseline"]["deltas"]["intent"][name] == {"delta": 0.0, "ci": [0.0, 0.0]}

    assert mean_macro_f1(report) == pytest.approx((intent["macro_f1"] + urgent["macro_f1"]) / 2)
    json.dumps(report, allow_nan=False)


def test_build_report_rejects_mismatched_shapes(schema: LabelSchema) -> None:
    y_true, probs, _ = example_inputs()
    with pytest.raises(ValueError, match="intent"):
        build_report(schema, y_true, {**probs, "intent": probs["intent"][:, :2]}, n_bootstrap=0)
    with pytest.raises(ValueError, match="slices"):
        build_report(schema, y_true, probs, slices=["en"] * 3, n_bootstrap=0)
    with pytest.raises(ValueError):
        mean_macro_f1({"tasks": {}})


def test_format_estimate() -> None:
    assert format_estimate(0.8123, [0.7811, 0.84]) == "0.812 [0.781, 0.840]"
    assert format_estimate(0.5) == "0.500"
    assert format_estimate(0.012, [-0.004, 0.03], signed=True) == "+0.012 [-0.004, +0.030]"


def test_write_report(schema: LabelSchema, tmp_path: Path) -> None:
    y_true, probs, slices = example_inputs()
    report = build_report(
        schema,
        y_true,
        probs,
        slices=slices,
        slice_name="language",
        baseline_probs=probs,
        model={"name": "tiny", "params": {"lr": 0.001}},
        data={"validation_rows": 12},
        n_bootstrap=200,
    )
    out_dir = tmp_path / "eval" / "run1"
    paths = write_report(report, out_dir)
    names = {p.relative_to(out_dir).as_posix() for p in paths}
    assert names == {
        "report.json",
        "report.md",
        "plots/confusion_intent.png",
        "plots/reliability_intent.png",
        "plots/confusion_urgent.png",
        "plots/reliability_urgent.png",
    }
    for path in paths:
        assert path.is_file()
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_MAGIC

    assert json.loads((out_dir / "report.json").read_text(encoding="utf-8")) == report
    markdown = (out_dir / "report.md").read_text(encoding="utf-8")
    lo, hi = report["tasks"]["intent"]["intervals"]["macro_f1"]
    assert format_estimate(report["tasks"]["intent"]["macro_f1"], [lo, hi]) in markdown
    for heading in ("## Model", "## Data", "## Tasks", "### intent", "## Slices by language", "## Baseline"):
        assert heading in markdown
    assert "sentiment" in markdown  # listed as skipped
    assert "plots/confusion_intent.png" in markdown

    plain = write_report(report, tmp_path / "no_plots", plots=False)
    assert [p.name for p in plain] == ["report.json", "report.md"]
    assert not (tmp_path / "no_plots" / "plots").exists()
