"""GET /healthz: is the database reachable, is the queue reachable, and what else is degraded."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from gateway import channels, services
from gateway.web import vitals

bp = Blueprint("health", __name__)
QUIET_AFTER = timedelta(minutes=15)  # as on the dashboard


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """200 when the database and the queue answer, else 503; `degraded` lists whatever else is wrong.

    The status code keeps its old meaning (a load balancer takes a 503 process out of rotation):
    only an unreachable database or queue makes it 503. A stuck backlog, texts in the spool or no
    worker alive cannot be fixed by another process serving the request, so they are reported
    with a 200 and `"status": "degraded"`, for a monitor to alert on.
    """
    svc = services()
    v = vitals.gather()
    checks = {"database": "ok" if v.database else "unreachable", "queue": "ok" if v.queue else "unreachable"}
    ok = v.database and v.queue
    problems = v.degraded(svc.settings.sender_rate)
    # A phone that is away does not make the gateway unhealthy (its messages wait), but a monitor
    # should see that one has gone quiet. This route is open, so it counts phones and names none
    # (their names can say where they are); the console's dashboard names them.
    extra: dict[str, object] = {}
    if v.queue and svc.channels is not None and svc.channels.phones:
        seen = channels.last_seen(svc.redis, svc.channels.phones).values()
        since = datetime.now(UTC) - QUIET_AFTER
        quiet = sum(1 for when in seen if when is None or _aware(when) < since)
        extra["phones"] = {"count": len(svc.channels.phones), "quiet": quiet}
    if v.spool_rejected:  # a count only: file names carry sender tags
        extra["spool_rejected"] = v.spool_rejected
    if problems:
        # Counts only, like the rest of this open route: how much waits, never who.
        extra["degraded"] = problems
        extra["waiting"] = {"messages": v.waiting, "oldest_seconds": _whole(v.oldest_seconds)}
        extra["spool_kept"] = v.spool_kept
        if v.workers is not None:
            extra["workers"] = v.workers
    status = "ok" if not problems else "degraded"
    return jsonify(status=status, **checks, **extra), 200 if ok else 503


def _whole(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)
