"""The JSON API under /api/v1/: contacts, broadcasts, reports and set-aside texts, for per-user bearer tokens.

Every answer is JSON, errors included: {"error": {"code": "...", "message": "...", "field": "..."}}.
Tokens come from `accounts.new_api_token`; a token acts with its account's role
(viewer < organizer < admin): reads need viewer, writes need organizer.

  blueprint.py bp   errors.py the error answers        inputs.py  bodies, query strings, limits   auth.py  tokens
  contacts.py broadcasts.py reports.py messages.py cases.py schedules.py  the routes      openapi.py  the spec
"""
from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from gateway import db
from gateway.web.api import (  # noqa: F401  (their views join bp)
    brief,
    broadcasts,
    cases,
    contacts,
    messages,
    openapi,
    reports,
    schedules,
)
from gateway.web.api.blueprint import bp
from gateway.web.api.errors import routing_errors
from gateway.web.console import csrf


@bp.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    """The API's OpenAPI 3.1 description (no token needed)."""
    return jsonify(openapi.spec())


def init_app(app: Flask) -> None:
    """Register the API, exempt it from CSRF (tokens, not cookies), and give /api/ JSON routing errors."""

    db.init_app(app)
    app.register_blueprint(bp)
    csrf.exempt(bp)  # the console's CSRF extension: bearer tokens, not cookies, here
    # First, so no console hook (a login redirect, say) answers an unknown /api/ path with HTML.
    app.before_request_funcs.setdefault(None, []).insert(0, routing_errors)
