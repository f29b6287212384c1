"""The Alembic history builds exactly the models' schema, on SQLite and PostgreSQL; 0004 loses no number."""
from __future__ import annotations

import os
from datetime import datetime
from typing import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.db import Base, alembic_config
from tests.conftest import _SCHEMA, NUMBERS_KEY


def test_migrations_match_the_models(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


@pytest.fixture
def empty_url(migrated: tuple[str, str], tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """An empty database beside the test one: a new SQLite file, or a new PostgreSQL schema."""
    kind, where = migrated
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    schema = f"gw_mig_{os.getpid()}"
    url = where.replace(_SCHEMA, schema)
    admin = sa.create_engine(where)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))
    yield url
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


PLAIN = [f"+26599{i:07d}" for i in range(2500)] + ["+50499123456", "40404"]  # > 2 batches of 1000


def test_0004_encrypts_plain_numbers_without_loss_and_back(empty_url: str) -> None:
    from gateway.people.contacts import find, number_of
    from gateway.db import make_engine, make_session_factory
    from gateway.models import Contact
    from gateway.core.vault import NumberVault

    cfg = alembic_config(empty_url, NUMBERS_KEY)
    command.upgrade(cfg, "0003")
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO contacts (number, status, created_at) VALUES (:n, 'active', :t)"),
                         [{"n": n, "t": datetime(2026, 1, 1)} for n in PLAIN])
            first = conn.scalar(sa.text("SELECT id FROM contacts WHERE number = :n"), {"n": PLAIN[0]})
            # Rows that reference a contact: rebuilding the table on SQLite must not cascade to them.
            conn.execute(sa.text("INSERT INTO contact_tags (contact_id, tag) VALUES (:c, 'health')"), {"c": first})
            conn.execute(sa.text("INSERT INTO conversations (contact_id, flow, step, language, answers, retries, "
                                 "started_at, expires_at, redacted) VALUES (:c, 'join', 1, 'en', '{}', 0, :t, :t, "
                                 "false)"), {"c": first, "t": datetime(2026, 1, 1)})
            ids = dict(conn.execute(sa.text("SELECT number, id FROM contacts")).all())

        command.upgrade(cfg, "0004")
        command.upgrade(cfg, "head")  # read through today's model, whose columns later revisions add
        sessions = make_session_factory(engine, NumberVault.from_keys([NUMBERS_KEY]))
        with sessions() as s:
            stored = {c.id: number_of(c) for c in s.scalars(sa.select(Contact))}
            assert stored == {i: n for n, i in ids.items()}  # every contact decrypts to its old number
            for n in (PLAIN[0], PLAIN[-3], "+50499123456", "40404"):
                found = find(s, n)
                assert found is not None and found.id == ids[n]
        with engine.connect() as conn:
            raw = " ".join(str(v) for row in conn.execute(sa.text("SELECT * FROM contacts")) for v in row)
            assert conn.scalar(sa.text("SELECT count(*) FROM contact_tags")) == 1
            assert conn.scalar(sa.text("SELECT count(*) FROM conversations")) == 1
        assert not [n for n in PLAIN if len(n) > 6 and n.lstrip("+") in raw]  # (a 5-digit short code could
        # turn up by chance in 2,500 hex digests)

        command.downgrade(cfg, "0003")
        with engine.connect() as conn:
            assert dict(conn.execute(sa.text("SELECT number, id FROM contacts")).all()) == ids
            assert conn.scalar(sa.text("SELECT count(*) FROM conversations")) == 1
    finally:
        engine.dispose()


def test_0004_without_a_key_refuses_and_keeps_the_numbers(empty_url: str) -> None:
    command.upgrade(alembic_config(empty_url), "0003")
    engine = sa.create_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO contacts (number, status, created_at) VALUES ('+265991234567', "
                                 "'active', :t)"), {"t": datetime(2026, 1, 1)})
        with pytest.raises(RuntimeError, match="set NUMBERS_KEY"):
            command.upgrade(alembic_config(empty_url), "0004")
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT number FROM contacts")) == "+265991234567"
            assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == "0003"
    finally:
        engine.dispose()


def test_0004_keeps_its_own_copy_of_the_key_derivation_and_it_agrees_with_the_vault() -> None:
    """Migration 0004 must not change when the app does: its frozen derivation reads and writes as the vault does."""
    import importlib.util
    import re
    from pathlib import Path

    from gateway.core.vault import NumberVault

    path = next((Path(__file__).parent.parent / "migrations" / "versions").glob("0004_*.py"))
    spec = importlib.util.spec_from_file_location("migration_0004", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert not re.search(r"^\s*(from|import) gateway\b", path.read_text(), re.M)  # no live application code
    keys = [NUMBERS_KEY, "an-older-key-" + "x" * 32]
    frozen, vault = migration._Vault(keys), NumberVault.from_keys(keys)
    for number in ("+265991234567", "+50499123456"):
        assert frozen.digest(number) == vault.digest(number)
        assert vault.open(frozen.seal(number)) == number and frozen.open(vault.seal(number)) == number
