"""Batch scoring (predict), re-applying a policy to stored outputs (rescore), and ranking metrics."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cli_helpers import latest_version, triage_train
from tests.posts_factory import make_posts, write_jsonl
from training.ranking import gains, ndcg_at_k, order_by, precision_at_k


@pytest.fixture(scope="module")
def linear_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scoring")
    train = write_jsonl(root / "train.jsonl", make_posts(copies=5))
    validation = write_jsonl(root / "validation.jsonl", make_posts(copies=2, start=5))
    result = triage_train("fit", "--config", Path(__file__).resolve().parents[2] / "configs" / "default.yaml",
                          "--backend", "linear", "--train", train, "--validation", validation, "--output", root / "m")
    assert result.exit_code == 0, result.output
    return latest_version(root / "m", "triage-default")


def posts_file(tmp_path: Path, rows: list[dict]) -> Path:
    return write_jsonl(tmp_path / "posts.jsonl", rows)


def unlabelled(copies: int = 1) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("intent", "sentiment", "needs_response", "urgency")}
            for row in make_posts(copies=copies, start=9)]


def test_predict_writes_labels_probabilities_and_decisions(linear_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "scored.jsonl"
    result = triage_train("predict", "--model", linear_model, "--input", posts_file(tmp_path, unlabelled()),
                          "--output", out, "--now", "2026-11-26T12:00:00Z")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 12
    first = records[0]
    assert set(first["predictions"]) == {"intent", "sentiment", "needs_response", "urgency"}
    assert sum(first["predictions"]["intent"]["probabilities"].values()) == pytest.approx(1)
    assert first["decision"]["tier"] in {"P1", "P2", "P3", "P4"} and first["decision"]["policy"] == "default@2"
    assert first["post"]["author"]["followers"] == 1000  # copy 9 of the factory: 10 ** (9 % 6)


def test_predict_flat_formats(linear_model: Path, tmp_path: Path) -> None:
    for suffix in ("csv", "parquet"):
        out = tmp_path / f"scored.{suffix}"
        result = triage_train("predict", "--model", linear_model, "--input", posts_file(tmp_path, unlabelled()),
                              "--output", out)
        assert result.exit_code == 0, result.output
        frame = pd.read_csv(out) if suffix == "csv" else pd.read_parquet(out)
        assert len(frame) == 12
        assert {"intent", "p_intent_complaint", "needs_response", "decision_needs_response", "priority", "tier",
                "route", "reasons"} <= set(frame.columns)


def test_bad_rows_fail_the_run_or_are_skipped(linear_model: Path, tmp_path: Path) -> None:
    rows = unlabelled()
    rows[2]["text"] = ""
    rows[5]["author_followers"] = -1
    rows[7]["text"] = "x" * 100_001
    source = posts_file(tmp_path, rows)
    failed = triage_train("predict", "--model", linear_model, "--input", source, "--output", tmp_path / "o.jsonl")
    assert failed.exit_code == 2
    for line, field in ((3, "text"), (6, "author.followers"), (8, "text")):
        assert f"{source}:{line}: field '{field}'" in failed.output
    assert not (tmp_path / "o.jsonl").exists()
    skipped = triage_train("predict", "--model", linear_model, "--input", source, "--output", tmp_path / "o.jsonl",
                           "--on-error", "skip")
    assert skipped.exit_code == 0 and "(3 bad rows skipped)" in skipped.output
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 9


def test_rescore_applies_another_policy_without_the_model(linear_model: Path, tmp_path: Path) -> None:
    scored = tmp_path / "scored.jsonl"
    rows = unlabelled()
    rows[0]["author_handle"] = "@bigfan"
    assert triage_train("predict", "--model", linear_model, "--input", posts_file(tmp_path, rows),
                        "--output", scored, "--now", "2026-11-26T12:00:00Z").exit_code == 0
    default = Path(__file__).resolve().parents[2] / "model" / "policy.yaml"
    vip = tmp_path / "vip.yaml"
    vip.write_text(default.read_text().replace("vip_handles: []", "vip_handles: ['@bigfan']")
                   .replace('version: "2"', 'version: "2-vip"'))
    out = tmp_path / "rescored.jsonl"
    result = triage_train("rescore", "--input", scored, "--output", out, "--policy", vip, "--now", "2026-11-26T12:00Z")
    assert result.exit_code == 0, result.output
    before = [json.loads(line) for line in scored.read_text().splitlines()]
    after = [json.loads(line) for line in out.read_text().splitlines()]
    assert after[0]["predictions"] == before[0]["predictions"]
    assert after[0]["decision"]["policy"] == "default@2-vip"
    assert any(r["text"] == "VIP: @bigfan" for r in after[0]["decision"]["reasons"])
    assert after[1]["decision"] == before[1]["decision"] | {"policy": "default@2-vip"}


def test_rescore_names_the_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1"}\n')
    result = triage_train("rescore", "--input", bad, "--output", tmp_path / "o.jsonl")
    assert result.exit_code == 2 and f"{bad}:1: not a `triage-train predict` JSONL record" in result.output


def test_evaluate_reports_ranking_beside_baselines(linear_model: Path, tmp_path: Path) -> None:
    data = posts_file(tmp_path, make_posts(copies=2, start=5))
    result = triage_train("evaluate", "--model", linear_model, "--data", data, "--output", tmp_path / "ev",
                          "--no-plots", "--bootstrap", "50")
    assert result.exit_code == 0, result.output
    ranking = json.loads((tmp_path / "ev" / "report.json").read_text())["ranking"]
    assert ranking["rows"] == 24 and ranking["ks"] == [10, 24]
    assert set(ranking["orders"]) == {"policy", "file_order", "keyword_rules", "needs_response_probability"}
    assert "## Ranking" in (tmp_path / "ev" / "report.md").read_text()


def test_ranking_metrics_by_hand() -> None:
    gain = gains(["yes", "no", "yes", "yes"], ["high", "low", "low", "normal"])
    assert gain.tolist() == [3, 0, 1, 2]
    order = order_by(np.array([0.1, 0.9, 0.5, 0.5]))  # ties keep input order: 1, 2, 3, 0
    assert order.tolist() == [1, 2, 3, 0]
    # DCG@2 = 0/log2(2) + 1/log2(3) = 0.6309; ideal 3 + 2/log2(3) = 4.2619
    assert ndcg_at_k(gain, order, 2) == pytest.approx(0.6309 / 4.2619, abs=1e-4)
    assert precision_at_k(gain, order, 2) == 0.5
    assert ndcg_at_k(gain, order_by(gain), 4) == 1.0


def test_predict_refuses_a_model_without_the_policys_tasks(tmp_path: Path) -> None:
    rows = [{"text": r["text"], "complaint": "yes" if r["intent"] == "complaint" else "no"} for r in make_posts(3)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    (tmp_path / "c.yaml").write_text("name: complaints\nbackend: linear\ntasks:\n  complaint: ['no', 'yes']\n"
                                     "train: [train.jsonl]\n")
    assert triage_train("fit", "--config", tmp_path / "c.yaml", "--output", tmp_path / "m").exit_code == 0
    result = triage_train("predict", "--model", tmp_path / "m" / "complaints", "--input", tmp_path / "train.jsonl",
                          "--output", tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert "policy default@2: the policy needs task 'intent'" in result.output
    assert "the model has tasks ['complaint']" in result.output
