"""Between posts and rows: a scored post becomes an Item, an Item becomes the API's view of it."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from model.policy import Policy
from model.posts import Post
from service.inbox.sla import clock_for, seconds_left, state_at
from service.inbox.tables import Item
from service.runtime import ModelRuntime

# What makes two posts "the same post": engagement and follower counts change while a post is live, so re-sending a
# post with new counts is the same post (nothing changes); a different text, brand, author or time is a conflict.
IDENTITY_FIELDS = ("text", "brand", "created_at", "lang")


def fingerprint(post: Post) -> str:
    identity = post.model_dump(mode="json", include=set(IDENTITY_FIELDS))
    if post.created_at is not None:
        identity["created_at"] = _utc(post.created_at).isoformat()
    identity["author"] = (post.author.handle or "").strip().lstrip("@").lower()
    return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def scored_fields(result: dict[str, Any], runtime: ModelRuntime, policy: Policy, clock_start: datetime,
                  now: datetime) -> dict[str, Any]:
    """The columns that scoring sets: at ingestion, and again on rescore."""
    predictions = {task: dict(output) for task, output in result["predictions"].items()}
    clock = clock_for(clock_start, result["tier"], policy.sla)
    manifest = runtime.predictor.manifest
    return {
        "model_name": manifest.name, "model_version": manifest.version, "policy": policy.id,
        "predictions": predictions,
        "intent": predictions["intent"]["label"], "sentiment": predictions["sentiment"]["label"],
        "urgency": predictions["urgency"]["label"], "needs_response": result["needs_response"],
        "priority": result["priority"], "tier": result["tier"], "route": result["route"],
        "reasons": [reason.model_dump() for reason in result["reasons"]], "scored_at": now,
        "sla_minutes": clock.minutes, "at_risk_at": clock.at_risk_at, "due_at": clock.due_at,
    }


def new_item(post: Post, result: dict[str, Any], runtime: ModelRuntime, now: datetime) -> Item:
    clock_start = _utc(post.created_at) if post.created_at else now
    return Item(
        id=post.id, fingerprint=fingerprint(post), post=post.model_dump(mode="json"), text=post.text,
        created_at=_utc(post.created_at) if post.created_at else None, ingested_at=now, clock_start=clock_start,
        status="open", **scored_fields(result, runtime, runtime.policy, clock_start, now),
    )


def item_view(item: Item, now: datetime) -> dict[str, Any]:
    return {
        "id": item.id, "post": item.post, "status": item.status, "priority": item.priority, "tier": item.tier,
        "route": item.route, "needs_response": item.needs_response, "predictions": item.predictions,
        "reasons": item.reasons,
        "sla": {"state": state_at(now, item.at_risk_at, item.due_at), "target_minutes": item.sla_minutes,
                "due_at": item.due_at, "seconds_left": seconds_left(now, item.due_at)},
        "clock_start": item.clock_start, "ingested_at": item.ingested_at, "scored_at": item.scored_at,
        "model": f"{item.model_name}@{item.model_version}", "policy": item.policy,
        "resolved_by": item.resolved_by, "resolved_at": item.resolved_at, "resolution_note": item.resolution_note,
    }


def export_row(item: Item, labels: dict[str, str], actor: str, at: datetime) -> dict[str, Any]:
    """A training row `triage-train fit` reads as is: the post's fields, then only the labels people gave."""
    post = item.post
    row = {key: post.get(key) for key in ("id", "text", "brand", "lang", "created_at") if post.get(key) is not None}
    row["author"], row["engagement"] = post.get("author", {}), post.get("engagement", {})
    return {**row, **labels, "labelled_by": actor, "labelled_at": at.isoformat()}
