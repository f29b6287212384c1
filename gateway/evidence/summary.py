"""Back to the community: the figures of a place's due dates in a month, and the one SMS that tells them.

A due date counts when its delivery check closed with answers (delivered, not delivered or partly);
'came' is those whose answers said delivered. Checks nobody answered are not in the figures: the
summary says what supporters saw, not what nobody reported. The organizer edits the draft and sends
it through the normal broadcast preview and launch.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from babel.core import UnknownLocaleError
from babel.dates import format_date
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.cases import ops
from gateway.core import schedule as rules
from gateway.core.brief import parse_month
from gateway.evidence.schedules import label_for
from gateway.models import Check, CheckKind, CheckStatus, ServiceSchedule

ANSWERED = (rules.DELIVERED, rules.NOT_DELIVERED, rules.PARTLY_DELIVERED)


@dataclass(frozen=True)
class Figures:
    place: str
    service: str
    month: date  # its first day
    came: int
    due: int


def month_of(text: str | None, today: date) -> date:
    """'2026-11' -> 2026-11-01; none given is this month; anything else is BadInput (the brief's rule)."""
    if not (text or "").strip():
        return today.replace(day=1)
    return parse_month(text or "")


def figures(session: Session, place: str, service: str | None, month: date) -> Figures:
    """How many of the place's answered due dates in the month the service came (the busiest service if none)."""
    end = (month + timedelta(days=32)).replace(day=1)
    base = select(Check).where(Check.kind == CheckKind.DELIVERY.value, Check.place == place,
                               Check.status == CheckStatus.CLOSED.value, Check.outcome.in_(ANSWERED),
                               Check.due_on >= month, Check.due_on < end)
    if not service:
        service = session.scalar(select(Check.service).where(Check.place == place, Check.kind == "delivery")
                                 .group_by(Check.service).order_by(func.count().desc(), Check.service)) or "clinic"
    rows = list(session.scalars(base.where(Check.service == service)))
    return Figures(place, service, month, sum(1 for c in rows if c.outcome == rules.DELIVERED), len(rows))


def month_name(month: date, language: str) -> str:
    """The month's name in a language (Babel's CLDR data: 'marzo', 'Malichi'); English if it has none."""
    try:
        return str(format_date(month, "LLLL", locale=language))
    except (UnknownLocaleError, ValueError):
        return month.strftime("%B")


def drafts(session: Session, f: Figures) -> dict[str, str]:
    """The summary in every language of the flows, each one SMS (gateway/core/schedule.py draft_summary)."""
    flows = ops.flows_of(session)
    schedule = session.scalars(select(ServiceSchedule).where(ServiceSchedule.place == f.place,
                                                             ServiceSchedule.service == f.service)
                               .order_by(ServiceSchedule.active.desc(), ServiceSchedule.id.desc())).first()
    labels = dict(schedule.labels or {}) if schedule else {}
    out = {}
    for lang in flows.languages:
        texts = flows.system.texts.get("community_summary") or {}
        short = flows.system.texts.get("community_summary_short") or {}
        if not texts:
            continue
        month = month_name(f.month, lang)
        out[lang] = rules.draft_summary(flows.text(texts, lang), place=f.place,
                                        label=label_for(session, labels, f.service, lang), came=f.came, due=f.due,
                                        month=month, short_template=flows.text(short, lang) if short else None)
    return out
