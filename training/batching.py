"""Batches for the transformer: length-grouped sampling (less padding) and dynamic padding per batch."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

IGNORE_INDEX = -100  # label value of a row that does not label a task: the loss skips it


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches of similar-length rows, reproducible from (seed, epoch).

    Each epoch: a seeded permutation is cut into chunks of `batch_size * group_factor` rows, each chunk is sorted by
    length and cut into batches, and the batch order is shuffled. Because the order depends only on (seed, epoch),
    training resumed at an epoch boundary sees exactly the batches an uninterrupted run would.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, group_factor: int = 50):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_factor = group_factor
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        chunk = self.batch_size * self.group_factor
        batches: list[list[int]] = []
        for start in range(0, len(order), chunk):
            group = order[start : start + chunk]
            group = group[np.argsort(-self.lengths[group], kind="stable")]
            batches.extend(group[i : i + self.batch_size].tolist() for i in range(0, len(group), self.batch_size))
        for index in rng.permutation(len(batches)):
            yield batches[index]


class EncodedRows(torch.utils.data.Dataset):
    """Token ids (truncated, unpadded) and per-task label indices (IGNORE_INDEX where unlabelled)."""

    def __init__(self, input_ids: list[list[int]], labels: dict[str, np.ndarray]):
        self.input_ids = input_ids
        self.labels = labels

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> int:
        return index


def make_collate(rows: EncodedRows, pad_id: int):
    """Collate a list of row indices into padded tensors, padded to the longest row of the batch."""

    def collate(indices: list[int]) -> dict[str, torch.Tensor | dict[str, torch.Tensor]]:
        longest = max(len(rows.input_ids[i]) for i in indices)
        input_ids = torch.full((len(indices), longest), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(indices), longest), dtype=torch.long)
        for row, index in enumerate(indices):
            ids = rows.input_ids[index]
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        labels = {task: torch.from_numpy(values[indices]) for task, values in rows.labels.items()}
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "index": torch.tensor(indices),
        }

    return collate
