"""What serves requests: a verified model, the policy, and the micro-batcher that feeds the model.

A reload builds a whole new ModelRuntime and swaps one reference. A request keeps the runtime it started with, so
requests in flight finish on the old model while new ones use the new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cachetools import LRUCache

from model.policy import Policy
from model.posts import Post
from model.predictor import Distribution, Predictor, distributions, load_predictor
from model.text import normalise
from service.batcher import MicroBatcher
from service.metrics import Metrics
from service.settings import Settings

WARM_UP_TEXTS = ["@brand my order never arrived, can you check?", "love the new app 😍"]


@dataclass
class ModelRuntime:
    predictor: Predictor
    policy: Policy
    batcher: MicroBatcher

    @property
    def version(self) -> str:
        return self.predictor.manifest.version

    def describe(self) -> dict[str, str]:
        manifest = self.predictor.manifest
        return {"name": manifest.name, "version": manifest.version, "backend": self.predictor.backend}


def _infer(predictor: Predictor):
    """texts (normalised) -> one {task: {label: probability}} per text; runs in the inference thread."""

    def run(texts: list[str]) -> list[Distribution]:
        return distributions(predictor.tasks, predictor.calibrate(predictor.logits_of_normalised(texts)))

    return run


def load_runtime(settings: Settings, model: Path, metrics: Metrics) -> ModelRuntime:
    """Load, verify and warm a model (blocking: call it from a thread). Raises ArtifactError or PolicyError."""
    predictor = load_predictor(model, backend=settings.backend, batch_size=32, threads=settings.threads or None,
                               spin=settings.spin)
    policy = Policy.load(settings.policy)
    policy.check_tasks(predictor.tasks)
    infer = _infer(predictor)
    infer([normalise(text) for text in WARM_UP_TEXTS])  # first call allocates; pay it before traffic
    batcher = MicroBatcher(infer, max_posts=settings.batch_max_posts, max_wait_s=settings.batch_max_wait_ms / 1000,
                           queue_max=settings.queue_max_posts, on_batch=metrics.batch_posts.observe)
    return ModelRuntime(predictor=predictor, policy=policy, batcher=batcher)


class OutputCache:
    """Model outputs by (model version, normalised text): retweets and copy-paste campaigns repeat texts.

    Only model outputs are cached; the policy runs per request, since priority depends on author and age.
    """

    def __init__(self, size: int, metrics: Metrics):
        self._entries: LRUCache | None = LRUCache(maxsize=size) if size else None
        self._metrics = metrics

    async def outputs(self, runtime: ModelRuntime, posts: Sequence[Post]) -> list[Distribution]:
        keys = [normalise(post.text) for post in posts]
        found: dict[str, Distribution] = {}
        if self._entries is not None:
            for key in keys:
                value = self._entries.get((runtime.version, key))
                if value is not None:
                    found[key] = value
        missing = list(dict.fromkeys(key for key in keys if key not in found))  # each distinct text once
        # A hit is a post served without a forward pass of its own (a repeat within the request counts too).
        self._metrics.count_cache(hits=len(keys) - len(missing), misses=len(missing))
        if missing:
            for key, value in zip(missing, await runtime.batcher.submit(missing), strict=True):
                found[key] = value
                if self._entries is not None:
                    self._entries[(runtime.version, key)] = value
        return [found[key] for key in keys]

