"""The priority policy, on hand-built probabilities (no model): arithmetic, tiers, overrides, routes, files."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from model.policy import TIERS, Decision, Policy, PolicyError
from model.posts import Post
from model.schema import LabelSchema, TaskSpec

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
LABELS = {
    "intent": ["complaint", "question", "purchase_intent", "suggestion", "praise", "spam", "other"],
    "sentiment": ["negative", "neutral", "positive"],
    "needs_response": ["no", "yes"],
    "urgency": ["high", "normal", "low"],
}
COMPLAINT_TEXT = "@NimbusMobile my parcel came broken and the chat keeps closing on me"
SPAM_TEXT = "win a free cruise today, click the link in my bio for the prize"

POLICY = Policy.load()


def share(labels: list[str], top: str, p: float) -> dict[str, float]:
    """`top` gets p; the other labels split the rest equally."""
    rest = (1 - p) / (len(labels) - 1)
    return {label: p if label == top else rest for label in labels}


def probs(
    intent: str = "complaint",
    p_intent: float = 0.9,
    sentiment: str = "negative",
    p_sentiment: float = 0.8,
    yes: float = 0.9,
    urgency: str = "high",
    p_urgency: float = 0.8,
) -> dict[str, dict[str, float]]:
    return {
        "intent": share(LABELS["intent"], intent, p_intent),
        "sentiment": share(LABELS["sentiment"], sentiment, p_sentiment),
        "needs_response": {"no": 1 - yes, "yes": yes},
        "urgency": share(LABELS["urgency"], urgency, p_urgency),
    }


def post(
    text: str = COMPLAINT_TEXT,
    followers: int = 0,
    verified: bool = False,
    handle: str | None = "someone",
    retweets: int = 0,
    likes: int = 0,
    replies: int = 0,
    age_hours: float | None = 1.0,
    lang: str | None = "en",
) -> Post:
    return Post(
        id="p1",
        text=text,
        brand="@NimbusMobile",
        author={"handle": handle, "followers": followers, "verified": verified},
        engagement={"retweets": retweets, "likes": likes, "replies": replies},
        created_at=None if age_hours is None else NOW - timedelta(hours=age_hours),
        lang=lang,
    )


def decide(p: Post | None = None, policy: Policy = POLICY, **kwargs: Any) -> Decision:
    return policy.apply(p or post(), probs(**kwargs), now=NOW)


def default_document() -> dict[str, Any]:
    return yaml.safe_load(resources.files("model").joinpath("policy.yaml").read_text(encoding="utf-8"))


def custom(**changes: Any) -> Policy:
    document = default_document()
    document.update(changes)
    return Policy.model_validate(document)


def texts(decision: Decision) -> list[str]:
    return [r.text for r in decision.reasons]


def points(decision: Decision) -> dict[str, float]:
    return {r.factor: r.points for r in decision.reasons}


# --- the arithmetic ----------------------------------------------------------------------------------------------


def test_one_hand_computed_example() -> None:
    probabilities = {
        "intent": {"complaint": 0.2, "question": 0.6, "purchase_intent": 0.1, "suggestion": 0.05, "praise": 0.05,
                   "spam": 0.0, "other": 0.0},
        "sentiment": {"negative": 0.3, "neutral": 0.6, "positive": 0.1},
        "needs_response": {"no": 0.25, "yes": 0.75},
        "urgency": {"high": 0.2, "normal": 0.5, "low": 0.3},
    }
    # followers 999: log10(1000) = 3; engagement 2*20 + 2*5 + 49 = 99 interactions: log10(100) = 2; 96 h old.
    example = post(followers=999, retweets=20, likes=49, replies=5, age_hours=96)
    decision = POLICY.apply(example, probabilities, now=NOW)
    # needs_response 40 * 0.75                                        = 30.0
    # urgency        25 * (0.2 + 0.4 * 0.5)                            = 10.0
    # intent         0.2*10 + 0.6*6 + 0.1*8 + 0.05*2 + 0.05*0 + 0 + 0  =  6.5
    # sentiment      5 * 0.3                                           =  1.5
    # influence      12 * min(1, 3 / 6), not verified                  =  6.0
    # engagement     8 * min(1, 2 / 4)                                 =  4.0
    # age            -10 * (96 - 24) / (168 - 24)                      = -5.0
    # total          30 + 10 + 6.5 + 1.5 + 6 + 4 - 5                   = 53.0  -> P2 (>= 50, < 70)
    assert decision.priority == 53.0
    assert decision.tier == "P2"
    assert decision.needs_response is True
    assert decision.route == "customer_care"  # question, sentiment mostly neutral
    assert [(r.factor, r.points, r.text) for r in decision.reasons] == [
        ("needs_response", 30.0, "needs a response 0.75"),
        ("urgency", 10.0, "urgency normal 0.50"),
        ("intent", 6.5, "question 0.60"),
        ("influence", 6.0, "author with 999 followers"),
        ("age", -5.0, "old post: 4 days"),
        ("engagement", 4.0, "engagement: 20 retweets, 49 likes, 5 replies"),
        ("sentiment", 1.5, "negative 0.30"),
    ]
    assert decision.policy == "default@2" == POLICY.id


def test_priority_is_clamped_and_zero_contributions_are_omitted() -> None:
    low = decide(post(text=SPAM_TEXT), intent="spam", p_intent=1.0, sentiment="neutral", p_sentiment=1.0,
                 yes=0.0, urgency="low", p_urgency=1.0)
    assert low.priority == 0.0  # -40 from spam alone
    assert [r.factor for r in low.reasons] == ["intent"]
    assert (low.tier, low.route, low.needs_response) == ("P4", "ignore", False)
    high = decide(post(text="my lawyer says the fire was your fault", followers=10**7, verified=True,
                       retweets=10**5))
    assert high.priority == 100.0


# --- tiers -------------------------------------------------------------------------------------------------------


def flat_policy() -> Policy:
    """Priority = 100 * p(yes) and every post needs a response: isolates the tier thresholds."""
    document = default_document()
    document["needs_response_threshold"] = 0.0
    factors = document["factors"]
    factors["needs_response"]["points"] = 100
    for name in ("urgency", "sentiment", "influence", "vip", "engagement"):
        factors[name]["points"] = 0
    factors["intent"]["points"] = dict.fromkeys(factors["intent"]["points"], 0)
    return Policy.model_validate(document)


@pytest.mark.parametrize(
    ("yes", "tier"),
    [(1.0, "P1"), (0.70, "P1"), (0.6996, "P1"), (0.699, "P2"), (0.50, "P2"), (0.499, "P3"), (0.30, "P3"),
     (0.299, "P4"), (0.0, "P4")],
)
def test_tier_boundaries(yes: float, tier: str) -> None:
    decision = decide(policy=flat_policy(), yes=yes)
    assert decision.priority == round(100 * yes, 1)  # 69.96 rounds to 70.0, which is P1
    assert decision.tier == tier


def test_no_response_needed_means_p4_whatever_the_priority() -> None:
    decision = decide(post(followers=10**6, verified=True, retweets=10**4), yes=0.45, p_urgency=1.0)
    assert decision.priority >= 50
    assert (decision.needs_response, decision.tier, decision.route) == (False, "P4", "ignore")


# --- overrides ---------------------------------------------------------------------------------------------------

PRAISE = {"intent": "praise", "p_intent": 0.9, "sentiment": "positive", "yes": 0.1, "urgency": "low"}


@pytest.mark.parametrize(
    ("text", "rule", "quoted", "route"),
    [
        ("@LarkAir refund me this week or I will sue", "legal", "sue", "pr"),
        ("I sued a phone company once and I'd do it again", "legal", "sued", "pr"),
        ("my Lawyer will be in touch about the lost bags", "legal", "Lawyer", "pr"),
        ("this is going to small claims court", "legal", "small claims", "pr"),
        ("three of us got food poisoning from the chicken wrap", "safety", "food poisoning", "pr"),
        ("the charger caught fire on my desk", "safety", "fire", "pr"),
        ("my son had an allergic reaction to the new snack bar", "safety", "allergic reaction", "pr"),
        ("the battery exploded while charging", "safety", "exploded", "pr"),
        ("my account was hacked and someone ordered three laptops", "security", "hacked", "customer_care"),
        ("there is an unauthorised charge of 80 pounds on my card", "security", "unauthorised charge",
         "customer_care"),
        ("someone is running a phishing page with your logo", "security", "phishing", "customer_care"),
        ("reporter at the Daily Ledger here, could you comment for a piece", "media", "reporter", "pr"),
        ("I'm writing a story about delayed refunds, can we talk?", "media", "writing a story", "pr"),
    ],
)
def test_each_override_matches_raises_tier_and_routes(text: str, rule: str, quoted: str, route: str) -> None:
    plain = decide(post(text="@NimbusMobile thanks, the new plan is great"), **PRAISE)
    assert (plain.tier, plain.route, plain.needs_response) == ("P4", "ignore", False)
    decision = decide(post(text=text), **PRAISE)
    assert decision.needs_response is True
    assert decision.tier == "P1"
    assert decision.route == route
    assert f"urgent: {rule} ('{quoted}')" in texts(decision)
    gained = {"legal": 30, "safety": 35, "security": 30, "media": 25}[rule]
    assert decision.priority == pytest.approx(plain.priority + gained, abs=0.05)


@pytest.mark.parametrize(
    "text",
    [
        "there's an issue with my order",  # 'sue' inside 'issue'
        "firefox won't load your checkout page",  # 'fire' inside 'firefox'
        "love the suede finish, will pursue the matching bag",
        "the smoked salmon was lovely, you fired up my weekend",
        "my reporting dashboard is empty",
        "the hacker news thread about your app was fun",
    ],
)
def test_innocent_text_matches_no_override(text: str) -> None:
    decision = decide(post(text=text), **PRAISE)
    assert not any(r.factor.startswith("override") for r in decision.reasons)
    assert (decision.needs_response, decision.tier, decision.route) == (False, "P4", "ignore")


def test_an_override_quotes_the_earliest_match_and_the_first_listed_pattern_at_a_tie() -> None:
    from model.policy_rules import Override

    rule = Override(name="r", patterns=[r"\blate\b", r"\bparcel\b", r"\bparcel came\b"], points=1,
                    route="customer_care", min_tier="P3")
    assert rule.match("the PARCEL came late") == "PARCEL"  # earliest position wins over list order
    assert rule.match("parcel came late") == "parcel"  # same start: the first listed pattern wins
    assert rule.match("nothing here") is None
    repeated = Override(name="echo", patterns=[r"\b(\w+) \1\b", r"\bfire\b"], points=1, route="pr",
                        min_tier="P3")
    assert repeated.match("it is on fire fire") == "fire fire"  # a backreference keeps its own group numbering


def test_several_overrides_add_up_and_the_biggest_routes() -> None:
    plain = decide(post(text="@NimbusMobile hello"), **PRAISE)
    both = decide(post(text="my account was HACKED and a journalist friend wants to hear about it"), **PRAISE)
    assert points(both)["override:security"] == 30.0
    assert points(both)["override:media"] == 25.0
    assert both.priority == pytest.approx(plain.priority + 55, abs=0.05)
    assert both.route == "customer_care"  # security (30) beats media (25)
    tie = decide(post(text="fraud like this ends in a lawsuit"), **PRAISE)
    assert tie.route == "pr"  # legal (30) ties security (30): the rule listed first wins


# --- routing -----------------------------------------------------------------------------------------------------


def test_uncertain_intent_goes_to_human_review() -> None:
    decision = decide(p_intent=0.41)
    assert decision.route == "human_review"
    assert decision.reasons[-1].model_dump() == {
        "factor": "uncertain_intent", "points": 0.0, "text": "uncertain intent: complaint 0.41",
    }


def test_unsupported_language_goes_to_human_review_first() -> None:
    decision = decide(post(text="we got food poisoning at your cafe", lang="fr-CA"))
    assert decision.route == "human_review"
    assert decision.tier == "P1"  # still scored: the override counts, only the route changes
    assert decision.reasons[-1].model_dump() == {
        "factor": "language", "points": 0.0, "text": "language 'fr' not supported by the model",
    }
    assert decide(post(lang="EN-gb")).route == "customer_care"
    assert decide(post(lang=None)).route == "customer_care"
    assert decide(post(lang="de"), policy=custom(supported_languages=["en", "DE"])).route == "customer_care"


@pytest.mark.parametrize(
    ("followers", "retweets", "why"),
    [
        (250_000, 0, "public risk: negative post from an author with 250k followers"),
        (20, 150, "public risk: negative post with 150 retweets"),
        (1_200_000, 100, "public risk: negative post from an author with 1.2M followers, 100 retweets"),
    ],
)
def test_negative_posts_with_reach_escalate_to_pr(followers: int, retweets: int, why: str) -> None:
    decision = decide(post(followers=followers, retweets=retweets))
    assert decision.route == "pr"
    assert decision.reasons[-1].model_dump() == {"factor": "public_risk", "points": 0.0, "text": why}


def test_no_escalation_without_negativity_or_reach() -> None:
    assert decide(post(followers=99_999, retweets=99)).route == "customer_care"
    assert decide(post(followers=500_000), sentiment="neutral").route == "customer_care"


@pytest.mark.parametrize(
    ("intent", "route"),
    [("complaint", "customer_care"), ("question", "customer_care"), ("other", "customer_care"),
     ("purchase_intent", "sales"), ("suggestion", "product"), ("praise", "marketing"), ("spam", "ignore")],
)
def test_route_by_intent(intent: str, route: str) -> None:
    decision = decide(intent=intent, sentiment="neutral")
    assert decision.route == route
    assert decision.reasons[-1].points != 0  # no routing reason needed


def test_no_response_needed_is_ignored() -> None:
    assert decide(yes=0.3).route == "ignore"


# --- VIP, age, wording -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("handle", ["pebble_fan", "@Pebble_Fan", "PEBBLE_FAN"])
def test_vip_handles(handle: str) -> None:
    vip_policy = custom(vip_handles=["@pebble_fan", "other_vip"])
    normal = decide(post(handle="someone_else"), policy=vip_policy)
    vip = decide(post(handle=handle), policy=vip_policy)
    assert "vip" not in points(normal)
    assert points(vip)["vip"] == 25.0
    assert f"VIP: @{handle.lstrip('@')}" in texts(vip)
    assert vip.priority == pytest.approx(min(100, normal.priority + 25), abs=0.05)
    assert "vip" not in points(decide(post(handle=None), policy=vip_policy))


def test_age_decay() -> None:
    fresh = decide(post(age_hours=23.9))
    assert "age" not in points(fresh)
    three_days = decide(post(age_hours=72))
    assert points(three_days)["age"] == -3.3  # -10 * (72 - 24) / 144
    assert "old post: 3 days" in texts(three_days)
    two_weeks = decide(post(age_hours=14 * 24))
    assert points(two_weeks)["age"] == -10.0  # capped past 168 h
    assert "old post: 14 days" in texts(two_weeks)
    assert two_weeks.priority == pytest.approx(fresh.priority - 10, abs=0.05)
    assert "age" not in points(decide(post(age_hours=None)))
    assert "old post: 30 hours" in texts(decide(post(age_hours=30)))
    assert "age" not in points(decide(post(age_hours=-5)))  # a clock skewed into the future is not old


def test_naive_datetimes_count_as_utc() -> None:
    aware = post(age_hours=72)
    naive = aware.model_copy(update={"created_at": aware.created_at.replace(tzinfo=None)})
    expected = POLICY.apply(aware, probs(), now=NOW)
    assert POLICY.apply(naive, probs(), now=NOW) == expected
    assert POLICY.apply(naive, probs(), now=NOW.replace(tzinfo=None)) == expected
    assert POLICY.apply(aware, probs(), now=NOW.replace(tzinfo=None)) == expected


def test_now_defaults_to_the_current_time() -> None:
    recent = post(age_hours=None).model_copy(update={"created_at": datetime.now(UTC) - timedelta(hours=72)})
    assert points(POLICY.apply(recent, probs()))["age"] == -3.3


@pytest.mark.parametrize(
    ("followers", "verified", "text"),
    [
        (1, False, "author with 1 follower"),
        (850, False, "author with 850 followers"),
        (1_200, False, "author with 1.2k followers"),
        (12_345, False, "author with 12k followers"),
        (250_000, True, "verified author, 250k followers"),
        (999_999, False, "author with 1M followers"),
        (1_200_000, False, "author with 1.2M followers"),
        (0, True, "verified author, 0 followers"),
    ],
)
def test_influence_wording(followers: int, verified: bool, text: str) -> None:
    assert text in texts(decide(post(followers=followers, verified=verified)))


def test_engagement_wording_omits_zero_parts() -> None:
    assert "engagement: 120 retweets, 300 likes, 4 replies" in texts(decide(post(retweets=120, likes=300, replies=4)))
    assert "engagement: 1 retweet, 1 reply" in texts(decide(post(retweets=1, replies=1)))
    assert "engagement: 2.5k likes" in texts(decide(post(likes=2_500)))
    assert "engagement" not in points(decide(post()))


def test_reasons_are_sorted_by_weight_with_routing_reasons_last() -> None:
    decision = decide(post(followers=300_000, verified=True, retweets=50, age_hours=100))
    scored = [r for r in decision.reasons if r.factor != "public_risk"]
    assert [abs(r.points) for r in scored] == sorted((abs(r.points) for r in scored), reverse=True)
    assert decision.reasons[-1].factor == "public_risk"
    assert all(r.points != 0 for r in scored)
    assert all(r.points == round(r.points, 1) for r in decision.reasons)


# --- policy files and task checks --------------------------------------------------------------------------------


def test_packaged_default_holds_the_documented_numbers() -> None:
    assert POLICY.id == "default@2"
    assert POLICY.requires == LABELS
    assert POLICY.supported_languages == ["en"]
    assert POLICY.vip_handles == []
    assert POLICY.needs_response_threshold == 0.5
    assert POLICY.factors.intent.points == {"complaint": 10, "question": 6, "purchase_intent": 8, "suggestion": 2,
                                            "praise": 0, "spam": -40, "other": -5}
    assert [(o.name, o.points, o.route, o.min_tier) for o in POLICY.overrides] == [
        ("legal", 30, "pr", "P1"), ("safety", 35, "pr", "P1"), ("security", 30, "customer_care", "P1"),
        ("media", 25, "pr", "P1"),
    ]
    assert (POLICY.tiers.P1, POLICY.tiers.P2, POLICY.tiers.P3) == (70, 50, 30)


def test_custom_policy_file(tmp_path: Path) -> None:
    document = default_document()
    document.update(name="night-shift", version="2.1", vip_handles=["@CEO_Jo"])
    document["tiers"] = {"P1": 90, "P2": 80, "P3": 60}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    policy = Policy.load(path)
    assert Policy.load(str(path)) == policy
    assert policy.id == "night-shift@2.1"
    assert policy.vip_handles == ["ceo_jo"]
    default, night = decide(post(followers=1_000)), decide(post(followers=1_000), policy=policy)
    assert night.priority == default.priority == 75.5
    assert (default.tier, night.tier, night.policy) == ("P1", "P3", "night-shift@2.1")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda d: d["factors"]["intent"]["points"].update(complaint="ten"), "factors.intent.points.complaint",
         "valid number"),
        (lambda d: d["factors"].update(influnce={"points": 1}), "factors.influnce", "unknown field"),
        (lambda d: d.update(version=2), "version", "valid string"),
        (lambda d: d.pop("tiers"), "tiers", "Field required"),
        (lambda d: d["tiers"].update(P3=80), "tiers", "must descend"),
        (lambda d: d["factors"]["intent"]["points"].pop("other"), "factors.intent.points", "every intent label"),
        (lambda d: d["routing"]["by_intent"].update(spam="trash"), "routing.by_intent.spam", "'customer_care'"),
        (lambda d: d["overrides"][1]["patterns"].append("(unclosed"), "overrides.1.patterns",
         "not a valid regular expression"),
        (lambda d: d["requires"].pop("urgency"), "requires.urgency", "missing"),
        (lambda d: d["factors"]["age"].update(full_at_hours=12), "factors.age", "greater than grace_hours"),
    ],
)
def test_invalid_policy_names_file_and_field(tmp_path: Path, change: Any, field: str, message: str) -> None:
    document = default_document()
    change(document)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        Policy.load(path)
    error = str(caught.value)
    assert str(path) in error
    assert f"field '{field}'" in error
    assert message in error


def test_unreadable_policy_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        Policy.load(tmp_path / "absent.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        Policy.load(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="expected a mapping"):
        Policy.load(tmp_path / "list.yaml")


def test_bare_yes_no_in_requires_are_read_as_words(tmp_path: Path) -> None:
    text = resources.files("model").joinpath("policy.yaml").read_text(encoding="utf-8")
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace('["no", "yes"]', "[no, yes]"), encoding="utf-8")
    assert Policy.load(path).requires["needs_response"] == ["no", "yes"]


def test_check_tasks_accepts_the_default_schema() -> None:
    POLICY.check_tasks(LabelSchema.from_yaml(ROOT / "data" / "labels.yaml").tasks)
    reordered = [TaskSpec(name=name, labels=tuple(reversed(labels))) for name, labels in LABELS.items()]
    POLICY.check_tasks(reordered)  # probabilities are read by label name: order is free


def test_check_tasks_refuses_a_model_without_the_tasks() -> None:
    with pytest.raises(PolicyError) as caught:
        POLICY.check_tasks([TaskSpec(name="complaint", labels=("no", "yes"))])
    error = str(caught.value)
    assert "the policy needs task 'urgency' (labels high, normal, low)" in error
    assert "the policy needs task 'intent'" in error
    assert error.endswith("the model has tasks ['complaint']")


def test_check_tasks_refuses_other_labels() -> None:
    tasks = [TaskSpec(name=name, labels=tuple(labels)) for name, labels in LABELS.items() if name != "urgency"]
    tasks.append(TaskSpec(name="urgency", labels=("urgent", "not_urgent")))
    with pytest.raises(PolicyError, match=re.escape("the model's 'urgency' has labels urgent, not_urgent")):
        POLICY.check_tasks(tasks)


def test_missing_or_bad_probabilities_are_errors() -> None:
    complete = probs()
    without_task = {k: v for k, v in complete.items() if k != "urgency"}
    with pytest.raises(PolicyError, match="probabilities lack task 'urgency'"):
        POLICY.apply(post(), without_task, now=NOW)
    without_label = {**complete, "intent": {k: v for k, v in complete["intent"].items() if k != "spam"}}
    with pytest.raises(PolicyError, match="'intent' lack label 'spam'"):
        POLICY.apply(post(), without_label, now=NOW)
    for bad in (1.5, -0.1, math.nan):
        broken = {**complete, "needs_response": {"no": 0.1, "yes": bad}}
        with pytest.raises(PolicyError, match=r"needs_response\.yes"):
            POLICY.apply(post(), broken, now=NOW)


# --- the worked example in docs/POLICY.md ------------------------------------------------------------------------


def doc_block(marker: str) -> Any:
    document = (ROOT / "docs" / "POLICY.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- {marker} -->\s*```json\n(.*?)```", document, re.DOTALL)
    assert found, f"docs/POLICY.md lacks the {marker} block"
    return json.loads(found.group(1))


def test_worked_example_in_the_docs_matches_the_code() -> None:
    example = doc_block("worked-example:input")
    decision = POLICY.apply(
        Post.model_validate(example["post"]), example["probabilities"], now=datetime.fromisoformat(example["now"])
    )
    assert decision.model_dump() == doc_block("worked-example:decision")
    # The numbers the doc's table walks through.
    assert (decision.priority, decision.tier, decision.route, decision.needs_response) == (100.0, "P1", "pr", True)
    assert points(decision) == {
        "needs_response": 38.0, "override:safety": 35.0, "urgency": 21.5, "influence": 15.8, "intent": 8.5,
        "engagement": 4.7, "sentiment": 4.5, "age": -0.4,
    }


# --- properties --------------------------------------------------------------------------------------------------


@st.composite
def distribution(draw: st.DrawFn, task: str, top: str | None = None, low: float = 0.0, high: float = 1.0
                 ) -> dict[str, float]:
    """A probability distribution over the task's labels; `top`, when given, gets a probability in [low, high]."""
    labels = LABELS[task]
    p_top = draw(st.floats(low, high)) if top else 0.0
    others = [label for label in labels if label != top]
    weights = [draw(st.floats(0.0, 1.0)) for _ in others]
    total = sum(weights)
    rest = [(1 - p_top) * w / total if total else (1 - p_top) / len(others) for w in weights]
    values = dict(zip(others, rest, strict=True)) | ({top: p_top} if top else {})
    return {label: values[label] for label in labels}


def any_probabilities() -> st.SearchStrategy[dict[str, dict[str, float]]]:
    return st.fixed_dictionaries({task: distribution(task) for task in LABELS})


counts = st.integers(0, 10**7)
ages = st.one_of(st.none(), st.floats(-10, 1000))
FAST = settings(max_examples=100, deadline=None)


@FAST
@given(
    intent=distribution("intent", "complaint", 0.6),
    sentiment=distribution("sentiment"),
    needs=distribution("needs_response", "yes", 0.5),
    urgency=distribution("urgency"),
    retweets=counts, likes=counts, replies=counts, age=ages,
)
def test_influential_author_outranks_the_same_complaint_from_a_small_one(
    intent: dict[str, float], sentiment: dict[str, float], needs: dict[str, float], urgency: dict[str, float],
    retweets: int, likes: int, replies: int, age: float | None,
) -> None:
    probabilities = {"intent": intent, "sentiment": sentiment, "needs_response": needs, "urgency": urgency}
    shared = {"retweets": retweets, "likes": likes, "replies": replies, "age_hours": age}
    big = POLICY.apply(post(followers=200_000, verified=True, **shared), probabilities, now=NOW)
    small = POLICY.apply(post(followers=20, verified=False, **shared), probabilities, now=NOW)
    assert big.priority > small.priority
    assert TIERS.index(big.tier) <= TIERS.index(small.tier)


authors = st.fixed_dictionaries({"followers": counts, "verified": st.booleans(), "retweets": counts,
                                 "likes": counts, "replies": counts})


@FAST
@given(
    spam=st.fixed_dictionaries({
        "intent": distribution("intent", "spam", 0.8), "sentiment": distribution("sentiment"),
        "needs_response": distribution("needs_response", "yes", 0.0, 0.2),
        "urgency": distribution("urgency", "low", 0.8),
    }),
    complaint=st.fixed_dictionaries({
        "intent": distribution("intent", "complaint", 0.8), "sentiment": distribution("sentiment"),
        "needs_response": distribution("needs_response", "yes", 0.8), "urgency": distribution("urgency", "high", 0.8),
    }),
    spammer=authors, customer=authors,
)
def test_spam_never_outranks_an_urgent_complaint(
    spam: dict[str, dict[str, float]], complaint: dict[str, dict[str, float]],
    spammer: dict[str, Any], customer: dict[str, Any],
) -> None:
    spam_decision = POLICY.apply(post(text=SPAM_TEXT, **spammer), spam, now=NOW)
    complaint_decision = POLICY.apply(post(text=COMPLAINT_TEXT, **customer), complaint, now=NOW)
    assert complaint_decision.priority > spam_decision.priority


VIP_POLICY = custom(vip_handles=["big_fan"])
any_text = st.sampled_from([COMPLAINT_TEXT, SPAM_TEXT, "fraud, a lawsuit, food poisoning and a reporter", "hi"])


@FAST
@given(
    probabilities=any_probabilities(), text=any_text, handle=st.sampled_from(["big_fan", "someone", None]),
    followers=counts, more=counts, verified=st.booleans(), retweets=counts, likes=counts, replies=counts, age=ages,
)
def test_priority_is_bounded_and_monotonic_in_followers(
    probabilities: dict[str, dict[str, float]], text: str, handle: str | None, followers: int, more: int,
    verified: bool, retweets: int, likes: int, replies: int, age: float | None,
) -> None:
    shared = {"text": text, "handle": handle, "verified": verified, "retweets": retweets, "likes": likes,
              "replies": replies, "age_hours": age}
    fewer = VIP_POLICY.apply(post(followers=followers, **shared), probabilities, now=NOW)
    larger = VIP_POLICY.apply(post(followers=followers + more, **shared), probabilities, now=NOW)
    assert 0.0 <= fewer.priority <= 100.0
    assert 0.0 <= larger.priority <= 100.0
    assert larger.priority >= fewer.priority
