"""Console: flowsview (placeholder until its pages land)."""
from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from gateway.console import role_required

bp = Blueprint("flowsview", __name__, template_folder="templates")


@bp.get("/flows")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """Placeholder."""
    return "flowsview: not built yet", 501
