"""An inbound message stored but never handled is handled by the reconciler; its reply is queued."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from gateway.inbound import receive as inbound
from gateway.outbound import jobs
from gateway.models import Message, utcnow
from gateway.channels.base import InboundSMS


def test_stranded_inbound_is_handled_and_replied_through_the_queue(stack_app) -> None:
    svc = stack_app.extensions["gateway"]
    # Written to the console channel: the late reply leaves by the channel the supporter wrote to.
    stored = inbound.store(svc.sessions, InboundSMS("console", "SM-stranded", "+265991234567", None, "JOIN"), "MW")
    with svc.sessions() as s, s.begin():  # as if the web process died right after storing it
        s.execute(update(Message).where(Message.id == stored.message_id)
                  .values(created_at=utcnow() - timedelta(minutes=5)))
    with stack_app.app_context():
        result = jobs.reconcile()
        jobs.work_burst(svc.redis)
    assert result["inbound_handled_late"] == 1
    with svc.sessions() as s:
        reply = s.scalars(select(Message).where(Message.reply_to_id == stored.message_id)).one()
    assert reply.status == "sent" and reply.body.startswith("Our Network: you joined")
    assert svc.provider.sent == [("+265991234567", reply.body)]


def test_fresh_unhandled_inbound_is_left_to_its_request(stack_app) -> None:
    svc = stack_app.extensions["gateway"]
    inbound.store(svc.sessions, InboundSMS("twilio", "SM-fresh", "+265991234567", None, "JOIN"), "MW")
    with stack_app.app_context():
        assert jobs.reconcile()["inbound_handled_late"] == 0


def test_a_failure_while_handling_keeps_the_message_for_the_reconciler(stack_app, monkeypatch) -> None:
    """A pass that fails as a whole (not one text: that one is retried, then set aside; see
    tests/test_stop_wins.py) leaves the message stored, unhandled, for the reconciler."""
    svc = stack_app.extensions["gateway"]

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug in a flow")

    monkeypatch.setattr(inbound, "_handle_locked", broken)
    received = inbound.receive(svc.sessions, InboundSMS("console", "SM-bug", "+265991234567", None, "JOIN"),
                               "MW", svc.flows, "Our Network")
    assert received.message_id is not None and received.texts == ()
    with svc.sessions() as s:
        kept = s.get(Message, received.message_id)
        assert kept.body == "JOIN" and kept.handled_at is None and kept.status == "received"
        assert kept.attempts == 1  # of inbound.MAX_ATTEMPTS
        assert s.scalars(select(Message).where(Message.direction == "out")).all() == []
    monkeypatch.undo()
    with svc.sessions() as s, s.begin():
        s.execute(update(Message).where(Message.id == received.message_id)
                  .values(created_at=utcnow() - timedelta(minutes=5)))
    with stack_app.app_context():
        assert jobs.reconcile()["inbound_handled_late"] == 1
        jobs.work_burst(svc.redis)
    assert [to for to, _ in svc.provider.sent] == ["+265991234567"]
