"""Another architecture as the encoder (`transformer.encoder: DIR`): a tiny random RoBERTa, whose byte-level BPE
tokenizer and inputs (no token type ids, positions offset by the padding index) differ from MiniLM's BERT, fits,
exports, serves and adapts like the default; the path a user takes to a tweet-pretrained checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.predictor import load_predictor
from tests.cli_helpers import triage_train
from tests.conftest import write_config
from tests.posts_factory import make_posts, write_jsonl
from tests.training.test_domain_adapt import write_adapt_config
from training.config import load_config
from training.fit import run_fit

TEXTS = ["@LarkAir my bag never arrived 😡", "thanks for the quick refund!", "is the shop open on sunday?"]


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer RoBERTa with a byte-level BPE tokenizer trained on the test posts."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-roberta")
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([p["text"] for p in make_posts(copies=6)], vocab_size=400, special_tokens=special)
    RobertaTokenizerFast(tokenizer_object=bpe._tokenizer).save_pretrained(directory)
    tokenizer = RobertaTokenizerFast.from_pretrained(directory)
    assert len(tokenizer("my card was charged twice")["input_ids"]) > 4  # a real vocabulary, not special tokens only
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=64, max_position_embeddings=64 + 2,
                           pad_token_id=tokenizer.pad_token_id, type_vocab_size=1)
    torch.manual_seed(0)
    RobertaModel(config).save_pretrained(directory)
    return directory


def test_a_roberta_encoder_fits_exports_and_serves(tmp_path: Path, tiny_roberta: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", make_posts(copies=5))
    validation = write_jsonl(tmp_path / "validation.jsonl", make_posts(copies=2, start=5))
    config = load_config(write_config(tmp_path / "config.yaml", train, validation),
                         {"backend": "transformer", "transformer.encoder": str(tiny_roberta),
                          "transformer.epochs": 1})
    model = run_fit(config, tmp_path / "models", log=lambda _: None)

    result = triage_train("export", "--model", model, "--min-int8-agreement", "0")
    assert result.exit_code == 0, result.output
    eager = load_predictor(model, backend="torch").predict_proba(TEXTS)
    onnx = load_predictor(model, backend="onnx-fp32").predict_proba(TEXTS)
    for task, probs in eager.items():
        assert np.allclose(probs, onnx[task], atol=1e-4), task
    assert load_predictor(model).backend == "onnx-int8"


def test_a_roberta_encoder_adapts_to_unlabelled_texts(tmp_path: Path, tiny_roberta: Path) -> None:
    from transformers import AutoModel

    config = write_adapt_config(tmp_path, tiny_roberta, head_warmup_steps=2, epochs=10)  # a 400-token vocabulary
    result = triage_train("adapt", "--config", config, "--output", tmp_path / "encoders")
    assert result.exit_code == 0, result.output
    out = tmp_path / "encoders" / "tiny-adapted"
    loss = json.loads((out / "adaptation.json").read_text())["heldout_mlm_loss"]
    assert loss["after"] < loss["before"] - 0.5
    assert type(AutoModel.from_pretrained(out)).__name__ == "RobertaModel"  # what transformer.encoder loads
