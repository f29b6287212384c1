"""/api/v1/cases and /api/v1/officials: cases with their timelines, organizers' moves, the directory and its import.

A case never carries who reported: its reports are ref, answer, date and details only, and the only
texts in it are those to and from officials. Officials' numbers are masked for viewer tokens.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import cases as domain
from gateway import services
from gateway.core.phones import mask_number
from gateway.db import get_session
from gateway.models import Case, CaseEvent, Contact, Official, utcnow
from gateway.people import audit, contacts, officials
from gateway.web import casedata
from gateway.web.api.auth import caller, requires
from gateway.web.api.blueprint import bp
from gateway.web.api.errors import ApiError, invalid
from gateway.web.api.inputs import (
    MAX_CSV,
    MAX_ID,
    MAX_NOTE,
    check_text,
    json_body,
    json_type,
    languages,
    pagination,
    place_field,
    query_args,
    string_field,
)
from gateway.web.api.shapes import get_or_404, iso
from gateway.web.paging import paginate

CASE_FILTERS = ("status", "place", "service", "official_id")


def case_json(case: Case, officials: dict[int, Official], now: Any) -> dict[str, Any]:
    """A case's summary (no reports, no reporters)."""
    o = officials.get(case.official_id) if case.official_id else None
    return {"id": case.id, "ref": case.ref, "place": case.place, "country": case.country, "service": case.service,
            "status": case.status, "overdue": casedata.is_overdue(case, now), "level": case.level,
            "official": {"id": o.id, "name": o.name, "role": o.role} if o else None,
            "report_count": case.report_count, "deadline_at": iso(case.deadline_at),
            "promised_for": case.promised_for.isoformat() if case.promised_for else None,
            "opened_at": iso(case.opened_at), "sent_at": iso(case.sent_at),
            "acknowledged_at": iso(case.acknowledged_at), "promised_at": iso(case.promised_at),
            "resolved_at": iso(case.resolved_at), "closed_at": iso(case.closed_at), "updated_at": iso(case.updated_at)}


def event_json(e: CaseEvent) -> dict[str, Any]:
    return {"at": iso(e.at), "kind": e.kind, "status": e.status, "actor": e.actor, "note": e.note,
            "official_id": e.official_id}


def case_detail(session: Session, case: Case) -> dict[str, Any]:
    """A case with its timeline, its reports without reporters, and the texts to and from officials."""
    events = casedata.timeline(session, case)
    officials = casedata.officials_by_id(session, {e.official_id for e in events} | {case.official_id})
    body = case_json(case, officials, utcnow())
    body["timeline"] = [event_json(e) for e in events]
    body["reports"] = [{"ref": r.ref, "delivered": r.delivered, "date": r.date, "details": r.details,
                        "verification": r.verification}
                       for r in casedata.case_reports(session, case)]
    body["messages"] = [{"at": iso(m.created_at), "direction": m.direction, "official_id": o.id, "body": m.body,
                         "status": m.status} for m, o in casedata.official_messages(session, case, events)]
    return body


@bp.get("/cases")
@requires("viewer")
def list_cases() -> ResponseReturnValue:
    """Cases, newest first, filtered by status (overdue: marked so or past the deadline), place, service, official."""
    args = query_args((*CASE_FILTERS, "page", "per_page"))
    page, per_page = pagination(args)
    status = args.get("status", "").lower() or None
    if status is not None and status not in casedata.STATUSES:
        raise invalid("status", f"expected one of {', '.join(casedata.STATUSES)}")
    official_id = None
    if "official_id" in args:
        if not args["official_id"].isdigit() or not 0 < int(args["official_id"]) <= MAX_ID:
            raise invalid("official_id", "expected an official's id, a whole number")
        official_id = int(args["official_id"])
    place = place_field("place", args["place"]) if "place" in args else None
    which = casedata.CaseFilter(status, place, args.get("service", "").lower() or None, official_id)
    session = get_session()
    now = utcnow()
    listing = paginate(session, casedata.ordered(which.apply(select(Case), now)), number=page, size=per_page,
                       clamp=False)
    officials = casedata.officials_by_id(session, {c.official_id for c in listing.items})
    return jsonify(data=[case_json(c, officials, now) for c in listing.items], pagination=listing.meta())


@bp.get("/cases/<int:case_id>")
@requires("viewer")
def get_case(case_id: int) -> ResponseReturnValue:
    """One case with its timeline, reports (never who reported) and officials' texts."""
    session = get_session()
    return jsonify(case_detail(session, get_or_404(session, Case, case_id, "case")))


def _move(case_id: int, move: Callable[[Session, Case], Any]) -> ResponseReturnValue:
    """One domain move (the domain writes the timeline and the audit log): 409 with its sentence when refused."""
    session = get_session()
    case = get_or_404(session, Case, case_id, "case", lock=True)
    try:
        result = move(session, case)
    except domain.CaseError as exc:
        session.rollback()
        raise ApiError(409, "conflict", str(exc)) from None
    session.commit()
    body = case_detail(session, case)
    if result is None:  # send: nobody to send to (the timeline says so)
        body["warning"] = (f"Not sent: no official at rung {case.level} answers for {case.service} in "
                           f"{case.place}, or their phone cannot be texted.")
    return jsonify(body)


def _optional_body(allowed: tuple[str, ...]) -> dict[str, Any]:
    """A JSON body when one is sent; none at all is an empty one."""
    return json_body(allowed) if request.content_length or request.is_json else {}


@bp.post("/cases/<int:case_id>/send")
@requires("organizer")
def send_case(case_id: int) -> ResponseReturnValue:
    """Send the case to its official now (one SMS). No body."""
    return _move(case_id, lambda s, c: domain.send(s, c, actor=caller().actor, now=utcnow()))


@bp.post("/cases/<int:case_id>/escalate")
@requires("organizer")
def escalate_case(case_id: int) -> ResponseReturnValue:
    """Send the case up one rung now; an optional body {"note": "..."}."""
    note = string_field(_optional_body(("note",)), "note", max_length=MAX_NOTE)
    return _move(case_id, lambda s, c: domain.escalate(s, c, actor=caller().actor, now=utcnow(), note=note))


@bp.post("/cases/<int:case_id>/close")
@requires("organizer")
def close_case(case_id: int) -> ResponseReturnValue:
    """Close the case by hand: {"note": "why", "resolved": false}."""
    data = json_body(("note", "resolved"))
    note = string_field(data, "note", max_length=MAX_NOTE, required=True)
    assert note is not None
    resolved = data.get("resolved", False)
    if not isinstance(resolved, bool):
        raise invalid("resolved", f"expected true or false, got {json_type(resolved)}")
    return _move(case_id, lambda s, c: domain.close(s, c, actor=caller().actor, note=note, now=utcnow(),
                                                    resolved=resolved))


# --------------------------------------------------------------------------- officials


def official_json(o: Official, c: Contact, record: casedata.OfficialRecord) -> dict[str, Any]:
    number = contacts.number_of(c)
    if caller().role == "viewer":
        number = mask_number(number)
    return {"id": o.id, "name": o.name, "role": o.role, "number": number, "language": o.language,
            "places": list(o.places or []), "services": list(o.services or []), "level": o.level,
            "active": bool(o.active), "created_at": iso(o.created_at), "record": record.as_json()}


@bp.get("/officials")
@requires("viewer")
def list_officials() -> ResponseReturnValue:
    """The directory by rung then name, each with their answers and response times; viewers get masked numbers."""
    args = query_args(("page", "per_page"))
    page, per_page = pagination(args)
    session = get_session()
    listing = paginate(session, select(Official, Contact).join(Contact, Contact.id == Official.contact_id)
                       .order_by(Official.level, Official.name, Official.id), number=page, size=per_page,
                       clamp=False, scalars=False)
    records = casedata.records(session, [o.id for o, _c in listing.items])
    return jsonify(data=[official_json(o, c, records[o.id]) for o, c in listing.items], pagination=listing.meta())


@bp.post("/officials/import")
@requires("organizer")
def import_officials() -> ResponseReturnValue:
    """Import officials from CSV text sent as JSON {"csv": "number,name,role,language,places,services,level\\n..."}."""
    data = json_body(("csv",))
    text = data.get("csv")
    if not isinstance(text, str):
        raise invalid("csv", "is required: the CSV file's text" if text is None
                      else f"expected a string, got {json_type(text)}")
    check_text("csv", text)
    if len(text) > MAX_CSV:
        raise invalid("csv", f"is longer than {MAX_CSV} characters")
    session = get_session()
    imported, errors = officials.import_csv(
        session, text, default_country=services().settings.default_country,
        gazetteers=list(services().flows.gazetteers.values()), languages=languages())
    audit.record(session, caller().actor, "officials.import", via="api", imported=imported, errors=len(errors))
    session.commit()
    return jsonify(imported=imported, errors=errors)
