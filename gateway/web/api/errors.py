"""The API's errors: every answer is JSON, errors included: {"error": {"code", "message", "field"?}}."""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed


class ApiError(Exception):
    """An error answer: HTTP status, a stable code, a sentence, and the field at fault if any."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}

    def response(self) -> Response:
        """The error as a JSON response with its status and headers."""
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


def api_error(exc: ApiError) -> Response:
    """The blueprint's handler for ApiError."""
    return exc.response()


def routing_errors() -> Response | None:
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
