"""One contact's messages are handled once each, in arrival order, even from concurrent requests."""
from __future__ import annotations

import threading
import time

from sqlalchemy import select

from gateway import engine, inbound
from gateway.models import Conversation, Message
from gateway.providers.base import InboundSMS
from tests.transcript import Phone

A = "+265991234567"


def test_concurrent_messages_from_one_contact_are_handled_in_order(app, monkeypatch) -> None:
    svc = app.extensions["gateway"]
    Phone(app).send(A, "REPORT")
    first = inbound.store(svc.sessions, InboundSMS("twilio", "SM-a", A, None, "1"), "MW")
    second = inbound.store(svc.sessions, InboundSMS("twilio", "SM-b", A, None, "Zomba"), "MW")

    real_handle = engine.handle

    def slow_handle(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.2)  # widen the window in which a missing lock would let both requests in
        return real_handle(*args, **kwargs)

    monkeypatch.setattr(engine, "handle", slow_handle)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def request() -> None:
        try:
            barrier.wait()
            inbound.handle_pending(svc.sessions, first.contact_id, svc.flows, "Net")
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors

    with svc.sessions() as s:
        replies = {m_id: [r.body for r in inbound.replies_to(s, m_id)] for m_id in (first.message_id, second.message_id)}
        conv = s.scalars(select(Conversation).where(Conversation.closed_at.is_(None))).one()
        handled = s.scalars(select(Message.handled_at).where(Message.provider == "twilio")
                            .order_by(Message.id)).all()
    assert replies[first.message_id] == ["Where? Reply with your district, e.g. Zomba."]
    assert replies[second.message_id] == ["Did it arrive? 1 Yes 2 No 3 Partly"]
    assert conv.answers == {"service": "clinic", "place": "Zomba"}
    assert handled[0] <= handled[1]
