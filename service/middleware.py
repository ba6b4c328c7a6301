"""One ASGI middleware for every HTTP request: request id, body size limit, access log line and request metrics.

The access line splits the time: `body_ms` (receiving the body), `model_ms` (waiting for model outputs: queue and
inference), and the rest is validation, policy and the response.

The body is read (up to the limit) before the app sees it, so an oversized body is refused with 413 whatever its
transfer encoding, and never buffered beyond the limit.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from service.metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

access_log = logging.getLogger("triage.access")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int, endpoints: set[str]):
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.endpoints = endpoints  # metric label values are bounded: other paths count as 'other'

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        request_id = given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        body = await self._read_body(receive, headers)
        scope["state"]["body_ms"] = round((time.perf_counter() - started) * 1000, 2)
        if body is None:
            await _send_json(send_with_id, 413, {"detail": [{
                "type": "body_too_large", "loc": ["body"], "input": None,
                "msg": f"request body is larger than {self.max_body_bytes} bytes",
            }]})
        else:
            await self.app(scope, _replay(body, receive), send_with_id)
        self._record(scope, request_id, status["code"], time.perf_counter() - started)

    async def _read_body(self, receive, headers: dict[str, str]) -> bytes | None:
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _record(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        path = scope.get("path", "")
        endpoint = path if path in self.endpoints else "other"
        self.metrics.requests.labels(endpoint, scope.get("method", ""), str(status)).inc()
        self.metrics.latency.labels(endpoint).observe(seconds)
        client = scope.get("client") or ("", 0)
        state = scope["state"]
        access_log.info(json.dumps({
            "request_id": request_id, "method": scope.get("method"), "path": path, "status": status,
            "ms": round(seconds * 1000, 2), "body_ms": state.get("body_ms"), "model_ms": state.get("model_ms"),
            "posts": state.get("posts"), "client": client[0], "key": state.get("client"),
        }))


def _replay(body: bytes, receive):
    """The body already read, as one message; then the client's own messages (a real disconnect, say)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send_json(send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
