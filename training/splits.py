"""Deterministic, stratified train/validation splits that do not move when rows are added elsewhere."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

Item = TypeVar("Item")


def _rank(salt: str, key: str) -> str:
    return hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()


def stratified_split(
    items: Sequence[Item],
    validation_fraction: float,
    stratum: Callable[[Item], Hashable],
    identity: Callable[[Item], str],
    salt: str = "tweet-triage",
) -> tuple[list[Item], list[Item]]:
    """Split items into (train, validation), keeping each stratum's share and the original order.

    Within each stratum, items are ranked by sha256(salt:identity) and the first round(n * fraction) go to
    validation: the same input always gives the same split, on any machine.
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be between 0 and 1, got {validation_fraction}")
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        groups[stratum(item)].append(index)
    held_out: set[int] = set()
    for indices in groups.values():
        ranked = sorted(indices, key=lambda i: _rank(salt, identity(items[i])))
        held_out.update(ranked[: round(len(indices) * validation_fraction)])
    train = [item for i, item in enumerate(items) if i not in held_out]
    validation = [item for i, item in enumerate(items) if i in held_out]
    return train, validation


def split_rows(
    rows: Sequence[dict[str, Any]], validation_fraction: float, stratify: str | None = "intent",
    id_field: str = "id", salt: str = "tweet-triage",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """stratified_split for JSON rows: stratum = the `stratify` field, identity = the id (else the row number)."""
    numbered = list(enumerate(rows))
    train, validation = stratified_split(
        numbered, validation_fraction,
        stratum=lambda pair: pair[1].get(stratify) if stratify else None,
        identity=lambda pair: str(pair[1].get(id_field, pair[0])),
        salt=salt,
    )
    return [row for _, row in train], [row for _, row in validation]
