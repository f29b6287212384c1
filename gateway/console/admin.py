"""Console: accounts and the audit log (placeholder until its pages land)."""
from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from gateway.console import role_required

bp = Blueprint("admin", __name__, template_folder="templates")


@bp.get("/users")
@role_required("admin")
def users() -> ResponseReturnValue:
    """Placeholder."""
    return "accounts: not built yet", 501


@bp.get("/audit")
@role_required("admin")
def audit() -> ResponseReturnValue:
    """Placeholder."""
    return "audit: not built yet", 501
