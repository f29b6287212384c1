"""Console: supporters (placeholder until its pages land)."""
from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from gateway.console import role_required

bp = Blueprint("supporters", __name__, template_folder="templates")


@bp.get("/supporters")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """Placeholder."""
    return "supporters: not built yet", 501
