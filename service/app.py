"""The app factory: `service.app:create_app(settings=None)` builds a FastAPI app serving one model.

Run it with `triage-serve` (see service/cli.py) or any ASGI server: `uvicorn --factory service.app:create_app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from model import __version__
from service import api, ops
from service.batcher import Overloaded
from service.inbox import api as inbox_api
from service.inbox import page as inbox_page
from service.middleware import RequestContextMiddleware
from service.settings import Settings
from service.state import ServiceState

log = logging.getLogger("triage.service")
RETRY_AFTER_SECONDS = "1"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.open_inbox()
        await state.swap(settings.model)
        if settings.open_mode:
            log.warning("OPEN MODE: no API keys configured (TRIAGE_API_KEYS); every caller may use every endpoint")
        watcher = None
        if settings.watch_seconds > 0 and (settings.model / "latest").is_file():
            watcher = asyncio.get_running_loop().create_task(state.watch_latest(), name="watch-latest")
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await state.close()

    app = FastAPI(
        title="Tweet Triage",
        version=__version__,
        summary="Which social posts a brand must answer, in what order, routed to which team, and why.",
        lifespan=lifespan,
    )
    app.state.service = state
    routers = (api.router, inbox_api.router, ops.router, inbox_page.router)
    for router in routers:
        # Not app.include_router: FastAPI 0.165 keeps an included router behind a wrapper that walks its routes on
        # every request (about a tenth of the event loop's time under load). These routes carry their full paths
        # and tags already, so adding them directly serves the same API and the same OpenAPI schema.
        app.router.routes.extend(router.routes)

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, err: Overloaded) -> JSONResponse:
        state.metrics.overloaded.inc()
        return JSONResponse({"detail": f"overloaded: {err}; retry shortly"}, status_code=503,
                            headers={"Retry-After": RETRY_AFTER_SECONDS})

    endpoints = {route.path for router in routers for route in router.routes}
    app.add_middleware(RequestContextMiddleware, metrics=state.metrics, max_body_bytes=settings.max_body_bytes,
                       endpoints=endpoints)
    return app
