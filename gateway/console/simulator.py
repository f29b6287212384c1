"""Console: simulator (placeholder until its pages land)."""
from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from gateway.console import role_required

bp = Blueprint("simulator", __name__, template_folder="templates")


@bp.get("/simulator")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """Placeholder."""
    return "simulator: not built yet", 501
