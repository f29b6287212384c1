"""The inbound hot path's cost in SQL statements: a test that fails if a webhook grows past it.

Counted at the driver (every statement the engine sends, savepoints and SQLite's BEGIN included),
for a JOIN from a new number and for a known sender's answer, through the signed Twilio webhook.
"""
from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from itertools import count
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Select, select
from sqlalchemy.engine.interfaces import CacheStats
from sqlalchemy.sql.cache_key import HasCacheKey

from gateway.models import Message, Report
from gateway.people import contacts
from tests.conftest import PUBLIC_BASE
from tests.helpers import sign, statements, svc
from tests.reporting import ONE_SMS_REPORT

_sids = count(1)
# The figures after issue 14 (docs/benchmarks.md): lower them when the path gets cheaper.
# PostgreSQL: JOIN = find, insert contact, insert text, insert conversation, update contact,
# update text, insert reply. Known sender = lock contact, read conversation, insert text, update
# conversation, update contact, update text, insert reply. SQLite: its BEGIN IMMEDIATE is one more
# statement, and the contact and its conversation are read together (the lock is the whole file).
LIMITS = {"postgresql": {"join": 7, "known": 7}, "sqlite": {"join": 8, "known": 7}}


def post(app: Flask, sender: str, body: str) -> None:
    params = {"MessageSid": f"SM{next(_sids):032x}", "From": sender, "To": "+15005550006", "Body": body}
    response = app.test_client().post("/sms/twilio", data=params,
                                      headers={"X-Twilio-Signature": sign(PUBLIC_BASE + "/sms/twilio", params)})
    assert response.status_code == 200 and b"<Message>" in response.data


def test_a_join_and_a_known_senders_answer_cost_no_more_statements_than_measured(app: Flask) -> None:
    limits = LIMITS[svc(app).engine.dialect.name]
    post(app, "+265991000001", "JOIN")  # warm: the first request of a process loads what it caches
    with statements(app) as join:
        post(app, "+265991000002", "JOIN")
    with statements(app) as known:
        post(app, "+265991000002", "Chikondi")
    assert len(join) <= limits["join"], join
    assert len(known) <= limits["known"], known
    assert not any("SAVEPOINT" in s for s in join + known)  # savepoints only once a text has failed


def compiled_afresh(app: Flask) -> AbstractContextManager[list[str]]:
    """The statements SQLAlchemy compiled again instead of taking from its cache."""
    return statements(app, lambda context: context.compiled is not None
                      and context.cache_hit != CacheStats.CACHE_HIT)


def test_a_warm_process_compiles_no_statement_of_the_inbound_path_again(app: Flask) -> None:
    # A statement SQLAlchemy cannot cache (a dialect's ON CONFLICT insert, say) is compiled for
    # every text: about 1 ms of CPU each on this path.
    post(app, "+265991000011", "JOIN")  # warm: the first texts of a process compile what they run
    post(app, "+265991000011", "Chikondi")
    with compiled_afresh(app) as fresh:
        post(app, "+265991000012", "JOIN")
        post(app, "+265991000012", "Chikondi")
    assert fresh == []


def test_a_drained_contacts_texts_take_no_savepoint_unless_one_fails(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.inbound import receive

    gw = svc(app)
    post(app, "+265991000021", "JOIN")  # warm
    gw.inbound.pressure.forced = True  # stored for a worker to handle, as under a burst
    texts = {"+265991000022": ("JOIN", "Chikondi", "Zomba"), "+265991000023": ("JOIN", "Chisomo", "Blantyre")}
    for sender, bodies in texts.items():
        for body in bodies:
            params = {"MessageSid": f"SM{next(_sids):032x}", "From": sender, "To": "+15005550006", "Body": body}
            response = app.test_client().post("/sms/twilio", data=params, headers={
                "X-Twilio-Signature": sign(PUBLIC_BASE + "/sms/twilio", params)})
            assert response.status_code == 200 and b"<Message>" not in response.data
    with gw.sessions() as s:
        first, second = (contacts.find(s, sender).id for sender in texts)  # type: ignore[union-attr]
    with statements(app) as drained:
        assert len(gw.inbound.handle_pending(first)) == 3  # three replies queued
    assert drained and not any("SAVEPOINT" in s for s in drained), drained
    assert not any("FROM contact_tags" in s for s in drained), drained  # no flood: its tags are not read

    real = receive._handle_one

    def fails_on_blantyre(session, contact, message, *args, **kwargs):  # type: ignore[no-untyped-def]
        if message.body == "Blantyre":
            raise RuntimeError("a bug in a flow")
        return real(session, contact, message, *args, **kwargs)

    monkeypatch.setattr(receive, "_handle_one", fails_on_blantyre)
    with statements(app) as careful:
        assert len(gw.inbound.handle_pending(second)) == 2  # the texts before the failing one answered
    assert any("SAVEPOINT" in s for s in careful)  # the quick pass failed: each text in a savepoint
    with gw.sessions() as s:
        kept = s.scalars(select(Message).where(Message.body == "Blantyre")).one()
        assert (kept.status, kept.attempts) == (receive.SET_ASIDE, receive.MAX_ATTEMPTS)  # the careful way's end


@contextmanager
def selects_built(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Where gateway code ran a select built afresh. SQLAlchemy memoises a statement's cache key on
    the statement object, so only a select built anew has its key computed: building each read per
    text was a fifth of a drained text's CPU."""
    built: list[str] = []
    real = HasCacheKey._generate_cache_key

    def counting(self: HasCacheKey) -> Any:
        ours = [f for f in traceback.extract_stack()[:-1] if f"{os.sep}gateway{os.sep}" in f.filename]
        if isinstance(self, Select) and ours:  # (the test's own reads are not the path's)
            built.append(f"{ours[-1].name}:{ours[-1].lineno}")
        return real(self)

    monkeypatch.setattr(HasCacheKey, "_generate_cache_key", counting)
    yield built


# Every read of the handling path: a JOIN and its answers (the contact and its state, the open
# conversation), a text outside any flow (open pledges), a check's answer word (state_of) and an
# anonymous report, whose end forgets the exchange (privacy.forget, drop_if_bare).
CONVERSATION = ("JOIN", "Chikondi", "Zomba", "hello there", "YES", ONE_SMS_REPORT, "1")


def test_a_warm_process_builds_no_select_of_the_inbound_path_again(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = svc(app)

    def send(sender: str, body: str) -> None:
        params = {"MessageSid": f"SM{next(_sids):032x}", "From": sender, "To": "+15005550006", "Body": body}
        response = app.test_client().post("/sms/twilio", data=params, headers={
            "X-Twilio-Signature": sign(PUBLIC_BASE + "/sms/twilio", params)})
        assert response.status_code == 200

    def inline(sender: str) -> None:
        gw.inbound.pressure.forced = False
        for body in CONVERSATION:
            send(sender, body)

    def drained(sender: str) -> None:
        gw.inbound.pressure.forced = True  # stored, then handled as a worker's drain job does
        for body in CONVERSATION:
            send(sender, body)
        with gw.sessions() as s:  # (not contacts.find: the test's own reads are not counted)
            contact_id = s.scalars(select(Message.contact_id).where(Message.body == "Chikondi")
                                   .order_by(Message.id.desc())).first()
        assert contact_id is not None
        replies = gw.inbound.handle_pending(contact_id)  # queued replies' ids
        assert len(replies) >= len(CONVERSATION) - 2

    inline("+265991000041")  # warm: each statement is built once in a process
    drained("+265991000042")
    with selects_built(monkeypatch) as built:
        inline("+265991000043")
        drained("+265991000044")
    assert built == [], "; ".join(built)
    with gw.sessions() as s:  # the reports were filed, and forgotten on both paths (their words detached)
        assert len(s.scalars(select(Report).where(Report.anonymous.is_(True))).all()) == 4
        assert s.scalars(select(Message).where(Message.body == ONE_SMS_REPORT)).all() == []
