"""The JSON API under /api/v1/: contacts, broadcasts and reports, for per-user bearer tokens.

Every answer is JSON, errors included: {"error": {"code": "...", "message": "...", "field": "..."}}.
Tokens come from `accounts.new_api_token`; a token acts with its account's role
(viewer < organizer < admin): reads need viewer, writes need organizer.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from typing import Any, Callable, Iterable, TypeVar

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from gateway import services
from gateway.people import accounts
from gateway.people import audit
from gateway.outbound import broadcasts
from gateway.people import contacts
from gateway.outbound import jobs as queue
from gateway.core.compose import parse_prices
from gateway.limits import limiter
from gateway.models import Broadcast, Contact, ContactTag, Message, Report, utcnow
from gateway.core.places import match_place
from gateway.core.phones import InvalidNumber, mask_number, normalise_number
from gateway.core.text import fold

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint("api", __name__, url_prefix="/api/v1")

STATUSES = ("active", "stopped", "blocked")
DELIVERED = ("yes", "no", "partly")
MAX_PER_PAGE, DEFAULT_PER_PAGE, MAX_PAGE = 200, 50, 1_000_000
MAX_NAME, MAX_TAG, MAX_TAGS, MAX_KEYWORD, MAX_TEXT, MAX_FILTER = 120, 40, 50, 20, 1600, 200
MAX_BODY = 64 * 1024  # bytes; the largest real body (three 1600-character texts) is a few KiB
MAX_ID = 2**31 - 1  # ids are 32-bit integers; a larger one names nothing (and must not reach PostgreSQL)


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error answer: HTTP status, a stable code, a sentence, and the field at fault if any."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}

    def response(self) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        response = jsonify(error=error)
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


def invalid(field: str, message: str) -> ApiError:
    """400 for one field: the message starts with the field's name."""
    return ApiError(400, "invalid_field", f"{field}: {message}", field=field)


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_content_type",
               429: "too_many_requests", 500: "internal_error", 503: "unavailable"}


def http_error(exc: HTTPException) -> Response:
    """A werkzeug HTTP error (routing, abort, body too large, server error) as JSON."""
    status = exc.code or 500
    if status == 404:
        message = f"There is nothing at {request.path}; see /api/v1/openapi.json for the API's paths."
    elif status == 405:
        allowed = sorted(m for m in (getattr(exc, "valid_methods", None) or []) if m not in ("HEAD", "OPTIONS"))
        message = f"{request.method} is not allowed on {request.path}" + (
            f"; use {', '.join(allowed)}." if allowed else ".")
    elif status == 413:
        limit = request.max_content_length
        message = "The request body is too large" + (f": at most {limit} bytes are accepted." if limit else ".")
    elif status >= 500:
        message = "The server failed to answer this request; the error has been logged."
    else:
        message = exc.description or exc.name
    headers = {"Allow": ", ".join(exc.valid_methods)} if isinstance(exc, MethodNotAllowed) and exc.valid_methods else {}
    return ApiError(status, _HTTP_CODES.get(status, exc.name.lower().replace(" ", "_")), message,
                    headers=headers).response()


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return exc.response()


@bp.errorhandler(HTTPException)
def _http_exception(exc: HTTPException) -> Response:
    return http_error(exc)


def _routing_errors() -> Response | None:
    """Before any other hook: a path or method under /api/ that matches no route gets JSON.

    Routing errors are raised after the before-request hooks, with no blueprint known, so the
    blueprint's handlers never see them; checking here leaves the console's error pages alone.
    """
    exc = request.routing_exception
    if exc is None or not (request.path == "/api" or request.path.startswith("/api/")):
        return None
    if isinstance(exc, HTTPException) and (exc.code or 0) >= 400:
        return http_error(exc)
    return None  # a redirect (e.g. a missing trailing slash) is not an error


# --------------------------------------------------------------------------- session and auth


def db() -> Session:
    """One database session per API request, closed at teardown."""
    if "api_db" not in g:
        g.api_db = services().sessions()
    return g.api_db


@bp.teardown_request
def _close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("api_db", None)
    if session is not None:
        session.close()


@dataclass(frozen=True)
class Caller:
    """The account a token belongs to (plain values: they outlive a rollback)."""

    id: int
    email: str
    role: str

    @property
    def actor(self) -> str:
        return f"api:{self.email}"[:254]  # AuditEvent.actor's size


def caller() -> Caller:
    return g.api_caller


def requires(role: str) -> Callable[[F], F]:
    """The view needs a valid bearer token whose account has `role` (viewer < organizer < admin)."""
    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise ApiError(401, "unauthorized",
                               "This needs an API token: send the header 'Authorization: Bearer <token>'.",
                               headers={"WWW-Authenticate": 'Bearer realm="api"'})
            user = accounts.user_for_token(db(), token)
            if user is None:
                raise ApiError(401, "invalid_token",
                               "The API token is not valid: it is wrong, was replaced, or its account is disabled.",
                               headers={"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'})
            if not accounts.can(user, role):
                raise ApiError(403, "forbidden",
                               f"This needs the {role} role or higher; the token's account is a {user.role}.")
            g.api_caller = Caller(user.id, user.email, user.role)
            return view(*args, **kwargs)
        wrapped.required_role = role  # type: ignore[attr-defined]  # tests/test_security.py looks for it
        return wrapped  # type: ignore[return-value]
    return decorator


# --------------------------------------------------------------------------- input


def _check_text(field: str, value: str) -> str:
    """Refuse what the databases cannot store (NUL, lone surrogates) instead of failing with a 500."""
    if "\x00" in value:
        raise invalid(field, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(field, "is not valid Unicode text (a lone surrogate)") from None
    return value


def json_body(allowed: Iterable[str]) -> dict[str, Any]:
    """The request's JSON object; 400 for a wrong content type, malformed JSON or an unknown field."""
    allowed = tuple(allowed)
    if not request.is_json:
        raise ApiError(400, "unsupported_content_type",
                       "Send the body as JSON with the header 'Content-Type: application/json'"
                       f" (got {request.mimetype or 'no content type'}).")
    app_limit = current_app.config.get("MAX_CONTENT_LENGTH")
    request.max_content_length = min(app_limit, MAX_BODY) if app_limit else MAX_BODY
    raw = request.get_data(cache=True)  # 413 here when the body is over the limit
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json",
                       f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_json", "The body is not valid JSON: it is not UTF-8 text.") from None
    except (ValueError, RecursionError):
        raise ApiError(400, "malformed_json", "The body is not valid JSON (or nests too deeply).") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "The body must be a JSON object, e.g. {\"name\": \"...\"}.")
    for key in data:
        if key not in allowed:
            raise ApiError(400, "invalid_field",
                           f"{_check_text('field', key)!r} is not a field here; expected {', '.join(allowed)}.",
                           field=key)
    return data


def _string(data: dict[str, Any], field: str, *, max_length: int, required: bool = False,
            nullable: bool = True) -> str | None:
    """A trimmed string field; None when absent or null (if allowed) or blank."""
    value = data.get(field)
    if value is None:
        if required:
            raise invalid(field, "is required")
        if field in data and not nullable:
            raise invalid(field, "cannot be null")
        return None
    if not isinstance(value, str):
        raise invalid(field, f"expected a string, got {_json_type(value)}")
    value = _check_text(field, value).strip()
    if not value:
        if required:
            raise invalid(field, "is required and cannot be blank")
        return None
    if len(value) > max_length:
        raise invalid(field, f"is longer than {max_length} characters")
    return value


def _json_type(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), "null" if value is None else type(value).__name__)


def _language(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.lower()
    known = _languages()
    if value not in known:
        raise invalid(field, f"{value!r} is not a language of the flows; expected one of {', '.join(known)}")
    return value


def _languages() -> tuple[str, ...]:
    return services().flows.languages  # declared in flows/system.yaml, the default among them


def _place(field: str, value: str | None) -> str | None:
    """A place name as the gazetteers spell it ('zomba city' -> 'Zomba'); 400 if unknown."""
    if value is None:
        return None
    found = match_place(value, services().flows.gazetteers.values(), current_app.config["DEFAULT_COUNTRY"])
    if found is None:
        raise invalid(field, f"{value!r} is not a place in the gazetteers (flows/places/)")
    return found.name


def _tags(field: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(field, f"expected a list of strings, got {_json_type(value)}")
    if len(value) > MAX_TAGS:
        raise invalid(field, f"at most {MAX_TAGS} tags")
    tags: list[str] = []
    for i, tag in enumerate(value):
        name = f"{field}[{i}]"
        if not isinstance(tag, str):
            raise invalid(name, f"expected a string, got {_json_type(tag)}")
        tag = _check_text(name, tag).strip().lower()
        if not tag:
            raise invalid(name, "a tag cannot be blank")
        if len(tag) > MAX_TAG:
            raise invalid(name, f"is longer than {MAX_TAG} characters")
        if tag not in tags:
            tags.append(tag)
    return tags


def _number(field: str, value: str) -> str:
    """A supporter's phone number, local or international, as E.164."""
    try:
        address = normalise_number(value, current_app.config["DEFAULT_COUNTRY"])
    except InvalidNumber as exc:
        raise invalid(field, str(exc)) from None
    if address.kind != "e164":
        raise invalid(field, f"{value!r} is a short code, not a supporter's phone number")
    return address.value


def _datetime(field: str, value: Any, *, end_of_day: bool = False) -> datetime:
    """ISO 8601 date or date-time as naive UTC; a bare date means its start (or, for `end_of_day`, its end)."""
    if not isinstance(value, str):
        raise invalid(field, f"expected an ISO 8601 date-time string, got {_json_type(value)}")
    text = _check_text(field, value).strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, datetime.min.time())
            return start + timedelta(days=1) if end_of_day and day < date.max else start
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise invalid(field, f"{value!r} is not an ISO 8601 date (2025-03-01) or date-time (2025-03-01T08:00:00Z)") from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            raise invalid(field, f"{value!r} is out of range") from None
    return parsed


def query_args(allowed: Iterable[str]) -> dict[str, str]:
    """The query string's parameters; 400 for an unknown one (a typo would silently widen a filter)."""
    allowed = tuple(allowed)
    args: dict[str, str] = {}
    for key in request.args:
        if key not in allowed:
            raise ApiError(400, "invalid_parameter",
                           f"{_check_text('parameter', key)!r} is not a query parameter here; expected {', '.join(allowed)}.",
                           field=key)
        value = _check_text(key, request.args.get(key, "")).strip()
        if len(value) > MAX_FILTER:
            raise invalid(key, f"is longer than {MAX_FILTER} characters")
        if value:
            args[key] = value
    return args


def pagination(args: dict[str, str]) -> tuple[int, int]:
    def number(name: str, default: int, maximum: int) -> int:
        if name not in args:
            return default
        try:
            value = int(args[name])
        except ValueError:
            raise invalid(name, f"expected a whole number, got {args[name]!r}") from None
        if not 1 <= value <= maximum:
            raise invalid(name, f"must be between 1 and {maximum}")
        return value
    return number("page", 1, MAX_PAGE), number("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)


def paginate(session: Session, query: Select[Any], order: Any, page: int, per_page: int) -> tuple[list[Any], dict[str, Any]]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = list(session.scalars(query.order_by(order).offset((page - 1) * per_page).limit(per_page)))
    return items, {"page": page, "per_page": per_page, "total": total,
                   "pages": (total + per_page - 1) // per_page}


def _get(session: Session, model: type, ident: int, what: str, *, lock: bool = False) -> Any:
    """The row with this id, or 404."""
    row = session.get(model, ident, with_for_update=lock) if 0 < ident <= MAX_ID else None
    if row is None:
        raise ApiError(404, "not_found", f"There is no {what} {ident}.")
    return row


def _iso(value: datetime | None) -> str | None:
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z") if value else None


def created(body: dict[str, Any], location: str) -> tuple[Response, int, dict[str, str]]:
    return jsonify(body), 201, {"Location": location}


# --------------------------------------------------------------------------- contacts


CONTACT_FIELDS = ("number", "name", "language", "place", "tags")
CONTACT_PATCH_FIELDS = ("name", "language", "place", "tags", "status")


# A masked number hides 5 digits: a viewer who could search freely would unmask one in 10^5 tries.
VIEWER_NUMBER_SEARCHES = "30/hour;100/day"
# Pages of contacts per token: a tool syncing a large list fits; a runaway or stolen token is slowed.
CONTACT_LISTINGS = "600/hour"


def contact_json(c: Contact) -> dict[str, Any]:
    """A contact as JSON; its number is whole for organizers and admins, masked for viewers."""
    number = contacts.number_of(c)
    if caller().role == "viewer":
        number = mask_number(number)
    return {"id": c.id, "number": number, "name": c.name, "language": c.language,
            "place": c.place, "country": c.country, "tags": c.tags, "status": c.status,
            "created_at": _iso(c.created_at)}


def _caller_key() -> str:
    return f"api-user:{caller().id}"


def _not_a_viewer_number_search() -> bool:
    return "number" not in request.args or caller().role != "viewer"


@bp.get("/contacts")
@requires("viewer")
@limiter.limit(lambda: CONTACT_LISTINGS, key_func=_caller_key)
@limiter.limit(VIEWER_NUMBER_SEARCHES, key_func=_caller_key, exempt_when=_not_a_viewer_number_search)
def list_contacts() -> ResponseReturnValue:
    """Contacts, filtered and paged; every listing is an export and is audited."""
    args = query_args(("place", "language", "tag", "status", "number", "page", "per_page"))
    page, per_page = pagination(args)
    query = select(Contact)
    detail: dict[str, Any] = {"via": "api"}
    if "place" in args:
        query = query.where(Contact.place == _place("place", args["place"]))
    if "language" in args:
        query = query.where(Contact.language == _language("language", args["language"]))
    if "tag" in args:
        tag = args["tag"].lower()
        query = query.where(exists().where(ContactTag.contact_id == Contact.id, ContactTag.tag == tag))
    if "status" in args:
        if args["status"] not in STATUSES:
            raise invalid("status", f"expected one of {', '.join(STATUSES)}")
        query = query.where(Contact.status == args["status"])
    if "number" in args:
        number = _number("number", args["number"])
        found = contacts.find(db(), number)
        query = query.where(Contact.id == (found.id if found else None))
        # The keyed digest names the number for an investigator holding the key, and nobody else.
        detail["number_digest"] = contacts.vault(db()).digest(number)
    filters = {k: args[k] for k in ("place", "language", "tag", "status") if k in args}
    if filters:
        detail["filters"] = filters
    items, meta = paginate(db(), query, Contact.id, page, per_page)
    data = [contact_json(c) for c in items]
    audit.record(db(), caller().actor, "export.contacts", count=len(items), page=page, **detail)
    db().commit()
    return jsonify(data=data, pagination=meta)


@bp.post("/contacts")
@requires("organizer")
def create_contact() -> ResponseReturnValue:
    data = json_body(CONTACT_FIELDS)
    raw_number = _string(data, "number", max_length=40, required=True)
    assert raw_number is not None
    number = _number("number", raw_number)
    name = _string(data, "name", max_length=MAX_NAME)
    language = _language("language", _string(data, "language", max_length=8))
    place = _place("place", _string(data, "place", max_length=MAX_FILTER))
    tags = _tags("tags", data.get("tags"))
    session = db()
    existing = contacts.find(session, number)
    if existing is not None:
        raise ApiError(409, "contact_exists",
                       f"A contact with this number already exists (id {existing.id}); "
                       f"change it with PATCH /api/v1/contacts/{existing.id}.")
    contact = contacts.new_contact(session, number)
    contact.consent_at = utcnow()  # like an import: organizers add people who agreed to hear from them
    contact.name, contact.language, contact.place = name, language, place
    session.add(contact)
    contacts.add_tags(session, contact, tags)
    try:
        session.flush()
        session.commit()
    except IntegrityError:  # created by someone else between our check and insert
        session.rollback()
        raise ApiError(409, "contact_exists", "A contact with this number already exists.") from None
    return created(contact_json(contact), f"/api/v1/contacts/{contact.id}")


@bp.patch("/contacts/<int:contact_id>")
@requires("organizer")
def update_contact(contact_id: int) -> ResponseReturnValue:
    data = json_body(CONTACT_PATCH_FIELDS)
    if not data:
        raise ApiError(400, "invalid_body",
                       f"The body names nothing to change; send one or more of {', '.join(CONTACT_PATCH_FIELDS)}.")
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = _string(data, "name", max_length=MAX_NAME)
    if "language" in data:
        changes["language"] = _language("language", _string(data, "language", max_length=8))
    if "place" in data:
        changes["place"] = _place("place", _string(data, "place", max_length=MAX_FILTER))
    tags = _tags("tags", data["tags"]) if "tags" in data else None
    status = _string(data, "status", max_length=16, nullable=False) if "status" in data else None
    if "status" in data and status not in STATUSES:
        raise invalid("status", f"expected one of {', '.join(STATUSES)}")
    session = db()
    contact = _get(session, Contact, contact_id, "contact", lock=True)
    if status == "active" and contact.status == "stopped":
        audit.record(session, caller().actor, "contact.status.refused", contact_id=contact.id, old="stopped",
                     new="active")
        session.commit()  # the attempt to override an opt-out is kept even though it is refused
        raise ApiError(409, "contact_stopped",
                       "This supporter opted out (STOP), so the API cannot make them active again; "
                       "only the supporter can, by texting START.", field="status")
    for key, value in changes.items():
        setattr(contact, key, value)
    if status is not None and status != contact.status:
        audit.record(session, caller().actor, "contact.status", contact_id=contact.id, old=contact.status, new=status)
        contact.status = status
        if status == "stopped":
            contact.stopped_at = utcnow()
    if tags is not None:
        contact.tag_rows = [row for row in contact.tag_rows if row.tag in tags]
        contacts.add_tags(session, contact, tags)
    session.commit()
    return jsonify(contact_json(contact))


# --------------------------------------------------------------------------- broadcasts


BROADCAST_FIELDS = ("texts", "place", "language", "tag", "reply_keyword", "urgent", "send_at")


def broadcast_options(data: dict[str, Any]) -> dict[str, Any]:
    """Validated keyword arguments for `broadcasts.create`."""
    default = current_app.config["DEFAULT_LANGUAGE"]
    texts = data.get("texts")
    if not isinstance(texts, dict):
        if texts is None:
            raise invalid("texts", f"is required: an object of language -> text, e.g. {{\"{default}\": \"...\"}}")
        raise invalid("texts", f"expected an object of language -> text, got {_json_type(texts)}")
    clean: dict[str, str] = {}
    for language, text in texts.items():
        field = f"texts.{_check_text('texts', language)}"
        _language(field, language)
        if not isinstance(text, str):
            raise invalid(field, f"expected a string, got {_json_type(text)}")
        text = _check_text(field, text).strip()
        if len(text) > MAX_TEXT:
            raise invalid(field, f"is longer than {MAX_TEXT} characters")
        if text:
            clean[language.lower()] = text
    if default not in clean:
        raise invalid(f"texts.{default}", f"a text in the default language '{default}' is required")
    keyword = _string(data, "reply_keyword", max_length=MAX_KEYWORD)
    if keyword is not None:
        folded = fold(keyword)
        if not folded or " " in folded:
            raise invalid("reply_keyword", "must be one word of letters or digits, e.g. YES")
    urgent = data.get("urgent", False)
    if not isinstance(urgent, bool):
        raise invalid("urgent", f"expected true or false, got {_json_type(urgent)}")
    send_at = None if data.get("send_at") is None else _datetime("send_at", data["send_at"])
    tag = _string(data, "tag", max_length=MAX_TAG)
    return {"texts": clean, "default_language": default,
            "place": _place("place", _string(data, "place", max_length=MAX_FILTER)),
            "language": _language("language", _string(data, "language", max_length=8)),
            "tag": tag.lower() if tag else None, "reply_keyword": keyword, "urgent": urgent, "send_at": send_at}


def _create_broadcast(session: Session, options: dict[str, Any]) -> Broadcast:
    try:
        return broadcasts.create(session, **options, created_by=caller().actor[:120])
    except broadcasts.BroadcastError as exc:
        raise ApiError(400, "invalid_field", str(exc)) from None


def broadcast_json(session: Session, b: Broadcast) -> dict[str, Any]:
    body = broadcasts.progress(session, b.id)
    body.update({"texts": b.texts, "default_language": b.default_language, "place": b.place,
                 "language": b.language, "tag": b.tag, "urgent": b.urgent, "send_at": _iso(b.send_at),
                 "created_by": b.created_by, "created_at": _iso(b.created_at),
                 "launched_at": _iso(b.launched_at), "cancelled_at": _iso(b.cancelled_at)})
    return body


@bp.post("/broadcasts/preview")
@requires("organizer")
def preview_broadcast() -> ResponseReturnValue:
    options = broadcast_options(json_body(BROADCAST_FIELDS))
    session = db()
    try:
        b = _create_broadcast(session, options)
        p = broadcasts.preview(session, b, parse_prices(current_app.config["SMS_PRICES"]))
    finally:
        session.rollback()  # a preview creates nothing
    return jsonify(
        audience=p.recipients, total_segments=p.total_segments, estimated_cost=p.estimated_cost,
        segments_by_country=p.by_country,
        texts=[{"language": t.language, "recipients": t.recipients, "encoding": t.encoding,
                "segments": t.segments, "characters": t.characters, "ucs2_characters": list(t.ucs2_chars),
                "gsm7_suggestion": t.suggestion, "gsm7_suggestion_segments": t.suggestion_segments}
               for t in p.texts])


@bp.post("/broadcasts")
@requires("organizer")
def create_broadcast() -> ResponseReturnValue:
    options = broadcast_options(json_body(BROADCAST_FIELDS))
    session = db()
    b = _create_broadcast(session, options)
    session.commit()
    return created(broadcast_json(session, b), f"/api/v1/broadcasts/{b.id}")


@bp.get("/broadcasts/<int:broadcast_id>")
@requires("viewer")
def get_broadcast(broadcast_id: int) -> ResponseReturnValue:
    session = db()
    return jsonify(broadcast_json(session, _get(session, Broadcast, broadcast_id, "broadcast")))


@bp.post("/broadcasts/<int:broadcast_id>/launch")
@requires("organizer")
def launch_broadcast(broadcast_id: int) -> ResponseReturnValue:
    from gateway.cli_outbound import sender_name

    svc = services()
    session = db()
    b = _get(session, Broadcast, broadcast_id, "broadcast", lock=True)
    if b.status != "draft":
        raise ApiError(409, "not_a_draft", f"Broadcast {b.id} is already {b.status}; only a draft can be launched.")
    try:
        recipients = broadcasts.launch(session, b, svc.provider.name, sender_name())
    except broadcasts.BroadcastError as exc:
        raise ApiError(409, "not_a_draft", str(exc)) from None
    audit.record(session, caller().actor, "broadcast.launch", broadcast_id=b.id, recipients=recipients)
    session.commit()  # the outbox rows exist before their jobs
    ids = list(session.scalars(select(Message.id).where(Message.broadcast_id == b.id, Message.status == "queued")
                               .order_by(Message.id)))
    body, send_at = broadcast_json(session, b), b.send_at
    session.rollback()
    if ids:
        try:
            queue.enqueue_ids(svc.redis, ids, at=send_at)
        except Exception:  # the rows are committed as queued: the reconciler enqueues them later
            logger.exception("broadcast %s: launched, but its send jobs could not be enqueued", b.id)
            body["warning"] = "The queue could not be reached; the reconciler will send the messages when it is back."
    return jsonify(body), 202, {"Location": f"/api/v1/broadcasts/{b.id}"}


@bp.post("/broadcasts/<int:broadcast_id>/cancel")
@requires("organizer")
def cancel_broadcast(broadcast_id: int) -> ResponseReturnValue:
    session = db()
    b = _get(session, Broadcast, broadcast_id, "broadcast", lock=True)
    if b.status in ("done", "cancelled"):
        raise ApiError(409, f"already_{b.status}",
                       f"Broadcast {b.id} is already {b.status}; there is nothing left to cancel.")
    not_sent = broadcasts.cancel(session, b)
    audit.record(session, caller().actor, "broadcast.cancel", broadcast_id=b.id, not_sent=not_sent)
    session.commit()
    body = broadcast_json(session, b)
    body["not_sent"] = not_sent
    return jsonify(body)


# --------------------------------------------------------------------------- reports


REPORT_FILTERS = ("place", "service", "delivered", "from", "to")


def report_filters(args: dict[str, str]) -> tuple[list[Any], dict[str, str]]:
    """SQL conditions for the report filters, and the filters as applied (for the audit log)."""
    conditions: list[Any] = []
    applied: dict[str, str] = {}
    if "place" in args:
        place = _place("place", args["place"])
        conditions.append(Report.place == place)
        applied["place"] = place or ""
    if "service" in args:
        applied["service"] = args["service"].lower()
        conditions.append(Report.service == applied["service"])
    if "delivered" in args:
        if args["delivered"].lower() not in DELIVERED:
            raise invalid("delivered", f"expected one of {', '.join(DELIVERED)}")
        applied["delivered"] = args["delivered"].lower()
        conditions.append(Report.delivered == applied["delivered"])
    start = _datetime("from", args["from"]) if "from" in args else None
    end = _datetime("to", args["to"], end_of_day=True) if "to" in args else None
    if start and end and (start > end or (len(args["to"]) == 10 and start >= end)):
        raise invalid("from", "is after 'to'")
    if start:
        conditions.append(Report.created_at >= start)
        applied["from"] = args["from"]
    if end:
        # A bare date includes that whole day; a date-time is the exact end.
        conditions.append(Report.created_at < end if len(args["to"]) == 10 else Report.created_at <= end)
        applied["to"] = args["to"]
    return conditions, applied


def report_json(r: Report) -> dict[str, Any]:
    """A report without any phone number; the contact's id only when the reporter did not ask for anonymity."""
    body = {"id": r.id, "ref": r.ref, "date": r.created_at.date().isoformat(), "created_at": _iso(r.created_at),
            "country": r.country, "place": r.place, "service": r.service, "service_detail": r.service_detail,
            "delivered": r.delivered, "details": r.details, "anonymous": bool(r.anonymous), "language": r.language}
    if not r.anonymous:
        body["contact_id"] = r.contact_id
    return body


@bp.get("/reports")
@requires("viewer")
def list_reports() -> ResponseReturnValue:
    args = query_args((*REPORT_FILTERS, "page", "per_page"))
    page, per_page = pagination(args)
    conditions, applied = report_filters(args)
    session = db()
    # By day, then by reference: neither the order nor the (random) id tells which report came first.
    items, meta = paginate(session, select(Report).where(*conditions).order_by(func.date(Report.created_at)),
                           Report.ref, page, per_page)
    # Reports are evidence: each export of them is on the record, with what was asked for.
    audit.record(session, caller().actor, "export.reports", via="api", filters=applied, page=page,
                 per_page=per_page, count=len(items))
    body = {"data": [report_json(r) for r in items], "pagination": meta}
    session.commit()
    return jsonify(body)


@bp.get("/reports/counts")
@requires("viewer")
def report_counts() -> ResponseReturnValue:
    conditions, applied = report_filters(query_args(REPORT_FILTERS))
    session = db()
    groups = session.execute(select(Report.place, Report.service, Report.delivered, func.count())
                             .where(*conditions).group_by(Report.place, Report.service, Report.delivered)).all()
    day = func.date(Report.created_at)
    days = session.execute(select(day, func.count()).where(*conditions).group_by(day)).all()

    def tally(keys: list[tuple[Any, int]]) -> dict[Any, int]:
        out: dict[Any, int] = {}
        for key, n in keys:
            out[key] = out.get(key, 0) + n
        return out

    by_place_service = tally([((p, s), n) for p, s, _d, n in groups])
    weeks: dict[date, int] = {}
    for value, n in days:
        d = date.fromisoformat(value) if isinstance(value, str) else value
        if isinstance(d, datetime):
            d = d.date()
        monday = d - timedelta(days=d.weekday())
        weeks[monday] = weeks.get(monday, 0) + n

    def ordered(counts: dict[Any, int]) -> list[tuple[Any, int]]:
        return sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))

    return jsonify(
        filters=applied, total=sum(n for *_k, n in groups),
        by_place=[{"place": k, "count": n} for k, n in ordered(tally([(p, n) for p, _s, _d, n in groups]))],
        by_service=[{"service": k, "count": n} for k, n in ordered(tally([(s, n) for _p, s, _d, n in groups]))],
        by_delivered=[{"delivered": k, "count": n} for k, n in ordered(tally([(d, n) for _p, _s, d, n in groups]))],
        by_place_and_service=[{"place": p, "service": s, "count": n} for (p, s), n in ordered(by_place_service)],
        by_week=[{"week": f"{m.isocalendar()[0]}-W{m.isocalendar()[1]:02d}", "week_start": m.isoformat(), "count": n}
                 for m, n in sorted(weeks.items())])


# --------------------------------------------------------------------------- OpenAPI


@bp.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    """The API's OpenAPI 3.1 description (no token needed)."""
    from gateway.web.api import openapi  # it reads this module's limits

    return jsonify(openapi.spec())


# --------------------------------------------------------------------------- registration


def init_app(app: Flask) -> None:
    """Register the API, exempt it from CSRF (tokens, not cookies), and give /api/ JSON routing errors."""
    from gateway.web.console import csrf

    app.register_blueprint(bp)
    csrf.exempt(bp)
    # First, so no console hook (a login redirect, say) answers an unknown /api/ path with HTML.
    app.before_request_funcs.setdefault(None, []).insert(0, _routing_errors)


# --------------------------------------------------------------------------- inbound texts set aside


def set_aside_json(m: Message, c: Contact | None, full: bool) -> dict[str, Any]:
    """An inbound text the gateway could not handle; its sender's number masked unless `full`."""
    from gateway.core.phones import mask_number

    number = contacts.number_of(c) if c is not None else None
    return {"id": m.id, "contact_id": m.contact_id,
            "number": (number if full else mask_number(number)) if number else None,
            "body": m.body, "error": m.error, "attempts": m.attempts, "channel": m.medium, "provider": m.channel,
            "received_at": _iso(m.created_at), "set_aside_at": _iso(m.handled_at)}


@bp.get("/messages/set-aside")
@requires("viewer")
def list_set_aside() -> ResponseReturnValue:
    """Inbound texts set aside after failed handling, newest first; viewers get masked numbers."""
    from gateway.inbound.receive import SET_ASIDE

    page, per_page = pagination(query_args(("page", "per_page")))
    session = db()
    query = select(Message).where(Message.direction == "in", Message.status == SET_ASIDE)
    items, meta = paginate(session, query, Message.id.desc(), page, per_page)
    ids = {m.contact_id for m in items if m.contact_id is not None}
    senders = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(ids)))} if ids else {}
    full = caller().role in ("organizer", "admin")
    return jsonify(data=[set_aside_json(m, senders.get(m.contact_id or 0), full) for m in items], pagination=meta)
