"""`flask backup --out FILE` / `flask restore FILE`: a consistent copy of the SQLite database, and back."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from gateway.models import Contact
from tests.conftest import make_app
from tests.fakes.twilio_api import wait_for
from tests.helpers import add, svc

ROOT = Path(__file__).resolve().parent.parent


def contacts(app: Flask) -> int:
    with svc(app).sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Contact)) or 0)


def sqlite_only(app: Flask) -> None:
    """Backup and restore copy the embedded default's SQLite file (the test is marked sqlite_only)."""
    assert svc(app).engine.dialect.name == "sqlite"


@pytest.mark.sqlite_only
def test_a_backup_taken_while_a_writer_runs_restores_to_a_consistent_database(
        app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    sqlite_only(app)
    stop, written = threading.Event(), [0]

    def writer() -> None:  # the server, taking texts in while the copy is made
        while not stop.is_set():
            add(app, f"+2659913{written[0]:05d}")
            written[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert wait_for(lambda: written[0] >= 50, 30)
        result = runner.invoke(args=["backup", "--out", str(tmp_path / "copy.db")])
        during = written[0]
        assert wait_for(lambda: written[0] >= during + 20, 30)  # the writer went on during and after the copy
    finally:
        stop.set()
        thread.join()
    assert result.exit_code == 0, result.output
    # The test app has its keys from settings (the environment): the copy is useless without them.
    assert "at migration" in result.output and "NUMBERS_KEY" in result.output and "SECRET_KEY" in result.output
    copy = tmp_path / "copy.db"
    assert (copy.stat().st_mode & 0o777) == 0o600
    con = sqlite3.connect(copy)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    in_copy = con.execute("SELECT count(*) FROM contacts").fetchone()[0]
    con.close()
    assert 50 <= in_copy <= during and contacts(app) == written[0] > in_copy
    assert not list(tmp_path.glob(".copy.db.partial"))

    again = runner.invoke(args=["backup", "--out", str(copy)])
    assert again.exit_code != 0 and "exists" in again.output  # never overwrites

    assert runner.invoke(args=["restore", str(copy)], input="n\n").exit_code != 0  # not confirmed: nothing done
    assert contacts(app) == written[0]
    restored = runner.invoke(args=["restore", str(copy), "--yes"])
    assert restored.exit_code == 0, restored.output
    assert contacts(app) == in_copy
    add(app, "+265991399999")  # and the gateway goes on writing to it
    assert contacts(app) == in_copy + 1


@pytest.mark.sqlite_only
def test_restore_refuses_while_the_server_holds_the_lock(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    sqlite_only(app)
    assert runner.invoke(args=["backup", "--out", str(tmp_path / "copy.db")]).exit_code == 0
    instance = svc(app).settings.instance_path
    server = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from gateway import embedded; "
        f"embedded.hold(Path({str(instance)!r}), 'web server'); print('held', flush=True); time.sleep(60)")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "held"
        refused = runner.invoke(args=["restore", str(tmp_path / "copy.db"), "--yes"])
        assert refused.exit_code != 0 and f"process {server.pid}" in refused.output and "stop it first" in refused.output
    finally:
        server.kill()
        server.wait()
    assert runner.invoke(args=["restore", str(tmp_path / "copy.db"), "--yes"]).exit_code == 0


@pytest.mark.sqlite_only
def test_restore_refuses_what_is_not_a_gateway_database_or_needs_another_key(
        app: Flask, runner: FlaskCliRunner, db_url: str, tmp_path: Path) -> None:
    sqlite_only(app)
    add(app, "+265991300001")
    text = tmp_path / "notes.db"
    text.write_text("not a database")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    for bad, why in ((text, "not a SQLite database"), (other, "not a gateway database")):
        result = runner.invoke(args=["restore", str(bad), "--yes"])
        assert result.exit_code != 0 and why in result.output, result.output
    assert runner.invoke(args=["backup", "--out", str(tmp_path / "copy.db")]).exit_code == 0
    con = sqlite3.connect(tmp_path / "copy.db")
    con.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    con.commit()
    con.close()
    future = runner.invoke(args=["restore", str(tmp_path / "copy.db"), "--yes"])
    assert future.exit_code != 0 and "which this version does not know" in future.output

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    stranger = make_app(db_url, elsewhere, NUMBERS_KEY="another-numbers-key-of-at-least-32-chars")
    assert stranger.test_cli_runner().invoke(args=["backup", "--out", str(tmp_path / "mine.db")]).exit_code == 0
    wrong_key = stranger.test_cli_runner().invoke(args=["restore", str(tmp_path / "mine.db"), "--yes"])
    assert wrong_key.exit_code != 0 and "numbers key cannot read" in wrong_key.output
    assert contacts(app) == 1


@pytest.mark.postgres_only
def test_on_postgresql_backup_says_to_use_pg_dump(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    assert svc(app).engine.dialect.name == "postgresql"
    result = runner.invoke(args=["backup", "--out", str(tmp_path / "x.dump")])
    assert result.exit_code != 0 and "pg_dump --format=custom" in result.output and "NUMBERS_KEY" in result.output
    assert not (tmp_path / "x.dump").exists()
    assert "pg_restore" in runner.invoke(args=["restore", __file__, "--yes"]).output


def sqlite_file(app: Flask) -> Path:
    return Path(str(svc(app).engine.url.database))


@pytest.mark.sqlite_only
def test_restore_keeps_the_replaced_database_aside_owner_only_and_says_where(
        app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    sqlite_only(app)
    add(app, "+265991300001")
    assert runner.invoke(args=["backup", "--out", str(tmp_path / "copy.db")]).exit_code == 0
    add(app, "+265991300002")  # written after the copy: lost by the restore but for the file kept aside
    restored = runner.invoke(args=["restore", str(tmp_path / "copy.db"), "--yes"])
    assert restored.exit_code == 0, restored.output
    assert contacts(app) == 1
    kept = list(sqlite_file(app).parent.glob(sqlite_file(app).name + ".pre-restore-*"))
    assert len(kept) == 1 and str(kept[0]) in restored.output
    assert (kept[0].stat().st_mode & 0o777) == 0o600
    con = sqlite3.connect(kept[0])
    assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 2
    con.close()


@pytest.mark.sqlite_only
def test_restore_refuses_while_another_process_writes_to_the_database(
        app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    sqlite_only(app)
    add(app, "+265991300001")
    assert runner.invoke(args=["backup", "--out", str(tmp_path / "copy.db")]).exit_code == 0
    worker = sqlite3.connect(sqlite_file(app))  # a worker or a command, mid-transaction (no embedded lock)
    worker.execute("BEGIN IMMEDIATE")
    worker.execute("DELETE FROM contacts")
    try:
        refused = runner.invoke(args=["restore", str(tmp_path / "copy.db"), "--yes"])
        assert refused.exit_code != 0 and "in use" in refused.output, refused.output
    finally:
        worker.rollback()
        worker.close()
    assert contacts(app) == 1 and not list(sqlite_file(app).parent.glob("*.pre-restore-*"))
    assert runner.invoke(args=["restore", str(tmp_path / "copy.db"), "--yes"]).exit_code == 0


@pytest.mark.sqlite_only
def test_restore_refuses_while_an_rq_worker_is_registered(migrated: tuple[str, str], tmp_path: Path) -> None:
    from rq import Worker

    from tests.conftest import REDIS_URL, unavailable
    assert migrated[0] == "sqlite"
    if REDIS_URL is None:
        unavailable("Redis", "REDIS_URL is unset: this test needs a real Redis beside SQLite")
    db = tmp_path / "gateway.db"
    import shutil
    shutil.copy(migrated[1], db)
    app = make_app(f"sqlite:///{db}", tmp_path, REDIS_URL=REDIS_URL)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["backup", "--out", str(tmp_path / "copy.db")]).exit_code == 0
    worker = Worker(["replies"], connection=svc(app).redis, name=f"restore-test-{tmp_path.name}")
    worker.register_birth()
    try:
        refused = runner.invoke(args=["restore", str(tmp_path / "copy.db"), "--yes"])
        assert refused.exit_code != 0 and "worker" in refused.output and worker.name in refused.output
    finally:
        worker.register_death()
    assert runner.invoke(args=["restore", str(tmp_path / "copy.db"), "--yes"]).exit_code == 0


@pytest.mark.sqlite_only
def test_the_copy_is_owner_only_while_it_is_written_whatever_the_umask(
        app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from gateway import backup
    sqlite_only(app)
    add(app, "+265991300001")
    partial = tmp_path / ".copy.db.partial"
    modes: list[int] = []
    connect = sqlite3.connect

    class Source:  # the source connection, noting the copy's mode around the page copy
        def __init__(self, con: sqlite3.Connection) -> None:
            self.con = con

        def backup(self, target: sqlite3.Connection, **kw: object) -> None:
            modes.append(partial.stat().st_mode & 0o777)
            self.con.backup(target, **kw)  # type: ignore[arg-type]
            modes.append(partial.stat().st_mode & 0o777)

        def close(self) -> None:
            self.con.close()

    def spying(database: object, *args: object, **kw: object) -> object:
        con = connect(database, *args, **kw)  # type: ignore[call-overload]
        return Source(con) if "mode=ro" in str(database) else con

    monkeypatch.setattr(backup.sqlite3, "connect", spying)
    old = os.umask(0o022)
    try:
        backup.copy(sqlite_file(app), tmp_path / "copy.db")
    finally:
        os.umask(old)
    assert modes == [0o600, 0o600]
    assert ((tmp_path / "copy.db").stat().st_mode & 0o777) == 0o600
