"""GET /healthz: is the database reachable, is the queue reachable."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from gateway import channels, services, spool

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
    # A phone that is away does not make the gateway unhealthy (its messages wait), but an
    # operator should see since when it has been silent.
    phones: dict[str, dict[str, str | None]] = {}
    if checks["queue"] == "ok" and svc.channels is not None and svc.channels.phones:
        seen = channels.last_seen(svc.redis, svc.channels.phones)
        phones = {name: {"last_seen": when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None}
                  for name, when in seen.items()}
    extra: dict[str, object] = {"channels": phones} if phones else {}
    rejected = spool.spool_for(current_app).rejected()  # a count only: file names carry sender tags
    if rejected:
        extra["spool_rejected"] = rejected
    return jsonify(status="ok" if ok else "degraded", **checks, **extra), 200 if ok else 503
