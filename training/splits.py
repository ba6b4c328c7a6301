"""Deterministic, stratified train/validation splits that do not move when rows are added elsewhere."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any


def _rank(salt: str, key: str) -> str:
    return hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()


def stratified_split(
    rows: Sequence[dict[str, Any]],
    validation_fraction: float,
    stratify: str | None = "intent",
    id_field: str = "id",
    salt: str = "tweet-triage",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split rows into (train, validation), keeping each stratum's share and the original row order.

    Within each stratum, rows are ranked by sha256(salt:id) and the first round(n * fraction) go to validation:
    the same input always gives the same split, on any machine.
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be between 0 and 1, got {validation_fraction}")
    groups: dict[Any, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        groups[row.get(stratify) if stratify else None].append(index)
    held_out: set[int] = set()
    for indices in groups.values():
        ranked = sorted(indices, key=lambda i: _rank(salt, str(rows[i].get(id_field, i))))
        held_out.update(ranked[: round(len(indices) * validation_fraction)])
    train = [row for i, row in enumerate(rows) if i not in held_out]
    validation = [row for i, row in enumerate(rows) if i in held_out]
    return train, validation
