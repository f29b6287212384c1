"""The JSON API under /api/v1/: contacts, broadcasts, reports and set-aside texts, for per-user bearer tokens.

Every answer is JSON, errors included: {"error": {"code": "...", "message": "...", "field": "..."}}.
Tokens come from `accounts.new_api_token`; a token acts with its account's role
(viewer < organizer < admin): reads need viewer, writes need organizer.

  errors.py   the error answers        inputs.py  bodies, query strings, limits   auth.py  tokens
  contacts.py broadcasts.py reports.py messages.py  the routes                    openapi.py  the spec
"""
from __future__ import annotations

from flask import Blueprint, Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from gateway import db
from gateway.web.api import openapi
from gateway.web.api.errors import ApiError, api_error, http_error, routing_errors
from gateway.web.console import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
bp.register_error_handler(ApiError, api_error)
bp.register_error_handler(HTTPException, http_error)


@bp.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    """The API's OpenAPI 3.1 description (no token needed)."""
    return jsonify(openapi.spec())


# The route modules add their views to `bp`, so they are imported once it exists (Flask's usual
# blueprint-package shape).
from gateway.web.api import broadcasts, contacts, messages, reports  # noqa: F401


def init_app(app: Flask) -> None:
    """Register the API, exempt it from CSRF (tokens, not cookies), and give /api/ JSON routing errors."""

    db.init_app(app)
    app.register_blueprint(bp)
    csrf.exempt(bp)  # the console's CSRF extension: bearer tokens, not cookies, here
    # First, so no console hook (a login redirect, say) answers an unknown /api/ path with HTML.
    app.before_request_funcs.setdefault(None, []).insert(0, routing_errors)
