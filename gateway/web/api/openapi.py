"""The OpenAPI 3.1 description of the JSON API in gateway/web/api/."""
from __future__ import annotations

from typing import Any

from gateway import services
from gateway.core.ladder import STATUSES as CASE_STATUSES
from gateway.outbound import broadcasts
from gateway.web.api import schedules
from gateway.web.api.inputs import (
    DEFAULT_PER_PAGE,
    DELIVERED,
    MAX_CSV,
    MAX_KEYWORD,
    MAX_NAME,
    MAX_NOTE,
    MAX_PAGE,
    MAX_PER_PAGE,
    MAX_TAG,
    MAX_TAGS,
    MAX_TEXT,
    STATUSES,
)


def _ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def _path_id(name: str, what: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": f"The {what}'s id.",
            "schema": {"type": "integer", "minimum": 1}}


def _operation(summary: str, responses: dict[str, Any], *, role: str | None = "viewer", tag: str,
               parameters: list[dict[str, Any]] | None = None, body: str | None = None,
               description: str | None = None, operation_id: str) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "operationId": operation_id, "tags": [tag]}
    if description or role:
        op["description"] = (description or "") + (f"\n\nNeeds a token of the {role} role or higher." if role else "")
        op["description"] = op["description"].strip()
    if parameters:
        op["parameters"] = parameters
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    errors: dict[str, Any] = {}
    if role:
        errors["401"] = _ref("Unauthorized", "responses")
        if role != "viewer":
            errors["403"] = _ref("Forbidden", "responses")
    if body or parameters:
        errors["400"] = _ref("BadRequest", "responses")
    if body:
        errors["413"] = _ref("TooLarge", "responses")
    op["responses"] = {**responses, **errors, "405": _ref("MethodNotAllowed", "responses")}
    if role is None:
        op["security"] = []
    return op


def spec() -> dict[str, Any]:
    """OpenAPI 3.1 for every route of this blueprint."""
    languages = list(services().flows.languages)
    nullable_str = {"type": ["string", "null"]}
    verification = {"type": ["string", "null"], "enum": ["verified", "contested", "unverified", None],
                    "description": "What other supporters of the place said when asked (docs/evidence.md); "
                                   "null: not corroborated."}
    date_or_time = {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
    pagination_params = [
        _query("page", "Page number, from 1.", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}),
        _query("per_page", f"Items per page, at most {MAX_PER_PAGE}.",
               {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": DEFAULT_PER_PAGE})]
    report_params = [
        _query("place", "Only reports from this place (a district or department; spelling is matched to the gazetteers)."),
        _query("service", "Only reports about this service, e.g. clinic, water, school."),
        _query("delivered", "Only reports with this answer to 'did it arrive?'.", {"type": "string", "enum": list(DELIVERED)}),
        _query("from", "Only reports made at or after this UTC date (2025-03-01) or date-time.", date_or_time),
        _query("to", "Only reports made up to this UTC date (inclusive) or date-time.", date_or_time),
    ]
    not_found, conflict = _ref("NotFound", "responses"), _ref("Conflict", "responses")
    broadcast_response = _json(_ref("Broadcast"), "The broadcast and its progress.")
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string", "description": "Stable, machine-readable, e.g. invalid_field."},
                "message": {"type": "string", "description": "A sentence saying what is wrong."},
                "field": {"type": "string", "description": "The body field or query parameter at fault."}}}}},
        "Pagination": {"type": "object", "required": ["page", "per_page", "total", "pages"], "properties": {
            "page": {"type": "integer"}, "per_page": {"type": "integer"}, "total": {"type": "integer"},
            "pages": {"type": "integer"}}},
        "Contact": {"type": "object", "required": ["id", "number", "status", "tags"], "properties": {
            "id": {"type": "integer"}, "number": {"type": "string", "description": "E.164, e.g. +265991234567."},
            "name": nullable_str, "language": nullable_str, "place": nullable_str, "country": nullable_str,
            "tags": {"type": "array", "items": {"type": "string"}},
            "status": {"type": "string", "enum": list(STATUSES)},
            "created_at": {"type": "string", "format": "date-time"}}},
        "ContactList": {"type": "object", "required": ["data", "pagination"], "properties": {
            "data": {"type": "array", "items": _ref("Contact")}, "pagination": _ref("Pagination")}},
        "ContactCreate": {"type": "object", "required": ["number"], "additionalProperties": False, "properties": {
            "number": {"type": "string", "description": "Local (0991 234 567, read in DEFAULT_COUNTRY) or international."},
            "name": {"type": ["string", "null"], "maxLength": MAX_NAME},
            "language": {"type": ["string", "null"], "enum": [*languages, None]},
            "place": {"type": ["string", "null"], "description": "Matched to the gazetteers and stored as they spell it."},
            "tags": {"type": "array", "maxItems": MAX_TAGS, "items": {"type": "string", "maxLength": MAX_TAG}}}},
        "ContactPatch": {"type": "object", "minProperties": 1, "additionalProperties": False, "properties": {
            "name": {"type": ["string", "null"], "maxLength": MAX_NAME},
            "language": {"type": ["string", "null"], "enum": [*languages, None]},
            "place": {"type": ["string", "null"]},
            "tags": {"type": "array", "description": "Replaces all of the contact's tags.",
                     "maxItems": MAX_TAGS, "items": {"type": "string", "maxLength": MAX_TAG}},
            "status": {"type": "string", "enum": list(STATUSES),
                       "description": "A stopped contact cannot be made active (409): only the supporter can, by texting START."}}},
        "BroadcastInput": {"type": "object", "required": ["texts"], "additionalProperties": False, "properties": {
            "texts": {"type": "object", "description": "Language -> text; {name} and {place} are filled in. "
                      "The default language's text is required.",
                      "additionalProperties": {"type": "string", "maxLength": MAX_TEXT},
                      "propertyNames": {"enum": languages}},
            "place": {"type": ["string", "null"], "description": "Only supporters in this place."},
            "language": {"type": ["string", "null"], "enum": [*languages, None],
                         "description": "Only supporters who speak this language."},
            "tag": {"type": ["string", "null"], "maxLength": MAX_TAG, "description": "Only supporters with this tag."},
            "reply_keyword": {"type": ["string", "null"], "maxLength": MAX_KEYWORD,
                              "description": "Replies with this one word (e.g. YES) count as pledges."},
            "urgent": {"type": "boolean", "default": False, "description": "Send during quiet hours too."},
            "send_at": {"type": ["string", "null"], "format": "date-time",
                        "description": "Send at this time (UTC unless an offset is given) instead of at launch."}}},
        "TextPreview": {"type": "object", "properties": {
            "language": {"type": "string"}, "recipients": {"type": "integer"},
            "encoding": {"type": "string", "enum": ["GSM-7", "UCS-2"]},
            "segments": {"type": "integer", "description": "For the longest name and place in the audience."},
            "characters": {"type": "integer"},
            "ucs2_characters": {"type": "array", "items": {"type": "string"},
                                "description": "The characters that force UCS-2."},
            "gsm7_suggestion": {**nullable_str, "description": "The text with look-alike characters replaced, when that saves segments."},
            "gsm7_suggestion_segments": {"type": ["integer", "null"]}}},
        "Preview": {"type": "object", "required": ["audience", "texts", "total_segments", "estimated_cost"], "properties": {
            "audience": {"type": "integer", "description": "Active, consenting supporters it would go to."},
            "texts": {"type": "array", "items": _ref("TextPreview")},
            "total_segments": {"type": "integer"},
            "estimated_cost": {"type": "number", "description": "Per SMS_PRICES, in its currency."},
            "segments_by_country": {"type": "object", "additionalProperties": {"type": "integer"}}}},
        "Broadcast": {"type": "object", "required": ["id", "status", "recipients", "counts"], "properties": {
            "id": {"type": "integer"},
            "status": {"type": "string", "enum": ["draft", "sending", "done", "cancelled"]},
            "recipients": {"type": "integer"},
            "counts": {"type": "object", "description": "Messages by status.",
                       "properties": {s: {"type": "integer"} for s in broadcasts.STATUSES}},
            "pledges": {"type": "integer"},
            "pledges_by_place": {"type": "object", "additionalProperties": {"type": "integer"}},
            "reply_keyword": nullable_str,
            "texts": {"type": "object", "additionalProperties": {"type": "string"}},
            "default_language": {"type": "string"}, "place": nullable_str, "language": nullable_str,
            "tag": nullable_str, "urgent": {"type": "boolean"},
            "send_at": {"type": ["string", "null"], "format": "date-time"}, "created_by": nullable_str,
            "created_at": {"type": "string", "format": "date-time"},
            "launched_at": {"type": ["string", "null"], "format": "date-time"},
            "cancelled_at": {"type": ["string", "null"], "format": "date-time"},
            "not_sent": {"type": "integer", "description": "Cancel only: messages that will not go out."},
            "warning": {"type": "string", "description": "Launch only: the queue could not be reached."}}},
        "Report": {"type": "object", "description": "Never a phone number. contact_id only when not anonymous.",
                   "required": ["id", "ref", "date", "service", "anonymous"], "properties": {
            "id": {"type": "integer"}, "ref": {"type": "string"}, "date": {"type": "string", "format": "date"},
            "created_at": {"type": "string", "format": "date-time",
                           "description": "An anonymous report keeps only its day (00:00)."},
            "country": nullable_str, "place": nullable_str, "service": {"type": "string"},
            "service_detail": nullable_str, "delivered": {"type": ["string", "null"], "enum": [*DELIVERED, None]},
            "details": nullable_str, "anonymous": {"type": "boolean"}, "language": nullable_str,
            "contact_id": {"type": ["integer", "null"]}, "verification": verification,
            "check_id": {"type": ["integer", "null"], "description": "The delivery check it answers, if any."}}},
        "SetAside": {"type": "object", "description": "An inbound text the gateway could not handle, even after retrying.",
                     "required": ["id", "error", "attempts"], "properties": {
            "id": {"type": "integer"}, "contact_id": {"type": ["integer", "null"]},
            "number": {**nullable_str, "description": "The sender's number; partly hidden for viewers."},
            "body": nullable_str, "error": {**nullable_str, "description": "The error's class and first line."},
            "attempts": {"type": "integer"},
            "channel": {"type": "string", "description": "The medium: sms or whatsapp."},
            "provider": {"type": "string", "description": "The channel it came in by: twilio, africastalking, a phone."},
            "received_at": {"type": "string", "format": "date-time"},
            "set_aside_at": {"type": ["string", "null"], "format": "date-time"}}},
        "SetAsideList": {"type": "object", "required": ["data", "pagination"], "properties": {
            "data": {"type": "array", "items": _ref("SetAside")}, "pagination": _ref("Pagination")}},
        "ReportList": {"type": "object", "required": ["data", "pagination"], "properties": {
            "data": {"type": "array", "items": _ref("Report")}, "pagination": _ref("Pagination")}},
        "Brief": {"type": "object", "required": ["kind", "generated_at", "fingerprint", "figures"], "properties": {
            "kind": {"type": "string", "enum": ["place", "case"]},
            "generated_at": {"type": "string", "format": "date-time"},
            "fingerprint": {"type": "string", "description": "The first 12 hex digits of the SHA-256 of the figures' canonical JSON (sorted keys, no spaces), in groups of 4."},
            "figures": {"type": "object", "description": "place, month, as_of, services (per month: due, delivered, partly, not_delivered, no_answer, unchecked), cases, officials, quotes, method, silent; see docs/evidence.md."}}},
        "ReportCounts": {"type": "object", "required": ["total", "by_place", "by_service", "by_week"], "properties": {
            "filters": {"type": "object", "additionalProperties": {"type": "string"}},
            "total": {"type": "integer"},
            "by_place": {"type": "array", "items": {"type": "object", "properties": {
                "place": nullable_str, "count": {"type": "integer"}}}},
            "by_service": {"type": "array", "items": {"type": "object", "properties": {
                "service": {"type": "string"}, "count": {"type": "integer"}}}},
            "by_delivered": {"type": "array", "items": {"type": "object", "properties": {
                "delivered": nullable_str, "count": {"type": "integer"}}}},
            "by_place_and_service": {"type": "array", "items": {"type": "object", "properties": {
                "place": nullable_str, "service": {"type": "string"}, "count": {"type": "integer"}}}},
            "by_week": {"type": "array", "items": {"type": "object", "properties": {
                "week": {"type": "string", "description": "ISO week, e.g. 2025-W09."},
                "week_start": {"type": "string", "format": "date", "description": "Its Monday."},
                "count": {"type": "integer"}}}}}},
        "CaseEvent": {"type": "object", "description": "One line of a case's timeline. Never a number.",
                      "required": ["at", "kind", "status", "actor"], "properties": {
            "at": {"type": "string", "format": "date-time"},
            "kind": {"type": "string", "description": "opened, joined, sent, acknowledged, promised, resolved, overdue, "
                                                      "escalated, disputed, closed, merged, split ..."},
            "status": {"type": "string", "enum": list(CASE_STATUSES), "description": "The case's status after it."},
            "actor": {"type": "string", "description": "system, official:<id>, reporter, or an organizer's e-mail."},
            "note": nullable_str, "official_id": {"type": ["integer", "null"]}}},
        "Case": {"type": "object", "required": ["id", "ref", "place", "service", "status", "overdue", "level",
                                                "report_count"], "properties": {
            "id": {"type": "integer"}, "ref": {"type": "string"}, "place": {"type": "string"}, "country": nullable_str,
            "service": {"type": "string"}, "status": {"type": "string", "enum": list(CASE_STATUSES)},
            "overdue": {"type": "boolean", "description": "Marked overdue, or waiting for an answer past its deadline."},
            "level": {"type": "integer", "description": "The rung of the ladder it is at (1 first)."},
            "official": {"type": ["object", "null"], "properties": {
                "id": {"type": "integer"}, "name": {"type": "string"}, "role": {"type": "string"}}},
            "report_count": {"type": "integer"},
            "deadline_at": {"type": ["string", "null"], "format": "date-time"},
            "promised_for": {"type": ["string", "null"], "format": "date", "description": "In the place's calendar."},
            **{k: {"type": ["string", "null"], "format": "date-time"} for k in (
                "opened_at", "sent_at", "acknowledged_at", "promised_at", "resolved_at", "closed_at", "updated_at")}}},
        "CaseReport": {"type": "object", "description": "A report in a case: never who reported (no contact, name or number).",
                       "required": ["ref", "date"], "additionalProperties": False, "properties": {
            "ref": {"type": "string"}, "delivered": {"type": ["string", "null"], "enum": [*DELIVERED, None]},
            "date": {"type": "string", "format": "date"}, "details": nullable_str, "verification": verification}},
        "CaseMessage": {"type": "object", "description": "A text to or from one of the case's officials (never a reporter's).",
                        "properties": {
            "at": {"type": "string", "format": "date-time"}, "direction": {"type": "string", "enum": ["in", "out"]},
            "official_id": {"type": "integer"}, "body": nullable_str, "status": {"type": "string"}}},
        "CaseDetail": {"allOf": [_ref("Case"), {"type": "object", "required": ["timeline", "reports", "messages"],
                                                "properties": {
            "timeline": {"type": "array", "items": _ref("CaseEvent")},
            "reports": {"type": "array", "items": _ref("CaseReport")},
            "messages": {"type": "array", "items": _ref("CaseMessage")},
            "warning": {"type": "string", "description": "Send only: nothing was sent (no official answers at "
                                                         "this rung, or their phone cannot be texted)."}}}]},
        "CaseList": {"type": "object", "required": ["data", "pagination"], "properties": {
            "data": {"type": "array", "items": _ref("Case")}, "pagination": _ref("Pagination")}},
        "CaseClose": {"type": "object", "required": ["note"], "additionalProperties": False, "properties": {
            "note": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE, "description": "Why it is closed."},
            "resolved": {"type": "boolean", "default": False,
                         "description": "Closed because the problem is resolved (status resolved, not closed)."}}},
        "CaseEscalate": {"type": "object", "additionalProperties": False, "properties": {
            "note": {"type": ["string", "null"], "maxLength": MAX_NOTE}}},
        "Official": {"type": "object", "required": ["id", "name", "role", "number", "language", "level", "record"],
                     "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}, "role": {"type": "string"},
            "number": {"type": "string", "description": "E.164; partly hidden for viewers."},
            "language": {"type": "string"},
            "places": {"type": "array", "items": {"type": "string"}, "description": "Empty: any place."},
            "services": {"type": "array", "items": {"type": "string"}, "description": "Empty: any service."},
            "level": {"type": "integer", "description": "The rung: 1 first."}, "active": {"type": "boolean"},
            "created_at": {"type": "string", "format": "date-time"},
            "record": {"type": "object", "description": "Their answers, from the case timelines.", "properties": {
                "cases_sent": {"type": "integer"}, "acknowledged": {"type": "integer"},
                "promised": {"type": "integer"}, "done": {"type": "integer"}, "overdue": {"type": "integer"},
                "median_hours_to_acknowledge": {"type": ["number", "null"],
                                                "description": "Median hours from the case's SMS to their ACK."}}}}},
        "OfficialList": {"type": "object", "required": ["data", "pagination"], "properties": {
            "data": {"type": "array", "items": _ref("Official")}, "pagination": _ref("Pagination")}},
        "OfficialsImport": {"type": "object", "required": ["csv"], "additionalProperties": False, "properties": {
            "csv": {"type": "string", "maxLength": MAX_CSV,
                    "description": "The CSV file's text; the first line names the columns "
                                   "number,name,role,language,places,services,level (places and services "
                                   "separated by ';')."}}},
        "OfficialsImported": {"type": "object", "required": ["imported", "errors"], "properties": {
            "imported": {"type": "integer", "description": "Officials created or updated."},
            "errors": {"type": "array", "items": {"type": "string"},
                       "description": "One sentence per skipped line, naming its line number."}}},
    }
    error = _ref("Error")
    responses = {
        "BadRequest": _json(error, "Malformed JSON, wrong content type, or an invalid field or parameter (named in the message and in error.field)."),
        "Unauthorized": {**_json(error, "No token, or a wrong one."),
                         "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}}},
        "Forbidden": _json(error, "The token's account does not have the role this needs."),
        "NotFound": _json(error, "No such resource."),
        "MethodNotAllowed": {**_json(error, "This method is not allowed on this path."),
                             "headers": {"Allow": {"schema": {"type": "string"}, "description": "The allowed methods."}}},
        "Conflict": _json(error, "The request conflicts with the resource's state."),
        "TooLarge": _json(error, "The request body is too large."),
    }
    paths = {
        "/api/v1/contacts": {
            "get": _operation("List contacts", {"200": _json(_ref("ContactList"), "A page of contacts.")},
                              tag="contacts", operation_id="listContacts", parameters=[
                _query("place", "Only contacts in this place (matched to the gazetteers)."),
                _query("language", "Only contacts with this language.", {"type": "string", "enum": languages}),
                _query("tag", "Only contacts with this tag."),
                _query("status", "Only contacts with this status.", {"type": "string", "enum": list(STATUSES)}),
                _query("number", "Only the contact with this number (local or international)."),
                *pagination_params]),
            "post": _operation("Create a contact", {
                "201": {**_json(_ref("Contact"), "Created."), "headers": {"Location": {"schema": {"type": "string"}}}},
                "409": conflict}, role="organizer", tag="contacts", body="ContactCreate", operation_id="createContact",
                description="The number is normalised to E.164. The contact is active and counted as consenting "
                            "(as in a CSV import). 409 when the number already exists, whatever its status: "
                            "a stopped contact is never reactivated by the API."),
        },
        "/api/v1/contacts/{contact_id}": {
            "patch": _operation("Change a contact", {"200": _json(_ref("Contact"), "The changed contact."),
                                                     "404": not_found, "409": conflict},
                                role="organizer", tag="contacts", body="ContactPatch", operation_id="updateContact",
                                parameters=[_path_id("contact_id", "contact")]),
        },
        "/api/v1/broadcasts/preview": {
            "post": _operation("Preview a broadcast", {"200": _json(_ref("Preview"), "What a launch would send and cost.")},
                               role="organizer", tag="broadcasts", body="BroadcastInput", operation_id="previewBroadcast",
                               description="Audience, per-language encoding and segments (after {name} and {place} "
                                           "are filled in), total segments and estimated cost. Creates nothing."),
        },
        "/api/v1/broadcasts": {
            "post": _operation("Create a draft broadcast", {
                "201": {**_json(_ref("Broadcast"), "The draft."), "headers": {"Location": {"schema": {"type": "string"}}}}},
                role="organizer", tag="broadcasts", body="BroadcastInput", operation_id="createBroadcast"),
        },
        "/api/v1/broadcasts/{broadcast_id}": {
            "get": _operation("A broadcast and its progress", {"200": broadcast_response, "404": not_found},
                              tag="broadcasts", operation_id="getBroadcast",
                              parameters=[_path_id("broadcast_id", "broadcast")]),
        },
        "/api/v1/broadcasts/{broadcast_id}/launch": {
            "post": _operation("Launch a draft", {
                "202": _json(_ref("Broadcast"), "Launched: one queued message per recipient; sending has started."),
                "404": not_found, "409": conflict}, role="organizer", tag="broadcasts",
                operation_id="launchBroadcast", parameters=[_path_id("broadcast_id", "broadcast")],
                description="Recorded in the audit log (broadcast.launch). No request body. 409 if it is not a draft."),
        },
        "/api/v1/broadcasts/{broadcast_id}/cancel": {
            "post": _operation("Cancel a broadcast", {
                "200": _json(_ref("Broadcast"), "Cancelled; not_sent says how many messages will not go out."),
                "404": not_found, "409": conflict}, role="organizer", tag="broadcasts",
                operation_id="cancelBroadcast", parameters=[_path_id("broadcast_id", "broadcast")],
                description="Stops what has not been sent yet. Recorded in the audit log (broadcast.cancel). "
                            "No request body. 409 if it is already done or cancelled."),
        },
        "/api/v1/reports": {
            "get": _operation("List service-delivery reports", {"200": _json(_ref("ReportList"), "A page of reports.")},
                              tag="reports", operation_id="listReports", parameters=[*report_params, *pagination_params],
                              description="Never includes a phone number; contact_id only for reports that are "
                                          "not anonymous. Each call is recorded in the audit log (export.reports) "
                                          "with its filters."),
        },
        "/api/v1/reports/counts": {
            "get": _operation("Count reports", {"200": _json(_ref("ReportCounts"), "Counts.")}, tag="reports",
                              operation_id="countReports", parameters=report_params,
                              description="Counts by place, by service, by both, by answer, and by ISO week."),
        },
        "/api/v1/messages/set-aside": {
            "get": _operation("Texts set aside", {"200": _json(_ref("SetAsideList"), "A page of texts, newest first.")},
                              tag="messages", operation_id="listSetAside", parameters=pagination_params,
                              description="Inbound texts whose handling failed after retries, with the error. "
                                          "They no longer hold up the sender's later texts. Viewers get numbers "
                                          "partly hidden."),
        },
        "/api/v1/cases": {
            "get": _operation("List cases", {"200": _json(_ref("CaseList"), "A page of cases, newest first.")},
                              tag="cases", operation_id="listCases", parameters=[
                _query("status", "Only cases with this status; overdue also takes cases waiting past their deadline.",
                       {"type": "string", "enum": list(CASE_STATUSES)}),
                _query("place", "Only cases in this place (matched to the gazetteers)."),
                _query("service", "Only cases about this service."),
                _query("official_id", "Only cases at this official.", {"type": "integer", "minimum": 1}),
                *pagination_params]),
        },
        "/api/v1/cases/{case_id}": {
            "get": _operation("A case, its timeline, reports and officials' texts", {
                "200": _json(_ref("CaseDetail"), "The case."), "404": not_found}, tag="cases",
                operation_id="getCase", parameters=[_path_id("case_id", "case")],
                description="Reports carry no reporter: ref, answer, date and details only."),
        },
        "/api/v1/cases/{case_id}/send": {
            "post": _operation("Send a case to its official", {
                "200": _json(_ref("CaseDetail"), "Sent: the official gets one SMS."), "404": not_found,
                "409": conflict}, role="organizer", tag="cases", operation_id="sendCase",
                parameters=[_path_id("case_id", "case")],
                description="No request body. 409 with a sentence when the case's ladder does not allow it. "
                            "Recorded in the audit log (case.send)."),
        },
        "/api/v1/cases/{case_id}/escalate": {
            "post": _operation("Send a case up one rung", {
                "200": _json(_ref("CaseDetail"), "Escalated."), "404": not_found, "409": conflict},
                role="organizer", tag="cases", operation_id="escalateCase", body="CaseEscalate",
                parameters=[_path_id("case_id", "case")],
                description="The body is optional. Recorded in the audit log (case.escalate)."),
        },
        "/api/v1/cases/{case_id}/close": {
            "post": _operation("Close a case by hand", {
                "200": _json(_ref("CaseDetail"), "Closed."), "404": not_found, "409": conflict},
                role="organizer", tag="cases", operation_id="closeCase", body="CaseClose",
                parameters=[_path_id("case_id", "case")],
                description="A note is required. Recorded in the audit log (case.close)."),
        },
        "/api/v1/officials": {
            "get": _operation("List officials", {"200": _json(_ref("OfficialList"), "A page of the directory.")},
                              tag="officials", operation_id="listOfficials", parameters=pagination_params,
                              description="By rung, then name; each with their answers and response times. "
                                          "Viewers get numbers partly hidden."),
        },
        "/api/v1/officials/import": {
            "post": _operation("Import officials from CSV", {
                "200": _json(_ref("OfficialsImported"), "What was imported and the lines skipped.")},
                role="organizer", tag="officials", operation_id="importOfficials", body="OfficialsImport",
                description="The CSV text inside JSON (Content-Type: application/json), not a text/csv body. "
                            "Good lines are saved; bad ones are listed by line number. Recorded in the "
                            "audit log (officials.import)."),
        },
        "/api/v1/brief": {
            "get": _operation("The one-page evidence brief", {
                "200": {"description": "The brief: a one-page A4 PDF (format=pdf), or its figures as JSON (format=json).",
                        "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}},
                                    "application/json": {"schema": _ref("Brief")}}},
                "404": not_found}, tag="reports", operation_id="getBrief", parameters=[
                _query("place", "The district (matched to the gazetteers). Required unless case is given."),
                _query("month", "The month, YYYY-MM. Required unless case is given.", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}),
                _query("lang", "The brief's language.", {"type": "string", "enum": ["en", "es"], "default": "en"}),
                _query("format", "pdf (the default) or json (the figures).", {"type": "string", "enum": ["pdf", "json"], "default": "pdf"}),
                _query("case", "A case's reference: the brief of that one case instead of a place's month.")],
                description="Delivery against due dates month by month, cases and who was asked, officials' response "
                            "rates (only over 3 cases or more), scrubbed quotes, how the figures were gathered, silence, "
                            "and a fingerprint of the figures to cite. A bad place, month or language is a 400; an "
                            "unknown case a 404. Each brief is recorded in the audit log (export.brief); docs/evidence.md "
                            "says what each figure means."),
        },
        "/api/v1/openapi.json": {
            "get": _operation("This description", {"200": {"description": "OpenAPI 3.1 JSON.",
                                                            "content": {"application/json": {"schema": {"type": "object"}}}}},
                              role=None, tag="meta", operation_id="openapi"),
        },
    }
    paths["/api/v1/cases/{case_id}/escalate"]["post"]["requestBody"]["required"] = False
    more_schemas, more_paths = schedules.openapi_parts(_ref, _json, _operation, _path_id, pagination_params,
                                                       not_found, languages)
    schemas.update(more_schemas)
    paths.update(more_paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": "SMS gateway API", "version": "1.0.0",
                 "description": "Contacts, broadcasts, service-delivery reports, cases and officials. Authenticate with a per-user "
                                "API token: 'Authorization: Bearer <token>'. Reads need the viewer role, writes the "
                                "organizer role. Every error is JSON: {\"error\": {\"code\", \"message\", \"field\"}}."},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": "contacts"}, {"name": "broadcasts"}, {"name": "reports"}, {"name": "messages"}, {"name": "cases"},
                 {"name": "officials"}, {"name": "schedules"}, {"name": "meta"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "A per-user API token (gw_...)."}},
            "schemas": schemas,
            "responses": responses,
        },
    }
