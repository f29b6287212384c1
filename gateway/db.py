"""Engine, sessions and the declarative base; `flask db upgrade/downgrade` beside them."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask, current_app, g
from flask.cli import AppGroup
from sqlalchemy import MetaData, Table, TextClause, bindparam, create_engine, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from gateway.private import private_file
from gateway.settings import ROOT

# Named constraints, so Alembic migrations drop and alter them the same way on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
CONNECT_TIMEOUT = 3  # seconds to reach PostgreSQL, unless the URL says connect_timeout=


@functools.cache
def insert_or_skip(table: Table, keys: tuple[str, ...], conflict: tuple[str, ...], dialect_name: str) -> TextClause:
    """INSERT (keys) ... ON CONFLICT (conflict) DO NOTHING RETURNING id, as text SQLAlchemy caches.

    SQLAlchemy 2.0 never caches a dialect's ON CONFLICT insert (its Insert sets inherit_cache =
    False), so each execution compiled it again: about 1 ms of CPU a text on the inbound path.
    Compiled here once, with each value bound by its column's type (SQLite's dates need it).
    """
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    statement = (dialect.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
                 .returning(table.c.id))
    sql = str(statement.compile(dialect=dialect.dialect(paramstyle="named"), column_keys=list(keys)))
    return text(sql).bindparams(*(bindparam(key, type_=table.c[key].type) for key in keys))


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def make_engine(url: str, *, statement_timeout_ms: int = 0, lock_timeout_ms: int = 0, **kwargs: Any) -> Engine:
    """An engine; on SQLite, WAL and write-locking transactions so per-contact order holds.

    On PostgreSQL, every connection gets the given statement and lock timeouts (0: none), so a
    hung or locked database fails a request in seconds, and the spool keeps its text.
    """
    # Errors and echo name no bound values: they are phone numbers, report texts and answers, and
    # an exception message ends up in logs and in RQ's failed-job registry.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""  # "sqlite://": in memory
        if path and path != ":memory:" and not path.startswith("file:"):
            # Owner-only from the start: the -wal and -shm files SQLite adds take the same mode.
            private_file(Path(path))
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN itself
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # Deleted and blanked values (redacted report words, plain numbers dropped by migration
            # 0004) are overwritten with zeros instead of lingering in free pages of the file.
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # SQLite has no SELECT ... FOR UPDATE: taking the write lock at BEGIN serialises
            # transactions, which is what the row lock gives us on PostgreSQL.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql") and "connect_timeout" not in make_url(url).query:
        # A webhook that finds the database away must still answer before Twilio gives up
        # (15 s): fail a connection attempt quickly and keep the message in the spool instead.
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", CONNECT_TIMEOUT)
    if url.startswith("postgresql"):
        # Set when the connection starts (libpq options), so no statement ever runs without them.
        options = [f"-c {name}={ms}" for name, ms in (("statement_timeout", statement_timeout_ms),
                                                      ("lock_timeout", lock_timeout_ms)) if ms]
        if options:
            args = kwargs.setdefault("connect_args", {})
            # connect_args replaces the URL's own ?options=... (a search_path, say): keep both.
            given = args.get("options") or make_url(url).query.get("options")
            given = " ".join(given) if isinstance(given, tuple) else given
            args["options"] = " ".join(filter(None, [given, *options]))
    return create_engine(url, pool_pre_ping=True, **kwargs)


def make_session_factory(engine: Engine, numbers: Any = None, redis: Any = None) -> sessionmaker[Session]:
    """Sessions that keep loaded values readable after commit; `numbers` (a NumberVault) rides in
    session.info so gateway/people/contacts.py can seal and open phone numbers without a global, and
    `redis` so the inbound path counts texts (flood guard) without scanning message rows."""
    return sessionmaker(engine, expire_on_commit=False, info={"numbers": numbers, "redis": redis})


def get_session() -> Session:
    """The database session of this request (or app context), opened on first use, closed at teardown."""
    if "db" not in g:
        g.db = current_app.extensions["gateway"].sessions()
    return g.db  # type: ignore[no-any-return]


def close_session(_exc: BaseException | None = None) -> None:
    """Close this request's session, if one was opened."""
    session = g.pop("db", None)
    if session is not None:
        session.close()


db_cli = AppGroup("db", help="Database schema (Alembic migrations).")


def alembic_config(url: str, numbers_key: str | None = None) -> AlembicConfig:
    """Alembic settings pointing at migrations/ and the given database (and the number keys)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["url"] = url
    cfg.attributes["numbers_key"] = numbers_key  # migration 0004 seals plain numbers with it
    return cfg


def _app_alembic() -> AlembicConfig:
    """Alembic on this app's database, with its number keys.

    The keys come from app.config["NUMBERS_KEY"]: the factory resolves them there, the key
    generated into instance/ included, which Settings.numbers_keys leaves out when unset.
    """
    settings = current_app.extensions["gateway"].settings
    return alembic_config(settings.database_url, current_app.config["NUMBERS_KEY"])


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    command.upgrade(_app_alembic(), revision)
    click.echo(f"database at {revision}")


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION ('base' for an empty database)."""
    command.downgrade(_app_alembic(), revision)


def init_app(app: Flask) -> None:
    """Close the per-request session at teardown, and register `flask db`.

    The factory, the console and the API all call this; registering again changes nothing.
    """
    # Both: a request inside an app context a test (or a CLI command) holds open reuses that
    # context, so only the request teardown ends the request's session in time.
    if close_session not in app.teardown_request_funcs.get(None, []):
        app.teardown_request(close_session)
        app.teardown_appcontext(close_session)
    app.cli.add_command(db_cli)
