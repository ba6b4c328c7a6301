"""Service fixtures: a tiny linear model with two versions, apps in-process, and real uvicorn processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from service.app import create_app
from service.settings import Settings
from tests.conftest import write_config
from tests.posts_factory import make_posts, write_jsonl
from training.config import load_config
from training.fit import run_fit

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_ADMIN_URL = os.environ.get("TRIAGE_TEST_POSTGRES",
                                    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/tiny: two linear versions (the second trained with another seed); `latest` names the second."""
    root = tmp_path_factory.mktemp("service-model")
    train = write_jsonl(root / "train.jsonl", make_posts(copies=5))
    validation = write_jsonl(root / "validation.jsonl", make_posts(copies=2, start=5))
    config_path = write_config(root / "config.yaml", train, validation)
    for seed in (1, 2):
        run_fit(load_config(config_path, {"seed": seed}), root / "models", log=lambda _: None)
        time.sleep(1.1)  # versions are UTC timestamps to the second
    return root / "models" / "tiny"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test run's own on the local PostgreSQL; `make test` starts the server when it is down."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"triage_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as err:  # any connection problem means "no PostgreSQL here"
        admin.dispose()
        message = f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL} ({type(err).__name__}); `make test` starts it"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message)
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def versions(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir() if (p / "manifest.json").is_file())


def settings(model_dir: Path, **overrides) -> Settings:
    return Settings(**{"model": model_dir, "watch_seconds": 0, **overrides})


@contextmanager
def client(model_dir: Path, **overrides) -> Iterator[TestClient]:
    with TestClient(create_app(settings(model_dir, **overrides))) as test_client:
        yield test_client


def posts(count: int = 3, start: int = 0) -> list[dict]:
    rows = make_posts(copies=1 + count // 12, start=20 + start)[:count]
    return [{"id": row["id"], "text": row["text"], "author": {"followers": row["author_followers"]}} for row in rows]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> tuple[int, str]:
        """SIGTERM (what an orchestrator sends), then the exit status and everything the server printed."""
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=30)
        return self.process.returncode, self.log.read_text()


@contextmanager
def running_server(env: dict[str, str], args: list[str] | None = None) -> Iterator[Server]:
    """`triage-serve` in its own process on a free port, once /readyz answers 200."""
    port = free_port()
    # Output goes to a file, not a pipe: nobody reads a pipe while the server runs, and a full one blocks it.
    log = Path(tempfile.mkdtemp(prefix="triage-serve-")) / "server.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "--port", str(port), *(args or [])],
            cwd=ROOT, env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become ready in 60 s")
            time.sleep(0.2)
        yield Server(url, process, log)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
