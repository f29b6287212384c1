"""Alembic environment: the URL comes from the app (or DATABASE_URL), the schema from the models."""
from __future__ import annotations

import os

from alembic import context

from gateway.db import Base, make_engine
from gateway import models  # noqa: F401  (registers the tables)

config = context.config
url = config.attributes.get("url") or os.environ.get("DATABASE_URL") or "sqlite:///instance/gateway.db"


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, render_as_batch=True,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Batch mode rebuilds a table by dropping it; with foreign keys on, SQLite would
            # cascade that drop to the rows that reference it (a contact's conversations and
            # tags). The pragma only works outside a transaction, so it goes to the driver first.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        # render_as_batch: SQLite alters tables by copying them; PostgreSQL ignores it.
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
