"""An inbound message stored but never handled is handled by the reconciler; its reply is queued."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from gateway.outbound import jobs
from gateway.channels.base import InboundSMS
from gateway.inbound import receive
from gateway.models import Message, utcnow
from tests.helpers import sent, store_unhandled, svc, work


def test_stranded_inbound_is_handled_and_replied_through_the_queue(stack_app: Flask) -> None:
    # Written to the console channel: the late reply leaves by the channel the supporter wrote to.
    stored, _ = store_unhandled(stack_app, "+265991234567", "JOIN", provider_id="SM-stranded")
    with svc(stack_app).sessions() as s, s.begin():  # as if the web process died right after storing it
        s.execute(update(Message).where(Message.id == stored).values(created_at=utcnow() - timedelta(minutes=5)))
    with stack_app.app_context():
        result = jobs.reconcile()
    work(stack_app)
    assert result["inbound_handled_late"] == 1
    with svc(stack_app).sessions() as s:
        reply = s.scalars(select(Message).where(Message.reply_to_id == stored)).one()
    assert reply.status == "sent" and reply.body.startswith("Our Network: you joined")
    assert sent(stack_app) == [("+265991234567", reply.body)]


def test_fresh_unhandled_inbound_is_left_to_its_request(stack_app: Flask) -> None:
    store_unhandled(stack_app, "+265991234567", "JOIN", channel="twilio", provider_id="SM-fresh")
    with stack_app.app_context():
        assert jobs.reconcile()["inbound_handled_late"] == 0


def test_a_failure_while_handling_keeps_the_message_for_the_reconciler(stack_app: Flask,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass that fails as a whole (not one text: that one is retried, then set aside; see
    tests/test_stop_wins.py) leaves the message stored, unhandled, for the reconciler."""
    gw = svc(stack_app)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in a flow")

    monkeypatch.setattr(receive, "_handle_locked", broken)
    received = receive.receive(gw.sessions, InboundSMS("console", "SM-bug", "+265991234567", None, "JOIN"),
                               "MW", gw.flows, "Our Network")
    assert received.message_id is not None and received.texts == ()
    with gw.sessions() as s:
        kept = s.get(Message, received.message_id)
        assert kept.body == "JOIN" and kept.handled_at is None and kept.status == "received"
        assert kept.attempts == 1  # of receive.MAX_ATTEMPTS
        assert s.scalars(select(Message).where(Message.direction == "out")).all() == []
    monkeypatch.undo()
    with gw.sessions() as s, s.begin():
        s.execute(update(Message).where(Message.id == received.message_id)
                  .values(created_at=utcnow() - timedelta(minutes=5)))
    with stack_app.app_context():
        assert jobs.reconcile()["inbound_handled_late"] == 1
    work(stack_app)
    assert [to for to, _ in sent(stack_app)] == ["+265991234567"]


def test_one_reconciler_at_a_time_and_its_lock_is_released(stack_app: Flask) -> None:
    """While one worker reconciles, another's run is skipped (its worker goes back to sending)."""
    stored, _ = store_unhandled(stack_app, "+265991234567", "JOIN", provider_id="SM-locked")
    with svc(stack_app).sessions() as s, s.begin():
        s.execute(update(Message).where(Message.id == stored).values(created_at=utcnow() - timedelta(minutes=5)))
    redis = svc(stack_app).redis
    redis.set(jobs.RECONCILE_LOCK, "another-worker", ex=30)
    with stack_app.app_context():
        assert jobs.reconcile() == {"busy": True}
        assert redis.get(jobs.RECONCILE_LOCK) == b"another-worker"  # not ours to release
        redis.delete(jobs.RECONCILE_LOCK)
        assert jobs.reconcile()["inbound_handled_late"] == 1
    assert redis.get(jobs.RECONCILE_LOCK) is None
