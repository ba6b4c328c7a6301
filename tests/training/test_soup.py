"""Model soups on tiny random models: the weights are the ingredients' mean, the artifact serves like any other, and
ingredients that cannot be averaged are refused with the reason."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from model.artifact import load_manifest
from model.multitask import MultiTaskModel
from model.predictor import load_predictor
from tests.cli_helpers import latest_version, manifest_of, triage_train
from tests.conftest import write_config
from tests.posts_factory import make_posts, write_jsonl
from training.config import load_config
from training.fit import run_fit
from training.soup import average_weights, run_soup


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("soup")
    train = write_jsonl(root / "train.jsonl", make_posts(copies=5))
    validation = write_jsonl(root / "validation.jsonl", make_posts(copies=2, start=5))
    return {"root": root, "config": write_config(root / "soup.yaml", train, validation, name="tiny-soup"),
            "train": train, "validation": validation}


def fit(data: dict[str, Path], encoder: Path, name: str, **overrides) -> Path:
    config = load_config(data["config"], {"backend": "transformer", "transformer.encoder": str(encoder),
                                          "transformer.epochs": 1, "name": name, **overrides})
    return run_fit(config, data["root"] / "models", log=lambda _: None)


@pytest.fixture(scope="module")
def ingredients(data: dict[str, Path], tiny_encoder: Path) -> list[Path]:
    """Two fine-tunes of one encoder with other seeds (so other head initialisations and batch orders)."""
    return [fit(data, tiny_encoder, "seed-a", seed=3), fit(data, tiny_encoder, "seed-b", seed=4)]


def weights(version_dir: Path) -> dict[str, torch.Tensor]:
    manifest = load_manifest(version_dir)[1]
    return MultiTaskModel.load(version_dir, {t.name: len(t.labels) for t in manifest.tasks}, "mean").state_dict()


def test_the_soup_is_the_mean_of_its_ingredients_and_serves_like_any_model(
    data: dict[str, Path], ingredients: list[Path]
) -> None:
    result = triage_train("soup", "--config", data["config"], "--ingredient", ingredients[0], "--ingredient",
                          ingredients[1], "--output", data["root"] / "models")
    assert result.exit_code == 0, result.output
    assert "averaging the weights of seed-a@" in result.output and "; ingredients 0." in result.output
    soup = latest_version(data["root"] / "models", "tiny-soup")

    a, b, averaged = weights(ingredients[0]), weights(ingredients[1]), weights(soup)
    assert averaged.keys() == a.keys()
    for key, value in averaged.items():
        torch.testing.assert_close(value, (a[key] + b[key]) / 2)
    assert not torch.equal(a["heads.intent.weight"], b["heads.intent.weight"])  # the test would be empty otherwise

    manifest = manifest_of(soup)
    assert [(i["name"], i["version"]) for i in manifest["soup"]["ingredients"]] == [
        ("seed-a", ingredients[0].name), ("seed-b", ingredients[1].name)]
    assert manifest["soup"]["method"] == "uniform" and manifest["encoder"]["layers"] == 2
    assert set(manifest["metrics"]["validation"]) == {"intent", "sentiment", "needs_response", "urgency"}
    assert manifest["calibration"]  # calibrated on the validation rows like a fit
    probabilities = load_predictor(soup).predict_proba(["my order never came and support ignores me"])
    assert probabilities["intent"].shape == (1, 7)
    np.testing.assert_allclose(probabilities["intent"].sum(axis=1), 1.0, rtol=1e-5)


def test_a_soup_of_one_model_with_itself_predicts_as_that_model(
    data: dict[str, Path], ingredients: list[Path]
) -> None:
    config = load_config(data["config"], {"name": "self-soup", "calibrate": False})
    soup = run_soup(config, [str(ingredients[0])] * 2, data["root"] / "models", log=lambda _: None)
    texts = ["is the blue one back in stock?", "terrible service, nobody answers"]
    original = load_predictor(ingredients[0], backend="torch").predict_logits(texts)
    souped = load_predictor(soup, backend="torch").predict_logits(texts)
    for task, values in original.items():
        np.testing.assert_allclose(souped[task], values, rtol=1e-5, atol=1e-5)


def test_ingredients_that_cannot_be_averaged_are_refused(
    data: dict[str, Path], ingredients: list[Path], tiny_encoder: Path, tmp_path: Path
) -> None:
    def soup(*models: Path) -> str:
        arguments = [part for model in models for part in ("--ingredient", model)]
        result = triage_train("soup", "--config", data["config"], *arguments, "--output", tmp_path / "models")
        assert result.exit_code == 2, result.output
        return result.output

    assert "a soup needs two or more --ingredient models, got 1" in soup(ingredients[0])
    linear = run_fit(load_config(data["config"], {"name": "linear"}), tmp_path / "models", log=lambda _: None)
    assert f"--ingredient {linear}: a linear model" in soup(ingredients[0], linear)
    other_tasks = fit(data, tiny_encoder, "sentiment-only", schema=None,
                      tasks={"sentiment": ["negative", "neutral", "positive"]})
    assert "its tasks and labels differ from those of the first ingredient" in soup(ingredients[0], other_tasks)
    cls_pooled = fit(data, tiny_encoder, "cls-pooled", **{"transformer.pooling": "cls"})
    assert "pooling 'cls', against 'mean'" in soup(ingredients[0], cls_pooled)

    # The same weights' shapes, but a token more in the tokenizer: ids would mean other words.
    other_vocabulary = tmp_path / "other-vocabulary"
    shutil.copytree(tiny_encoder, other_vocabulary)
    tokenizer = AutoTokenizer.from_pretrained(other_vocabulary)
    tokenizer.add_tokens(["zzqxunseen"])
    tokenizer.save_pretrained(other_vocabulary)
    other_tokens = fit(data, other_vocabulary, "other-vocabulary")
    assert "its tokenizer's vocabulary differs" in soup(ingredients[0], other_tokens)


def test_weights_of_other_shapes_or_names_are_refused() -> None:
    small = {"layer.weight": torch.zeros(2, 3), "position_ids": torch.arange(3)}
    with pytest.raises(ValueError, match=r"--ingredient b: weight layer.weight has shape \(3, 3\)"):
        average_weights([small, {**small, "layer.weight": torch.zeros(3, 3)}], ["a", "b"])
    with pytest.raises(ValueError, match=r"--ingredient b: its weights differ in name .* extra"):
        average_weights([small, {**small, "extra": torch.zeros(1)}], ["a", "b"])
    with pytest.raises(ValueError, match="--ingredient b: position_ids differs"):
        average_weights([small, {**small, "position_ids": torch.arange(3) + 1}], ["a", "b"])
    averaged = average_weights([small, {**small, "layer.weight": torch.ones(2, 3)}], ["a", "b"])
    torch.testing.assert_close(averaged["layer.weight"], torch.full((2, 3), 0.5))
    assert torch.equal(averaged["position_ids"], torch.arange(3))
