"""Schedules, ticks and what each phone was asked, for the evidence tests."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import select

from gateway.evidence import checks, schedules
from gateway.models import Check, CheckAsk, Contact, Message
from gateway.people.contacts import number_of
from tests.helpers import svc


def add_schedule(app: Flask, **raw: Any) -> int:
    """A schedule through the same checks the console, API and CLI use; its id."""
    with svc(app).sessions() as s, s.begin():
        return schedules.create(s, schedules.values_from(s, raw), actor="test").id


def tick(app: Flask, at: datetime) -> dict[str, int]:
    with svc(app).sessions() as s, s.begin():
        return checks.tick(s, at)


def asked(app: Flask, check_id: int) -> list[str]:
    """The numbers asked in one check, sorted."""
    with svc(app).sessions() as s:
        ids = list(s.scalars(select(CheckAsk.contact_id).where(CheckAsk.check_id == check_id)))
        return sorted(number_of(c) for c in s.scalars(select(Contact).where(Contact.id.in_(ids))))


def all_checks(app: Flask) -> list[Check]:
    with svc(app).sessions() as s:
        return list(s.scalars(select(Check).order_by(Check.id)))


def texts_to(app: Flask, number: str) -> list[Message]:
    """Outbound rows to one phone, oldest first."""
    with svc(app).sessions() as s:
        contact = next(c for c in s.scalars(select(Contact)) if number_of(c) == number)
        return list(s.scalars(select(Message).where(Message.contact_id == contact.id, Message.direction == "out")
                              .order_by(Message.id)))
