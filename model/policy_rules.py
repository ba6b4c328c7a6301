"""The building blocks of a policy file: factor weights, crisis overrides, tiers and routing (pydantic-validated)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

Tier = Literal["P1", "P2", "P3", "P4"]
Route = Literal["customer_care", "pr", "sales", "marketing", "product", "ignore", "human_review"]


class StrictModel(BaseModel):
    # A misspelt weight silently falling back to nothing is the failure that matters most here.
    model_config = ConfigDict(extra="forbid")


class NeedsResponseFactor(StrictModel):
    points: float = Field(ge=0)


class UrgencyFactor(StrictModel):
    points: float = Field(ge=0)
    weights: dict[str, float]


class IntentFactor(StrictModel):
    points: dict[str, float]


class SentimentFactor(StrictModel):
    points: float = Field(ge=0)


class InfluenceFactor(StrictModel):
    points: float = Field(ge=0)
    full_at_followers: int = Field(gt=1)
    verified_points: float = Field(ge=0)


class VipFactor(StrictModel):
    points: float = Field(ge=0)


class EngagementWeights(StrictModel):
    retweets: float = Field(ge=0)
    replies: float = Field(ge=0)
    likes: float = Field(ge=0)


class EngagementFactor(StrictModel):
    points: float = Field(ge=0)
    full_at_interactions: int = Field(gt=1)
    weights: EngagementWeights


class AgeFactor(StrictModel):
    points: float = Field(le=0)
    grace_hours: float = Field(ge=0)
    full_at_hours: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> AgeFactor:
        if self.full_at_hours <= self.grace_hours:
            raise ValueError("full_at_hours must be greater than grace_hours")
        return self


class Factors(StrictModel):
    needs_response: NeedsResponseFactor
    urgency: UrgencyFactor
    intent: IntentFactor
    sentiment: SentimentFactor
    influence: InfluenceFactor
    vip: VipFactor
    engagement: EngagementFactor
    age: AgeFactor


_SELF_REFERENCE = re.compile(r"\\[1-9]|\(\?P=")  # \1 or (?P=name) inside a pattern


class Override(StrictModel):
    """A crisis rule: when any pattern matches the text, the post is answered, scored up and routed."""

    name: str = Field(min_length=1)
    patterns: list[str] = Field(min_length=1)
    points: float
    route: Route
    min_tier: Tier

    _regexes: list[re.Pattern[str]] = PrivateAttr(default_factory=list)

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {err}") from err
        return patterns

    def model_post_init(self, context: Any, /) -> None:
        self._regexes = [re.compile(p, re.IGNORECASE) for p in self.patterns]
        # One alternation finds the same match as searching each pattern and keeping the earliest (at one position,
        # alternatives are tried in list order, as min() keeps the first of equal starts) in one pass over the text.
        # Patterns with backreferences would be renumbered by the join, and inline global flags are refused in the
        # middle of a pattern: those keep one search per pattern.
        if len(self._regexes) > 1 and not any(_SELF_REFERENCE.search(p) or p.startswith("(?") for p in self.patterns):
            self._regexes = [re.compile("|".join(f"(?:{p})" for p in self.patterns), re.IGNORECASE)]

    def match(self, text: str) -> str | None:
        """The earliest matching text, as written in the post, or None."""
        found = [m for m in (r.search(text) for r in self._regexes) if m]
        return min(found, key=lambda m: m.start()).group(0) if found else None


class Tiers(StrictModel):
    P1: float
    P2: float
    P3: float

    @model_validator(mode="after")
    def _descending(self) -> Tiers:
        if not self.P1 > self.P2 > self.P3:
            raise ValueError(f"tiers must descend (P1 > P2 > P3), got {self.P1}, {self.P2}, {self.P3}")
        return self


class PublicRisk(StrictModel):
    min_followers: int = Field(ge=0)
    min_retweets: int = Field(ge=0)


class Routing(StrictModel):
    abstain_below: float = Field(ge=0, le=1)
    public_risk: PublicRisk
    by_intent: dict[str, Route]


class ResponseTargets(StrictModel):
    """Service levels: minutes from the post's `created_at` (or its ingestion, when absent) to a first response.

    A tier without a target (null) has no clock; `at_risk_fraction`: an item whose time left is below this share of
    its target shows as at risk before it is overdue.
    """

    P1: float | None = Field(default=60, gt=0)
    P2: float | None = Field(default=240, gt=0)
    P3: float | None = Field(default=1440, gt=0)
    P4: float | None = Field(default=None, gt=0)
    at_risk_fraction: float = Field(default=0.25, ge=0, lt=1)

    def minutes(self, tier: Tier) -> float | None:
        return getattr(self, tier)
