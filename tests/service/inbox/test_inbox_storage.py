"""Migrations and SLA arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import inspect

from model.policy_rules import ResponseTargets
from service.inbox.db import DatabaseError, alembic_config, make_engine, normalise_url, upgrade
from service.inbox.sla import clock_for, seconds_left, state_at
from service.inbox.store import Cursor, CursorError

START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_migrations_upgrade_downgrade_and_repeat(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        upgrade(engine)  # a second start changes nothing
        assert {"inbox_items", "inbox_feedback", "alembic_version"} <= set(inspect(engine).get_table_names())
        command.downgrade(alembic_config(engine), "base")
        assert "inbox_items" not in inspect(engine).get_table_names()
        upgrade(engine)
        assert "inbox_items" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_database_urls() -> None:
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///var/x.sqlite3").drivername == "sqlite"
    with pytest.raises(DatabaseError, match="mysql"):
        normalise_url("mysql://u@h/db")
    with pytest.raises(DatabaseError, match="not a database URL"):
        normalise_url("::nonsense::")


def test_sla_clock_states_and_time_left() -> None:
    targets = ResponseTargets(P1=60, P2=240, P3=None, at_risk_fraction=0.25)
    clock = clock_for(START, "P1", targets)
    assert clock.minutes == 60
    assert clock.due_at == START + timedelta(minutes=60)
    assert clock.at_risk_at == START + timedelta(minutes=45)
    assert state_at(START + timedelta(minutes=44, seconds=59), clock.at_risk_at, clock.due_at) == "on_track"
    assert state_at(START + timedelta(minutes=45), clock.at_risk_at, clock.due_at) == "at_risk"
    assert state_at(START + timedelta(minutes=60), clock.at_risk_at, clock.due_at) == "overdue"
    assert seconds_left(START + timedelta(minutes=90), clock.due_at) == -1800.0
    assert seconds_left(START + timedelta(minutes=10), clock.due_at) == 3000.0
    none = clock_for(START, "P3", targets)
    assert none.due_at is None and state_at(START, none.at_risk_at, none.due_at) == "none"
    assert seconds_left(START, None) is None


def test_cursor_round_trip_and_garbage() -> None:
    cursor = Cursor(START, 1, 73.4, START - timedelta(hours=2), "post-9")
    assert Cursor.decode(cursor.encode()) == cursor
    for garbage in ("", "abc", "W10", Cursor(START, 0, 1.0, START, "x").encode()[:-3]):
        with pytest.raises(CursorError):
            Cursor.decode(garbage)
