"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.auth import api_key_header, require_client

router = APIRouter()


@router.get("/healthz", summary="Alive (the process answers)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Ready: a model is loaded and warmed")
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state.service
    if not state.ready or state.runtime is None:
        return JSONResponse({"status": "starting or stopping"}, status_code=503)
    return JSONResponse({"status": "ready", "model": state.runtime.describe()})


async def _metrics_access(request: Request, key: str | None = Depends(api_key_header)) -> None:
    if not request.app.state.service.settings.metrics_public:
        await require_client(request, key)


@router.get("/metrics", summary="Prometheus metrics", dependencies=[Depends(_metrics_access)])
async def metrics(request: Request) -> Response:
    registry = request.app.state.service.metrics.registry
    # Off the event loop: the inbox gauges query the database.
    return Response(await asyncio.to_thread(generate_latest, registry), media_type=CONTENT_TYPE_LATEST)
