"""The real all-MiniLM-L6-v2 encoder from the PyPI package, loaded offline (marked: slower, runs in CI too)."""

from pathlib import Path

import pytest

from model.predictor import load_predictor
from tests.cli_helpers import latest_version, manifest_of, triage_train

pytestmark = pytest.mark.encoder


def test_one_epoch_on_the_real_encoder(config_file: Path, tmp_path: Path) -> None:
    result = triage_train(
        "fit", "--config", config_file, "--backend", "transformer", "--encoder", "all-MiniLM-L6-v2",
        "--epochs", "1", "--learning-rate", "5e-5", "--output", tmp_path / "models",
    )
    assert result.exit_code == 0, result.output
    version = latest_version(tmp_path / "models", "tiny")
    manifest = manifest_of(version)
    assert manifest["encoder"] | {"hidden_size": 384, "layers": 6, "model_type": "bert"} == manifest["encoder"]
    predictions = load_predictor(version).predict_proba(["@LarkAir my flight was cancelled and nobody helps 😡"])
    assert predictions["intent"].shape == (1, 7)
