"""Console: reports (placeholder until its pages land)."""
from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from gateway.console import role_required

bp = Blueprint("reports", __name__, template_folder="templates")


@bp.get("/reports")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """Placeholder."""
    return "reports: not built yet", 501
