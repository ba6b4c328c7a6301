"""`triage-train soup`: one model whose weights are the mean of several fine-tuned models' weights (a uniform soup).

Models fine-tuned from the same pre-trained encoder (other seeds, other settings) usually stay in one basin of the
loss, where the average of their weights can score like an ensemble of them while costing one model at inference
(Wortsman et al., ICML 2022, "Model soups"). Nothing is trained: every ingredient's encoder and heads are averaged
weight by weight, and the soup is calibrated and reported on the config's validation rows like any fit.

Ingredients must be transformers with the same tasks and labels, pooling, tokenizer, and weights (every name and
shape); they are refused otherwise, with the ingredient and the first difference named. The config gives the name,
the validation rows and the data the ingredients were trained on (recorded in the manifest). The manifest adds a
`soup` section: each ingredient and its own validation score, to compare with the soup's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

from model.artifact import ENCODER_DIR
from model.multitask import MultiTaskModel
from training.config import ConfigError, TrainConfig
from training.distill import Teacher, check_config_tasks, check_same_tasks, transformer_artifact
from training.fit import _prepare_run, fresh_staging, load_training_data, publish_artifact
from training.transformer import describe_encoder


def average_weights(states: list[dict[str, torch.Tensor]], names: list[str]) -> dict[str, torch.Tensor]:
    """The element-wise mean of each floating-point weight; other tensors (integer buffers such as position ids)
    must be equal and are kept. `names` label the states in errors."""
    reference = states[0]
    for state, name in zip(states[1:], names[1:], strict=True):
        if state.keys() != reference.keys():
            difference = sorted(state.keys() ^ reference.keys())
            raise ConfigError(f"--ingredient {name}: its weights differ in name from those of {names[0]} "
                              f"(e.g. {difference[0]}); a soup needs one architecture")
        for key, value in state.items():
            if value.shape != reference[key].shape:
                raise ConfigError(f"--ingredient {name}: weight {key} has shape {tuple(value.shape)}, against "
                                  f"{tuple(reference[key].shape)} in {names[0]}; a soup needs one architecture")
    averaged = {}
    for key, value in reference.items():
        if value.is_floating_point():
            averaged[key] = torch.stack([state[key].double() for state in states]).mean(dim=0).to(value.dtype)
        else:
            for state, name in zip(states[1:], names[1:], strict=True):
                if not torch.equal(state[key], value):
                    raise ConfigError(f"--ingredient {name}: {key} differs from that of {names[0]}")
            averaged[key] = value.clone()
    return averaged


def check_soup_compatible(ingredients: list[Teacher]) -> str:
    """The ingredients' common pooling, once their pooling and tokenizer vocabularies match the first's."""
    first = ingredients[0]
    pooling = (first.manifest.encoder or {}).get("pooling", "mean")
    vocabulary = AutoTokenizer.from_pretrained(first.directory / ENCODER_DIR).get_vocab()
    for other in ingredients[1:]:
        other_pooling = (other.manifest.encoder or {}).get("pooling", "mean")
        if other_pooling != pooling:
            raise ConfigError(f"--ingredient {other.directory}: pooling {other_pooling!r}, against {pooling!r} in "
                              f"{first.directory}")
        if AutoTokenizer.from_pretrained(other.directory / ENCODER_DIR).get_vocab() != vocabulary:
            raise ConfigError(f"--ingredient {other.directory}: its tokenizer's vocabulary differs from that of "
                              f"{first.directory}")
    return pooling


def run_soup(config: TrainConfig, ingredient_paths: list[str], output_root: Path,
             log: Callable[[str], None] = print) -> Path:
    """Average the ingredients into one model; calibrate, report and publish ROOT/NAME/VERSION."""
    if len(ingredient_paths) < 2:
        raise ConfigError(f"a soup needs two or more --ingredient models, got {len(ingredient_paths)}")
    started = time.perf_counter()
    ingredients = [transformer_artifact(path, "--ingredient", "an ingredient") for path in ingredient_paths]
    first = ingredients[0]
    schema = check_same_tasks(first, [(i, "--ingredient") for i in ingredients[1:]], "first ingredient")
    check_config_tasks(config, schema, "the ingredients'")
    pooling = check_soup_compatible(ingredients)
    max_length = first.manifest.max_length or config.transformer.max_length
    config = config.model_copy(update={
        "backend": "transformer",
        "transformer": config.transformer.model_copy(update={
            "pooling": pooling, "max_length": max_length, "encoder": str(first.directory.resolve() / ENCODER_DIR)}),
    })
    data = load_training_data(config, schema, log)

    name_dir = output_root / config.name
    version, run_dir = _prepare_run(config, name_dir, None)
    names = [f"{i.manifest.name}@{i.manifest.version}" for i in ingredients]
    log(f"averaging the weights of {' + '.join(names)} into {config.name} version {version}")
    label_counts = {t.name: len(t.labels) for t in schema.tasks}
    networks = [MultiTaskModel.load(i.directory, label_counts, pooling) for i in ingredients]
    soup = networks[0]
    soup.load_state_dict(average_weights([n.state_dict() for n in networks], [str(i.directory) for i in ingredients]))

    staging = fresh_staging(name_dir, version)
    soup.save(staging)
    AutoTokenizer.from_pretrained(first.directory / ENCODER_DIR).save_pretrained(staging / ENCODER_DIR)
    details: dict[str, Any] = {
        "encoder": describe_encoder(soup.encoder.config, "weights averaged from " + " + ".join(names), pooling),
        "max_length": max_length,
        "training": {"wall_seconds": round(time.perf_counter() - started, 1), "train_examples": 0},
        "soup": {"method": "uniform", "ingredients": [i.summary for i in ingredients]},
    }
    return publish_artifact(staging, config, schema, version, data, details, run_dir, keep_checkpoints=False)
