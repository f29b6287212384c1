"""Console: alerts (placeholder until its pages land)."""
from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from gateway.console import role_required

bp = Blueprint("alerts", __name__, template_folder="templates")


@bp.get("/broadcasts")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """Placeholder."""
    return "alerts: not built yet", 501
