"""The inbox endpoints: ingest, the queue, resolve, feedback, export, and rescoring after a model or policy change."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints
from sqlalchemy.exc import IntegrityError

from model.policy_rules import Route, Tier
from model.posts import Post
from service.auth import require_admin, require_client
from service.inbox.records import export_row, fingerprint, item_view, new_item, scored_fields
from service.inbox.schemas import (
    NO_NUL,
    FeedbackRequest,
    FeedbackResponse,
    InboxItem,
    InboxPage,
    IngestRequest,
    IngestResponse,
    RescoreResponse,
    ResolveRequest,
)
from service.inbox.sla import SlaState
from service.inbox.store import Cursor, CursorError, Filters, InboxStore, NotFound, ResolveConflict
from service.scoring import check_limits, score_posts, service_state
from service.state import ServiceState

router = APIRouter(prefix="/v1", tags=["inbox"])
INGEST_ATTEMPTS = 3
Label = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
ItemId = Annotated[str, PathParam(min_length=1, max_length=256, pattern=NO_NUL, description="the post id")]
RESCORE_CHUNK = 256


def _inbox(state: ServiceState) -> InboxStore:
    if state.inbox is None:
        raise HTTPException(status_code=503, detail="the inbox database is not open yet")
    return state.inbox


def _now() -> datetime:
    return datetime.now(UTC)


def _not_found(item_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no inbox item with id {item_id!r}")


@router.post("/inbox/posts", response_model=IngestResponse, status_code=201,
             summary="Add posts to the inbox (idempotent by post id)",
             responses={200: {"description": "every post was already stored: nothing changed"},
                        409: {"description": "an id is already stored with different content"}})
async def ingest(body: IngestRequest, request: Request, response: Response,
                 _: str = Depends(require_client)) -> dict[str, Any]:
    """Scores and stores each new post with its model outputs, priority, model and policy version, in one
    transaction. A post whose id is stored already changes nothing when its text, brand, author and created_at are
    the same (engagement counts may differ), and makes the whole request a 409 when they are not."""
    state = service_state(request)
    inbox = _inbox(state)
    posts = body.posts
    check_limits(posts, state)
    _refuse_nul_characters(posts)
    wanted = {post.id: fingerprint(post) for post in posts}
    for attempt in range(INGEST_ATTEMPTS):
        stored = await asyncio.to_thread(inbox.fingerprints, list(wanted))
        _refuse_conflicts(posts, wanted, stored)
        fresh = [post for post in posts if post.id not in stored]
        now = _now()
        items = []
        if fresh:
            runtime, results = await score_posts(state, fresh, request)
            items = [new_item(post, result, runtime, now) for post, result in zip(fresh, results, strict=True)]
        if not items:  # every post is stored already: no write transaction (on SQLite, no write lock)
            break
        try:
            await asyncio.to_thread(inbox.insert, items)
            break
        except IntegrityError:  # a concurrent request stored one of these ids first: look again
            if attempt == INGEST_ATTEMPTS - 1:
                detail = "these ids are being ingested concurrently; retry"
                raise HTTPException(status_code=409, detail=detail) from None
    state.metrics.inbox_ingested.labels("created").inc(len(items))
    state.metrics.inbox_ingested.labels("unchanged").inc(len(stored))
    created = {item.id: item for item in items}
    if not created:
        response.status_code = 200
    everything = {**await asyncio.to_thread(inbox.get_many, list(stored)), **created}
    return {"created": list(created), "unchanged": [post.id for post in posts if post.id in stored],
            "items": [item_view(everything[post.id], now) for post in posts]}


def _refuse_nul_characters(posts: list[Post]) -> None:
    """PostgreSQL text cannot hold NUL characters, and no real post has one: refuse them on every database alike."""
    problems = []
    for index, post in enumerate(posts):
        fields = {("id",): post.id, ("text",): post.text, ("brand",): post.brand, ("lang",): post.lang,
                  ("author", "handle"): post.author.handle}
        problems += [{"type": "string_pattern_mismatch", "loc": ("body", "posts", index, *where), "input": None,
                      "msg": "contains a NUL character (\\u0000)"}
                     for where, value in fields.items() if value and "\x00" in value]
    if problems:
        raise RequestValidationError(problems)


def _refuse_conflicts(posts: list[Post], wanted: dict[str, str], stored: dict[str, str]) -> None:
    problems = [
        {"type": "conflict", "loc": ["body", "posts", index, "id"], "input": post.id,
         "msg": f"id {post.id!r} is already in the inbox with a different text, brand, author or created_at"}
        for index, post in enumerate(posts) if post.id in stored and stored[post.id] != wanted[post.id]
    ]
    if problems:
        raise HTTPException(status_code=409, detail=problems)


@router.get("/inbox", response_model=InboxPage, summary="Open items, most urgent first")
async def queue(
    request: Request,
    _: Annotated[str, Depends(require_client)],
    route: Annotated[list[Route] | None, Query(description="a team's queue (repeat for several)")] = None,
    tier: Annotated[list[Tier] | None, Query()] = None,
    intent: Annotated[list[Label] | None, Query(max_length=20)] = None,
    needs_response: bool | None = None,
    sla: Annotated[list[SlaState] | None, Query(description="overdue, at_risk, on_track, none")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000, description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """Order: overdue first, then priority (high to low), then the older SLA clock start, then id. Pages are keyset
    pages taken `as_of` the first page: items ingested later appear in a fresh listing, never mid-way."""
    inbox = _inbox(service_state(request))
    try:
        after = Cursor.decode(cursor) if cursor else None
    except CursorError as err:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "cursor"), "input": cursor,
                                       "msg": str(err)}]) from err
    filters = Filters(route or (), tier or (), intent or (), needs_response, sla or ())
    page = await asyncio.to_thread(inbox.page, filters, limit, _now(), after)
    return {"as_of": page.as_of, "items": [item_view(item, page.as_of) for item in page.items],
            "next_cursor": page.next_cursor}


@router.get("/inbox/export", summary="Human-corrected items as a training file (JSONL)",
            response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}},
                             "description": "one post per line with only the labels people gave"}})
async def export(request: Request, _: str = Depends(require_client)) -> StreamingResponse:
    """Each corrected item once, with the latest label people gave per task and never a model prediction; the file
    trains as is: `triage-train fit --config ...` with it listed under `train`."""
    inbox = _inbox(service_state(request))

    def lines() -> list[str]:
        return [json.dumps(export_row(*entry), ensure_ascii=False) + "\n" for entry in inbox.corrected()]

    async def body() -> AsyncIterator[str]:
        for line in await asyncio.to_thread(lines):
            yield line

    return StreamingResponse(body(), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="inbox-feedback.jsonl"'})


@router.get("/inbox/{item_id}", response_model=InboxItem, summary="One item, open or resolved")
async def get_item(item_id: ItemId, request: Request, _: str = Depends(require_client)) -> dict[str, Any]:
    inbox = _inbox(service_state(request))
    try:
        item = await asyncio.to_thread(inbox.get, item_id)
    except NotFound as err:
        raise _not_found(item_id) from err
    return item_view(item, _now())


@router.post("/inbox/{item_id}/resolve", response_model=InboxItem, summary="Close an item",
             responses={404: {"description": "no such item"},
                        409: {"description": "already resolved with another action"}})
async def resolve(item_id: ItemId, body: ResolveRequest, request: Request,
                  actor: str = Depends(require_client)) -> dict[str, Any]:
    """Records the action, the caller's key name as actor, and the time. Repeating the same action is harmless."""
    state = service_state(request)
    inbox = _inbox(state)
    now = _now()
    try:
        item, changed = await asyncio.to_thread(inbox.resolve, item_id, body.action, actor, body.note, now)
    except NotFound as err:
        raise _not_found(item_id) from err
    except ResolveConflict as err:
        raise HTTPException(status_code=409, detail=str(err)) from err
    if changed and body.action == "responded":
        waited = max(0.0, (now - item.clock_start).total_seconds())
        state.metrics.inbox_first_response.labels(item.route, item.tier).observe(waited)
    return item_view(item, now)


@router.post("/inbox/{item_id}/feedback", response_model=FeedbackResponse, status_code=201,
             summary="Correct an item's labels", responses={404: {"description": "no such item"}})
async def feedback(item_id: ItemId, body: FeedbackRequest, request: Request,
                   actor: str = Depends(require_client)) -> dict[str, Any]:
    """Corrected labels become training data (GET /v1/inbox/export); the item's own scores stay as they were."""
    state = service_state(request)
    tasks = {task.name: task.labels for task in state.runtime.predictor.tasks}
    problems = []
    for task, label in body.labels.items():
        if task not in tasks:
            problems.append({"type": "unknown_task", "loc": ("body", "labels", task), "input": label,
                             "msg": f"unknown task {task!r}; the model's tasks are {list(tasks)}"})
        elif label not in tasks[task]:
            problems.append({"type": "unknown_label", "loc": ("body", "labels", task), "input": label,
                             "msg": f"unknown {task} label {label!r}; expected one of {list(tasks[task])}"})
    if problems:
        raise RequestValidationError(problems)
    try:
        saved = await asyncio.to_thread(_inbox(state).add_feedback, item_id, body.labels, body.note, actor, _now())
    except NotFound as err:
        raise _not_found(item_id) from err
    return {"id": item_id, "labels": saved.labels, "actor": saved.actor, "created_at": saved.created_at}


@router.post("/admin/rescore", response_model=RescoreResponse, summary="Score every open item again")
async def rescore(request: Request, _: str = Depends(require_admin)) -> dict[str, Any]:
    """After a model reload or a policy change: each open item gets the served model's outputs and the active
    policy's priority, tier, route and SLA clock (ages counted from now). Chunks of 256, one transaction each."""
    state = service_state(request)
    inbox = _inbox(state)
    runtime = state.runtime
    rescored, changed_tier, changed_route, after = 0, 0, 0, None
    while chunk := await asyncio.to_thread(inbox.open_after, after, RESCORE_CHUNK):
        after = chunk[-1].id
        posts = [Post.model_validate(item.post) for item in chunk]
        runtime, results = await score_posts(state, posts)  # the runtime actually used, should a reload happen
        now = _now()
        changes = []
        for item, result in zip(chunk, results, strict=True):
            changed_tier += result["tier"] != item.tier
            changed_route += result["route"] != item.route
            changes.append({"id": item.id, **scored_fields(result, runtime, runtime.policy, item.clock_start, now)})
        rescored += await asyncio.to_thread(inbox.update_scores, changes)
    return {"model": runtime.describe(), "policy": runtime.policy.id, "rescored": rescored,
            "changed": {"tier": changed_tier, "route": changed_route}}
