"""Inbox fixtures: every test runs against SQLite AND PostgreSQL (a fresh database per test run, dropped after)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from service.app import create_app
from tests.service.conftest import settings

ADMIN_URL = os.environ.get("TRIAGE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TABLES = ("inbox_feedback", "inbox_items")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test run's own on the local PostgreSQL; `make test` starts the server when it is down."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"triage_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as err:  # any connection problem means "no PostgreSQL here"
        admin.dispose()
        message = f"PostgreSQL not reachable at {ADMIN_URL} ({type(err).__name__}); `make test` starts it"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message)
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty inbox database of each kind (PostgreSQL's tables are emptied between tests)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/inbox.sqlite3"
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as connection:
        existing = set(connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
                       .scalars())
        if set(TABLES) <= existing:
            connection.execute(text(f"TRUNCATE {', '.join(TABLES)}"))
    engine.dispose()
    return url


@contextmanager
def inbox_client(model_dir: Path, database_url: str, **overrides) -> Iterator[TestClient]:
    app = create_app(settings(model_dir, database_url=database_url, **overrides))
    with TestClient(app) as api:
        yield api


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()
