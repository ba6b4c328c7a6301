"""The inbox API on SQLite and PostgreSQL: ingestion, order, filters, pagination, resolve, feedback, rescore, export."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import yaml

from model.policy import Policy
from tests.service.conftest import posts
from tests.service.inbox.conftest import ago, inbox_client


def sort_key(item: dict, as_of: datetime) -> tuple:
    """The documented order: overdue first, then priority (high first), then the older clock start, then id."""
    overdue = item["sla"]["due_at"] is not None and datetime.fromisoformat(item["sla"]["due_at"]) <= as_of
    return (not overdue, -item["priority"], datetime.fromisoformat(item["clock_start"]), item["id"])


def aged_posts(count: int, start: int = 0) -> list[dict]:
    """Posts whose created_at spreads over the last three days, so some are overdue and some are not."""
    batch = posts(count, start=start)
    for index, post in enumerate(batch):
        if index % 3:
            post["created_at"] = ago(minutes=37 * index * index)
    return batch


def all_pages(api, limit: int, **query) -> list[dict]:
    items, cursor = [], None
    while True:
        page = api.get("/v1/inbox", params={**query, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


def test_ingest_is_idempotent_and_conflicts_are_409(model_dir: Path, database_url: str) -> None:
    batch = posts(3)
    with inbox_client(model_dir, database_url) as api:
        first = api.post("/v1/inbox/posts", json={"posts": batch})
        again = api.post("/v1/inbox/posts", json={"posts": batch})
        batch[0]["engagement"] = {"likes": 999}  # counts change while a post is live: still the same post
        recount = api.post("/v1/inbox/posts", json={"posts": batch})
        changed = [dict(batch[1], text="a different text under the same id"), posts(1, start=50)[0]]
        conflict = api.post("/v1/inbox/posts", json={"posts": changed})
        stored = api.get(f"/v1/inbox/{batch[1]['id']}").json()
        absent = api.get(f"/v1/inbox/{changed[1]['id']}")
        queue = api.get("/v1/inbox").json()["items"]
    assert first.status_code == 201, first.text
    assert first.json()["created"] == [p["id"] for p in batch] and first.json()["unchanged"] == []
    assert again.status_code == 200 and again.json()["created"] == [] and len(again.json()["unchanged"]) == 3
    unchanging = ("id", "priority", "tier", "route", "predictions", "scored_at", "ingested_at")
    assert [{k: i[k] for k in unchanging} for i in again.json()["items"]] == [
        {k: i[k] for k in unchanging} for i in first.json()["items"]]
    assert [i["scored_at"] for i in again.json()["items"]] == [i["scored_at"] for i in first.json()["items"]]
    assert recount.status_code == 200 and recount.json()["items"][0]["post"]["engagement"]["likes"] == 0
    assert conflict.status_code == 409
    assert conflict.json()["detail"][0]["loc"] == ["body", "posts", 0, "id"]
    assert stored["post"]["text"] == batch[1]["text"]
    assert absent.status_code == 404  # the request was refused as a whole
    assert len(queue) == 3
    item = first.json()["items"][0]
    assert item["model"].startswith("tiny@") and item["policy"] == "default@2" and item["status"] == "open"
    assert set(item["predictions"]) == {"intent", "sentiment", "needs_response", "urgency"}


def test_ingest_validates_like_classify(model_dir: Path, database_url: str) -> None:
    with inbox_client(model_dir, database_url, max_text_chars=50) as api:
        duplicate = api.post("/v1/inbox/posts", json={"posts": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]})
        too_long = api.post("/v1/inbox/posts", json={"posts": [{"id": "b", "text": "z" * 51}]})
        empty = api.post("/v1/inbox/posts", json={"posts": []})
    assert duplicate.status_code == too_long.status_code == empty.status_code == 422
    assert duplicate.json()["detail"][0]["loc"] == ["body", "posts", 1, "id"]
    assert too_long.json()["detail"][0]["loc"] == ["body", "posts", 0, "text"]


def test_queue_order_filters_and_sla(model_dir: Path, database_url: str) -> None:
    with inbox_client(model_dir, database_url) as api:
        assert api.post("/v1/inbox/posts", json={"posts": aged_posts(24)}).status_code == 201
        page = api.get("/v1/inbox", params={"limit": 100}).json()
        items, as_of = page["items"], datetime.fromisoformat(page["as_of"])
        by_filter = {
            name: {value: api.get("/v1/inbox", params={name: value, "limit": 100}).json()["items"] for value in values}
            for name, values in {
                "route": sorted({i["route"] for i in items}),
                "tier": ["P1", "P2", "P3", "P4"],
                "intent": ["complaint", "question", "purchase_intent", "suggestion", "praise", "spam", "other"],
                "needs_response": ["true", "false"],
                "sla": ["overdue", "at_risk", "on_track", "none"],
            }.items()
        }
        two_routes = api.get("/v1/inbox", params=[("route", "ignore"), ("route", "customer_care")]).json()["items"]
        bad_filter = api.get("/v1/inbox", params={"tier": "P9"})
    assert len(items) == 24 and items == sorted(items, key=lambda i: sort_key(i, as_of))
    states = {i["sla"]["state"] for i in items}
    assert "overdue" in states and len(states) >= 2  # the order mixes overdue and on-time items
    for name, groups in by_filter.items():
        assert sum(len(group) for group in groups.values()) == 24, name
        for value, group in groups.items():
            field = {"route": lambda i: i["route"], "tier": lambda i: i["tier"],
                     "intent": lambda i: i["predictions"]["intent"]["label"],
                     "needs_response": lambda i: str(i["needs_response"]).lower(),
                     "sla": lambda i: i["sla"]["state"]}[name]
            assert all(field(i) == value for i in group), (name, value)
    assert {i["route"] for i in two_routes} <= {"ignore", "customer_care"}
    assert bad_filter.status_code == 422 and bad_filter.json()["detail"][0]["loc"] == ["query", "tier", 0]
    for item in items:  # the SLA clock: the policy's target for the tier, from created_at (else ingestion)
        target = Policy.load().sla.minutes(item["tier"])
        assert item["sla"]["target_minutes"] == target
        if target is not None:
            due = datetime.fromisoformat(item["sla"]["due_at"])
            start = datetime.fromisoformat(item["clock_start"])
            assert (due - start).total_seconds() == target * 60
            assert abs(item["sla"]["seconds_left"] - (due - as_of).total_seconds()) < 0.11
            assert (item["sla"]["state"] == "overdue") == (due <= as_of)
        if item["post"]["created_at"] is None:
            assert item["clock_start"] == item["ingested_at"]


def test_pages_stay_stable_while_posts_arrive(model_dir: Path, database_url: str) -> None:
    with inbox_client(model_dir, database_url) as api:
        api.post("/v1/inbox/posts", json={"posts": aged_posts(30)})
        expected = [i["id"] for i in api.get("/v1/inbox", params={"limit": 100}).json()["items"]]
        seen, cursor, arriving = [], None, 100
        while True:
            params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
            page = api.get("/v1/inbox", params=params).json()
            seen += [i["id"] for i in page["items"]]
            # Urgent, overdue posts keep arriving between pages: they sort first, and must not shift the pages.
            late = aged_posts(3, start=arriving)
            for post in late:
                post["created_at"] = ago(days=2)
            api.post("/v1/inbox/posts", json={"posts": late})
            arriving += 3
            cursor = page["next_cursor"]
            if cursor is None:
                break
        fresh = api.get("/v1/inbox", params={"limit": 200}).json()["items"]
        bad_cursor = api.get("/v1/inbox", params={"cursor": "not-a-cursor"})
    assert seen == expected
    assert len(fresh) == 30 + (arriving - 100)
    assert bad_cursor.status_code == 422 and bad_cursor.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_resolve_records_actor_and_leaves_the_queue(model_dir: Path, database_url: str) -> None:
    keys = {"api_keys": "maya:agent-key", "admin_keys": "ops:admin-key"}
    agent = {"X-API-Key": "agent-key"}
    with inbox_client(model_dir, database_url, **keys) as api:
        assert api.post("/v1/inbox/posts", json={"posts": posts(4)}).status_code == 401
        ids = api.post("/v1/inbox/posts", json={"posts": posts(4)}, headers=agent).json()["created"]
        done = api.post(f"/v1/inbox/{ids[0]}/resolve", json={"action": "responded", "note": "DM sent"}, headers=agent)
        repeat = api.post(f"/v1/inbox/{ids[0]}/resolve", json={"action": "responded"}, headers=agent)
        other = api.post(f"/v1/inbox/{ids[0]}/resolve", json={"action": "dismissed"}, headers=agent)
        missing = api.post("/v1/inbox/nope/resolve", json={"action": "dismissed"}, headers=agent)
        wrong = api.post(f"/v1/inbox/{ids[1]}/resolve", json={"action": "archived"}, headers=agent)
        api.post(f"/v1/inbox/{ids[1]}/resolve", json={"action": "escalated"}, headers=agent)
        queue = [i["id"] for i in api.get("/v1/inbox", headers=agent).json()["items"]]
        metrics = api.get("/metrics").text
    assert done.status_code == 200, done.text
    item = done.json()
    assert item["status"] == "responded" and item["resolved_by"] == "maya" and item["resolution_note"] == "DM sent"
    assert repeat.status_code == 200 and repeat.json()["resolved_at"] == item["resolved_at"]
    assert other.status_code == 409 and "responded by maya" in other.json()["detail"]
    assert missing.status_code == 404
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "action"]
    assert queue == [i for i in queue if i not in ids[:2]] and len(queue) == 2
    assert "triage_inbox_first_response_seconds_count{" in metrics
    open_items = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith("triage_inbox_open_items{"))
    assert open_items == 2
    assert 'triage_inbox_ingested_posts_total{outcome="created"} 4.0' in metrics


def test_feedback_is_validated_against_the_model(model_dir: Path, database_url: str) -> None:
    with inbox_client(model_dir, database_url) as api:
        item_id = api.post("/v1/inbox/posts", json={"posts": posts(1)}).json()["created"][0]
        saved = api.post(f"/v1/inbox/{item_id}/feedback", json={"labels": {"intent": "question"}})
        unknown_task = api.post(f"/v1/inbox/{item_id}/feedback", json={"labels": {"mood": "happy"}})
        unknown_label = api.post(f"/v1/inbox/{item_id}/feedback", json={"labels": {"urgency": "asap"}})
        empty = api.post(f"/v1/inbox/{item_id}/feedback", json={"labels": {}})
        missing = api.post("/v1/inbox/nope/feedback", json={"labels": {"intent": "question"}})
    assert saved.status_code == 201 and saved.json()["actor"] == "anonymous"
    assert unknown_task.status_code == 422 and unknown_task.json()["detail"][0]["loc"] == ["body", "labels", "mood"]
    assert unknown_label.status_code == 422 and unknown_label.json()["detail"][0]["loc"] == ["body", "labels",
                                                                                            "urgency"]
    assert empty.status_code == 422 and missing.status_code == 404


def test_rescore_applies_a_new_policy(model_dir: Path, database_url: str, tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy = yaml.safe_load((Path(__file__).parents[3] / "model" / "policy.yaml").read_text())
    policy_file.write_text(yaml.safe_dump(policy))
    with inbox_client(model_dir, database_url, policy=policy_file) as api:
        ids = api.post("/v1/inbox/posts", json={"posts": posts(12)}).json()["created"]
        api.post(f"/v1/inbox/{ids[0]}/resolve", json={"action": "dismissed"})
        before = {i["id"]: i for i in api.get("/v1/inbox", params={"limit": 100}).json()["items"]}
        # The team decides everything that needs a response is P1, answered within 15 minutes.
        policy.update(version="2-strict", tiers={"P1": 1, "P2": 0.5, "P3": 0.2})
        policy["sla"]["P1"] = 15
        policy_file.write_text(yaml.safe_dump(policy))
        assert api.post("/v1/admin/reload").status_code == 200
        rescored = api.post("/v1/admin/rescore")
        after = {i["id"]: i for i in api.get("/v1/inbox", params={"limit": 100}).json()["items"]}
        resolved = api.get(f"/v1/inbox/{ids[0]}").json()
    assert rescored.status_code == 200, rescored.text
    body = rescored.json()
    assert body["rescored"] == 11 and body["policy"] == "default@2-strict"
    needing = [i for i in after.values() if i["needs_response"]]
    assert needing and all(i["tier"] == "P1" and i["sla"]["target_minutes"] == 15 for i in needing)
    assert body["changed"]["tier"] == sum(before[k]["tier"] != after[k]["tier"] for k in after)
    assert all(i["policy"] == "default@2-strict" for i in after.values())
    assert resolved["policy"] == "default@2" and resolved["status"] == "dismissed"  # closed items keep their score


def test_export_round_trips_into_training(model_dir: Path, database_url: str, tmp_path: Path) -> None:
    from tests.conftest import write_config
    from tests.posts_factory import make_posts, write_jsonl
    from training.config import load_config
    from training.fit import run_fit

    with inbox_client(model_dir, database_url) as api:
        ids = api.post("/v1/inbox/posts", json={"posts": posts(6)}).json()["created"]
        api.post(f"/v1/inbox/{ids[0]}/feedback", json={"labels": {"intent": "question", "urgency": "high"}})
        api.post(f"/v1/inbox/{ids[0]}/feedback", json={"labels": {"intent": "complaint"}})  # a later correction
        api.post(f"/v1/inbox/{ids[1]}/feedback", json={"labels": {"needs_response": "no"}})
        exported = api.get("/v1/inbox/export")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in exported.text.splitlines()]
    assert [row["id"] for row in rows] == sorted(ids[:2])
    first = next(row for row in rows if row["id"] == ids[0])
    assert first["intent"] == "complaint" and first["urgency"] == "high"
    assert "sentiment" not in first and "needs_response" not in first  # only labels people gave
    second = next(row for row in rows if row["id"] == ids[1])
    assert second["needs_response"] == "no" and "intent" not in second
    assert first["labelled_by"] == "anonymous" and first["text"]
    # The export trains as is, beside the usual training file.
    feedback_file = tmp_path / "inbox-feedback.jsonl"
    feedback_file.write_text(exported.text, encoding="utf-8")
    train = write_jsonl(tmp_path / "train.jsonl", make_posts(copies=3, start=60))
    validation = write_jsonl(tmp_path / "validation.jsonl", make_posts(copies=1, start=70))
    config = write_config(tmp_path / "config.yaml", train, validation)
    document = yaml.safe_load(config.read_text())
    document["train"].append({"path": str(feedback_file), "license": "our agents' corrections"})
    config.write_text(yaml.safe_dump(document))
    version_dir = run_fit(load_config(config), tmp_path / "models", log=lambda _: None)
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["data"]["train_rows_used"] == 36 + 2


def test_nul_characters_are_refused_on_every_database(model_dir: Path, database_url: str) -> None:
    with inbox_client(model_dir, database_url) as api:
        in_text = api.post("/v1/inbox/posts", json={"posts": [{"id": "n1", "text": "bad \x00 byte"}]})
        in_handle = api.post("/v1/inbox/posts", json={"posts": [{"id": "n2", "text": "ok",
                                                                 "author": {"handle": "@a\x00"}}]})
        item_id = api.post("/v1/inbox/posts", json={"posts": [{"id": "n3", "text": "fine"}]}).json()["created"][0]
        in_path = api.get("/v1/inbox/n%003")
        in_note = api.post(f"/v1/inbox/{item_id}/resolve", json={"action": "dismissed", "note": "x\x00"})
        in_filter = api.get("/v1/inbox", params={"intent": "a\x00"})
    assert in_text.status_code == 422 and in_text.json()["detail"][0]["loc"] == ["body", "posts", 0, "text"]
    assert in_handle.json()["detail"][0]["loc"] == ["body", "posts", 0, "author", "handle"]
    assert in_path.status_code == in_note.status_code == in_filter.status_code == 422
