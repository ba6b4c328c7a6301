"""A real `triage-serve` process on a free local port: serving, logs, graceful shutdown, and schema fuzzing."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from service.app import create_app
from service.settings import Settings
from tests.service.conftest import ROOT, posts, running_server, versions


def test_serves_over_http_logs_json_and_stops_gracefully(model_dir: Path) -> None:
    env = {"TRIAGE_MODEL": str(model_dir), "TRIAGE_API_KEYS": "crm:secret"}
    with running_server(env) as server:
        refused = httpx.post(f"{server.url}/v1/classify", json={"posts": posts(2)})
        response = httpx.post(f"{server.url}/v1/classify", json={"posts": posts(2)},
                              headers={"X-API-Key": "secret", "X-Request-ID": "trace-42"})
        status, output = server.stop()
    assert refused.status_code == 401
    assert response.status_code == 200 and response.json()["model"]["version"] == versions(model_dir)[-1]
    assert response.headers["x-request-id"] == "trace-42"
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught: the status reports the signal
    assert status in (0, -15) and "Waiting for application shutdown" in output
    assert "Application shutdown complete" in output
    access = [json.loads(line) for line in output.splitlines() if line.startswith('{"request_id"')]
    line = next(entry for entry in access if entry["request_id"] == "trace-42")
    assert line["path"] == "/v1/classify" and line["status"] == 200 and line["key"] == "crm"
    assert "OPEN MODE" not in output


def test_open_mode_says_so_and_binds_localhost(model_dir: Path) -> None:
    with running_server({"TRIAGE_MODEL": str(model_dir)}) as server:
        assert server.url.startswith("http://127.0.0.1:")
        _, output = server.stop()
    assert "OPEN MODE" in output and "127.0.0.1" in output


def test_the_cli_refuses_a_missing_model(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "service.cli", "--model", str(tmp_path / "absent")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no such model directory" in done.stderr


schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@pytest.fixture(scope="module")
def fuzz_server(model_dir: Path, postgres_url: str):
    # PostgreSQL, the stricter of the inbox's databases (it refuses NUL characters in text, for one).
    env = {"TRIAGE_MODEL": str(model_dir), "TRIAGE_MAX_POSTS": "20", "TRIAGE_DATABASE_URL": postgres_url}
    with running_server(env) as server:
        yield server.url


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_causes_a_server_error(case, fuzz_server: str) -> None:
    response = case.call(base_url=fuzz_server, timeout=30)
    assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}"
