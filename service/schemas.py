"""Request and response bodies of the HTTP API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from model.policy import Reason
from model.policy_rules import Route, Tier
from model.posts import Post

EXAMPLE_POSTS = [
    {
        "id": "1790001",
        "text": "@SkyHopAir my flight got cancelled and nobody at the gate can rebook me, boarding pass useless 😡",
        "brand": "@SkyHopAir",
        "author": {"handle": "@traveller_jo", "followers": 18200, "verified": False},
        "engagement": {"retweets": 12, "likes": 40, "replies": 3},
        "created_at": "2026-11-26T09:30:00Z",
        "lang": "en",
    },
    {"id": "1790002", "text": "@SkyHopAir loved the new lounge in Denver, thanks team!", "lang": "en"},
]


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"posts": EXAMPLE_POSTS}]})

    posts: list[Post] = Field(min_length=1, description="1 to max_posts posts; ids must be distinct")


class PrioritizeRequest(ClassifyRequest):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"posts": EXAMPLE_POSTS, "top_k": 10}]}
    )

    top_k: int | None = Field(default=None, ge=1, description="return only the K most urgent posts")


class TaskOutput(BaseModel):
    label: str
    probabilities: dict[str, float]


class ModelRef(BaseModel):
    name: str
    version: str
    backend: str


class PostResult(BaseModel):
    id: str
    predictions: dict[str, TaskOutput]
    priority: float = Field(description="0-100, higher is more urgent")
    tier: Tier
    needs_response: bool
    route: Route
    reasons: list[Reason]


class ClassifyResponse(BaseModel):
    model: ModelRef
    policy: str
    results: list[PostResult]


class Counts(BaseModel):
    route: dict[str, int]
    tier: dict[str, int]


class PrioritizeResponse(BaseModel):
    model: ModelRef
    policy: str
    total: int = Field(description="posts received")
    ranked: list[PostResult] = Field(description="most urgent first (ties: request order)")
    counts: Counts = Field(description="over all posts, not only the top K")


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"model": "20261126T160811Z"}]})

    model: str | None = Field(
        default=None,
        description="a version of the served model's NAME directory, or a model path; default: the configured model "
        "(its latest version)",
    )


class ReloadResponse(BaseModel):
    model: ModelRef
    previous: ModelRef


class ModelInfo(BaseModel):
    model: ModelRef
    manifest: dict[str, Any]
    policy: dict[str, Any]
