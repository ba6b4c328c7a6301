"""Activation smoothing before int8 quantisation: the same function, with shared scales (export: test_export.py)."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from model.multitask import MultiTaskModel
from training.smoothing import SmoothedLinear, smooth_linears

TEXTS = ["@LarkAir my bag never arrived 😡", "thanks for the quick refund!", "is the shop open on sunday?",
         "where do I send the receipt for my broken kettle", "love it"]


@pytest.fixture
def network(tiny_encoder: Path) -> MultiTaskModel:
    torch.manual_seed(1)
    model = MultiTaskModel(AutoModel.from_pretrained(tiny_encoder), {"intent": 7, "sentiment": 3}, dropout=0.0)
    with torch.no_grad():  # an outlier channel, as trained transformers have: what smoothing is for
        model.encoder.embeddings.LayerNorm.bias[3] = 40.0
    return model.eval()


def _logits(network: MultiTaskModel, tokenizer, texts: list[str]) -> dict[str, torch.Tensor]:
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return network(batch["input_ids"], batch["attention_mask"])


def test_smoothing_keeps_the_function_and_flattens_the_outlier(network: MultiTaskModel, tiny_encoder: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    before = _logits(network, tokenizer, TEXTS)
    query = network.encoder.encoder.layer[0].attention.self.query
    smoothed = smooth_linears(network, tokenizer, TEXTS[:3], alpha=0.9)

    after = _logits(network, tokenizer, TEXTS)
    for task in before:
        assert torch.allclose(before[task], after[task], atol=1e-4), task
    # Two layers of query, key, value, intermediate and output; attention outputs and the pooler stay as they were.
    assert len(smoothed) == 10 and not any("attention.output" in name or "pooler" in name for name in smoothed)
    layer = network.encoder.encoder.layer[0]
    assert not isinstance(layer.attention.output.dense, SmoothedLinear)
    wrapped = [layer.attention.self.query, layer.attention.self.key, layer.attention.self.value]
    assert all(isinstance(module, SmoothedLinear) for module in wrapped)
    assert wrapped[0].linear is query
    # Query, key and value read the same tensor: one shared scale, so the graph needs one multiplication.
    assert all(torch.equal(module.inverse_scale, wrapped[0].inverse_scale) for module in wrapped)
    # The outlier channel is divided by the largest scale: the activation the quantiser sees is flatter.
    assert int(wrapped[0].inverse_scale.argmin()) == 3


@pytest.mark.parametrize("alpha", [0.0, 1.5])
def test_alpha_outside_its_range_is_refused(network: MultiTaskModel, tiny_encoder: Path, alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        smooth_linears(network, AutoTokenizer.from_pretrained(tiny_encoder), TEXTS, alpha=alpha)
