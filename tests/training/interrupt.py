"""Interrupting a training run mid-epoch, the way Ctrl-C would, to test --resume."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def interrupted_in_epoch(monkeypatch: pytest.MonkeyPatch, trainer: type, epoch: int = 2,
                         step: int = 3) -> Iterator[None]:
    """Inside the block, `trainer` raises KeyboardInterrupt at `step` of `epoch`; the real step is back after it."""
    real_step = trainer._train_step
    steps = {"seen": 0}

    def crash(self, batch):
        if self.sampler.epoch == epoch:
            steps["seen"] += 1
            if steps["seen"] == step:
                raise KeyboardInterrupt
        return real_step(self, batch)

    monkeypatch.setattr(trainer, "_train_step", crash)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        monkeypatch.setattr(trainer, "_train_step", real_step)
