"""A flooding phone or an auto-reply loop stops getting replies and is flagged for organizers.

A whole JOIN and REPORT take 11 replies, so a person never meets the limit of 15 in 5 minutes.
"""
from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import func, select

from gateway.models import Contact, Message
from tests.helpers import svc
from tests.transcript import Phone

A = "+265991234567"


HELP = "Our Network: alerts and service reports by SMS..."
STOPPED = "You will get no more messages from Our Network. Text START to join again."


def replies_to(app: Flask) -> int:
    with svc(app).sessions() as s:
        return s.scalar(select(func.count()).select_from(Message).where(Message.direction == "out"))


def test_auto_reply_loop_goes_quiet_and_is_flagged(app: Flask) -> None:
    phone = Phone(app)
    answered = [bool(phone.send(A, f"HELP {i}")) for i in range(18)]  # another robot answering our help
    assert answered[:15] == [True] * 15 and not any(answered[15:])
    with svc(app).sessions() as s:
        contact = s.scalars(select(Contact)).one()
    assert "flood" in contact.tags
    phone.now += timedelta(minutes=6)
    assert phone.send(A, "HELP") != []  # the window passed: a person gets answers again


def test_stop_is_confirmed_even_in_a_flood(app: Flask) -> None:
    answered = "".join(f"{A} > HELP {i}\n{A} < {HELP}\n" for i in range(15))  # another robot, answering our help
    Phone(app).run(answered + f"""
        # the 16th and 17th texts in 5 minutes get no answer
        {A} > HELP 15
        {A} <
        {A} > HELP 16
        {A} <
        # but STOP is still confirmed
        {A} > STOP
        {A} < {STOPPED}
    """)
    assert replies_to(app) == 16  # 15 help answers, then the STOP confirmation
