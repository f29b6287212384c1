"""Schedules: record, change and stop promised services; one checker of their values for every door.

The console, the API and the CLI hand raw values to `values_from`, which refuses what cannot work
with a sentence naming the field (ScheduleError); `create` and `update` write the checked values.
An official's PROMISE with a date becomes a one-date schedule for that case (`from_promise`).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.cases import ops
from gateway.core.places import find_place
from gateway.core.schedule import Plan, ask_after, one_segment
from gateway.core.segments import gsm7_replace
from gateway.models import Case, Check, CheckStatus, ServiceSchedule
from gateway.people import audit

logger = logging.getLogger(__name__)
MAX_LABEL = 60
MAX_EVERY = 366
MAX_SAMPLE = 50
DEFAULT_CHECK_AT = time(16, 0)  # a promise's day is asked about in the afternoon, when a service has come or not
FIELDS = ("place", "service", "labels", "starts_on", "every_days", "ends_on", "check_at", "sample_size",
          "no_threshold", "active")


class ScheduleError(ValueError):
    """A value that cannot work; `field` names it, the message says what to do.

    `template` and `params` keep the message's parts apart, so the console can say it in its reader's
    language (gateway/web/console/schedules.py); the API and CLI say `message`, in English.
    """

    def __init__(self, field: str, template: str, **params: object) -> None:
        message = template % params if params else template
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.template, self.params = field, message, template, params


@dataclass(frozen=True)
class Values:
    """A schedule's checked values."""

    place: str
    country: str | None
    service: str
    labels: dict[str, str]
    starts_on: date
    every_days: int | None
    ends_on: date | None
    check_at: time
    sample_size: int
    no_threshold: int
    active: bool = True


def _date(field: str, value: Any, required: bool) -> date | None:
    if value in (None, ""):
        if required:
            raise ScheduleError(field, "is required: a date like 2026-11-03")
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ScheduleError(field, "expected a date like 2026-11-03, got %(got)s", got=repr(str(value)[:20])) from None


def _int(field: str, value: Any, low: int, high: int, default: int | None) -> int | None:
    if value in (None, ""):
        return default
    # ASCII digits, at most six: str.isdigit takes "²", and int() refuses thousands of digits with an error.
    if isinstance(value, bool) or not (isinstance(value, int) or re.fullmatch(r"[0-9]{1,6}", str(value).strip())):
        raise ScheduleError(field, "expected a whole number from %(low)d to %(high)d", low=low, high=high)
    number = int(str(value).strip()) if not isinstance(value, int) else value
    if not low <= number <= high:
        raise ScheduleError(field, "expected a whole number from %(low)d to %(high)d, got %(got)d", low=low, high=high,
                            got=number)
    return number


def values_from(session: Session, raw: dict[str, Any], *, before: ServiceSchedule | None = None) -> Values:
    """Check raw values (strings from a form or the CLI, JSON from the API); missing ones keep `before`'s."""
    if before is not None and set(raw) <= {"active"} and not _flag(raw.get("active", before.active)):
        # Stopping checks nothing else: a schedule whose values no longer pass (a longer ORG_NAME, a
        # gazetteer changed) must still be stoppable. Starting again is checked like any change.
        return Values(before.place, before.country, before.service, dict(before.labels or {}), before.starts_on,
                      before.every_days, before.ends_on, before.check_at, before.sample_size, before.no_threshold,
                      False)
    old = {f: getattr(before, f) for f in FIELDS} if before is not None else {}
    given = {**old, **{k: v for k, v in raw.items() if k in FIELDS}}
    flows = ops.flows_of(session)
    name = str(given.get("place") or "").strip()
    if not name:
        raise ScheduleError("place", "is required: a place the gazetteers know, e.g. Zomba")
    place = find_place(name, flows.gazetteers.values())
    if place is None:
        raise ScheduleError("place", "%(place)s is not in the gazetteers (flows/places): check the spelling",
                            place=repr(name[:80]))
    service = str(given.get("service") or "").strip().lower()
    if not service or len(service) > 40 or not service.replace("_", "").isalnum():
        raise ScheduleError("service", "is required: one word as reports spell it, e.g. clinic or water")
    labels_raw = given.get("labels") or {}
    if not isinstance(labels_raw, dict):
        raise ScheduleError("labels", "expected an object: language -> label, e.g. {\"en\": \"the mobile clinic\"}")
    labels: dict[str, str] = {}
    for lang, label in labels_raw.items():
        if lang not in flows.languages:
            raise ScheduleError("labels", "%(lang)s is not a language of the flows (%(languages)s)",
                                lang=repr(str(lang)[:8]), languages=", ".join(flows.languages))
        # Plain letters for characters that would make every question a 70-character UCS-2 SMS (í -> i).
        text = gsm7_replace(" ".join(str(label or "").split()))[0]
        if len(text) > MAX_LABEL:
            raise ScheduleError("labels", "the %(lang)s label is longer than %(max)d characters", lang=lang,
                                max=MAX_LABEL)
        if text:
            labels[str(lang)] = text
    starts_on = _date("starts_on", given.get("starts_on"), True)
    assert starts_on is not None
    every = _int("every_days", given.get("every_days"), 1, MAX_EVERY, None)
    ends_on = _date("ends_on", given.get("ends_on"), False)
    if ends_on is not None and ends_on < starts_on:
        raise ScheduleError("ends_on", "is before starts_on")
    check_at = given.get("check_at") or DEFAULT_CHECK_AT
    if not isinstance(check_at, time):
        try:
            check_at = time.fromisoformat(str(check_at).strip())
        except ValueError:
            raise ScheduleError("check_at", "expected a local time like 16:00, got %(got)s",
                                    got=repr(str(check_at)[:10])) from None
    sample = _int("sample_size", given.get("sample_size"), 1, MAX_SAMPLE, 5)
    threshold = _int("no_threshold", given.get("no_threshold"), 1, MAX_SAMPLE, 3)
    assert sample is not None and threshold is not None
    if threshold > sample:
        raise ScheduleError("no_threshold", "is more than the sample size (%(sample)d): no check could reach it",
                            sample=sample)
    out = Values(place.name, place.country, service, labels, starts_on, every, ends_on,
                 check_at.replace(second=0, microsecond=0), sample, threshold, _flag(given.get("active", True)))
    _fits(session, out)
    return out


def _flag(value: Any) -> bool:
    """`active` as a bool, from JSON or a form's text."""
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


def timezone_of(session: Session, place: str | None, country: str | None) -> str:
    """The place's time zone (its gazetteer's), else its country's, else UTC."""
    flows = ops.flows_of(session)
    found = find_place(place, flows.gazetteers.values()) if place else None
    if found is not None:
        return found.timezone
    return next((g.timezone for g in flows.gazetteers.values() if country and g.country == country), "UTC")


def label_for(session: Session, labels: dict[str, str], service: str, language: str | None) -> str:
    """How a text names the service in a language: the schedule's label, else 'the <service word>'."""
    flows = ops.flows_of(session)
    lang = language or flows.default_language
    if labels.get(lang):
        return labels[lang]
    return ops.say(flows, "service_label", lang, service=ops.service_word(flows, service, lang))


def question(session: Session, text: str, place: str, labels: dict[str, str], service: str, lang: str) -> str:
    """A check's question (`check_ask` or `corroborate_ask`) in a language, the place in plain letters
    (Copán -> Copan: one accent would make it a 70-character UCS-2 SMS)."""
    return ops.say(ops.flows_of(session), text, lang, org=ops.env(session).settings.org_name,
                   place=gsm7_replace(place)[0], label=label_for(session, labels, service, lang))


def _fits(session: Session, v: Values) -> None:
    """Every language's questions (the delivery check's and the longer corroboration's) must be one SMS
    with this label and place."""
    flows = ops.flows_of(session)
    for key in ("check_ask", "corroborate_ask"):
        if not flows.system.texts.get(key):
            continue
        for lang in flows.languages:
            text = question(session, key, v.place, v.labels, v.service, lang)
            if not one_segment(text):
                raise ScheduleError("labels", "the %(lang)s question would be longer than one SMS: shorten the "
                                              "label (%(start)s...)", lang=lang, start=text[:60])


def create(session: Session, v: Values, *, actor: str, case_id: int | None = None) -> ServiceSchedule:
    """Record a schedule (audited)."""
    row = ServiceSchedule(place=v.place, country=v.country, service=v.service, labels=v.labels, starts_on=v.starts_on,
                          every_days=v.every_days, ends_on=v.ends_on, check_at=v.check_at,
                          sample_size=v.sample_size, no_threshold=v.no_threshold, active=v.active,
                          case_id=case_id, created_by=actor[:160])
    session.add(row)
    session.flush()
    audit.record(session, actor[:254], "schedule.create", schedule=row.id, place=v.place, service=v.service)
    return row


def update(session: Session, row: ServiceSchedule, v: Values, *, actor: str) -> ServiceSchedule:
    """Change a schedule; checks already made keep their due dates (audited)."""
    for f in FIELDS:
        setattr(row, f, getattr(v, f))
    row.country = v.country
    # Checks not asked yet follow the change: gone when stopped or no longer due, else at the new hour.
    zone = timezone_of(session, row.place, row.country)
    plan = Plan(row.starts_on, row.every_days, row.ends_on)
    for check in session.scalars(select(Check).where(Check.schedule_id == row.id,
                                                     Check.status == CheckStatus.PENDING.value)):
        if not row.active or not plan.is_due(check.due_on) or check.place != row.place:
            session.delete(check)
        else:
            check.service, check.ask_after = row.service, ask_after(check.due_on, row.check_at, zone)
    session.flush()
    audit.record(session, actor[:254], "schedule.update", schedule=row.id, active=row.active)
    return row


def listing(session: Session, *, active_only: bool = False) -> list[ServiceSchedule]:
    """Schedules by place, service, first date."""
    query = select(ServiceSchedule).order_by(ServiceSchedule.place, ServiceSchedule.service,
                                             ServiceSchedule.starts_on, ServiceSchedule.id)
    if active_only:
        query = query.where(ServiceSchedule.active.is_(True))
    return list(session.scalars(query))


def from_promise(session: Session, case: Case, day: date, official_id: int, now: datetime) -> ServiceSchedule:
    """An official promised a date: that day is asked about like any scheduled service (one per case)."""
    actor = f"official:{official_id}"
    row = session.scalars(select(ServiceSchedule).where(ServiceSchedule.case_id == case.id)).first()
    if row is not None:  # a new promise for the same case moves its date
        return update(session, row, _measured(session, Values(
            row.place, row.country, row.service, dict(row.labels or {}), day, None, None, row.check_at,
            row.sample_size, row.no_threshold)), actor=actor)
    found = find_place(case.place, ops.flows_of(session).gazetteers.values())
    v = Values(found.name if found else case.place, case.country, case.service, {}, day, None, None,
               DEFAULT_CHECK_AT, 5, 3)
    return create(session, _measured(session, v), actor=actor, case_id=case.id)


def _measured(session: Session, v: Values) -> Values:
    """A promise's values with the questions measured: an official's promise is never refused, so a label
    too long since is dropped (the service's word is shorter); if even that does not fit (ORG_NAME), the
    check will close unasked (checks.ask) and the log says so now."""
    try:
        _fits(session, v)
        return v
    except ScheduleError:
        pass
    bare = replace(v, labels={})
    try:
        _fits(session, bare)
    except ScheduleError as exc:
        logger.error("promised %s in %s: its question would not be one SMS (%s); it will not be asked",
                     v.service, v.place, exc.message)
    return bare


def as_json(row: ServiceSchedule) -> dict[str, Any]:
    """A schedule as the API and the CLI show it."""
    return {"id": row.id, "place": row.place, "country": row.country, "service": row.service,
            "labels": dict(row.labels or {}), "starts_on": row.starts_on.isoformat(), "every_days": row.every_days,
            "ends_on": row.ends_on.isoformat() if row.ends_on else None, "check_at": row.check_at.strftime("%H:%M"),
            "sample_size": row.sample_size, "no_threshold": row.no_threshold, "case_id": row.case_id,
            "active": bool(row.active), "created_by": row.created_by,
            "created_at": row.created_at.isoformat() + "Z" if row.created_at else None}
