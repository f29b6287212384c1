"""One contact's messages are handled once each, in arrival order, even from concurrent requests."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from gateway.channels.base import InboundSMS
from gateway.core import engine
from gateway.inbound import receive
from gateway.models import Conversation, Message
from tests.helpers import store_unhandled, svc
from tests.transcript import Phone

A = "+265991234567"


def test_concurrent_messages_from_one_contact_are_handled_in_order(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = svc(app)
    Phone(app).send(A, "REPORT")
    first, contact_id = store_unhandled(app, A, "1", channel="twilio", provider_id="SM-a")
    second, _ = store_unhandled(app, A, "Zomba", channel="twilio", provider_id="SM-b")

    real_handle = engine.handle

    def slow_handle(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.2)  # widen the window in which a missing lock would let both requests in
        return real_handle(*args, **kwargs)

    monkeypatch.setattr(engine, "handle", slow_handle)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def request() -> None:
        try:
            barrier.wait()
            receive.handle_pending(gw.sessions, contact_id, gw.flows, "Net")
        except BaseException as exc:  # noqa: BLE001 - surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors

    with gw.sessions() as s:
        replies = {m_id: [r.body for r in receive.replies_to(s, m_id)] for m_id in (first, second)}
        conv = s.scalars(select(Conversation).where(Conversation.closed_at.is_(None))).one()
        handled = s.scalars(select(Message.handled_at).where(Message.channel == "twilio")
                            .order_by(Message.id)).all()
    assert replies[first] == ["Where? Reply with your district, e.g. Zomba."]
    assert replies[second] == ["Did it arrive? 1 Yes 2 No 3 Partly"]
    assert conv.answers == {"service": "clinic", "place": "Zomba"}
    assert handled[0] <= handled[1]


def test_concurrent_webhooks_from_one_contact_store_and_handle_each_once(app: Flask,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """receive() locks the contact before storing: two requests at once are handled one after the other."""
    gw = svc(app)
    Phone(app).send(A, "REPORT")
    real_handle = engine.handle

    def slow_handle(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.2)
        return real_handle(*args, **kwargs)

    monkeypatch.setattr(engine, "handle", slow_handle)
    barrier = threading.Barrier(2)
    results: dict[str, receive.Received] = {}
    errors: list[BaseException] = []

    def request(sid: str, body: str) -> None:
        try:
            barrier.wait()
            results[sid] = receive.receive(gw.sessions, InboundSMS("twilio", sid, A, None, body), "MW",
                                           gw.flows, "Net")
        except BaseException as exc:  # noqa: BLE001 - surfaced below, as in the test above
            errors.append(exc)

    threads = [threading.Thread(target=request, args=a) for a in (("SM-1", "1"), ("SM-2", "1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    # The first answer is taken as the service; the second is then a (wrong) answer to "Where?".
    first, second = sorted(results.values(), key=lambda r: r.message_id or 0)
    assert first.texts == ("Where? Reply with your district, e.g. Zomba.",)
    assert len(second.texts) == 1 and second.texts != first.texts
    with gw.sessions() as s:
        handled = s.scalars(select(Message).where(Message.channel == "twilio", Message.direction == "in")).all()
    assert len(handled) == 2 and all(m.handled_at is not None for m in handled)
