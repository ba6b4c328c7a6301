"""Request and response bodies of the inbox API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from model.policy import Reason
from model.policy_rules import Route, Tier
from model.posts import Post
from service.inbox.sla import SlaState
from service.schemas import EXAMPLE_POSTS, ModelRef, TaskOutput

Resolution = Literal["responded", "dismissed", "escalated"]
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL characters
Note = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)]


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"posts": EXAMPLE_POSTS}]})

    posts: list[Post] = Field(min_length=1, description="1 to max_posts posts; ids must be distinct")


class Sla(BaseModel):
    state: SlaState
    target_minutes: float | None
    due_at: datetime | None
    seconds_left: float | None = Field(description="negative once overdue; null without a target")


class InboxItem(BaseModel):
    id: str
    post: Post
    status: Literal["open", "responded", "dismissed", "escalated"]
    priority: float
    tier: Tier
    route: Route
    needs_response: bool
    predictions: dict[str, TaskOutput]
    reasons: list[Reason]
    sla: Sla
    clock_start: datetime
    ingested_at: datetime
    scored_at: datetime
    model: str = Field(description="name@version of the model that scored it")
    policy: str
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution_note: str | None = None


class IngestResponse(BaseModel):
    created: list[str] = Field(description="ids stored by this request")
    unchanged: list[str] = Field(description="ids already stored with the same content: nothing changed")
    items: list[InboxItem] = Field(description="every post of the request, in request order, as stored")


class InboxPage(BaseModel):
    as_of: datetime = Field(description="the time the listing was taken at; later pages keep it")
    items: list[InboxItem]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"action": "responded"}]})

    action: Resolution = Field(description="responded: answered; dismissed: needs nothing; escalated: handed on "
                               "outside the inbox (legal, an incident team). Each closes the item.")
    note: Note | None = None


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"labels": {"intent": "question", "needs_response": "yes"}}]},
    )

    labels: dict[str, str] = Field(min_length=1, description="task -> corrected label (tasks of the served model)")
    note: Note | None = None


class FeedbackResponse(BaseModel):
    id: str
    labels: dict[str, str]
    actor: str
    created_at: datetime


class RescoreResponse(BaseModel):
    model: ModelRef
    policy: str
    rescored: int = Field(description="open items scored again")
    changed: dict[str, int] = Field(description="how many changed tier, route")

