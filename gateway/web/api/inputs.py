"""What the API accepts: JSON bodies, query strings, and each field's checks and limits.

The limits live here so the OpenAPI description (openapi.py) reads them without importing the views.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import current_app, request

from gateway import services
from gateway.core.phones import InvalidNumber, normalise_number
from gateway.core.places import match_place
from gateway.people.reports import DELIVERED
from gateway.web.api.errors import ApiError, invalid

STATUSES = ("active", "stopped", "blocked")
MAX_PER_PAGE, DEFAULT_PER_PAGE, MAX_PAGE = 200, 50, 1_000_000
MAX_NAME, MAX_TAG, MAX_TAGS, MAX_KEYWORD, MAX_TEXT, MAX_FILTER = 120, 40, 50, 20, 1600, 200
MAX_BODY = 64 * 1024  # bytes; the largest real body (three 1600-character texts) is a few KiB
MAX_NOTE = 1000  # an organizer's note on a case
MAX_CSV = 60_000  # characters of an officials' CSV sent as JSON (the body's limit is MAX_BODY)
MAX_ID = 2**31 - 1  # ids are 32-bit integers; a larger one names nothing (and must not reach PostgreSQL)


def check_text(field: str, value: str) -> str:
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
                           f"{check_text('field', key)!r} is not a field here; expected {', '.join(allowed)}.",
                           field=key)
    return data


def string_field(data: dict[str, Any], field: str, *, max_length: int, required: bool = False,
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
        raise invalid(field, f"expected a string, got {json_type(value)}")
    value = check_text(field, value).strip()
    if not value:
        if required:
            raise invalid(field, "is required and cannot be blank")
        return None
    if len(value) > max_length:
        raise invalid(field, f"is longer than {max_length} characters")
    return value


def json_type(value: Any) -> str:
    """A JSON value's kind, as an error message names it."""
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), "null" if value is None else type(value).__name__)


def language_field(field: str, value: str | None) -> str | None:
    """A language code of the flows, lowercased; 400 if unknown."""
    if value is None:
        return None
    value = value.lower()
    known = languages()
    if value not in known:
        raise invalid(field, f"{value!r} is not a language of the flows; expected one of {', '.join(known)}")
    return value


def languages() -> tuple[str, ...]:
    """The flows' languages, declared in flows/system.yaml (the default among them)."""
    return services().flows.languages


def place_field(field: str, value: str | None) -> str | None:
    """A place name as the gazetteers spell it ('zomba city' -> 'Zomba'); 400 if unknown."""
    if value is None:
        return None
    found = match_place(value, services().flows.gazetteers.values(), services().settings.default_country)
    if found is None:
        raise invalid(field, f"{value!r} is not a place in the gazetteers (flows/places/)")
    return found.name


def tags_field(field: str, value: Any) -> list[str]:
    """A list of tags, trimmed, lowercased and without repeats."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(field, f"expected a list of strings, got {json_type(value)}")
    if len(value) > MAX_TAGS:
        raise invalid(field, f"at most {MAX_TAGS} tags")
    tags: list[str] = []
    for i, tag in enumerate(value):
        name = f"{field}[{i}]"
        if not isinstance(tag, str):
            raise invalid(name, f"expected a string, got {json_type(tag)}")
        tag = check_text(name, tag).strip().lower()
        if not tag:
            raise invalid(name, "a tag cannot be blank")
        if len(tag) > MAX_TAG:
            raise invalid(name, f"is longer than {MAX_TAG} characters")
        if tag not in tags:
            tags.append(tag)
    return tags


def number_field(field: str, value: str) -> str:
    """A supporter's phone number, local or international, as E.164."""
    try:
        address = normalise_number(value, services().settings.default_country)
    except InvalidNumber as exc:
        raise invalid(field, str(exc)) from None
    if address.kind != "e164":
        raise invalid(field, f"{value!r} is a short code, not a supporter's phone number")
    return address.value


def datetime_field(field: str, value: Any, *, end_of_day: bool = False) -> datetime:
    """ISO 8601 date or date-time as naive UTC; a bare date means its start (or, for `end_of_day`, its end)."""
    if not isinstance(value, str):
        raise invalid(field, f"expected an ISO 8601 date-time string, got {json_type(value)}")
    text = check_text(field, value).strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, datetime.min.time())
            return start + timedelta(days=1) if end_of_day and day < date.max else start
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise invalid(field, f"{value!r} is not an ISO 8601 date (2025-03-01) "
                             "or date-time (2025-03-01T08:00:00Z)") from None
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
                           f"{check_text('parameter', key)!r} is not a query parameter here; "
                           f"expected {', '.join(allowed)}.",
                           field=key)
        value = check_text(key, request.args.get(key, "")).strip()
        if len(value) > MAX_FILTER:
            raise invalid(key, f"is longer than {MAX_FILTER} characters")
        if value:
            args[key] = value
    return args


def delivered_field(field: str, value: str) -> str:
    """A report's answer to "did it arrive?" (yes, no, partly), lowercased; 400 otherwise."""
    if value.lower() not in DELIVERED:
        raise invalid(field, f"expected one of {', '.join(DELIVERED)}")
    return value.lower()


def pagination(args: dict[str, str]) -> tuple[int, int]:
    """(page, per_page) from the query string; 400 for a value out of range."""
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
