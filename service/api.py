"""The /v1 endpoints: classify, prioritize, model info and admin reload."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError

from model.artifact import ArtifactError
from model.policy import PolicyError
from model.posts import Post
from model.predictor import Distribution
from service.auth import require_admin, require_client
from service.runtime import ModelRuntime
from service.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    ModelInfo,
    PrioritizeRequest,
    PrioritizeResponse,
    ReloadRequest,
    ReloadResponse,
)
from service.state import ServiceState

router = APIRouter(prefix="/v1")


def _state(request: Request) -> ServiceState:
    return request.app.state.service


def _check_limits(posts: list[Post], state: ServiceState) -> None:
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


async def _score(request: Request, posts: list[Post]) -> tuple[ModelRuntime, list[dict[str, Any]]]:
    state = _state(request)
    _check_limits(posts, state)
    runtime = state.runtime  # this request finishes on this model, even if a reload swaps it meanwhile
    started = time.perf_counter()
    outputs = await state.cache.outputs(runtime, posts)
    request.state.model_ms = round((time.perf_counter() - started) * 1000, 2)
    request.state.posts = len(posts)
    now = datetime.now(UTC)
    results = [_result(runtime, post, probs, now, state) for post, probs in zip(posts, outputs, strict=True)]
    return runtime, results


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


@router.post("/classify", response_model=ClassifyResponse, summary="Classify and prioritise posts")
async def classify(body: ClassifyRequest, request: Request, _: str = Depends(require_client)) -> dict[str, Any]:
    """Each post's label and probabilities per task, with its priority, tier, route and reasons, in request order."""
    runtime, results = await _score(request, body.posts)
    return {"model": runtime.describe(), "policy": runtime.policy.id, "results": results}


@router.post("/prioritize", response_model=PrioritizeResponse, summary="Rank posts by priority")
async def prioritize(body: PrioritizeRequest, request: Request, _: str = Depends(require_client)) -> dict[str, Any]:
    """Posts ranked most urgent first (the top K when given), and counts per route and tier over all posts."""
    runtime, results = await _score(request, body.posts)
    ranked = sorted(results, key=lambda result: -result["priority"])  # stable: ties keep request order
    return {
        "model": runtime.describe(),
        "policy": runtime.policy.id,
        "total": len(results),
        "ranked": ranked[: body.top_k] if body.top_k else ranked,
        "counts": {key: dict(Counter(r[key] for r in results)) for key in ("route", "tier")},
    }


@router.get("/model", response_model=ModelInfo, summary="The served model, its metrics, and the active policy")
async def model_info(request: Request, _: str = Depends(require_client)) -> dict[str, Any]:
    runtime = _state(request).runtime
    manifest = runtime.predictor.manifest.model_dump(mode="json", exclude={"files"})
    return {"model": runtime.describe(), "manifest": manifest, "policy": runtime.policy.model_dump(mode="json")}


@router.post("/admin/reload", response_model=ReloadResponse, summary="Load, verify, warm and swap in a model")
async def reload(
    request: Request, body: ReloadRequest | None = None, _: str = Depends(require_admin)
) -> dict[str, Any]:
    """Answers only after the swap. Requests in flight finish on the old model; a bad artifact is refused with 422
    and the old model keeps serving."""
    state = _state(request)
    requested = body.model if body else None
    try:
        previous, fresh = await state.swap(state.resolve(requested))
    except (ArtifactError, PolicyError, OSError, ValueError) as err:
        raise RequestValidationError([{"type": "invalid_model", "loc": ("body", "model"), "input": requested,
                                       "msg": f"not loaded, still serving {state.runtime.version}: {err}"}]) from err
    return {"model": fresh.describe(), "previous": previous.describe() if previous else fresh.describe()}
