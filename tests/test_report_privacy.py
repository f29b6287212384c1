"""What a report leaves behind, however its exchange ends, and the guards that still work without it.

Review findings C1 (order and ids), H3 (column lengths), H4 (skipped or failed replies), L10 (empty
sends), M5 (abandoned and expired reports, the scheduled purge) and L5 (reply budgets).
"""
from __future__ import annotations

import csv
import io
import os
import re
from datetime import timedelta
from typing import Any, Iterator

import pytest
from sqlalchemy import select, text, update

from gateway.people import accounts
from gateway.inbound import receive as inbound
from gateway.outbound import jobs, queues
from gateway.people.contacts import number_is
from gateway.models import AuditEvent, Contact, Conversation, Message, Report, User, utcnow
from gateway.channels.base import InboundSMS
from tests.conftest import Auth, make_stack_app
from tests.fakes.africastalking_api import FakeAfricasTalking
from tests.fakes.android_api import FakeAndroidPhone
from tests.reporting import file_anonymous_report
from tests.transcript import Phone
from tests.wires import channel_settings

A = "+265991234567"


def rows(app: Any, model: type, *where: Any) -> list[Any]:
    with app.extensions["gateway"].sessions() as s:
        return list(s.scalars(select(model).where(*where).order_by(model.id)))


def contact_of(app: Any, number: str) -> Contact | None:
    with app.extensions["gateway"].sessions() as s:
        return s.scalars(select(Contact).where(number_is(s, number))).first()


def joined(app: Any, number: str = A) -> Phone:
    phone = Phone(app)
    for text in ("JOIN", "SKIP", "Zomba", "SKIP"):
        assert phone.send(number, text)
    return phone


def assert_no_trace(app: Any, number: str, *words: str) -> None:
    """Nothing of a report exchange is left on the contact: no report conversation, no words anywhere."""
    c = contact_of(app, number)
    assert c is not None
    assert [x.flow for x in rows(app, Conversation, Conversation.contact_id == c.id)] == ["join"]
    mine = rows(app, Message, Message.contact_id == c.id)
    assert not any((m.body or "").upper().startswith("REPORT") for m in mine)
    bodies = [m.body or "" for m in rows(app, Message)]
    for word in words:
        assert not any(word in b for b in bodies), word
    for m in rows(app, Message, Message.contact_id.is_(None)):
        assert (m.body, m.conversation_id, m.reply_to_id) == (None, None, None)
        assert (m.created_at.hour, m.created_at.minute, m.created_at.second) == (0, 0, 0)


# --------------------------------------------------------------------------- how an exchange ends


def test_an_abandoned_report_keeps_no_words(app) -> None:
    phone = joined(app)
    seen = contact_of(app, A).last_seen_at
    phone.now += timedelta(hours=1)
    assert phone.send(A, "REPORT")[0].startswith("Which service?")
    for _ in range(3):  # unusable answers, until the gateway gives up
        phone.send(A, "qqq zzz")
    assert contact_of(app, A).last_seen_at == seen
    assert_no_trace(app, A, "qqq zzz")


def test_a_report_stopped_or_replaced_keeps_no_words(app) -> None:
    phone = joined(app)
    phone.send(A, "REPORT")
    phone.send(A, "clinic")
    phone.send(A, "REPORT")  # starts again: the first exchange is replaced
    phone.send(A, "water")
    phone.send(A, "STOP")
    assert not rows(app, Report)
    assert_no_trace(app, A, "clinic", "water")


def test_an_expired_report_is_closed_by_the_reconciler_and_keeps_no_words(app) -> None:
    phone = joined(app)
    phone.send(A, "REPORT")
    phone.send(A, "borehole")
    with app.extensions["gateway"].sessions() as s, s.begin():  # a day passes without an answer
        s.execute(update(Conversation).values(expires_at=utcnow() - timedelta(minutes=1)))
    with app.app_context():
        assert jobs.reconcile()["expired_closed"] == 1
    assert all(c.closed_at is not None for c in rows(app, Conversation))
    assert_no_trace(app, A, "borehole")
    # PostgreSQL writes a row locker's transaction id into the row (xmax): the contact must not carry
    # the id of any transaction that wrote the detached rows (their xmin).
    if app.config["DATABASE_URL"].startswith("postgres"):
        with app.extensions["gateway"].sessions() as s:
            written = set(s.scalars(text("SELECT xmin::text FROM messages WHERE contact_id IS NULL")))
        assert written and row_lock_of(app, A) not in written


def row_lock_of(app: Any, number: str) -> Any:
    """PostgreSQL: the transaction id that last locked or deleted the contact's row (None on SQLite)."""
    if not app.config["DATABASE_URL"].startswith("postgres"):
        return None
    with app.extensions["gateway"].sessions() as s:
        return s.execute(text("SELECT xmax::text FROM contacts WHERE id = :id"), {"id": contact_of(app, number).id}).scalar()


# --------------------------------------------------------------------------- queued replies (H4, L10)


@pytest.fixture
def capp(db_url: str, redis_url: str | None, tmp_path) -> Iterator[tuple[Any, FakeAfricasTalking]]:
    """The app with Africa's Talking (replies go through the reply queue) connected to a fake."""
    with FakeAfricasTalking() as at, FakeAndroidPhone() as phone:
        app = make_stack_app(db_url, redis_url, tmp_path, **channel_settings(at, phone))
        yield app, at
        app.extensions["gateway"].engine.dispose()


def at_send(app: Any, number: str, text: str) -> list[str]:
    """Deliver a text by Africa's Talking; the replies it queued (not sent yet)."""
    provider = app.extensions["gateway"].channels.provider("africastalking")
    sms = provider.parse_inbound({"from": number, "to": "12345", "text": text, "id": os.urandom(8).hex(),
                                  "date": "2026-11-23 10:00:00", "linkId": "l"})
    with app.app_context():
        received = app.extensions["gateway"].inbound.receive(sms, inline=False)
        ids = list(received.queued) if received else []
    with app.extensions["gateway"].sessions() as s:
        return [m.body for m in s.scalars(select(Message).where(Message.id.in_(ids)).order_by(Message.id))]


def test_a_report_reply_skipped_after_stop_keeps_no_words_and_no_contact(capp) -> None:
    app, at = capp
    svc = app.extensions["gateway"]
    for text in ("JOIN", "SKIP", "Zomba", "SKIP"):
        at_send(app, A, text)
    with app.app_context():
        queues.work_burst(svc.redis)
    replies = file_anonymous_report(lambda text: at_send(app, A, text))
    [ref] = re.findall(r"Report (\w+) is recorded", replies[-1])
    at_send(app, A, "STOP")  # before the worker sent the reference
    with app.app_context():
        queues.work_burst(svc.redis)
    sent = [m["message"] for m in at.messages]
    assert not any(ref in text for text in sent) and sent[-1].startswith("You will get no more messages")
    skipped = rows(app, Message, Message.status == "skipped")
    assert skipped and all((m.body, m.contact_id, m.reply_to_id, m.handled_by) == (None,) * 4 for m in skipped)
    assert not any(ref in (m.body or "") for m in rows(app, Message))


def test_a_report_reply_with_no_channel_keeps_no_words_and_no_contact(stack_app) -> None:
    svc = stack_app.extensions["gateway"]
    ids: list[int] = []

    def send(text: str) -> list[str]:
        got = inbound.receive(svc.sessions, InboundSMS("africastalking", os.urandom(6).hex(), A, None, text), "MW",
                              svc.flows, "Our Network", inline=False)
        ids.extend(got.queued)
        with svc.sessions() as s:
            return [m.body for m in s.scalars(select(Message).where(Message.id.in_(got.queued)))]

    file_anonymous_report(send)
    with stack_app.app_context():
        queues.enqueue_ids(svc.redis, ids, name=queues.REPLIES)
        queues.work_burst(svc.redis)  # Africa's Talking is not configured here: no channel to send by
    failed = rows(stack_app, Message, Message.id.in_(ids))
    assert failed and all(m.status == "failed" and m.error_code == "no-channel" for m in failed)
    assert all((m.body, m.contact_id) == (None, None) for m in failed)
    assert contact_of(stack_app, A) is None  # the report was all this number ever sent


def test_a_reply_whose_words_were_removed_is_not_sent_empty(stack_app) -> None:
    svc = stack_app.extensions["gateway"]
    got = inbound.receive(svc.sessions, InboundSMS("console", "in-1", A, None, "HELP"), "MW", svc.flows,
                          "Our Network", inline=False)
    with svc.sessions() as s, s.begin():
        s.execute(update(Message).where(Message.id.in_(got.queued)).values(body=None))
    before = len(svc.provider.sent)
    with stack_app.app_context():
        queues.enqueue_ids(svc.redis, list(got.queued), name=queues.REPLIES)
        queues.work_burst(svc.redis)
    assert len(svc.provider.sent) == before
    [m] = rows(stack_app, Message, Message.id.in_(got.queued))
    assert (m.status, m.error_code) == ("failed", "empty")


# --------------------------------------------------------------------------- reports themselves


def test_reports_within_a_day_are_listed_by_reference_not_by_creation(app, client, runner) -> None:
    created: list[int] = []
    phone = Phone(app)
    for i in range(6):
        file_anonymous_report(lambda text: phone.send(f"+26599123450{i}", text))
        created += [r.id for r in rows(app, Report) if r.id not in created]
    assert len(created) == 6
    assert max(created) - min(created) > len(created), "report ids count the reports"
    # References chosen so that creation order is neither their order nor its reverse.
    refs = dict(zip(created, ["CCCCCC", "AAAAAA", "DDDDDD", "BBBBBB", "FFFFFF", "EEEEEE"]))
    with app.extensions["gateway"].sessions() as s, s.begin():
        for rid, ref in refs.items():
            s.execute(update(Report).where(Report.id == rid).values(ref=ref))
    expected = sorted(refs.values())

    auth = Auth(app, client)
    email = auth.user("viewer")
    with app.extensions["gateway"].sessions() as s, s.begin():
        token = accounts.new_api_token(s.scalars(select(User).where(User.email == email)).one())
    api = client.get("/api/v1/reports", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert [r["ref"] for r in api["data"]] == expected
    auth.login("viewer")
    html = client.get("/reports").get_data(as_text=True)
    assert sorted(expected, key=html.index) == expected
    exported = client.get("/reports/export").get_data(as_text=True).lstrip("\ufeff")
    assert [r["ref"] for r in csv.DictReader(io.StringIO(exported))] == expected
    cli = runner.invoke(args=["reports", "export"])
    assert [r["ref"] for r in csv.DictReader(io.StringIO(cli.output))] == expected


def test_a_long_other_service_answer_is_cut_to_its_column(app) -> None:
    """PostgreSQL refuses a value longer than its column (H3); the report is saved, cut."""
    phone = Phone(app)
    long_answer = "the mobile clinic for mothers and babies " * 16  # 640 characters
    answers = {"Which service was it": long_answer, "Where": "Zomba", "Did it arrive": "2", "Any details": "SKIP"}
    reply = phone.send(A, "REPORT OTHER")
    for _ in range(8):
        if not reply or reply[-1].startswith("Thank you"):
            break
        key = next((k for k in answers if k in reply[-1]), None)
        reply = phone.send(A, answers[key] if key else "1")
    assert reply and reply[-1].startswith("Thank you")
    [r] = rows(app, Report)
    assert r.service == "other" and r.service_detail == long_answer.strip()[:200]


# --------------------------------------------------------------------------- guards (C1, L5)


def test_the_flood_guard_counts_report_texts_too(app) -> None:
    phone = joined(app)
    phone.now += timedelta(minutes=10)
    answered = [bool(phone.send(A, "REPORT")) for _ in range(18)]  # a robot answering every prompt
    assert answered[:15] == [True] * 15 and not any(answered[15:])
    assert "flood" in contact_of(app, A).tags


def test_stop_start_alternation_earns_few_replies(app) -> None:
    phone = joined(app)
    replies = [phone.send(A, word) for _ in range(8) for word in ("STOP", "START")]
    assert sum(len(r) for r in replies) == inbound.STOP_START_REPLIES_PER_DAY
    assert contact_of(app, A).status == "active"  # every STOP and START still counts


def test_numbers_that_never_joined_share_a_reply_budget(app, monkeypatch) -> None:
    monkeypatch.setattr(inbound, "STRANGER_REPLIES_PER_HOUR", 3)
    phone = Phone(app)
    answered = [bool(phone.send(f"+26599123460{i}", "hello")) for i in range(5)]
    assert answered == [True, True, True, False, False]
    assert phone.send("+265991234609", "STOP")  # an opt-out is still confirmed


def test_with_redis_away_texts_are_still_answered_and_stop_still_wins(app, monkeypatch) -> None:
    import redis

    class Away:
        def pipeline(self) -> Any:
            raise redis.exceptions.ConnectionError("Redis is away")

    monkeypatch.setattr(inbound, "_counts", lambda session: Away())
    phone = Phone(app)
    assert phone.send(A, "HELP")
    assert phone.send(A, "STOP")
    assert contact_of(app, A).status == "stopped"


# --------------------------------------------------------------------------- the scheduled purge (M5)


def test_the_reconciler_schedules_the_purge_once_a_day(stack_app) -> None:
    svc = stack_app.extensions["gateway"]
    phone = Phone(stack_app)
    phone.send(A, "hello from long ago")
    with svc.sessions() as s, s.begin():
        s.execute(update(Message).values(created_at=utcnow() - timedelta(days=100)))
    phone.send(A, "hello today")
    with stack_app.app_context():
        jobs.reconcile()
        jobs.reconcile()
        queues.work_burst(svc.redis)
    bodies = {m.body for m in rows(stack_app, Message)}
    assert "hello today" in bodies and "hello from long ago" not in bodies
    assert len(rows(stack_app, AuditEvent, AuditEvent.action == "privacy.purge")) == 1
    url = stack_app.config["DATABASE_URL"]
    if url.startswith("sqlite"):  # the words left the write-ahead log too
        wal = url.split("///", 1)[1] + "-wal"
        assert not os.path.exists(wal) or os.path.getsize(wal) == 0
