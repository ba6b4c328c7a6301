"""Alembic environment for the inbox. The app runs `upgrade head` at start (service/inbox/db.py); to write a new
migration after changing tables.py:

    DATABASE_URL=sqlite:///var/inbox.sqlite3 alembic -c service/inbox/alembic.ini revision --autogenerate -m "..."
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import engine_from_config, pool

from service.inbox.tables import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    from service.inbox.db import normalise_url

    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL", "sqlite:///var/inbox.sqlite3")
    engine = engine_from_config({"sqlalchemy.url": normalise_url(url)}, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run against a database")
run_migrations_online()
