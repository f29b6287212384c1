"""A flooding phone or an auto-reply loop stops getting replies and is flagged for organizers.

A whole JOIN and REPORT take 11 replies, so a person never meets the limit of 15 in 5 minutes.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from gateway.models import Contact, Message
from tests.transcript import Phone

A = "+265991234567"


def replies_to(app) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["gateway"].sessions() as s:
        return s.scalar(select(func.count()).select_from(Message).where(Message.direction == "out"))


def test_auto_reply_loop_goes_quiet_and_is_flagged(app) -> None:
    phone = Phone(app)
    answered = [bool(phone.send(A, f"HELP {i}")) for i in range(18)]  # another robot answering our help
    assert answered[:15] == [True] * 15 and not any(answered[15:])
    with app.extensions["gateway"].sessions() as s:
        contact = s.scalars(select(Contact)).one()
    assert "flood" in contact.tags
    phone.now += timedelta(minutes=6)
    assert phone.send(A, "HELP") != []  # the window passed: a person gets answers again


def test_stop_is_confirmed_even_in_a_flood(app) -> None:
    phone = Phone(app)
    for i in range(17):
        phone.send(A, f"HELP {i}")
    assert phone.send(A, "STOP") != []
    assert replies_to(app) == 16  # 15 help answers, then the STOP confirmation
