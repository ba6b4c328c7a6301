"""The transformer backend on a tiny random BERT: CLI end to end, partial labels, resume after interruption."""

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from model.predictor import load_predictor
from tests.cli_helpers import latest_version, manifest_of, triage_train
from tests.posts_factory import write_jsonl
from tests.training.interrupt import interrupted_in_epoch
from training.batching import LengthGroupedBatchSampler
from training.config import load_config
from training.fit import run_fit
from training.transformer import TransformerTrainer, balanced_class_weights, encoder_depth


def test_fit_evaluate_and_predict_through_the_cli(
    tiny_encoder: Path, config_file: Path, data_files: tuple[Path, Path], tmp_path: Path
) -> None:
    sentiment_only = write_jsonl(tmp_path / "sentiment.jsonl", [
        {"text": f"the weather in town is {word} today", "sentiment": label}
        for word, label in (("grim", "negative"), ("fine", "neutral"), ("glorious", "positive"))
    ])
    result = triage_train(
        "fit", "--config", config_file, "--backend", "transformer", "--encoder", tiny_encoder,
        "--train", data_files[0], "--train", sentiment_only, "--validation", data_files[1],
        "--output", tmp_path / "models", "--set", "transformer.gradient_accumulation=2",
    )
    assert result.exit_code == 0, result.output
    assert "epoch 2: train loss" in result.output and "validation macro-F1 intent" in result.output
    version = latest_version(tmp_path / "models", "tiny")
    manifest = manifest_of(version)
    assert manifest["backend"] == "transformer" and manifest["max_length"] == 32
    assert manifest["encoder"]["hidden_size"] == 32 and manifest["encoder"]["pooling"] == "mean"
    assert manifest["training"]["epochs_run"] == 2 and len(manifest["training"]["history"]) == 2
    assert manifest["data"]["train"][1]["labelled"] == {"intent": 0, "sentiment": 3, "needs_response": 0, "urgency": 0}
    assert {"heads.safetensors", "encoder/model.safetensors", "encoder/tokenizer.json"} <= set(manifest["files"])
    assert not (tmp_path / "models" / "tiny" / ".runs" / version.name).exists()  # checkpoints cleaned up

    probs = load_predictor(version).predict_proba(["@LarkAir where is my bag", "lovely crew"])
    assert probs["sentiment"].shape == (2, 3) and np.allclose(probs["sentiment"].sum(axis=1), 1)

    out = tmp_path / "eval"
    result = triage_train("evaluate", "--model", version, "--data", data_files[1], "--output", out, "--no-plots")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    fit_time = manifest["metrics"]["validation"]["intent"]["macro_f1"]
    assert report["tasks"]["intent"]["macro_f1"] == pytest.approx(fit_time)


def _weights(version_dir: Path) -> dict[str, np.ndarray]:
    return {**load_file(str(version_dir / "heads.safetensors")),
            **load_file(str(version_dir / "encoder" / "model.safetensors"))}


def test_resume_after_an_interrupted_epoch_gives_the_same_model(
    tiny_encoder: Path, config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = {"backend": "transformer", "transformer.encoder": str(tiny_encoder), "transformer.epochs": 3,
                 "transformer.early_stopping_patience": None, "transformer.dropout": 0.2}
    config = load_config(config_file, overrides)
    uninterrupted = run_fit(config, tmp_path / "a", log=lambda _: None)

    with interrupted_in_epoch(monkeypatch, TransformerTrainer):
        run_fit(config, tmp_path / "b", log=lambda _: None)
    (run_dir,) = (tmp_path / "b" / "tiny" / ".runs").iterdir()
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["epoch-1"]

    resumed = run_fit(config, tmp_path / "b", resume=run_dir, log=lambda _: None)
    expected, actual = _weights(uninterrupted), _weights(resumed)
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=0, atol=1e-6, err_msg=name)
    assert manifest_of(resumed)["training"]["history"] == manifest_of(uninterrupted)["training"]["history"]


def test_resume_refuses_a_changed_config(tiny_encoder: Path, config_file: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"version": "v", "config": {"seed": 1}}))
    result = triage_train("fit", "--config", config_file, "--resume", run_dir, "--output", tmp_path / "m")
    assert result.exit_code == 2 and "the config differs from the interrupted run's" in result.output


def test_length_grouped_batches_cover_every_row_once_and_repeat_per_epoch() -> None:
    lengths = [5, 50, 7, 48, 6, 49, 8, 51, 9, 47, 10, 46]
    sampler = LengthGroupedBatchSampler(lengths, batch_size=2, seed=3, group_factor=6)
    sampler.set_epoch(1)
    first = list(sampler)
    assert sorted(i for batch in first for i in batch) == list(range(12))
    assert all(abs(lengths[a] - lengths[b]) < 10 for a, b in first)  # sorted chunk: similar lengths pair up
    assert list(sampler) == first
    sampler.set_epoch(2)
    assert list(sampler) != first


def test_balanced_class_weights_favour_rare_labels_and_ignore_unlabelled() -> None:
    weights = balanced_class_weights(np.array([0, 0, 0, 1, -100, -100]), n_labels=3)
    assert weights.tolist() == pytest.approx([4 / 6, 2.0, 1.0])


def test_layer_wise_lr_decay_gives_lower_layers_smaller_rates(
    tiny_encoder: Path, config_file: Path, tmp_path: Path
) -> None:
    config = load_config(config_file, {
        "transformer.learning_rate": 1e-3, "transformer.head_learning_rate": 1e-2,
        "transformer.layer_lr_decay": 0.5, "transformer.encoder": str(tiny_encoder),
    })
    trainer = TransformerTrainer(config, config.label_schema(), tmp_path / "run")
    trainer.tokenizer, trainer.network = trainer._network()
    rate_of = {id(p): group["lr"] for group in trainer._parameter_groups() for p in group["params"]}
    rates = {name: rate_of[id(p)] for name, p in trainer.network.named_parameters()}
    # 2 layers: embeddings at decay^2, layer 0 at decay^1, layer 1 (the top) at the full rate, heads at their own.
    assert rates["encoder.embeddings.word_embeddings.weight"] == pytest.approx(2.5e-4)
    assert rates["encoder.encoder.layer.0.attention.self.query.weight"] == pytest.approx(5e-4)
    assert rates["encoder.encoder.layer.1.output.dense.weight"] == pytest.approx(1e-3)
    assert all(rate == pytest.approx(1e-2) for name, rate in rates.items() if name.startswith("heads."))
    assert encoder_depth("encoder.pooler.dense.weight", 2) == 2
