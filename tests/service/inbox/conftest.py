"""Inbox fixtures: every test runs against SQLite AND PostgreSQL (a fresh database per test run, dropped after)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from service.app import create_app
from tests.service.conftest import settings

TABLES = ("inbox_feedback", "inbox_items")


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
