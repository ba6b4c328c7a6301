"""The real all-MiniLM-L6-v2 encoder from the PyPI package, loaded offline (marked: slower, runs in CI too)."""

from pathlib import Path

import pytest

from model.predictor import load_predictor
from tests.cli_helpers import latest_version, manifest_of, triage_train

pytestmark = pytest.mark.encoder


def test_fit_and_export_the_real_encoder(config_file: Path, tmp_path: Path) -> None:
    result = triage_train(
        "fit", "--config", config_file, "--backend", "transformer", "--encoder", "all-MiniLM-L6-v2",
        "--epochs", "2", "--learning-rate", "5e-5", "--output", tmp_path / "models",
    )
    assert result.exit_code == 0, result.output
    version = latest_version(tmp_path / "models", "tiny")
    manifest = manifest_of(version)
    assert manifest["encoder"] | {"hidden_size": 384, "layers": 6, "model_type": "bert"} == manifest["encoder"]

    result = triage_train("export", "--model", version, "--no-require-int8")
    assert result.exit_code == 0, result.output
    export = manifest_of(version)["onnx"]
    assert all(r["agreement"] == 1.0 and r["max_prob_diff"] < 1e-4 for r in export["parity"]["fp32"].values())
    int8_agreement = min(r["agreement"] for r in export["parity"]["int8"].values())
    # The int8 gate on a real model: served only at >= 99% argmax agreement on every task, else refused.
    assert ("int8" in export["files"]) == (int8_agreement >= 0.99)
    assert ("int8_rejected" in export) == (int8_agreement < 0.99)
    predictor = load_predictor(version)
    assert predictor.backend == ("onnx-int8" if int8_agreement >= 0.99 else "onnx-fp32")
    assert predictor.predict_proba(["@LarkAir my flight was cancelled and nobody helps 😡"])["intent"].shape == (1, 7)
