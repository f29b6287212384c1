"""Deadlines: each minute (the workers) or on demand (`flask --app app cases tick`).

A deadline that passes without an answer marks the case overdue, sends it to the next rung (the
official one level up for its place and service) with the history, and tells the organizers (a
case event, an audit entry and a log line; the console counts overdue cases). A promised date that
passes without DONE is overdue the same way. Deadlines end at midnight in the place's time zone.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from gateway.cases import ops
from gateway.core import ladder
from gateway.models import Case

logger = logging.getLogger(__name__)


def due(session: Session, now: datetime) -> list[Case]:
    """Cases waiting on an official whose deadline has passed, oldest deadline first, locked if the database can."""
    query = (select(Case).where(Case.deadline_at.is_not(None), Case.deadline_at <= now,
                                Case.status.in_(sorted(ladder.WAITING))).order_by(Case.deadline_at, Case.id))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # two workers never escalate one case twice
    return list(session.scalars(query))


def tick(session: Session, now: datetime) -> dict[str, Any]:
    """Apply every passed deadline now; counts of what happened."""
    overdue = escalated = stuck = 0
    for case in due(session, now):
        why = {ladder.PROMISED: "promise", ladder.ACKNOWLEDGED: "date"}.get(case.status, "ack")
        overdue += 1
        if ops.official_for(session, case.place, case.service, case.level + 1) is not None:
            ops.escalate_up(session, case, actor=ops.SYSTEM, now=now, why=why)
            escalated += 1
            logger.warning("case %s overdue: sent up to rung %d; organizers told", case.ref, case.level)
            continue
        before = session.get(ops.Official, case.official_id) if case.official_id else None
        days = ops.rules_of(session).for_service(case.service).days_at(case.level)
        note = ops._why(why, before.role if before else "official", days, case) + "; no official above this rung"
        case.deadline_at = None
        if case.status != ladder.OVERDUE:
            ops.move(session, case, ladder.OVERDUE, "overdue", actor=ops.SYSTEM, now=now, note=note)
        else:
            ops.record(session, case, "overdue", actor=ops.SYSTEM, now=now, note=note)
        stuck += 1
        logger.warning("case %s overdue at the top rung %d; organizers told", case.ref, case.level)
    return {"overdue": overdue, "escalated": escalated, "top_rung": stuck}


def overdue_count(session: Session) -> int:
    """Cases the organizers should look at: overdue now, or sent up the ladder and still unanswered."""
    return session.scalar(select(func.count()).select_from(Case).where(or_(
        Case.status == ladder.OVERDUE,
        (Case.level > 1) & Case.status.in_((ladder.SENT, ladder.DISPUTED))))) or 0
