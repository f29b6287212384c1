"""How the API's answers are shaped: times in UTC with a Z, a 201 with its Location, a row or a 404."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, jsonify
from sqlalchemy.orm import Session

from gateway.web.api.errors import ApiError
from gateway.web.api.inputs import MAX_ID


def iso(value: datetime | None) -> str | None:
    """A naive-UTC time as ISO 8601 with a Z, or None."""
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z") if value else None


def created(body: dict[str, Any], location: str) -> tuple[Response, int, dict[str, str]]:
    """201 Created with the new thing and where it lives."""
    return jsonify(body), 201, {"Location": location}


def get_or_404(session: Session, model: type, ident: int, what: str, *, lock: bool = False) -> Any:
    """The row with this id, or 404."""
    row = session.get(model, ident, with_for_update=lock) if 0 < ident <= MAX_ID else None
    if row is None:
        raise ApiError(404, "not_found", f"There is no {what} {ident}.")
    return row
