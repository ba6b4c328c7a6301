"""Scoring posts for any endpoint: request limits, cached model outputs, then the policy per post."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from model.posts import Post
from model.predictor import Distribution
from service.runtime import ModelRuntime
from service.state import ServiceState


def service_state(request: Request) -> ServiceState:
    return request.app.state.service


def check_limits(posts: list[Post], state: ServiceState) -> None:
    """Limits that depend on settings, reported like FastAPI's own validation errors (422, naming the field)."""
    settings = state.settings
    problems: list[dict[str, Any]] = []
    if len(posts) > settings.max_posts:
        problems.append({"type": "too_long", "loc": ("body", "posts"), "input": None,
                         "msg": f"at most {settings.max_posts} posts per request, got {len(posts)}"})
    seen: dict[str, int] = {}
    for index, post in enumerate(posts):
        if len(post.text) > settings.max_text_chars:
            problems.append({"type": "string_too_long", "loc": ("body", "posts", index, "text"), "input": None,
                             "msg": f"text has {len(post.text)} characters; the limit is {settings.max_text_chars}"})
        first = seen.setdefault(post.id, index)
        if first != index:
            problems.append({"type": "duplicate_id", "loc": ("body", "posts", index, "id"), "input": post.id,
                             "msg": f"duplicate id {post.id!r} (also posts[{first}])"})
    if problems:
        raise RequestValidationError(problems)


async def score_posts(
    state: ServiceState, posts: list[Post], request: Request | None = None
) -> tuple[ModelRuntime, list[dict[str, Any]]]:
    """Model outputs (cached) and the policy's decision for each post, in input order; no request limits."""
    runtime = state.runtime  # this call finishes on this model, even if a reload swaps it meanwhile
    started = time.perf_counter()
    outputs = await state.cache.outputs(runtime, posts)
    if request is not None:
        request.state.model_ms = round((time.perf_counter() - started) * 1000, 2)
        request.state.posts = len(posts)
    now = datetime.now(UTC)
    results = [_result(runtime, post, probs, now, state) for post, probs in zip(posts, outputs, strict=True)]
    return runtime, results


async def score_request(request: Request, posts: list[Post]) -> tuple[ModelRuntime, list[dict[str, Any]]]:
    """Score the posts of one API request, after checking the request limits."""
    state = service_state(request)
    check_limits(posts, state)
    return await score_posts(state, posts, request)


def _result(runtime: ModelRuntime, post: Post, probabilities: Distribution, now: datetime,
            state: ServiceState) -> dict[str, Any]:
    predictions = {}
    for task, distribution in probabilities.items():
        label = max(distribution, key=distribution.__getitem__)
        predictions[task] = {"label": label, "probabilities": distribution}
        state.metrics.predictions.labels(task, label).inc()
    decision = runtime.policy.apply(post, probabilities, now=now)
    return {"id": post.id, "predictions": predictions, "priority": decision.priority, "tier": decision.tier,
            "needs_response": decision.needs_response, "route": decision.route, "reasons": decision.reasons}
