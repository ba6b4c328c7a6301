"""The transformer backend's network: one shared encoder, one linear head per task.

Saved as a normal Hugging Face checkpoint (`encoder/`, via save_pretrained, with its tokenizer) plus
`heads.safetensors`, so anyone can open the encoder with AutoModel.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, PreTrainedModel

from model.artifact import ENCODER_DIR, HEADS_FILE


class MultiTaskModel(nn.Module):
    def __init__(
        self, encoder: PreTrainedModel, label_counts: dict[str, int], pooling: str = "mean", dropout: float = 0.1
    ):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        hidden = encoder.config.hidden_size
        self.heads = nn.ModuleDict({task: nn.Linear(hidden, n) for task, n in label_counts.items()})

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-6)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**inputs).last_hidden_state
        pooled = self.dropout(self.pool(hidden, attention_mask))
        return {task: head(pooled) for task, head in self.heads.items()}

    def save(self, directory: Path) -> None:
        self.encoder.save_pretrained(directory / ENCODER_DIR)
        save_file({k: v.contiguous() for k, v in self.heads.state_dict().items()}, str(directory / HEADS_FILE))

    @classmethod
    def load(cls, directory: Path, label_counts: dict[str, int], pooling: str) -> MultiTaskModel:
        encoder = AutoModel.from_pretrained(directory / ENCODER_DIR)
        model = cls(encoder, label_counts, pooling=pooling, dropout=0.0)
        model.heads.load_state_dict(load_file(str(directory / HEADS_FILE)))
        return model.eval()
