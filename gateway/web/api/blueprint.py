"""The API's blueprint, in a module of its own so the route modules add views to it without an import cycle."""
from __future__ import annotations

from flask import Blueprint
from werkzeug.exceptions import HTTPException

from gateway.web.api.errors import ApiError, api_error, http_error

bp = Blueprint("api", __name__, url_prefix="/api/v1")
bp.register_error_handler(ApiError, api_error)
bp.register_error_handler(HTTPException, http_error)
