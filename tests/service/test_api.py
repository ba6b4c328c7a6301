"""The HTTP API in-process: endpoints, validation errors naming the field, auth, limits, cache, metrics."""

from pathlib import Path

import pytest

from tests.service.conftest import client, posts, versions

TASKS = {"intent", "sentiment", "needs_response", "urgency"}


def test_classify(model_dir: Path) -> None:
    with client(model_dir) as api:
        response = api.post("/v1/classify", json={"posts": posts(3)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["version"] == versions(model_dir)[-1] and body["model"]["backend"] == "linear"
    assert body["policy"] == "default@2"
    assert [r["id"] for r in body["results"]] == [p["id"] for p in posts(3)]
    first = body["results"][0]
    assert set(first["predictions"]) == TASKS
    assert sum(first["predictions"]["intent"]["probabilities"].values()) == pytest.approx(1)
    assert 0 <= first["priority"] <= 100 and first["tier"] in {"P1", "P2", "P3", "P4"}
    assert all({"factor", "points", "text"} <= set(reason) for reason in first["reasons"])
    assert response.headers["x-request-id"]


def test_prioritize_ranks_and_counts_over_all_posts(model_dir: Path) -> None:
    with client(model_dir) as api:
        response = api.post("/v1/prioritize", json={"posts": posts(12), "top_k": 4})
    body = response.json()
    assert response.status_code == 200, response.text
    assert body["total"] == 12 and len(body["ranked"]) == 4
    priorities = [r["priority"] for r in body["ranked"]]
    assert priorities == sorted(priorities, reverse=True)
    assert sum(body["counts"]["tier"].values()) == sum(body["counts"]["route"].values()) == 12


def test_model_info_health_and_readiness(model_dir: Path) -> None:
    with client(model_dir) as api:
        info = api.get("/v1/model").json()
        assert api.get("/healthz").json() == {"status": "ok"}
        ready = api.get("/readyz")
    assert info["manifest"]["name"] == "tiny" and "files" not in info["manifest"]
    assert info["manifest"]["metrics"]["validation"]["intent"]["macro_f1"] >= 0
    assert info["policy"]["name"] == "default" and info["policy"]["tiers"] == {"P1": 70, "P2": 50, "P3": 30}
    assert ready.status_code == 200 and ready.json()["model"]["version"] == versions(model_dir)[-1]


def test_unicode_emoji_and_repeated_texts_use_the_cache(model_dir: Path) -> None:
    texts = ["Ünïcödé 👍🏽 «quotes» 日本語のテキスト", "same text twice", "same text twice"]
    body = {"posts": [{"id": str(i), "text": t} for i, t in enumerate(texts)]}
    with client(model_dir) as api:
        first = api.post("/v1/classify", json=body).json()["results"]
        second = api.post("/v1/classify", json=body).json()["results"]
        metrics = api.get("/metrics").text
    assert first[1]["predictions"] == first[2]["predictions"] == second[2]["predictions"]
    assert "triage_cache_hits_total 4.0" in metrics  # request 1: the repeated text; request 2: all three
    assert "triage_cache_misses_total 2.0" in metrics


def test_metrics_expose_requests_batches_queue_model_and_labels(model_dir: Path) -> None:
    with client(model_dir) as api:
        api.post("/v1/classify", json={"posts": posts(5)})
        text = api.get("/metrics").text
    for needle in ('triage_requests_total{endpoint="/v1/classify",method="POST",status="200"} 1.0',
                   "triage_request_seconds_bucket", "triage_batch_posts_count 1.0", "triage_queue_posts",
                   "triage_cache_hit_ratio", 'triage_model_info{backend="linear"', "triage_predicted_labels_total"):
        assert needle in text, needle


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ({"posts": []}, ["body", "posts"], "too_short"),
        ({"posts": [{"id": "1"}]}, ["body", "posts", 0, "text"], "missing"),
        ({"posts": [{"id": "1", "text": 42}]}, ["body", "posts", 0, "text"], "string_type"),
        ({"posts": [{"id": "1", "text": "   "}]}, ["body", "posts", 0, "text"], "value_error"),
        ({"posts": [{"id": "1", "text": "hi", "author": {"followers": -5}}]},
         ["body", "posts", 0, "author", "followers"], "greater_than_equal"),
        ({"posts": [{"id": "1", "text": "hi", "colour": "red"}]}, ["body", "posts", 0, "colour"], "extra_forbidden"),
        ({"posts": [{"id": "1", "text": "hi", "created_at": "yesterday"}]},
         ["body", "posts", 0, "created_at"], "datetime_from_date_parsing"),
        ({"posts": [{"id": "a", "text": "one"}, {"id": "a", "text": "two"}]}, ["body", "posts", 1, "id"],
         "duplicate_id"),
        ({"posts": [{"id": "1", "text": "x" * 301}]}, ["body", "posts", 0, "text"], "string_too_long"),
        ({"posts": [{"id": str(i), "text": "hi"} for i in range(11)]}, ["body", "posts"], "too_long"),
        ({"posts": [{"id": "1", "text": "hi"}], "top_k": 0}, ["body", "top_k"], "greater_than_equal"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(model_dir: Path, body: dict, loc: list, kind: str) -> None:
    with client(model_dir, max_posts=10, max_text_chars=300) as api:
        response = api.post("/v1/prioritize", json=body)
    assert response.status_code == 422, response.text
    assert any(error["loc"] == loc and error["type"] == kind for error in response.json()["detail"]), response.text


def test_malformed_json_and_wrong_content(model_dir: Path) -> None:
    with client(model_dir) as api:
        broken = api.post("/v1/classify", content=b'{"posts": [', headers={"content-type": "application/json"})
        not_an_object = api.post("/v1/classify", json=["a", "list"])
    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"
    assert not_an_object.status_code == 422


def test_body_size_limit(model_dir: Path) -> None:
    with client(model_dir, max_body_bytes=2048) as api:
        response = api.post("/v1/classify", json={"posts": [{"id": "1", "text": "y" * 3000}]})
    assert response.status_code == 413 and response.json()["detail"][0]["type"] == "body_too_large"


def test_full_queue_answers_503_with_retry_after(model_dir: Path) -> None:
    with client(model_dir, queue_max_posts=2) as api:
        response = api.post("/v1/classify", json={"posts": posts(3)})
        assert api.post("/v1/classify", json={"posts": posts(2)}).status_code == 200
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


def test_api_keys(model_dir: Path) -> None:
    with client(model_dir, api_keys="crm:client-secret", admin_keys="ops:admin-secret", metrics_public=False) as api:
        body = {"posts": posts(1)}
        assert api.post("/v1/classify", json=body).status_code == 401
        assert api.post("/v1/classify", json=body, headers={"X-API-Key": "nope"}).status_code == 401
        assert api.post("/v1/classify", json=body, headers={"X-API-Key": "client-secret"}).status_code == 200
        assert api.post("/v1/classify", json=body, headers={"X-API-Key": "admin-secret"}).status_code == 200
        assert api.post("/v1/admin/reload", headers={"X-API-Key": "client-secret"}).status_code == 403
        assert api.post("/v1/admin/reload", headers={"X-API-Key": "admin-secret"}).status_code == 200
        assert api.get("/metrics").status_code == 401
        assert api.get("/metrics", headers={"X-API-Key": "client-secret"}).status_code == 200
        for public in ("/healthz", "/readyz", "/docs", "/openapi.json"):
            assert api.get(public).status_code == 200, public


def test_openapi_documents_every_endpoint_with_examples(model_dir: Path) -> None:
    with client(model_dir) as api:
        schema = api.get("/openapi.json").json()
    assert {"/v1/classify", "/v1/prioritize", "/v1/model", "/v1/admin/reload", "/healthz", "/readyz",
            "/metrics"} <= set(schema["paths"])
    assert schema["components"]["schemas"]["ClassifyRequest"]["examples"][0]["posts"][0]["text"]
    assert "APIKeyHeader" in schema["components"]["securitySchemes"]
