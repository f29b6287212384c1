"""GET /healthz: is the database reachable, is the queue reachable."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from gateway import services

bp = Blueprint("health", __name__)
logger = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """200 when the database and the queue answer, else 503 naming what is down."""
    checks: dict[str, str] = {}
    svc = services()
    try:
        with svc.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not reachable"; the log keeps the reason
        logger.warning("healthz: database: %s", exc)
        checks["database"] = "unreachable"
    try:
        svc.redis.ping()
        checks["queue"] = "ok"
    except Exception as exc:
        logger.warning("healthz: queue: %s", exc)
        checks["queue"] = "unreachable"
    ok = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if ok else "degraded", **checks), 200 if ok else 503
