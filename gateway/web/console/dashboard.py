"""The dashboard, and the console's static files."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from flask_babel import format_percent, ngettext
from flask_babel import gettext as _
from sqlalchemy import func, select

from gateway import channels, services
from gateway.db import get_session
from gateway.inbound.receive import SET_ASIDE
from gateway.models import Broadcast, Contact, Message, Report, utcnow
from gateway.web import casedata, vitals
from gateway.web.console import role_required
from gateway.web.console.supporters import full_numbers, shown_number
from gateway.web.paging import paginate

# Named "pages" still: templates, the login redirect and tests name its endpoints (pages.dashboard,
# pages.static), and endpoint names are part of what the refactor keeps.
bp = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
               static_url_path="/console-static")


@bp.get("/")
@role_required("viewer")
def dashboard() -> ResponseReturnValue:
    """Supporters, today's messages, recent delivery rate, newest reports, queue health."""
    s = get_session()
    counts: dict[str, int] = dict(s.execute(select(Contact.status, func.count()).group_by(Contact.status))
                                  .tuples().all())
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    recent = select(Broadcast.id).where(Broadcast.launched_at >= utcnow() - timedelta(days=30))
    by_status: dict[str, int] = dict(s.execute(select(Message.status, func.count()).where(
        Message.broadcast_id.in_(recent)).group_by(Message.status)).tuples().all())
    settled = sum(by_status.get(k, 0) for k in ("delivered", "undelivered", "failed"))
    ops = vitals.gather(session=s)  # the numbers /healthz and /metrics show, put in words below
    queue = "ok" if ops.queue else "unreachable"
    stats = {
        "active": counts.get("active", 0), "stopped": counts.get("stopped", 0),
        "messages_today": s.scalar(select(func.count()).select_from(Message).where(Message.created_at >= today)),
        # Whole percents, rounded down as before, written the reader's way (92%, 92 %).
        "delivery_rate": format_percent(100 * by_status.get("delivered", 0) // settled / 100) if settled else _("n/a"),
        "queue": _("ok") if queue == "ok" else _("unreachable"),
        "set_aside": s.scalar(select(func.count()).select_from(Message).where(
            Message.direction == "in", Message.status == SET_ASIDE)),
        "overdue_cases": casedata.count_overdue(s),
    }
    # Newest days first, then by reference: within a day the order must not tell which came first.
    reports = s.scalars(select(Report).order_by(func.date(Report.created_at).desc(), Report.ref).limit(10)).all()
    return render_template("dashboard.html", stats=stats, reports=reports, phones=_phones(queue == "ok"), ops=ops,
                           oldest=_duration(ops.oldest_seconds),
                           stuck=ops.backlog_stuck(services().settings.sender_rate))


def _duration(seconds: float | None) -> str | None:
    """An age in its largest whole unit, in the page's language ("3 minutes"), for "the oldest 3 minutes"."""
    if seconds is None:
        return None
    if seconds >= 86400:
        return ngettext("%(num)d day", "%(num)d days", int(seconds // 86400))
    if seconds >= 3600:
        return ngettext("%(num)d hour", "%(num)d hours", int(seconds // 3600))
    if seconds >= 60:
        return ngettext("%(num)d minute", "%(num)d minutes", int(seconds // 60))
    return ngettext("%(num)d second", "%(num)d seconds", int(seconds))


def _phones(queue_ok: bool) -> list[dict[str, Any]]:
    """Each Android phone's last contact, so an organizer sees a phone that has gone quiet."""
    chans = services().channels
    if not queue_ok or chans is None or not chans.phones:
        return []
    now = utcnow()
    rows = []
    for name, when in channels.last_seen(services().redis, chans.phones).items():
        naive = when.replace(tzinfo=None) if when else None
        rows.append({"name": name, "seen": naive, "quiet": naive is None or now - naive > timedelta(minutes=15)})
    return rows


@bp.get("/set-aside")
@role_required("viewer")
def set_aside() -> ResponseReturnValue:
    """Inbound texts the gateway failed to handle after its retries, newest first, with the error."""
    s = get_session()
    page = paginate(s, select(Message, Contact).outerjoin(Contact, Contact.id == Message.contact_id)
                    .where(Message.direction == "in", Message.status == SET_ASIDE)
                    .order_by(Message.id.desc()), scalars=False)
    numbers = {c.id: shown_number(c) for _m, c in page.items if c is not None}
    return render_template("set_aside.html", page=page, numbers=numbers, masked=not full_numbers())
