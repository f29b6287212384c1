"""/api/v1/reports: the reports (an audited export) and their counts; never a phone number."""
from __future__ import annotations

from collections import Counter
from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from gateway.db import get_session
from gateway.models import Report
from gateway.people import audit, reports
from gateway.people.reports import ReportFilter
from gateway.web.api.auth import caller, requires
from gateway.web.api.blueprint import bp
from gateway.web.api.errors import invalid
from gateway.web.api.inputs import (
    datetime_field,
    delivered_field,
    pagination,
    place_field,
    query_args,
)
from gateway.web.api.shapes import iso
from gateway.web.paging import paginate

REPORT_FILTERS = ("place", "service", "delivered", "from", "to")


def report_filter(args: dict[str, str]) -> tuple[ReportFilter, dict[str, str]]:
    """The report filter the query string asks for (400 if wrong), and the filters applied (for the audit log)."""
    applied: dict[str, str] = {}
    place = service = delivered = None
    if "place" in args:
        place = place_field("place", args["place"])
        applied["place"] = place or ""
    if "service" in args:
        service = applied["service"] = args["service"].lower()
    if "delivered" in args:
        delivered = applied["delivered"] = delivered_field("delivered", args["delivered"])
    start = datetime_field("from", args["from"]) if "from" in args else None
    end = datetime_field("to", args["to"], end_of_day=True) if "to" in args else None
    whole_day = "to" in args and len(args["to"]) == 10
    if start and end and (start > end or (whole_day and start >= end)):
        raise invalid("from", "is after 'to'")
    if start:
        applied["from"] = args["from"]
    if end:
        applied["to"] = args["to"]
    # A bare date includes that whole day; a date-time is the exact end.
    return ReportFilter(place, service, delivered, start, end, end_inclusive=not whole_day), applied


def report_json(r: Report) -> dict[str, Any]:
    """A report without any phone number; the contact's id only when the reporter did not ask for anonymity."""
    body = {"id": r.id, "ref": r.ref, "date": r.created_at.date().isoformat(), "created_at": iso(r.created_at),
            "country": r.country, "place": r.place, "service": r.service, "service_detail": r.service_detail,
            "delivered": r.delivered, "details": r.details, "anonymous": bool(r.anonymous), "language": r.language,
            "verification": r.verification, "check_id": r.check_id}
    if not r.anonymous:
        body["contact_id"] = r.contact_id
    return body


@bp.get("/reports")
@requires("viewer")
def list_reports() -> ResponseReturnValue:
    """Reports, filtered and paged; every listing is an export and is audited."""
    args = query_args((*REPORT_FILTERS, "page", "per_page"))
    page, per_page = pagination(args)
    which, applied = report_filter(args)
    session = get_session()
    # By day, then by reference: neither the order nor the (random) id tells which report came first.
    listing = paginate(session, which.apply(select(Report)).order_by(func.date(Report.created_at), Report.ref),
                       number=page, size=per_page, clamp=False)
    # Reports are evidence: each export of them is on the record, with what was asked for.
    audit.record(session, caller().actor, "export.reports", via="api", filters=applied, page=page,
                 per_page=per_page, count=len(listing.items))
    body = {"data": [report_json(r) for r in listing.items], "pagination": listing.meta()}
    session.commit()
    return jsonify(body)


def _ordered(counts: Counter[Any]) -> list[tuple[Any, int]]:
    """Biggest first; ties by name, so the answer does not depend on the database's order."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))


@bp.get("/reports/counts")
@requires("viewer")
def report_counts() -> ResponseReturnValue:
    """The filtered reports counted by place, service, answer, place and service, and ISO week."""
    which, applied = report_filter(query_args(REPORT_FILTERS))
    session = get_session()
    c = reports.counts(session, which)
    return jsonify(
        filters=applied, total=c.total,
        by_place=[{"place": k, "count": n} for k, n in _ordered(c.by_place)],
        by_service=[{"service": k, "count": n} for k, n in _ordered(c.by_service)],
        by_delivered=[{"delivered": k, "count": n} for k, n in _ordered(c.by_delivered)],
        by_place_and_service=[{"place": p, "service": s, "count": n}
                              for (p, s), n in _ordered(c.by_place_and_service)],
        by_week=[{"week": w.label, "week_start": w.monday.isoformat(), "count": w.total}
                 for w in reports.weekly(session, which)])
