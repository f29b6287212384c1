"""Nothing blocks STOP: a text that cannot be handled is retried, then set aside, and the sender's
later texts (STOP above all) are handled as usual (security review H3, issue 11 item 3).

    +265991234567 > REPORT OTHER <a 640-character answer>
    +265991234567 < Where? ...
    ...
    +265991234567 > 1              (saving the report fails: PostgreSQL refuses 640 characters
    +265991234567 <                 in a 200-character column; retried, then set aside)
    +265991234567 > STOP
    +265991234567 < You will get no more messages from Our Network. Text START to join again.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from gateway.core import engine
from gateway.inbound import receive as inbound
from gateway.outbound import jobs, queues
from gateway.models import Contact, Conversation, Message, Report, utcnow
from gateway.channels.base import InboundSMS
from gateway.core.phones import mask_number
from tests.helpers import store_unhandled
from tests.transcript import Phone

A = "+265991234567"
STOPPED = "You will get no more messages from Our Network. Text START to join again."
LONG = " ".join(["the mobile clinic van came without medicines and the nurse sent everyone home"] * 8)[:640]


def _inbound(app, number: str = A) -> list[Message]:  # type: ignore[no-untyped-def]
    with app.extensions["gateway"].sessions() as s:
        return list(s.scalars(select(Message).where(Message.direction == "in").order_by(Message.id)))


def _contact(app, number: str = A) -> Contact:  # type: ignore[no-untyped-def]
    from gateway.people import contacts

    with app.extensions["gateway"].sessions() as s:
        return contacts.find(s, number)


def _open_conversation(app) -> bool:  # type: ignore[no-untyped-def]
    with app.extensions["gateway"].sessions() as s:
        return s.scalar(select(Conversation.id).where(Conversation.closed_at.is_(None))) is not None


def _report_to_the_end(phone: Phone) -> list[str]:
    """REPORT OTHER <long answer>, then the remaining answers until the flow saves (or would)."""
    replies = phone.send(A, f"REPORT OTHER {LONG}")
    assert replies and replies[-1].startswith("Where?")
    for answer in ("Zomba", "1", "SKIP"):  # reports are anonymous unless NAME is given: no question
        replies = phone.send(A, answer)
    return replies


def _broken_save(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("the report could not be saved")

    monkeypatch.setattr(inbound, "_save_report", broken)


def _break_every_pass(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A bug outside any one text: every handling pass fails before a text is read."""
    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug before any text is read")

    monkeypatch.setattr(inbound, "_handle_locked", broken)


def _stranded(app, texts: list[str]) -> list[int | None]:  # type: ignore[no-untyped-def]
    """Texts stored but never handled (their request died), old enough for the reconciler; their ids."""
    svc = app.extensions["gateway"]
    ids = [store_unhandled(app, A, text, provider_id=f"SM-{i}")[0] for i, text in enumerate(texts)]
    with svc.sessions() as s, s.begin():
        s.execute(update(Message).values(created_at=utcnow() - timedelta(minutes=5)))
    return ids


def test_the_long_other_service_answer_ends_with_stop_confirmed(stack_app) -> None:
    """H3's trigger, as is: on PostgreSQL the 640 characters do not fit reports.service_detail."""
    phone = Phone(stack_app)
    _report_to_the_end(phone)
    assert phone.send(A, "STOP") == [STOPPED]
    assert _contact(stack_app).status == "stopped"
    assert [m for m in _inbound(stack_app) if m.handled_at is None] == []
    with stack_app.extensions["gateway"].sessions() as s:
        saved = s.scalar(select(Report.id)) is not None
    set_aside = [m for m in _inbound(stack_app) if m.status == "set_aside"]
    # Saved when the column takes the answer (SQLite; or once it is cut to fit), else set aside.
    assert saved or (len(set_aside) == 1 and set_aside[0].attempts == inbound.MAX_ATTEMPTS
                     and set_aside[0].error.startswith("DataError"))


def test_a_text_that_fails_is_set_aside_and_stop_is_still_confirmed(stack_app, monkeypatch) -> None:
    _broken_save(monkeypatch)
    phone = Phone(stack_app)
    assert _report_to_the_end(phone) == []  # nothing to say yet: organizers see it set aside
    failed = _inbound(stack_app)[-1]
    assert (failed.status, failed.handled_by, failed.attempts) == ("set_aside", "set_aside", inbound.MAX_ATTEMPTS)
    assert failed.handled_at is not None
    assert failed.error == "RuntimeError: the report could not be saved"
    assert phone.send(A, "HELP")[0].startswith("Our Network: alerts and service reports")  # later texts go on
    assert phone.send(A, "STOP") == [STOPPED]
    assert _contact(stack_app).status == "stopped"
    assert [m.status for m in _inbound(stack_app)][-2:] == ["handled", "handled"]
    assert [m for m in _inbound(stack_app) if m.handled_at is None] == []


def test_stop_in_the_same_batch_as_a_failing_text_is_applied_and_confirmed(stack_app, monkeypatch) -> None:
    """A text left unhandled (its request died) fails when handled; the STOP behind it still wins."""
    svc = stack_app.extensions["gateway"]
    Phone(stack_app).send(A, "JOIN")
    stranded, _ = store_unhandled(stack_app, A, "Zomba", provider_id="SM-1")
    real = engine.handle

    def fails_on_zomba(fs, contact, state, text, now, **kw):  # type: ignore[no-untyped-def]
        if text == "Zomba":
            raise KeyError("place")
        return real(fs, contact, state, text, now, **kw)

    monkeypatch.setattr(engine, "handle", fails_on_zomba)
    received = inbound.receive(svc.sessions, InboundSMS("console", "SM-2", A, None, "stop"), "MW", svc.flows,
                               "Our Network")
    assert received.texts == (STOPPED,)
    with svc.sessions() as s:
        kept = s.get(Message, stranded)
        assert (kept.status, kept.error, kept.attempts) == ("set_aside", "KeyError: '…'", inbound.MAX_ATTEMPTS)
        assert s.get(Contact, received.contact_id).status == "stopped"


def test_stop_is_applied_even_when_handling_itself_is_broken(stack_app, monkeypatch) -> None:
    """The last guard: if the engine fails on every text, a STOP still stops the contact, and says so."""
    phone = Phone(stack_app)
    phone.send(A, "JOIN")

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug in a flow")

    monkeypatch.setattr(engine, "handle", broken)
    assert phone.send(A, "Zomba") == []
    assert phone.send(A, "Leka") == [STOPPED]  # any language's word; the reply in the contact's language
    assert _contact(stack_app).status == "stopped"
    assert phone.send(A, "STOP") == []  # confirmed once already
    stop = _inbound(stack_app)[-2]
    assert (stop.handled_by, stop.status, stop.error) == ("stop", "handled", "RuntimeError: a bug in a flow")
    assert [m for m in _inbound(stack_app) if m.handled_at is None] == []


def test_a_failing_text_does_not_hold_up_the_next_ones(stack_app, monkeypatch) -> None:
    """The same sender's next texts are handled in order as soon as the failing one is set aside."""
    _broken_save(monkeypatch)
    phone = Phone(stack_app)
    _report_to_the_end(phone)
    monkeypatch.undo()
    assert phone.send(A, "JOIN")[0].startswith("Our Network: you joined")
    assert phone.send(A, "Chisomo")[0].startswith("Where do you live?")
    assert _contact(stack_app).status == "active"


def test_the_reconciler_retries_a_bounded_number_of_times_then_sets_aside(stack_app, monkeypatch) -> None:
    """A pass that fails as a whole no longer makes the reconcile job fail every minute."""
    svc = stack_app.extensions["gateway"]
    [stored] = _stranded(stack_app, ["JOIN"])
    _break_every_pass(monkeypatch)
    with stack_app.app_context():
        for attempt in range(1, inbound.MAX_ATTEMPTS + 1):
            result = jobs.reconcile()  # does not raise: the spool replay after it still runs
            assert result["inbound_handled_late"] == 0
            with svc.sessions() as s:
                row = s.get(Message, stored)
                assert row.attempts == attempt
        assert (row.status, row.error) == ("set_aside", "RuntimeError: a bug before any text is read")
        assert row.handled_at is not None
        assert jobs.reconcile()["inbound_handled_late"] == 0  # nothing stranded is left
    monkeypatch.undo()
    assert Phone(stack_app).send(A, "STOP") == [STOPPED]


def test_receive_counts_a_failed_pass_against_the_oldest_text(stack_app, monkeypatch) -> None:
    """When a whole handling pass fails in a webhook, the oldest pending text has one attempt fewer left."""
    svc = stack_app.extensions["gateway"]

    _break_every_pass(monkeypatch)
    phone = Phone(stack_app)
    assert phone.send(A, "JOIN") == []
    first = _inbound(stack_app)[0]
    assert (first.status, first.attempts, first.handled_at) == ("received", 1, None)
    phone.send(A, "again")
    phone.send(A, "and again")
    first = _inbound(stack_app)[0]
    assert (first.status, first.attempts) == ("set_aside", inbound.MAX_ATTEMPTS)
    assert first.error == "RuntimeError: a bug before any text is read"
    monkeypatch.undo()
    assert phone.send(A, "STOP")[-1] == STOPPED  # after the hint owed to "again"
    assert [m for m in _inbound(stack_app) if m.handled_at is None] == []
    with svc.sessions() as s:
        assert s.scalar(select(Contact.status)) == "stopped"


@pytest.mark.parametrize("error, stored", [
    (RuntimeError("bad value '+265991234567' for 0991234567"), "RuntimeError: bad value '…' for …"),
    (ValueError("x" * 500), "ValueError: " + "x" * 188),
])
def test_the_stored_error_keeps_no_numbers_or_quoted_text(error: Exception, stored: str) -> None:
    assert inbound.describe_error(error) == stored
    assert len(inbound.describe_error(error)) <= 200


def test_a_database_error_is_stored_without_its_statement_or_parameters() -> None:
    from sqlalchemy.exc import DataError

    class Orig(Exception):
        pass

    exc = DataError("INSERT INTO reports (service_detail) VALUES (%(d)s)", {"d": "my words +265991234567"},
                    Orig("value too long for type character varying(200)\n"))
    assert inbound.describe_error(exc) == "DataError: value too long for type character varying(200)"


# --------------------------------------------------------------------------- where organizers see them


def _set_aside_one(app, monkeypatch) -> Message:  # type: ignore[no-untyped-def]
    _broken_save(monkeypatch)
    _report_to_the_end(Phone(app))
    monkeypatch.undo()
    return _inbound(app)[-1]


@pytest.mark.parametrize("role", ["viewer", "organizer"])
def test_the_console_lists_set_aside_texts_with_their_error(app, client, auth, monkeypatch, role: str) -> None:
    failed = _set_aside_one(app, monkeypatch)
    auth.login(role)
    dashboard = client.get("/").get_data(as_text=True)
    assert "1</b> set aside" in dashboard
    response = client.get("/set-aside")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "RuntimeError: the report could not be saved" in html and f'id="m{failed.id}"' in html
    if role == "viewer":
        assert A not in html and mask_number(A) in html
    else:
        assert A in html


def test_the_console_page_needs_a_login(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/set-aside").status_code == 302


def test_the_api_lists_set_aside_texts_without_full_numbers_for_viewers(app, auth, monkeypatch) -> None:
    from gateway.people import accounts
    from gateway.models import User

    failed = _set_aside_one(app, monkeypatch)
    Phone(app).send("+265881234567", "hello")  # a handled text is not listed
    client = app.test_client()
    assert client.get("/api/v1/messages/set-aside").status_code == 401
    tokens = {}
    for role in ("viewer", "organizer"):
        email = auth.user(role)
        with app.extensions["gateway"].sessions() as s, s.begin():
            tokens[role] = accounts.new_api_token(s.scalars(select(User).where(User.email == email)).one())
    for role, number in (("viewer", mask_number(A)), ("organizer", A)):
        response = client.get("/api/v1/messages/set-aside", headers={"Authorization": f"Bearer {tokens[role]}"})
        assert response.status_code == 200 and response.is_json
        body = response.get_json()
        assert body["pagination"]["total"] == 1
        (row,) = body["data"]
        assert row["id"] == failed.id and row["number"] == number and row["contact_id"] == failed.contact_id
        assert row["error"] == "RuntimeError: the report could not be saved"
        assert row["attempts"] == inbound.MAX_ATTEMPTS and row["set_aside_at"].endswith("Z")
        assert A not in response.get_data(as_text=True) or role == "organizer"
    bad = client.get("/api/v1/messages/set-aside?page=0", headers={"Authorization": f"Bearer {tokens['viewer']}"})
    assert bad.status_code == 400


def test_stop_wins_even_when_the_whole_pass_fails(stack_app, monkeypatch) -> None:
    """A bug outside any one text: the STOP is applied and confirmed at once, the JOIN before it set
    aside (handled after the STOP it would undo it), and a text after it waits its turn."""
    _break_every_pass(monkeypatch)
    phone = Phone(stack_app)
    assert phone.send(A, "JOIN") == []
    assert phone.send(A, "Stop") == [STOPPED]
    assert _contact(stack_app).status == "stopped"
    join, stop = _inbound(stack_app)
    assert (join.status, join.error) == ("set_aside", "RuntimeError: a bug before any text is read")
    assert (stop.status, stop.handled_by, stop.handled_at is not None) == ("handled", "stop", True)
    assert phone.send(A, "hello") == []
    assert _inbound(stack_app)[-1].handled_at is None  # the reconciler's, in its turn
    monkeypatch.undo()
    assert phone.send(A, "JOIN")[0].startswith("Our Network: you joined")  # their own JOIN, after the STOP


def test_the_reconciler_applies_a_stranded_stop_when_its_pass_fails(stack_app, monkeypatch) -> None:
    svc = stack_app.extensions["gateway"]
    _stranded(stack_app, ["JOIN", "STOP"])
    _break_every_pass(monkeypatch)
    with stack_app.app_context():
        jobs.reconcile()
        queues.work_burst(svc.redis)
    assert _contact(stack_app).status == "stopped"
    assert svc.provider.sent == [(A, STOPPED)]
    assert [m for m in _inbound(stack_app) if m.handled_at is None] == []
