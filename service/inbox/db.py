"""Connecting to the inbox database and bringing its schema up to date with Alembic.

SQLite (the default, a file) runs in WAL mode with `synchronous=FULL`, so a committed transaction survives a killed
process and a power cut, and every transaction starts with BEGIN IMMEDIATE, so that concurrent writers wait for each
other (busy timeout) instead of failing with "database is locked". PostgreSQL URLs use the psycopg 3 driver.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30
_PG_MIGRATION_LOCK = 7_326_001  # any constant shared by every process migrating this database


class DatabaseError(ValueError):
    """A database URL that cannot be used."""


def normalise_url(raw: str) -> URL:
    """Accept the usual DATABASE_URL spellings: postgres://, postgresql:// (both mean psycopg 3), sqlite:///FILE."""
    try:
        url = make_url(raw)
    except Exception as err:
        raise DatabaseError(f"database_url {raw!r} is not a database URL: {err}") from err
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseError(f"database_url: {url.get_backend_name()!r} is not supported; use sqlite or postgresql")
    return url


def make_engine(raw_url: str) -> Engine:
    url = normalise_url(raw_url)
    if url.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Any]:
    """One process at a time migrates (several workers start together): an advisory lock, or a lock file."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            connection.commit()
            try:
                yield connection
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK})
                connection.commit()
        return
    database = engine.url.database
    lock_path = Path(f"{database}.migrate-lock") if database and database != ":memory:" else None
    if lock_path is None:
        yield None
        return
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield None
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def upgrade(engine: Engine) -> None:
    """Apply every migration the database lacks (a no-op when it is up to date)."""
    config = alembic_config(engine)
    with _migration_lock(engine) as connection:
        if connection is not None:
            config.attributes["connection"] = connection
        command.upgrade(config, "head")
        if connection is not None:
            connection.commit()
