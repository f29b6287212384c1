"""Retention: `privacy purge --older-than` forgets old words and keeps recent ones and the evidence."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from gateway.models import Message, Report, utcnow
from tests.transcript import Phone


def test_purge_removes_old_bodies_only(app, runner) -> None:
    old = Phone(app, now=utcnow() - timedelta(days=100))
    old.run("""
        +265991234567 > REPORT NAME CLINIC ZOMBA NO nurse absent
        +265991234567 < Thank you. Report * is recorded with your name...
    """)
    with app.extensions["gateway"].sessions() as s, s.begin():  # the Phone's clock stamps handling, not storage
        for m in s.scalars(select(Message)):
            m.created_at = utcnow() - timedelta(days=100)
    Phone(app).send("+265991234567", "hello today")
    result = runner.invoke(args=["privacy", "purge", "--older-than", "90d"])
    assert result.exit_code == 0, result.output
    with app.extensions["gateway"].sessions() as s:
        bodies = {m.body for m in s.scalars(select(Message))}
        report = s.scalars(select(Report)).one()
    assert "hello today" in bodies and "REPORT NAME CLINIC ZOMBA NO nurse absent" not in bodies
    assert report.details == "nurse absent"  # the evidence stays
    assert runner.invoke(args=["privacy", "purge", "--older-than", "soon"]).exit_code != 0


def test_anonymous_report_reply_sent_through_the_queue_keeps_no_words(stack_app) -> None:
    """On a channel without inline replies the reference reply is queued: once sent, its body goes."""
    from gateway import inbound, queue
    from gateway.providers.base import InboundSMS

    svc = stack_app.extensions["gateway"]
    for i, text in enumerate(["REPORT CLINIC ZOMBA", "no", "nurse absent"]):  # anonymous: no NAME given
        got = inbound.receive(svc.sessions, InboundSMS("console", f"in-{i}", "+265991234567", None, text), "MW",
                              svc.flows, "Our Network", inline=False)
        with stack_app.app_context():  # each reply goes out before the next text, as on a phone
            queue.enqueue_ids(svc.redis, list(got.queued), name=queue.REPLIES)
            queue.work_burst(svc.redis)
    with svc.sessions() as s:
        report = s.scalars(select(Report)).one()
        out = s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id)).all()
    assert report.anonymous and report.contact_id is None
    assert svc.provider.sent[-1][1].startswith("Thank you") and report.ref in svc.provider.sent[-1][1]
    assert [m.status for m in out] == ["sent", "sent", "sent"] and out[-1].body is None
