"""How well a priority order puts the posts that need an answer, and the urgent ones, first.

Gain of a post: 0 when it needs no response, else 1 / 2 / 3 for low / normal / high urgency. NDCG@k uses linear
gains and log2 discounts; precision@k is the share of the top k that need a response. The policy's order is compared
with three baselines: the file order, keyword rules alone, and the model's needs_response probability alone.
Ties keep file order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from model.policy import Policy
from model.posts import Post

URGENCY_GAIN = {"low": 1, "normal": 2, "high": 3}
DEFAULT_KS = (10, 50, 100)


def gains(needs_response: Sequence[str], urgency: Sequence[str]) -> np.ndarray:
    return np.array([0 if nr == "no" else URGENCY_GAIN[u] for nr, u in zip(needs_response, urgency, strict=True)])


def order_by(scores: np.ndarray) -> np.ndarray:
    """Indices from the highest score down; equal scores keep their input order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def ndcg_at_k(gain: np.ndarray, order: np.ndarray, k: int) -> float:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ranked = gain[order][:k]
    ideal = np.sort(gain)[::-1][:k]
    best = float((ideal * discounts[: len(ideal)]).sum())
    return float((ranked * discounts[: len(ranked)]).sum()) / best if best > 0 else 0.0


def precision_at_k(gain: np.ndarray, order: np.ndarray, k: int) -> float:
    return float((gain[order][:k] > 0).mean())


def ranking_report(
    posts: Sequence[Post],
    probabilities: Sequence[dict[str, dict[str, float]]],
    gain: np.ndarray,
    policy: Policy,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, Any]:
    """NDCG@k and precision@k of the policy's order and of the three baselines."""
    priority = np.array([policy.apply(post, probs).priority for post, probs in zip(posts, probabilities, strict=True)])
    scores = {
        "policy": priority,
        "file_order": -np.arange(len(posts), dtype=np.float64),
        "keyword_rules": np.array([sum(rule.points for rule in policy.overrides if rule.match(post.text))
                                   for post in posts], dtype=np.float64),
        "needs_response_probability": np.array([probs["needs_response"]["yes"] for probs in probabilities]),
    }
    ks = sorted({min(k, len(posts)) for k in ks})
    orders = {}
    for name, values in scores.items():
        order = order_by(values)
        orders[name] = {f"ndcg@{k}": ndcg_at_k(gain, order, k) for k in ks} | {
            f"precision@{k}": precision_at_k(gain, order, k) for k in ks
        }
    return {
        "rows": len(posts),
        "gain": "0 if no response is needed, else 1/2/3 for low/normal/high urgency",
        "ks": ks,
        "policy": policy.id,
        "orders": orders,
    }
