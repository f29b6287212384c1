"""Fixtures: an app per test on SQLite, and again on PostgreSQL when DATABASE_URL names one."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from alembic import command
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select
from werkzeug.test import TestResponse

from gateway import create_app
from gateway.db import alembic_config
from gateway.models import User
from gateway.people import accounts
from gateway.settings import database_url
from tests.fakes import FakeTwilio
from tests.helpers import (
    NUMBERS_KEY,
    PUBLIC_BASE,
    SECRET_KEY,
    TWILIO_TOKEN,
    csrf_from,
    svc,
)

# CI sets this: a test that needs PostgreSQL or Redis must fail, never skip, if it cannot reach them.
REQUIRE = os.environ.get("GATEWAY_REQUIRE_SERVICES") == "1"
pytest_plugins = ["tests.browser"]  # chromium, live and page fixtures
_env_db = os.environ.get("DATABASE_URL", "")
# Each test run gets its own PostgreSQL schema and Redis database, so two runs on one machine
# (a developer's and a helper's) never truncate or flush each other's data.
_SCHEMA = f"gw_test_{os.getpid()}"
POSTGRES_URL = None
if _env_db.startswith("postgres"):
    _sep = "&" if "?" in _env_db else "?"
    POSTGRES_URL = database_url(_env_db) + f"{_sep}options=-csearch_path%3D{_SCHEMA}"
_env_redis = os.environ.get("REDIS_URL") or None
REDIS_URL = None
if _env_redis:
    _base, _, _db = _env_redis.rpartition("/")
    REDIS_URL = f"{_base}/{os.getpid() % 16}" if _db.isdigit() else _env_redis
PASSWORD = "correct horse battery"


def _other_half(item: pytest.Item) -> bool:
    """A parametrized half that does not apply: a skip would read as a missing server, so it is deselected."""
    if item.get_closest_marker("servers") or item.get_closest_marker("postgres_only"):
        return "[sqlite" in item.nodeid
    if item.get_closest_marker("sqlite_only"):
        return "[postgres" in item.nodeid
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `servers` or `postgres_only` have no SQLite half; `sqlite_only` ones no PostgreSQL half."""
    dropped = [i for i in items if _other_half(i)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]


def unavailable(what: str, why: str) -> None:
    """Fail under CI, skip on a developer's laptop without the server."""
    (pytest.fail if REQUIRE else pytest.skip)(f"{what}: {why}")


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def migrated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A database migrated once per session: a template file on SQLite, the schema on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("template") / "gateway.db"
        command.upgrade(alembic_config(f"sqlite:///{path}"), "head")
        return "sqlite", str(path)
    if POSTGRES_URL is None:
        unavailable("PostgreSQL", "DATABASE_URL does not name a PostgreSQL database")
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {_SCHEMA} CASCADE; CREATE SCHEMA {_SCHEMA}"))
    except sa.exc.OperationalError as exc:
        unavailable("PostgreSQL", f"cannot reach {POSTGRES_URL}: {exc}")
    finally:
        engine.dispose()
    command.upgrade(alembic_config(POSTGRES_URL), "head")
    request.addfinalizer(lambda: _drop_schema(POSTGRES_URL))
    return "postgres", POSTGRES_URL


def _drop_schema(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {_SCHEMA} CASCADE"))
    engine.dispose()


@pytest.fixture
def db_url(migrated: tuple[str, str], tmp_path: Path) -> str:
    """A clean database for one test."""
    kind, where = migrated
    if kind == "sqlite":
        shutil.copy(where, tmp_path / "gateway.db")
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    engine = sa.create_engine(where)
    with engine.begin() as conn:
        tables = [t for t in sa.inspect(conn).get_table_names() if t != "alembic_version"]
        conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return where


def make_app(db_url: str, tmp_path: Path, **overrides: Any) -> Flask:
    """The gateway on this database with the test settings: console provider, Twilio signatures checked.

    Texts are handled inline: a test about store-and-acknowledge sets `inbound.pressure.forced`
    itself. Measured, one text slowed by a loaded CI machine (the time sign) would store the next
    for a worker and its reply would leave by the queue, not ride on the webhook's answer.
    """
    app = create_app({
        "DATABASE_URL": db_url, "REDIS_URL": None, "SECRET_KEY": SECRET_KEY, "SMS_PROVIDER": "console",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": "+15005550006", "TWILIO_API_BASE_URL": None,
        "PUBLIC_BASE_URL": PUBLIC_BASE, "ORG_NAME": "Our Network", "DEFAULT_COUNTRY": "MW",
        "INSTANCE_PATH": str(tmp_path), "TESTING": True, "NUMBERS_KEY": NUMBERS_KEY, **overrides,
    })
    svc(app).inbound.pressure.forced = False
    return app


def make_stack_app(db_url: str, redis_url: str | None, tmp_path: Path, **overrides: Any) -> Flask:
    """make_app on one of the two stacks (SQLite + in-process queue, or PostgreSQL + Redis), sending at once."""
    at_once = {"QUIET_HOURS": "off", "SENDER_RATE": 1000.0, "SENDER_RATES": ""}
    return make_app(db_url, tmp_path, REDIS_URL=redis_url, **{**at_once, **overrides})


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The gateway on a clean database, console provider, Twilio signatures checked."""
    app = make_app(db_url, tmp_path)
    yield app
    svc(app).engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for the app."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """A runner for the app's command-line commands."""
    return app.test_cli_runner()


class Auth:
    """Logs a test client in as an account of a given role (created on first use)."""

    def __init__(self, app: Flask, client: FlaskClient) -> None:
        self.app, self.client = app, client

    def user(self, role: str) -> str:
        """The email of the account with this role, created if new."""
        email = f"{role}@example.org"
        with svc(self.app).sessions() as s, s.begin():
            if s.scalar(select(User.id).where(User.email == email)) is None:
                accounts.create_user(s, email, role, PASSWORD)
        return email

    def login(self, role: str = "organizer") -> TestResponse:
        """Log in through the login form, as a person would."""
        email = self.user(role)
        token = csrf_from(self.client.get("/login").get_data(as_text=True))
        return self.client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})

    def csrf(self, path: str = "/") -> str:
        """A CSRF token from a page the logged-in user can see."""
        return csrf_from(self.client.get(path).get_data(as_text=True))


@pytest.fixture
def auth(app: Flask, client: FlaskClient) -> Auth:
    """Log the test client in: auth.login('viewer' | 'organizer' | 'admin')."""
    return Auth(app, client)


@pytest.fixture
def redis_url(migrated: tuple[str, str]) -> str | None:
    """None (embedded fakeredis) alongside SQLite; the real Redis alongside PostgreSQL."""
    if migrated[0] == "sqlite":
        return None
    if REDIS_URL is None:
        unavailable("Redis", "REDIS_URL is not set")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError as exc:
        unavailable("Redis", f"cannot reach {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """A fake Twilio REST API on loopback, reached by the real twilio SDK."""
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def stack_app(db_url: str, redis_url: str | None, tmp_path: Path) -> Iterator[Flask]:
    """The app with the console provider on both stacks (embedded, and PostgreSQL + Redis)."""
    app = make_stack_app(db_url, redis_url, tmp_path)
    yield app
    svc(app).engine.dispose()


@pytest.fixture
def twilio_app(db_url: str, redis_url: str | None, tmp_path: Path, fake_twilio: FakeTwilio) -> Iterator[Flask]:
    """The app sending through the real twilio SDK to the fake Twilio API, on both stacks."""
    app = make_stack_app(db_url, redis_url, tmp_path, SMS_PROVIDER="twilio",
                         TWILIO_ACCOUNT_SID=fake_twilio.account_sid, TWILIO_AUTH_TOKEN=fake_twilio.auth_token,
                         TWILIO_API_BASE_URL=fake_twilio.base_url)
    yield app
    svc(app).engine.dispose()
