"""Activation smoothing before dynamic int8 quantisation (after SmoothQuant, Xiao et al., 2023).

Dynamic int8 quantises each activation tensor with one scale, set by its largest value. Transformer activations have
a few outlier channels, so that one scale leaves the other channels only a handful of int8 steps, and near-tie
predictions flip. Smoothing divides each input channel j of a linear layer by s_j and multiplies the weight's input
row j by s_j: the product is unchanged in exact arithmetic, but the activation's range moves into the weights, which
are quantised per output channel and offline. s_j = max|x_j|^alpha / max|w_j|^(1 - alpha), with max|x_j| measured on
calibration texts (by default the model's training texts, not the validation texts parity is measured on).

Post-LayerNorm encoders (BERT, MiniLM) feed each LayerNorm's output to a residual as well, so 1/s cannot be folded
into the LayerNorm: it stays an explicit multiplication in front of the layer, a small elementwise cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from model.multitask import MultiTaskModel

# Chosen on the teacher of the default model (README: ONNX export): alpha 0.9, leaving attention outputs and the
# unused BERT pooler alone, gave the fewest int8 disagreements on its training and brand_intent texts (0.75, 0.85
# and 0.9 compared there; validation, which the parity gate uses, was not the deciding set).
DEFAULT_ALPHA = 0.9
DEFAULT_SKIP = ("attention.output.dense", "pooler")
SCALE_BOUNDS = (1e-2, 1e2)


class SmoothedLinear(nn.Module):
    """x -> linear(x / s) with the linear's weight input rows multiplied by s (the same function)."""

    def __init__(self, linear: nn.Linear, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("inverse_scale", (1.0 / scale).to(linear.weight.dtype))
        self.linear = linear
        with torch.no_grad():
            linear.weight.mul_(scale.to(linear.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.inverse_scale)


@torch.inference_mode()
def input_channel_maxima(
    network: MultiTaskModel, tokenizer, texts: Sequence[str], names: Sequence[str], max_length: int,
    batch_size: int = 64,
) -> dict[str, torch.Tensor]:
    """Largest |input| per input channel of each named encoder linear over `texts`, in padded batches.

    Padding positions count: at run time dynamic quantisation takes its range over the whole tensor, padding
    included, and their activations have outliers of their own (measured on the teacher's validation posts, with
    batches then sorted by characters: real tokens only, up to 6.1% of int8 predictions flipped per task; padding
    included, up to 0.8%).
    """
    maxima: dict[str, torch.Tensor] = {}

    def recorder(name: str):
        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            values = args[0].detach().abs().flatten(0, -2)
            if values.numel():
                found = values.amax(0)
                maxima[name] = torch.maximum(maxima[name], found) if name in maxima else found

        return hook

    hooks = [network.encoder.get_submodule(name).register_forward_pre_hook(recorder(name)) for name in names]
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            network(batch["input_ids"], batch["attention_mask"])
    finally:
        for hook in hooks:
            hook.remove()
    return maxima


def smooth_linears(
    network: MultiTaskModel, tokenizer, texts: Sequence[str], alpha: float = DEFAULT_ALPHA,
    skip: Sequence[str] = DEFAULT_SKIP, max_length: int = 128,
) -> list[str]:
    """Replace the encoder's linear layers (except names containing a `skip` part) by SmoothedLinear, in place.

    Returns the names smoothed (layers the forward pass never reaches are left alone). The network computes the
    same function afterwards, up to float rounding.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"smoothing alpha must be in (0, 1], got {alpha}")
    if not texts:
        raise ValueError("smoothing needs calibration texts")
    names = [name for name, module in network.encoder.named_modules()
             if isinstance(module, nn.Linear) and not any(part in name for part in skip)]
    maxima = input_channel_maxima(network, tokenizer, texts, names, max_length)
    low, high = SCALE_BOUNDS
    smoothed = [name for name in names if name in maxima]  # a layer the forward pass never ran is left alone
    for group in _same_input_groups(smoothed, maxima):
        linears = [network.encoder.get_submodule(name) for name in group]
        activation = maxima[group[0]].clamp(min=1e-5)
        weight = torch.stack([linear.weight.detach().abs().amax(0) for linear in linears]).amax(0).clamp(min=1e-5)
        scale = (activation**alpha / weight ** (1.0 - alpha)).clamp(low, high)
        for name, linear in zip(group, linears, strict=True):
            parent_name, _, child = name.rpartition(".")
            parent = network.encoder.get_submodule(parent_name) if parent_name else network.encoder
            setattr(parent, child, SmoothedLinear(linear, scale))
    return smoothed


def _same_input_groups(names: Sequence[str], maxima: dict[str, torch.Tensor]) -> list[list[str]]:
    """Layers that read the same tensor (query, key and value), known by identical input maxima.

    They share one scale, so the exported graph holds one identical division for the three, which ONNX Runtime
    merges: one smoothing multiplication and one dynamic quantisation of that input instead of three.
    """
    groups: list[list[str]] = []
    for name in names:
        for group in groups:
            first = maxima[group[0]]
            if first.shape == maxima[name].shape and torch.equal(first, maxima[name]):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups
