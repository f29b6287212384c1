"""Retention: `privacy purge --older-than` forgets old words and keeps recent ones and the evidence."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from gateway.models import Contact, Conversation, Message, Report, utcnow
from tests.reporting import file_anonymous_report
from tests.transcript import Phone


def test_purge_removes_old_bodies_only(app, runner) -> None:
    old = Phone(app, now=utcnow() - timedelta(days=100))
    old.send("+265991234567", "hello long ago")
    old.send("+265991234567", "JOIN")
    file_anonymous_report(lambda text: old.send("+265991234567", text))
    with app.extensions["gateway"].sessions() as s, s.begin():  # the Phone's clock stamps handling, not storage
        for m in s.scalars(select(Message)):
            m.created_at = utcnow() - timedelta(days=100)
    Phone(app).send("+265991234567", "hello today")
    result = runner.invoke(args=["privacy", "purge", "--older-than", "90d"])
    assert result.exit_code == 0, result.output
    with app.extensions["gateway"].sessions() as s:
        bodies = {m.body for m in s.scalars(select(Message))}
        report = s.scalars(select(Report)).one()
    assert "hello today" in bodies and "hello long ago" not in bodies and "JOIN" not in bodies
    assert report.details == "nurse absent"  # the evidence stays
    assert runner.invoke(args=["privacy", "purge", "--older-than", "soon"]).exit_code != 0


def test_anonymous_report_reply_sent_through_the_queue_keeps_no_words(stack_app) -> None:
    """On a channel without inline replies the reference reply is queued: once sent, its body goes."""
    from gateway.inbound import receive as inbound
    from gateway.outbound import queues
    from gateway.channels.base import InboundSMS

    svc = stack_app.extensions["gateway"]
    queued: list[int] = []

    def send(text: str) -> list[str]:
        got = inbound.receive(svc.sessions, InboundSMS("console", f"in-{len(queued)}-{text[:3]}", "+265991234567",
                                                       None, text), "MW", svc.flows, "Our Network", inline=False)
        queued.extend(got.queued)
        with svc.sessions() as s:
            return [m.body for m in s.scalars(select(Message).where(Message.id.in_(got.queued)))]

    file_anonymous_report(send)
    with svc.sessions() as s:  # not sent yet: the reply still knows where to go, and nothing else
        waiting = s.scalars(select(Message).where(Message.id.in_(queued))).all()
    assert all(m.contact_id is not None and m.conversation_id is None and m.reply_to_id is None for m in waiting)
    with stack_app.app_context():
        queues.enqueue_ids(svc.redis, queued, name=queues.REPLIES)
        queues.work_burst(svc.redis)
    with svc.sessions() as s:
        report = s.scalars(select(Report)).one()
        out = s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id)).all()
        contacts = s.scalar(select(func.count()).select_from(Contact))
    assert report.anonymous and report.contact_id is None
    assert svc.provider.sent[-1][1].startswith("Thank you") and report.ref in svc.provider.sent[-1][1]
    assert out and all(m.status == "sent" and (m.body, m.contact_id, m.handled_by) == (None, None, None) for m in out)
    assert contacts == 0  # the report was all this number ever sent


def test_purge_forgets_conversations_older_versions_only_blanked(app) -> None:
    """Before, an anonymous report's conversation and messages were blanked but kept their contact."""
    from gateway.people.contacts import new_contact
    from gateway.people.privacy import purge

    now = utcnow()
    with app.extensions["gateway"].sessions() as s, s.begin():
        c = new_contact(s, "+265991234567", consent_at=now)
        s.add(c)
        s.flush()
        conv = Conversation(contact_id=c.id, flow="report", language="en", started_at=now, expires_at=now,
                            closed_at=now, outcome="completed", redacted=True, answers={})
        s.add(conv)
        s.flush()
        s.add(Message(direction="in", contact_id=c.id, conversation_id=conv.id, channel="twilio", provider_id="SM1",
                      body=None, status="handled", handled_by="conversation", created_at=now, handled_at=now))
    with app.extensions["gateway"].sessions() as s, s.begin():
        purge(s, now - timedelta(days=90))
    with app.extensions["gateway"].sessions() as s:
        assert s.scalars(select(Conversation)).all() == []
        [m] = s.scalars(select(Message)).all()
    assert (m.contact_id, m.conversation_id, m.handled_by, m.provider_id) == (None, None, None, "SM1")
