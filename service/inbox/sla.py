"""SLA arithmetic: when a post's response is due, and whether it is on track, at risk or overdue at a given time.

The clock starts at the post's `created_at` (the author has been waiting since then), or at ingestion when the post
has none. The target is the policy's response time for the item's tier (`sla` in the policy file); a tier without
a target has no clock (state "none"). "at_risk" starts when less than `at_risk_fraction` of the target is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from model.policy_rules import ResponseTargets, Tier

SlaState = Literal["overdue", "at_risk", "on_track", "none"]


@dataclass(frozen=True)
class Clock:
    minutes: float | None
    at_risk_at: datetime | None
    due_at: datetime | None


def clock_for(clock_start: datetime, tier: Tier, targets: ResponseTargets) -> Clock:
    minutes = targets.minutes(tier)
    if minutes is None:
        return Clock(None, None, None)
    due_at = clock_start + timedelta(minutes=minutes)
    return Clock(minutes, due_at - timedelta(minutes=minutes * targets.at_risk_fraction), due_at)


def state_at(now: datetime, at_risk_at: datetime | None, due_at: datetime | None) -> SlaState:
    if due_at is None:
        return "none"
    if now >= due_at:
        return "overdue"
    if at_risk_at is not None and now >= at_risk_at:
        return "at_risk"
    return "on_track"


def seconds_left(now: datetime, due_at: datetime | None) -> float | None:
    """Seconds until the response is due; negative once overdue; None without a clock."""
    return None if due_at is None else round((due_at - now).total_seconds(), 1)
