"""Texts that arrive while the database is away: answered at once, kept, replayed in order when it returns."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, select

from gateway.channels.base import InboundSMS
from gateway.db import make_engine, make_session_factory
from gateway.core.vault import NumberVault
from gateway.inbound.spool import Spool, spool_for
from gateway.outbound import jobs
from gateway.models import Message
from tests.conftest import make_app
from tests.fakes import FakeTwilio
from tests.helpers import NUMBERS_KEY, TWILIO_TOKEN, store_unhandled, svc
from tests.test_webhooks import inbound, replies, sms

ALICE, BEN = "+265991234567", "+265881234567"


@pytest.fixture
def spool_twilio() -> Iterator[FakeTwilio]:
    """The fake Twilio API that replies to Twilio texts leave by, here."""
    with FakeTwilio("AC" + "0" * 32, TWILIO_TOKEN) as fake:
        yield fake


@pytest.fixture
def spool_app(db_url: str, tmp_path: Path, spool_twilio: FakeTwilio) -> Iterator[Flask]:
    """conftest's app, but a reply to a Twilio text leaves by Twilio: here a fake Twilio API."""
    app = make_app(db_url, tmp_path, TWILIO_ACCOUNT_SID=spool_twilio.account_sid,
                   TWILIO_API_BASE_URL=spool_twilio.base_url)
    yield app
    svc(app).engine.dispose()


@pytest.fixture
def spool_client(spool_app: Flask) -> FlaskClient:
    """A test client for spool_app."""
    return spool_app.test_client()


@pytest.fixture
def spool_runner(spool_app: Flask) -> FlaskCliRunner:
    """A runner for spool_app's command-line commands."""
    return spool_app.test_cli_runner()


def at_fake(fake: FakeTwilio) -> list[tuple[str, str]]:
    """(to, body) of every message the fake Twilio accepted."""
    return [(m["to"], m["body"]) for m in fake.messages]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def database_away(app: Any, url: str | None = None) -> Iterator[None]:
    """Point the app's sessions at a database that cannot be reached (real driver errors), then back."""
    gw = svc(app)
    if url is None:
        url = ("sqlite:////nonexistent-dir/gateway.db" if gw.engine.dialect.name == "sqlite"
               else f"postgresql://postgres@127.0.0.1:{closed_port()}/test")
    engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://")) if url.startswith("postgres") \
        else create_engine(url)
    real, real_inbound = gw.sessions, gw.inbound
    gw.sessions = make_session_factory(engine, real.kw["info"]["numbers"])
    gw.inbound = replace(real_inbound, sessions=gw.sessions)
    try:
        yield
    finally:
        gw.sessions, gw.inbound = real, real_inbound
        engine.dispose()


def inbound_rows(app: Any) -> list[Message]:
    with svc(app).sessions() as s:
        return list(s.scalars(select(Message).where(Message.direction == "in").order_by(Message.id)))


def replies_to_rows(app: Any) -> list[Message]:
    with svc(app).sessions() as s:
        return list(s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id)))


CONVERSATION = [(ALICE, "JOIN"), (BEN, "HELP"), (ALICE, "Chikondi Banda"), (ALICE, "Zomba")]


def send_while_away(app: Any, client: Any) -> list[dict[str, str]]:
    """The conversation's texts while the database is away; each gets 200 and no replies at once."""
    sent = []
    with database_away(app):
        for sender, body in CONVERSATION:
            params = sms(body, sender)
            started = time.monotonic()
            response = inbound(client, params)
            assert response.status_code == 200, response.data
            assert time.monotonic() - started < 5
            assert replies(response) == []
            sent.append(params)
    return sent


def test_database_away_answers_200_and_keeps_every_text_in_arrival_order(
        spool_app: Flask, spool_client: FlaskClient) -> None:
    sent = send_while_away(spool_app, spool_client)
    spool = spool_for(spool_app)
    kept = spool.pending()
    assert len(kept) == 4
    # Encrypted on disk (M4): read through the spool's key.
    assert [spool.read(p)["provider_id"] for p in kept] == [params["MessageSid"] for params in sent]
    assert inbound_rows(spool_app) == []


def test_replay_stores_in_order_and_produces_the_replies(
        spool_app: Flask, spool_client: FlaskClient, spool_runner: FlaskCliRunner, spool_twilio: FakeTwilio) -> None:
    sent = send_while_away(spool_app, spool_client)
    result = spool_runner.invoke(args=["spool", "replay"])
    assert result.exit_code == 0, result.output
    assert "4 stored, 0 already stored" in result.output

    rows = inbound_rows(spool_app)
    assert [(r.provider_id, r.body) for r in rows] == [(p["MessageSid"], p["Body"]) for p in sent]
    assert all(r.handled_at is not None for r in rows)
    # Kept when it arrived, not when it was replayed
    assert all(r.created_at <= r.handled_at for r in rows)
    out = replies_to_rows(spool_app)
    by_message = {r.id: [o.body for o in out if o.reply_to_id == r.id] for r in rows}
    alice = [r for r in rows if r.body in ("JOIN", "Chikondi Banda", "Zomba")]
    # The join flow went on step by step: the name prompt after JOIN, then the place prompt, ...
    assert "name" in by_message[alice[0].id][-1].lower()
    assert "district" in by_message[alice[1].id][-1].lower() or "where" in by_message[alice[1].id][-1].lower()
    assert by_message[alice[2].id], "no reply to the third text"
    assert all(o.status == "sent" for o in out), [(o.body, o.status) for o in out]  # sent by the outbox
    assert sorted(at_fake(spool_twilio)) == sorted((number, o.body) for o in out
                                          for number in [ALICE if o.reply_to_id in [a.id for a in alice] else BEN])
    assert spool_for(spool_app).pending() == []


def test_replaying_twice_stores_and_answers_nothing_twice(
        spool_app: Flask, spool_client: FlaskClient, spool_runner: FlaskCliRunner, tmp_path: Path) -> None:
    send_while_away(spool_app, spool_client)
    spool = spool_for(spool_app)
    copies = tmp_path / "copies"
    copies.mkdir()
    for path in spool.pending():
        shutil.copy(path, copies / path.name)
    assert "4 stored" in spool_runner.invoke(args=["spool", "replay"]).output
    before = (len(inbound_rows(spool_app)), len(replies_to_rows(spool_app)))

    for path in copies.iterdir():  # a replay cut short before it deleted its files
        shutil.copy(path, spool.dir / path.name)
    result = spool_runner.invoke(args=["spool", "replay"])
    assert "0 stored, 4 already stored" in result.output, result.output
    assert (len(inbound_rows(spool_app)), len(replies_to_rows(spool_app))) == before == (4, before[1])
    assert spool.pending() == []


def test_a_text_arriving_after_the_outage_waits_behind_the_kept_ones(
        spool_app: Flask, spool_client: FlaskClient) -> None:
    with database_away(spool_app):
        assert replies(inbound(spool_client, sms("JOIN", ALICE))) == []
    time.sleep(0.6)  # past the throttle on replay attempts of this process
    response = inbound(spool_client, sms("Chikondi Banda", ALICE))
    assert response.status_code == 200
    # JOIN was replayed first, so the name answers the name prompt and the place prompt comes back inline
    assert [r.body for r in inbound_rows(spool_app)] == ["JOIN", "Chikondi Banda"]
    (answer,) = replies(response)
    assert "district" in answer.lower() or "where" in answer.lower(), answer


def test_the_worker_reconciler_replays_the_spool(spool_app: Flask, spool_client: FlaskClient) -> None:
    send_while_away(spool_app, spool_client)
    with spool_app.app_context():
        assert jobs.reconcile()["spool_replayed"] == 4
    assert len(inbound_rows(spool_app)) == 4


def test_a_hung_database_still_gets_twilio_an_answer_in_time(spool_app: Flask, spool_client: FlaskClient) -> None:
    """A server that accepts connections and never speaks: the connect timeout, not Twilio's, ends the wait."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        with database_away(spool_app, f"postgresql://postgres@127.0.0.1:{listener.getsockname()[1]}/test"):
            started = time.monotonic()
            response = inbound(spool_client, sms("JOIN", ALICE))
            elapsed = time.monotonic() - started
        assert response.status_code == 200 and replies(response) == []
        assert elapsed < 10, elapsed  # Twilio gives up at 15 s
        assert held, "the webhook never tried the hung server"
        assert len(spool_for(spool_app).pending()) == 1
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        for s in held:
            s.close()


def test_a_text_stored_but_not_handled_when_the_database_left_is_handled_by_the_replay(
        spool_app: Flask, spool_runner: FlaskCliRunner) -> None:
    """The webhook stored it, then lost the database before handling it, and kept it in the spool."""
    message = InboundSMS("twilio", "SM" + "e" * 32, ALICE, "+15005550006", "JOIN")
    store_unhandled(spool_app, ALICE, "JOIN", channel="twilio", provider_id=message.provider_id)
    spool_for(spool_app).keep(message)
    result = spool_runner.invoke(args=["spool", "replay"])
    assert "0 stored, 1 already stored" in result.output, result.output
    (row,) = inbound_rows(spool_app)
    assert row.handled_at is not None and row.handled_by == "flow"
    (reply,) = replies_to_rows(spool_app)
    assert reply.reply_to_id == row.id and reply.status == "sent"


def test_a_stop_kept_in_the_spool_is_confirmed_and_wins_over_the_replies_before_it(
        spool_app: Flask, spool_client: FlaskClient, spool_runner: FlaskCliRunner, spool_twilio: FakeTwilio) -> None:
    """JOIN then STOP while the database is away: after the replay only the STOP confirmation goes out."""
    with database_away(spool_app):
        for body in ("JOIN", "STOP"):
            assert replies(inbound(spool_client, sms(body, ALICE))) == []
    assert "2 stored" in spool_runner.invoke(args=["spool", "replay"]).output
    join, stop = inbound_rows(spool_app)
    out = {o.reply_to_id: o for o in replies_to_rows(spool_app)}
    assert stop.handled_by == "stop" and out[stop.id].status == "sent"  # the one text still owed after STOP
    assert out[join.id].status == "skipped"  # the welcome would come after the supporter said STOP
    assert at_fake(spool_twilio) == [(ALICE, out[stop.id].body)]


def test_while_the_spool_drains_only_the_same_senders_texts_wait(spool_app: Flask, spool_client: FlaskClient) -> None:
    """Another process holds the replay: Alice's next text joins her kept ones, Ben's is answered at once."""
    import fcntl

    with database_away(spool_app):
        assert replies(inbound(spool_client, sms("JOIN", ALICE))) == []
    spool = spool_for(spool_app)
    with open(spool.dir / ".replay.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        time.sleep(0.6)  # past the throttle: this request tries to replay and finds the lock taken
        assert replies(inbound(spool_client, sms("Chikondi Banda", ALICE))) == []
        (welcome,) = replies(inbound(spool_client, sms("JOIN", BEN)))
        assert "joined" in welcome
    assert len(spool.pending()) == 2 and [r.body for r in inbound_rows(spool_app)] == ["JOIN"]
    time.sleep(0.6)
    inbound(spool_client, sms("HELP", BEN))  # any request replays once the lock is free
    assert spool.pending() == []
    # Ben's JOIN went in at once; Alice's two were replayed in her order before Ben's HELP
    assert [r.body for r in inbound_rows(spool_app)] == ["JOIN", "JOIN", "Chikondi Banda", "HELP"]


# -- M4: what the spool leaves on disk ---------------------------------------------------------------


def spool_files(spool_app: Any) -> list[Path]:
    """Every file and directory under the spool, the spool itself included."""
    root = spool_for(spool_app).dir
    return [root, *sorted(root.rglob("*"))]


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_spool_files_are_0600_and_its_directories_0700_whatever_the_umask(
        spool_app: Flask, spool_client: FlaskClient, spool_runner: FlaskCliRunner) -> None:
    with umask(0o022):  # the usual default: world-readable files
        send_while_away(spool_app, spool_client)
        spool = spool_for(spool_app)
        (spool.dir / "00000000000000000001-x.json").write_bytes(b"not a kept message")  # set aside by the replay
        with database_away(spool_app):
            spool_runner.invoke(args=["spool", "replay"])  # takes the lock, finds the database away
        spool_runner.invoke(args=["spool", "replay"])
    modes = {p.relative_to(spool.dir.parent).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in spool_files(spool_app)}
    assert modes["spool"] == 0o700 and modes["spool/rejected"] == 0o700 and modes["spool/.replay.lock"] == 0o600
    assert modes["spool/.generation"] == 0o600
    assert [m for p, m in modes.items() if p.endswith(".json")] == [0o600]  # the one set aside


def test_a_kept_text_is_encrypted_and_its_file_name_tagged_with_the_keyed_digest(
        spool_app: Flask, spool_client: FlaskClient) -> None:

    with database_away(spool_app):
        inbound(spool_client, sms("REPORT the clinic in Zomba turned us away", ALICE))
    (path,) = spool_for(spool_app).pending()
    raw = path.read_bytes()
    for secret in (ALICE, ALICE.lstrip("+"), "clinic in Zomba", "REPORT"):
        assert secret.encode() not in raw and secret not in path.name
    assert hashlib.sha256(ALICE.encode()).hexdigest()[:16] not in path.name  # not the unkeyed hash
    assert f"-{NumberVault.from_keys([NUMBERS_KEY]).digest(ALICE)[:16]}-" in path.name
    other_key = NumberVault.from_keys(["another-numbers-key-of-32-characters-or-more"])
    assert other_key.digest(ALICE)[:16] not in path.name  # without the key the tag names nobody


def test_a_replayed_text_leaves_nothing_behind(
        spool_app: Flask, spool_client: FlaskClient, spool_runner: FlaskCliRunner) -> None:
    send_while_away(spool_app, spool_client)
    assert "4 stored" in spool_runner.invoke(args=["spool", "replay"]).output
    assert [p.name for p in spool_files(spool_app)[1:]] == [".generation", ".replay.lock"]
    assert spool_for(spool_app).dir.joinpath(".replay.lock").read_bytes() == b""
    assert len(spool_for(spool_app).dir.joinpath(".generation").read_bytes()) == 8  # a random value, no text


def test_a_set_aside_text_is_counted_on_healthz_and_purged_after_the_retention(
        spool_app: Flask, spool_client: FlaskClient, spool_runner: FlaskCliRunner,
        caplog: pytest.LogCaptureFixture) -> None:
    from gateway.inbound import spool as spool_module

    with database_away(spool_app):
        inbound(spool_client, sms("JOIN", ALICE))
    spool = spool_for(spool_app)
    (kept,) = spool.pending()
    kept.write_bytes(b"garbled on disk")  # cannot be opened: set aside, not replayed
    caplog.set_level(logging.INFO)
    assert "1 set aside" in spool_runner.invoke(args=["spool", "replay"]).output
    assert kept.name not in caplog.text  # its name carries the sender's tag: not logged
    (rejected,) = (spool.dir / "rejected").iterdir()
    health = spool_client.get("/healthz").get_json()
    assert health["spool_rejected"] == 1 and ALICE not in json.dumps(health) and kept.name not in json.dumps(health)
    spool_runner.invoke(args=["spool", "replay"])
    assert rejected.exists()  # kept a while, for the operator to look at
    old = time.time() - spool_module.REJECTED_RETENTION.total_seconds() - 60
    os.utime(rejected, (old, old))
    spool_runner.invoke(args=["spool", "replay"])
    assert not rejected.exists()
    assert "spool_rejected" not in spool_client.get("/healthz").get_json()


def test_a_text_kept_under_the_previous_numbers_key_is_replayed_after_a_rotation(
        spool_app: Flask, spool_client: FlaskClient, spool_runner: FlaskCliRunner) -> None:
    from gateway.core.vault import new_key

    with database_away(spool_app):
        inbound(spool_client, sms("JOIN", ALICE))
    # A new key in front (the app as restarted with it): the spool still opens the kept text.
    svc = spool_app.extensions["gateway"]
    svc.inbound = replace(svc.inbound, spool=Spool(svc.inbound.spool.dir,
                                                   NumberVault.from_keys([new_key(), NUMBERS_KEY])))
    assert "1 stored" in spool_runner.invoke(args=["spool", "replay"]).output


def test_a_text_kept_in_clear_by_the_previous_version_is_still_replayed(
        spool_app: Flask, spool_runner: FlaskCliRunner) -> None:
    """An upgrade while texts wait in the spool loses none of them (and the replay deletes the clear copy)."""
    spool = spool_for(spool_app)
    spool.dir.mkdir(parents=True)
    legacy = spool.dir / "00000000000000000001-0123456789abcdef-1-00000000.json"
    legacy.write_text(json.dumps({"provider": "twilio", "provider_id": "SM" + "f" * 32, "sender": ALICE,
                                  "recipient": "+15005550006", "body": "JOIN", "received_at": "2026-11-23T10:00:00"}))
    assert "1 stored" in spool_runner.invoke(args=["spool", "replay"]).output
    assert [r.body for r in inbound_rows(spool_app)] == ["JOIN"] and not legacy.exists()


# -- delivery status callbacks while the database is away ----------------------------------------

SID_A, SID_B = "SM" + "a" * 32, "SM" + "b" * 32


def twilio_status(client: FlaskClient, sid: str, state: str, **extra: str) -> int:
    """POST a signed Twilio status callback; the answer's status code."""
    from tests.test_webhooks import status

    return status(client, {"MessageSid": sid, "MessageStatus": state, **extra}).status_code  # type: ignore[no-any-return]


def statuses_of(app: Any) -> dict[str, tuple[str, str | None]]:
    with svc(app).sessions() as s:
        return {m.provider_id: (m.status, m.error_code) for m in s.scalars(
            select(Message).where(Message.provider_id.in_([SID_A, SID_B])))}


def test_status_callbacks_while_the_database_is_away_are_kept_and_applied_once_in_ladder_order(
        spool_app: Flask, spool_client: FlaskClient, spool_runner: FlaskCliRunner) -> None:
    with svc(spool_app).sessions() as s, s.begin():
        for sid in (SID_A, SID_B):
            s.add(Message(direction="out", channel="twilio", provider_id=sid, body="Vigil at 6", status="sent"))
    with database_away(spool_app):
        # Twilio's callbacks out of order, as they come: each acknowledged although nothing can be written.
        assert twilio_status(spool_client, SID_A, "delivered") == 204
        assert twilio_status(spool_client, SID_A, "sent") == 204  # late and lower: must not undo delivered
        assert twilio_status(spool_client, SID_B, "undelivered", ErrorCode="30003") == 204
        assert twilio_status(spool_client, SID_B, "delivered") == 204  # a final status never changes
        assert len(spool_for(spool_app).pending()) == 4
    assert statuses_of(spool_app) == {SID_A: ("sent", None), SID_B: ("sent", None)}  # nothing written meanwhile

    result = spool_runner.invoke(args=["spool", "replay"])
    assert result.exit_code == 0, result.output
    assert "4 status callbacks applied" in result.output, result.output
    assert statuses_of(spool_app) == {SID_A: ("delivered", None), SID_B: ("undelivered", "30003")}
    assert spool_for(spool_app).pending() == []
    again = spool_runner.invoke(args=["spool", "replay"])
    assert "0 status callbacks applied" in again.output, again.output  # applied once: nothing left to apply


def test_the_worker_reconciler_applies_kept_status_callbacks(spool_app: Flask, spool_client: FlaskClient) -> None:
    with svc(spool_app).sessions() as s, s.begin():
        s.add(Message(direction="out", channel="twilio", provider_id=SID_A, body="Vigil at 6", status="sent"))
    with database_away(spool_app):
        assert twilio_status(spool_client, SID_A, "delivered") == 204
    with spool_app.app_context():
        assert jobs.reconcile()["spool_statuses"] == 1
    assert statuses_of(spool_app) == {SID_A: ("delivered", None)}


# -- a database that hangs: PostgreSQL's lock and statement timeouts ----------------------------

@pytest.mark.postgres_only
def test_a_locked_table_fails_the_webhook_in_seconds_and_the_text_is_spooled_then_replayed(
        db_url: str, tmp_path: Path) -> None:
    """Another connection holds the messages table: the lock timeout ends the wait, the spool keeps the text."""
    assert db_url.startswith("postgresql"), "statement and lock timeouts are PostgreSQL's"
    app = make_app(db_url, tmp_path, DB_LOCK_TIMEOUT_MS=500, DB_STATEMENT_TIMEOUT_MS=2000)
    client = app.test_client()
    engine = svc(app).engine
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "500ms"
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "2s"
        locker = engine.connect()
        try:
            locker.exec_driver_sql("BEGIN")
            locker.exec_driver_sql("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")  # a stuck migration, say
            started = time.monotonic()
            response = inbound(client, sms("JOIN", ALICE))
            elapsed = time.monotonic() - started
            assert response.status_code == 200 and replies(response) == []
            assert elapsed < 5, elapsed  # without the lock timeout it would wait for as long as the lock is held
            assert len(spool_for(app).pending()) == 1
        finally:
            locker.rollback()
            locker.close()
        assert inbound_rows(app) == []  # the locked attempt left nothing half-written
        with app.app_context():
            assert jobs.reconcile()["spool_replayed"] == 1
        rows = inbound_rows(app)
        assert [(r.body, r.handled_at is not None) for r in rows] == [("JOIN", True)]
        assert spool_for(app).pending() == []
    finally:
        engine.dispose()


def test_without_its_generation_file_the_spool_scans_every_time_and_misses_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A spool whose generation file cannot be mapped (a file system without shared mappings) is slower,
    never wrong: each look is a scan, a text kept is seen at once, and each process warns once."""
    import mmap

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("no shared mappings here")

    monkeypatch.setattr(mmap, "mmap", refuse)
    vault = NumberVault.from_keys([NUMBERS_KEY])
    here, there = Spool(tmp_path / "spool", vault), Spool(tmp_path / "spool", vault)
    scans: list[object] = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p: scans.append(p) or real_scandir(p))
    with caplog.at_level(logging.WARNING, logger="gateway.inbound.spool"):
        assert not here.has_pending(ALICE) and not here.has_pending(ALICE) and len(scans) == 2
        there.keep(InboundSMS("twilio", "SM-away", ALICE, "+15005550006", "while the database is away"))
        assert here.has_pending(ALICE) and not here.has_pending(BEN)
    assert [r.getMessage() for r in caplog.records].count(
        "the spool's generation file cannot be mapped: every webhook scans the spool") == 2  # here, there


def test_a_text_kept_by_another_process_is_seen_at_once_after_the_spool_was_found_empty(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """has_pending knows an empty spool with no system call (no stat, no scan); a text kept since, by
    another process, is never missed; a file put there by other means is found within RECHECK."""
    from gateway.inbound import spool as spool_module

    vault = NumberVault.from_keys([NUMBERS_KEY])
    here = Spool(tmp_path / "spool", vault)
    calls: list[str] = []
    real_scandir, real_stat = os.scandir, os.stat
    monkeypatch.setattr(os, "scandir", lambda p: calls.append("scandir") or real_scandir(p))
    monkeypatch.setattr(os, "stat", lambda *a, **k: calls.append("stat") or real_stat(*a, **k))
    assert not here.has_pending(ALICE) and calls.count("scandir") == 1  # the first look: a scan
    calls.clear()
    for _ in range(3):
        assert not here.has_pending(ALICE) and not here.has_pending()
    assert calls == []  # known empty: neither a stat nor a scan
    generation = here.dir / spool_module.GENERATION
    assert stat.S_IMODE(generation.stat().st_mode) == 0o600 and here.pending() == []  # private, and no text

    # Another process keeps a text (a process of its own: its own mapping of the file).
    code = ("import sys; from gateway.core.vault import NumberVault; from gateway.inbound.spool import Spool; "
            "from gateway.channels.base import InboundSMS; "
            "Spool(sys.argv[1], NumberVault.from_keys([sys.argv[2]])).keep("
            "InboundSMS('twilio', 'SM-away', sys.argv[3], '+15005550006', 'while the database is away'))")
    subprocess.run([sys.executable, "-c", code, str(here.dir), NUMBERS_KEY, ALICE], check=True, timeout=60,
                   cwd=Path(__file__).resolve().parent.parent)
    assert here.has_pending(ALICE) and here.has_pending() and not here.has_pending(BEN)
    for path in here.pending():
        path.unlink()
    calls.clear()
    assert not here.has_pending(ALICE) and calls.count("scandir") == 1  # changed since: scanned again
    assert not here.has_pending(ALICE) and calls.count("scandir") == 1  # and known empty again

    # A file that no keep() announced (an older version's, during a deploy): found once RECHECK is past.
    monkeypatch.setattr(spool_module, "RECHECK", 60.0)  # a slow machine's pause is not mistaken for it
    record = here.keep(InboundSMS("twilio", "SM-by-hand", ALICE, "+15005550006", "by hand"))
    by_hand = record.read_bytes()
    record.unlink()
    assert not here.has_pending()  # scanned: empty again, and known empty
    (here.dir / record.name).write_bytes(by_hand)  # no new generation
    assert not here.has_pending()  # unannounced, within RECHECK: not seen yet
    real_monotonic = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + spool_module.RECHECK + 1)
    assert here.has_pending(ALICE) and not here.has_pending(BEN)
