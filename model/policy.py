"""The priority policy: one post's model outputs plus its context in, a priority, tier, route and reasons out.

Why it is separate from the model: a social team tunes thresholds and weights far more often than anyone retrains,
and a decision must be explainable and reproducible from stored probabilities alone. So every number lives in a
versioned YAML file (`model/policy.yaml` is the default), the code only applies it, and each `Decision` names the
policy (`name@version`) that made it. The arithmetic is documented, with a worked example, in docs/POLICY.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from model.policy_rules import Factors, Override, ResponseTargets, Route, Routing, StrictModel, Tier, Tiers
from model.posts import Post
from model.schema import TaskSpec, label_name
from model.validation import describe_validation_error
from model.wording import age_text, plural

DEFAULT_POLICY = "policy.yaml"
TIERS: tuple[Tier, ...] = ("P1", "P2", "P3", "P4")

# The tasks and labels this code reads by name; a policy's `requires` must contain them.
INTENT, SENTIMENT, NEEDS_RESPONSE, URGENCY = "intent", "sentiment", "needs_response", "urgency"
YES, NEGATIVE = "yes", "negative"
READS: dict[str, tuple[str, ...]] = {INTENT: (), SENTIMENT: (NEGATIVE,), NEEDS_RESPONSE: (YES,), URGENCY: ()}

# Probabilities a hair outside [0, 1] are float noise, not a bug.
_PROBABILITY_SLACK = 1e-6


class PolicyError(ValueError):
    """A policy file that cannot be used, or inputs that do not fit the policy (missing tasks or labels)."""


class Reason(BaseModel):
    """One factor's contribution, in words a social team reads; points rounded to 0.1."""

    factor: str
    points: float
    text: str


class Decision(BaseModel):
    priority: float
    tier: Tier
    needs_response: bool
    route: Route
    reasons: list[Reason]
    policy: str


class Policy(StrictModel):
    """A parsed, validated policy file. `Policy.load()` gives the packaged default."""

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    description: str = ""
    requires: dict[str, list[str]]
    supported_languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    vip_handles: list[str] = Field(default_factory=list)
    needs_response_threshold: float = Field(ge=0, le=1)
    factors: Factors
    overrides: list[Override] = Field(default_factory=list)
    tiers: Tiers
    routing: Routing
    sla: ResponseTargets = Field(default_factory=ResponseTargets)

    @field_validator("requires", mode="before")
    @classmethod
    def _yaml_booleans_are_words(cls, value: Any) -> Any:
        # Bare yes/no in YAML arrive as booleans; take them back as the labels the author meant.
        if isinstance(value, dict):
            return {
                task: [label_name(x) if isinstance(x, bool) else x for x in labels]
                if isinstance(labels, list) else labels
                for task, labels in value.items()
            }
        return value

    @field_validator("supported_languages")
    @classmethod
    def _lower_languages(cls, languages: list[str]) -> list[str]:
        return [lang.strip().lower() for lang in languages]

    @field_validator("vip_handles")
    @classmethod
    def _normal_handles(cls, handles: list[str]) -> list[str]:
        return [_handle_key(h) for h in handles]

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        problems = []
        for task, needed in READS.items():
            labels = self.requires.get(task)
            if labels is None:
                problems.append((f"requires.{task}", "missing: the policy reads this task"))
            elif missing := [label for label in needed if label not in labels]:
                problems.append((f"requires.{task}", f"missing labels {missing}"))
            elif len(set(labels)) != len(labels) or len(labels) < 2:
                problems.append((f"requires.{task}", "needs at least two distinct labels"))
        intents = self.requires.get(INTENT, [])
        for field, keys in (("factors.intent.points", self.factors.intent.points),
                            ("routing.by_intent", self.routing.by_intent)):
            if set(keys) != set(intents):
                problems.append((field, f"must give every intent label exactly once: {intents}, got {list(keys)}"))
        if unknown := set(self.factors.urgency.weights) - set(self.requires.get(URGENCY, [])):
            problems.append(("factors.urgency.weights", f"labels {sorted(unknown)} are not in requires.urgency"))
        names = [rule.name for rule in self.overrides]
        if len(set(names)) != len(names):
            problems.append(("overrides", f"rule names must be distinct, got {names}"))
        if problems:
            raise ValueError("; ".join(f"field '{field}': {message}" for field, message in problems))
        return self

    @classmethod
    def load(cls, path: str | Path | None = None) -> Policy:
        """Read and validate a policy file; None means the default shipped inside the package."""
        if path is None:
            resource = resources.files("model").joinpath(DEFAULT_POLICY)
            source, read = str(resource), resource.read_text
        else:
            source, read = str(path), Path(path).read_text
        try:
            document = yaml.safe_load(read(encoding="utf-8"))
        except OSError as err:
            raise PolicyError(f"{source}: cannot read the policy file: {err}") from err
        except yaml.YAMLError as err:
            raise PolicyError(f"{source}: not valid YAML: {err}") from err
        if not isinstance(document, dict):
            raise PolicyError(f"{source}: expected a mapping of policy fields at the top level")
        try:
            return cls.model_validate(document)
        except ValidationError as err:
            raise PolicyError(describe_validation_error(source, "policy", err)) from err

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def check_tasks(self, tasks: Sequence[TaskSpec]) -> None:
        """Refuse a model whose outputs this policy cannot read: call it once when pairing a model with a policy.

        Labels are compared as sets: probabilities are read by label name, so their order in the model is free.
        """
        have = {task.name: task for task in tasks}
        problems = []
        for name, labels in self.requires.items():
            wanted = f"the policy needs task '{name}' (labels {', '.join(labels)})"
            if name not in have:
                problems.append(wanted)
            elif set(have[name].labels) != set(labels):
                problems.append(f"{wanted}; the model's '{name}' has labels {', '.join(have[name].labels)}")
        if problems:
            raise PolicyError(f"policy {self.id}: " + "; ".join(problems) + f"; the model has tasks {list(have)}")

    def apply(
        self, post: Post, probabilities: Mapping[str, Mapping[str, float]], now: datetime | None = None
    ) -> Decision:
        """Score and route one post from its calibrated probabilities (probabilities[task][label])."""
        p = self._read(probabilities)
        f = self.factors
        author, engagement = post.author, post.engagement
        scored: list[tuple[str, float, str]] = []  # (factor, unrounded points, text), in factor order

        p_yes = p[NEEDS_RESPONSE][YES]
        scored.append(("needs_response", f.needs_response.points * p_yes, f"needs a response {p_yes:.2f}"))

        urgency_label, urgency_p = _top(p[URGENCY])
        urgency = f.urgency.points * sum(w * p[URGENCY][label] for label, w in f.urgency.weights.items())
        scored.append(("urgency", urgency, f"urgency {urgency_label} {urgency_p:.2f}"))

        intent_label, intent_p = _top(p[INTENT])
        intent = sum(p[INTENT][label] * points for label, points in f.intent.points.items())
        scored.append(("intent", intent, f"{intent_label} {intent_p:.2f}"))

        p_negative = p[SENTIMENT][NEGATIVE]
        scored.append(("sentiment", f.sentiment.points * p_negative, f"{NEGATIVE} {p_negative:.2f}"))

        reach = min(1.0, math.log10(1 + author.followers) / math.log10(f.influence.full_at_followers))
        influence = f.influence.points * reach + (f.influence.verified_points if author.verified else 0.0)
        followers = plural(author.followers, "follower")
        who = f"verified author, {followers}" if author.verified else f"author with {followers}"
        scored.append(("influence", influence, who))

        if author.handle and _handle_key(author.handle) in self.vip_handles:
            scored.append(("vip", f.vip.points, f"VIP: @{author.handle.strip().lstrip('@')}"))

        w = f.engagement.weights
        interactions = w.retweets * engagement.retweets + w.replies * engagement.replies + w.likes * engagement.likes
        buzz = min(1.0, math.log10(1 + interactions) / math.log10(f.engagement.full_at_interactions))
        parts = [
            plural(count, noun)
            for count, noun in ((engagement.retweets, "retweet"), (engagement.likes, "like"),
                                (engagement.replies, "reply"))
            if count
        ]
        scored.append(("engagement", f.engagement.points * buzz, "engagement: " + ", ".join(parts)))

        if post.created_at is not None:
            age_h = (_utc(now or datetime.now(UTC)) - _utc(post.created_at)).total_seconds() / 3600
            stale = min(1.0, max(0.0, (age_h - f.age.grace_hours) / (f.age.full_at_hours - f.age.grace_hours)))
            scored.append(("age", f.age.points * stale, f"old post: {age_text(age_h)}"))

        matched = [(rule, hit) for rule in self.overrides if (hit := rule.match(post.text)) is not None]
        scored += [(f"override:{rule.name}", rule.points, f"urgent: {rule.name} ('{hit}')") for rule, hit in matched]

        priority = round(min(100.0, max(0.0, sum(points for _, points, _ in scored))), 1)
        reasons = [Reason(factor=k, points=round(v, 1), text=t) for k, v, t in scored if round(v, 1) != 0]
        reasons.sort(key=lambda r: -abs(r.points))

        needs_response = p_yes >= self.needs_response_threshold or bool(matched)
        tier = self._tier(priority) if needs_response else "P4"
        for rule, _ in matched:
            tier = min(tier, rule.min_tier, key=TIERS.index)

        route, why = self._route(post, p, needs_response, matched)
        if why:
            reasons.append(Reason(factor=why[0], points=0.0, text=why[1]))
        return Decision(
            priority=priority, tier=tier, needs_response=needs_response, route=route, reasons=reasons, policy=self.id
        )

    def _route(
        self,
        post: Post,
        p: dict[str, dict[str, float]],
        needs_response: bool,
        matched: list[tuple[Override, str]],
    ) -> tuple[Route, tuple[str, str] | None]:
        """The first rule that applies, and the routing reason to show (when the route needs explaining)."""
        if post.lang:
            primary = post.lang.strip().lower().split("-")[0]
            if primary not in self.supported_languages:
                return "human_review", ("language", f"language '{primary}' not supported by the model")
        if matched:
            rule = max((rule for rule, _ in matched), key=lambda r: r.points)  # first of equals wins
            return rule.route, None
        if not needs_response:
            return "ignore", None
        intent_label, intent_p = _top(p[INTENT])
        if intent_p < self.routing.abstain_below:
            return "human_review", ("uncertain_intent", f"uncertain intent: {intent_label} {intent_p:.2f}")
        risk = self.routing.public_risk
        author, retweets = post.author, post.engagement.retweets
        loud = author.followers >= risk.min_followers
        viral = retweets >= risk.min_retweets
        if _top(p[SENTIMENT])[0] == NEGATIVE and (loud or viral):
            sources = [f"from an author with {plural(author.followers, 'follower')}"] if loud else []
            if viral:
                sources.append(plural(retweets, "retweet") if loud else f"with {plural(retweets, 'retweet')}")
            return "pr", ("public_risk", "public risk: negative post " + ", ".join(sources))
        return self.routing.by_intent[intent_label], None

    def _tier(self, priority: float) -> Tier:
        for tier in ("P1", "P2", "P3"):
            if priority >= getattr(self.tiers, tier):
                return tier
        return "P4"

    def _read(self, probabilities: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
        """The required probabilities, checked: a missing task or label is an error, never a silent zero."""
        out: dict[str, dict[str, float]] = {}
        for task, labels in self.requires.items():
            if task not in probabilities:
                raise PolicyError(
                    f"policy {self.id}: probabilities lack task '{task}' (it needs {', '.join(self.requires)}); "
                    f"got {list(probabilities)}"
                )
            given = probabilities[task]
            out[task] = {}
            for label in labels:
                if label not in given:
                    raise PolicyError(f"policy {self.id}: probabilities for '{task}' lack label '{label}'")
                value = float(given[label])
                if not (-_PROBABILITY_SLACK <= value <= 1 + _PROBABILITY_SLACK):  # also refuses NaN
                    raise PolicyError(f"policy {self.id}: probability {task}.{label} = {value} is not in [0, 1]")
                out[task][label] = min(1.0, max(0.0, value))
        return out


def _top(distribution: Mapping[str, float]) -> tuple[str, float]:
    """The most probable label; ties go to the label listed first in `requires`."""
    label = max(distribution, key=lambda k: distribution[k])
    return label, distribution[label]


def _handle_key(handle: str) -> str:
    return handle.strip().lstrip("@").lower()


def _utc(moment: datetime) -> datetime:
    """Naive datetimes count as UTC (what platforms export)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
