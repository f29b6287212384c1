"""`flask backup --out FILE` and `flask restore FILE`: the embedded default's SQLite database, copied safely.

The copy uses SQLite's online backup API (sqlite3.Connection.backup): it reads a consistent
snapshot while the server keeps writing, WAL included, which copying the file would not. The
database alone is not enough: its phone numbers are encrypted with the numbers key, so the
commands say which keys to keep beside it. On PostgreSQL, pg_dump and pg_restore do this job.
"""
from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import click
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import make_url, select

from gateway import embedded, services
from gateway.core.vault import NumberVault
from gateway.db import alembic_config
from gateway.private import FILE_MODE

BUSY_SECONDS = 1.0  # how long restore waits for another process's write before refusing
NEEDED_TABLES = {"alembic_version", "contacts", "messages", "broadcasts"}


class NotAGatewayDatabase(click.ClickException):
    """The file to restore is not a gateway database this version knows."""


def sqlite_path() -> Path | None:
    """The SQLite database file of this install, or None on PostgreSQL."""
    url = make_url(services().settings.database_url)
    if not url.drivername.startswith("sqlite") or not url.database:
        return None
    return Path(url.database)


def keep_also() -> str:
    """What to keep beside a copy of the database, for it to be of any use."""
    settings = services().settings
    numbers = ("NUMBERS_KEY (from your environment)" if settings.numbers_keys
               else str(settings.instance_path / "numbers_key"))
    secret = "SECRET_KEY (from your environment)" if settings.secret_key else str(settings.instance_path / "secret_key")
    return (f"Keep also, apart from the copy and as safely: {numbers}, without which the phone numbers in it cannot "
            f"be read, and {secret} (accounts stay logged in). The flows/ folder and instance/sms_routes.yaml, if "
            "you changed them, belong to the same backup.")


def revision_of(path: Path) -> str:
    """The migration a SQLite file is at, after checking it is whole and is a gateway database."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise NotAGatewayDatabase(f"{path}: cannot be opened as SQLite ({exc})") from None
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not NEEDED_TABLES <= tables:
            missing = ", ".join(sorted(NEEDED_TABLES - tables))
            raise NotAGatewayDatabase(f"{path}: not a gateway database (no {missing} table)")
        check = con.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise NotAGatewayDatabase(f"{path}: damaged ({check})")
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise NotAGatewayDatabase(f"{path}: not a SQLite database ({exc})") from None
    finally:
        con.close()
    if row is None:
        raise NotAGatewayDatabase(f"{path}: records no migration")
    script = ScriptDirectory.from_config(alembic_config(services().settings.database_url))
    try:
        if script.get_revision(row[0]) is None:
            raise CommandError(row[0])
    except CommandError:
        raise NotAGatewayDatabase(f"{path}: at migration {row[0]}, which this version does not know "
                                  "(it comes from a newer version: restore it with that version)") from None
    return str(row[0])


def _numbers_readable(path: Path) -> bool:
    """Whether this install's numbers key opens the numbers in the file (one contact is enough to tell)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = con.execute(select_sealed()).fetchone()
    finally:
        con.close()
    if row is None:
        return True
    vault: NumberVault = services().sessions.kw["info"]["numbers"]
    try:
        vault.open(row[0])
    except Exception:  # a wrong key (InvalidToken) or a value this key cannot read
        return False
    return True


def select_sealed() -> str:
    """SQL for one sealed number (plain SQL: the file is read with sqlite3, not the app's engine)."""
    from gateway.models import Contact

    return str(select(Contact.number_sealed).limit(1).compile(compile_kwargs={"literal_binds": True}))


def copy(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database into `target` (written aside, then renamed into place)."""
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    # Created owner-only before SQLite opens it (SQLite would create it 0644 under the usual umask):
    # numbers (sealed) and people's words are never readable by others, not even while being copied.
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(partial)
    try:
        with dst:
            src.backup(dst, pages=1024)  # a step at a time: the server's writes go on between steps
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        dst.close()
        src.close()
    os.chmod(partial, FILE_MODE)  # already so; kept in case the file system ignored the creation mode
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, target)


@click.command("backup")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write the copy to (must not exist).")
@with_appcontext
def backup_command(out: Path) -> None:
    """Write a consistent copy of the SQLite database, even while the server runs."""
    db = sqlite_path()
    if db is None:
        raise click.ClickException("DATABASE_URL is PostgreSQL: back it up with pg_dump, e.g.\n"
                                   f"  pg_dump --format=custom --file={out} \"$DATABASE_URL\"\n"
                                   "and restore with pg_restore --clean --dbname \"$DATABASE_URL\" FILE.\n"
                                   + keep_also())
    if out.exists():
        raise click.ClickException(f"{out} exists: choose another name (a backup never overwrites a file)")
    if not db.exists():
        raise click.ClickException(f"{db} does not exist: there is nothing to back up yet")
    copy(db, out)
    click.echo(f"{out}: a copy of {db} at migration {revision_of(out)}, {out.stat().st_size} bytes")
    click.echo(keep_also())


def refuse_if_in_use(db: Path) -> None:
    """Refuse to restore over a database something else uses: RQ workers, or any open write.

    The embedded lock only covers the embedded server; with REDIS_URL set on SQLite, workers and
    commands (`flask rq worker`, `cases tick`, ...) hold their own connections. A registered RQ
    worker is refused outright (it may write any moment); any other writer shows up as the
    exclusive lock that cannot be taken within a second.
    """
    svc = services()
    if svc.settings.redis_url and svc.redis is not None:
        from rq import Worker

        names = sorted(w.name for w in Worker.all(connection=svc.redis))
        if names:
            raise click.ClickException(f"RQ workers are running ({', '.join(names)}): stop every worker "
                                       "(and the web server) first, then restore")
    con = sqlite3.connect(db, timeout=BUSY_SECONDS, isolation_level=None)
    try:
        con.execute("BEGIN EXCLUSIVE")
        con.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:  # "database is locked": a writer holds it
        raise click.ClickException(f"{db} is in use by another process ({exc}): stop the server, workers and "
                                   "commands using it, then restore") from None
    finally:
        con.close()


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def restore_command(file: Path, yes: bool) -> None:
    """Replace the SQLite database with a copy made by `backup` (server and workers stopped; the old one kept aside)."""
    db = sqlite_path()
    if db is None:
        raise click.ClickException("DATABASE_URL is PostgreSQL: restore with pg_restore, e.g.\n"
                                   f"  pg_restore --clean --if-exists --dbname \"$DATABASE_URL\" {file}")
    settings = services().settings
    try:
        took = embedded.hold(settings.instance_path, "flask restore")  # no server may start meanwhile
    except embedded.ServerBusy:
        who = embedded.holder(settings.instance_path) or {}
        raise click.ClickException(f"the server (process {who.get('pid', '?')}: {who.get('what', '')}) is running: "
                                   "stop it first, then restore") from None
    try:
        revision = revision_of(file)
        if not _numbers_readable(file):
            raise click.ClickException(f"{file}: this install's numbers key cannot read its phone numbers. Put the "
                                       "numbers key kept with the copy in place (instance/numbers_key or "
                                       "NUMBERS_KEY) first.")
        refuse_if_in_use(db)
        if not yes:
            click.confirm(f"Replace {db} with {file} (migration {revision})? What is in it now is kept aside "
                          "as a copy.", abort=True)
        services().engine.dispose()  # this process's own connections, before the pages are replaced
        refuse_if_in_use(db)  # again: the question may have waited a long time
        aside = db.with_name(f"{db.name}.pre-restore-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}")
        copy(db, aside)  # the database being replaced, owner-only: a wrong restore can be undone
        click.echo(f"The database as it was is kept in {aside} (restore it the same way to undo this).")
        src = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        dst = sqlite3.connect(db, timeout=BUSY_SECONDS)
        try:
            with dst:
                src.backup(dst)
        finally:
            dst.close()
            src.close()
        head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
        click.echo(f"{db} restored from {file} (migration {revision})")
        if revision != head:
            click.echo(f"It is at an older migration than this version ({head}): run flask --app app db upgrade")
    finally:
        if took:
            embedded.release(settings.instance_path)


def init_app(app: Flask) -> None:
    """Register `flask backup` and `flask restore`."""
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)
