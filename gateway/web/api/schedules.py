"""/api/v1/schedules: services promised to places (docs/evidence.md); and their part of the OpenAPI description."""
from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from gateway.db import get_session
from gateway.evidence import schedules
from gateway.models import ServiceSchedule
from gateway.web.api.auth import caller, requires
from gateway.web.api.blueprint import bp
from gateway.web.api.errors import ApiError, invalid
from gateway.web.api.inputs import check_text, json_body, pagination, query_args
from gateway.web.api.shapes import created, get_or_404
from gateway.web.paging import paginate


def _values(data: dict[str, Any], before: ServiceSchedule | None = None) -> schedules.Values:
    for field, value in data.items():
        if isinstance(value, str):
            check_text(field, value)
        elif field == "labels" and isinstance(value, dict):
            for text in value.values():
                if isinstance(text, str):
                    check_text(field, text)
    try:
        return schedules.values_from(get_session(), data, before=before)
    except schedules.ScheduleError as exc:
        raise invalid(exc.field, exc.message) from None


@bp.get("/schedules")
@requires("viewer")
def list_schedules() -> ResponseReturnValue:
    """Schedules by place, service and first date; ?active=true for the running ones only."""
    args = query_args(("active", "page", "per_page"))
    page, per_page = pagination(args)
    query = select(ServiceSchedule).order_by(ServiceSchedule.place, ServiceSchedule.service,
                                             ServiceSchedule.starts_on, ServiceSchedule.id)
    if "active" in args:
        if args["active"] not in ("true", "false"):
            raise invalid("active", "expected true or false")
        query = query.where(ServiceSchedule.active.is_(args["active"] == "true"))
    listing = paginate(get_session(), query, number=page, size=per_page, clamp=False)
    return jsonify(data=[schedules.as_json(r) for r in listing.items], pagination=listing.meta())


@bp.get("/schedules/<int:schedule_id>")
@requires("viewer")
def get_schedule(schedule_id: int) -> ResponseReturnValue:
    """One schedule."""
    return jsonify(schedules.as_json(get_or_404(get_session(), ServiceSchedule, schedule_id, "schedule")))


@bp.post("/schedules")
@requires("organizer")
def create_schedule() -> ResponseReturnValue:
    """Record a promised service: its place, service, dates and when supporters are asked."""
    data = json_body(schedules.FIELDS)
    values = _values(data)
    session = get_session()
    row = schedules.create(session, values, actor=caller().actor)
    session.commit()
    return created(schedules.as_json(row), f"/api/v1/schedules/{row.id}")


@bp.patch("/schedules/<int:schedule_id>")
@requires("organizer")
def update_schedule(schedule_id: int) -> ResponseReturnValue:
    """Change a schedule; {"active": false} stops it (the checks it made stay)."""
    data = json_body(schedules.FIELDS)
    if not data:
        raise ApiError(400, "invalid_body", f"The body names nothing to change; send one or more of "
                                            f"{', '.join(schedules.FIELDS)}.")
    session = get_session()
    row = get_or_404(session, ServiceSchedule, schedule_id, "schedule", lock=True)
    schedules.update(session, row, _values(data, row), actor=caller().actor)
    session.commit()
    return jsonify(schedules.as_json(row))


def openapi_parts(ref: Any, json: Any, operation: Any, path_id: Any, pagination_params: list[dict[str, Any]],
                  not_found: Any, languages: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """This module's schemas and paths for gateway/web/api/openapi.py."""
    date = {"type": "string", "format": "date"}
    props: dict[str, Any] = {
        "place": {"type": "string", "description": "A place the gazetteers know (matched to their spelling)."},
        "service": {"type": "string", "description": "As reports spell it: clinic, water, fertilizer, school ..."},
        "labels": {"type": "object", "description": "Language -> how texts name it (\"the mobile clinic\"); the "
                                                    "question must stay one SMS.",
                   "propertyNames": {"enum": languages}, "additionalProperties": {"type": "string", "maxLength": 60}},
        "starts_on": {**date, "description": "The first due date, in the place's calendar."},
        "every_days": {"type": ["integer", "null"], "minimum": 1, "maximum": schedules.MAX_EVERY,
                       "description": "Due every N days; null: once."},
        "ends_on": {"type": ["string", "null"], "format": "date", "description": "The last possible due date."},
        "check_at": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$", "default": "16:00",
                     "description": "Local time after which supporters are asked on a due date."},
        "sample_size": {"type": "integer", "minimum": 1, "maximum": schedules.MAX_SAMPLE, "default": 5},
        "no_threshold": {"type": "integer", "minimum": 1, "maximum": schedules.MAX_SAMPLE, "default": 3,
                         "description": "This many 'no' answers to one due date open a case (at most sample_size)."},
        "active": {"type": "boolean", "default": True}}
    schemas = {
        "ScheduleInput": {"type": "object", "additionalProperties": False, "properties": props},
        "ScheduleCreate": {"allOf": [ref("ScheduleInput"), {"required": ["place", "service", "starts_on"]}]},
        "Schedule": {"type": "object", "required": ["id", "place", "service", "starts_on", "check_at", "active"],
                     "properties": {**props, "id": {"type": "integer"}, "country": {"type": ["string", "null"]},
                                    "case_id": {"type": ["integer", "null"],
                                                "description": "The case whose official PROMISEd it, if any."},
                                    "created_by": {"type": ["string", "null"]},
                                    "created_at": {"type": ["string", "null"], "format": "date-time"}}},
        "ScheduleList": {"type": "object", "required": ["data", "pagination"], "properties": {
            "data": {"type": "array", "items": ref("Schedule")}, "pagination": ref("Pagination")}},
    }
    paths = {
        "/api/v1/schedules": {
            "get": operation("List schedules", {"200": json(ref("ScheduleList"), "A page of schedules.")},
                             tag="schedules", operation_id="listSchedules", parameters=[
                                 {"name": "active", "in": "query", "required": False, "description":
                                  "true: running ones only; false: stopped ones only.",
                                  "schema": {"type": "string", "enum": ["true", "false"]}}, *pagination_params]),
            "post": operation("Record a promised service", {
                "201": json(ref("Schedule"), "Recorded; Location names it.")}, role="organizer", tag="schedules",
                operation_id="createSchedule", body="ScheduleCreate",
                description="On each due date, after check_at local time (never in quiet hours), at most "
                            "sample_size supporters of the place who follow the service are asked whether it "
                            "came. Recorded in the audit log (schedule.create)."),
        },
        "/api/v1/schedules/{schedule_id}": {
            "get": operation("A schedule", {"200": json(ref("Schedule"), "The schedule."), "404": not_found},
                             tag="schedules", operation_id="getSchedule",
                             parameters=[path_id("schedule_id", "schedule")]),
            "patch": operation("Change or stop a schedule", {
                "200": json(ref("Schedule"), "Changed."), "404": not_found}, role="organizer", tag="schedules",
                operation_id="updateSchedule", body="ScheduleInput", parameters=[path_id("schedule_id", "schedule")],
                description="Only the fields sent change; {\"active\": false} stops it. Checks already made keep "
                            "their dates. Recorded in the audit log (schedule.update)."),
        },
    }
    return schemas, paths
