"""GET /healthz: is the database reachable, is the queue reachable."""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from gateway import channels, services

bp = Blueprint("health", __name__)
logger = logging.getLogger(__name__)
QUIET_AFTER = timedelta(minutes=15)  # as on the dashboard


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
    # A phone that is away does not make the gateway unhealthy (its messages wait), but a monitor
    # should see that one has gone quiet. This route is open, so it counts phones and names none
    # (their names can say where they are); the console's dashboard names them.
    extra: dict[str, object] = {}
    if checks["queue"] == "ok" and svc.channels is not None and svc.channels.phones:
        seen = channels.last_seen(svc.redis, svc.channels.phones).values()
        since = datetime.now(UTC) - QUIET_AFTER
        quiet = sum(1 for when in seen if when is None or _aware(when) < since)
        extra["phones"] = {"count": len(svc.channels.phones), "quiet": quiet}
    rejected = svc.inbound.spool.rejected()  # a count only: file names carry sender tags
    if rejected:
        extra["spool_rejected"] = rejected
    return jsonify(status="ok" if ok else "degraded", **checks, **extra), 200 if ok else 503


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)
