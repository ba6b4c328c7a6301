"""The /v1 endpoints: classify, prioritize, model info and admin reload."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError

from model.artifact import ArtifactError
from model.policy import PolicyError
from service.auth import require_admin, require_client
from service.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    ModelInfo,
    PrioritizeRequest,
    PrioritizeResponse,
    ReloadRequest,
    ReloadResponse,
)
from service.scoring import score_request, service_state

router = APIRouter(prefix="/v1")


@router.post("/classify", response_model=ClassifyResponse, summary="Classify and prioritise posts")
async def classify(body: ClassifyRequest, request: Request, _: str = Depends(require_client)) -> dict[str, Any]:
    """Each post's label and probabilities per task, with its priority, tier, route and reasons, in request order."""
    runtime, results = await score_request(request, body.posts)
    return {"model": runtime.describe(), "policy": runtime.policy.id, "results": results}


@router.post("/prioritize", response_model=PrioritizeResponse, summary="Rank posts by priority")
async def prioritize(body: PrioritizeRequest, request: Request, _: str = Depends(require_client)) -> dict[str, Any]:
    """Posts ranked most urgent first (the top K when given), and counts per route and tier over all posts."""
    runtime, results = await score_request(request, body.posts)
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
    runtime = service_state(request).runtime
    manifest = runtime.predictor.manifest.model_dump(mode="json", exclude={"files"})
    return {"model": runtime.describe(), "manifest": manifest, "policy": runtime.policy.model_dump(mode="json")}


@router.post("/admin/reload", response_model=ReloadResponse, summary="Load, verify, warm and swap in a model")
async def reload(
    request: Request, body: ReloadRequest | None = None, _: str = Depends(require_admin)
) -> dict[str, Any]:
    """Answers only after the swap. Requests in flight finish on the old model; a bad artifact is refused with 422
    and the old model keeps serving."""
    state = service_state(request)
    requested = body.model if body else None
    try:
        previous, fresh = await state.swap(state.resolve(requested))
    except (ArtifactError, PolicyError, OSError, ValueError) as err:
        raise RequestValidationError([{"type": "invalid_model", "loc": ("body", "model"), "input": requested,
                                       "msg": f"not loaded, still serving {state.runtime.version}: {err}"}]) from err
    return {"model": fresh.describe(), "previous": previous.describe() if previous else fresh.describe()}
