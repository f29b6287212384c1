"""Console: service reports: a filtered list, counts by place and service, a weekly trend, CSV export.

No page or file here ever shows a phone number: a named report links to its supporter's page,
for organizers only; an anonymous one has no supporter at all.
"""
from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select

from gateway.db import get_session
from gateway.evidence.figures import silent_places
from gateway.models import Contact, Report, utcnow
from gateway.people import accounts, audit, csvio, reports
from gateway.people.reports import DELIVERED, ReportFilter, WeekCount, day_range
from gateway.web.console import role_required
from gateway.web.console.supporters import csv_response
from gateway.web.paging import paginate

bp = Blueprint("reports", __name__, template_folder="templates")

DELIVERED_LABELS = {"yes": _l("arrived"), "no": _l("did not arrive"), "partly": _l("partly arrived")}
TOP_BARS = 15  # more places than this are summed into one "other places" bar
SILENT_DAYS = 30  # silent places, when the filter gives no dates: the last 30 days
MAX_WEEKS = 156  # the trend shows at most three years; narrow the dates to see older weeks


@dataclass
class FilterForm:
    """What the organizer picked above the list, forgiving: a bad value is ignored and said so."""

    place: str = ""
    service: str = ""
    delivered: str = ""
    start: date | None = None
    end: date | None = None
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> FilterForm:
        """The filter in the query string, with a problem noted for each value that was ignored."""
        f = cls(place=args.get("place", "").strip()[:80], service=args.get("service", "").strip()[:40])
        delivered = args.get("delivered", "").strip().lower()
        if delivered in DELIVERED:
            f.delivered = delivered
        elif delivered:
            f.problems.append(_("“Arrived” must be yes, no or partly, not %(value)s; showing all.",
                                value=repr(delivered)))
        for key, label in (("from", _("From")), ("to", _("To"))):
            raw = args.get(key, "").strip()
            if not raw:
                continue
            try:
                setattr(f, "start" if key == "from" else "end", date.fromisoformat(raw))
            except ValueError:
                f.problems.append(_("%(which)s date %(value)s is not a date like 2025-03-31; it was ignored.",
                                    which=label, value=repr(raw[:20])))
        if f.start and f.end and f.start > f.end:
            f.problems.append(_("The “from” date is after the “to” date, so nothing can match."))
        return f

    @property
    def filter(self) -> ReportFilter:
        """The same filter drives the list, the counts, the trend and the export."""
        start, end = day_range(self.start, self.end)
        return ReportFilter(self.place or None, self.service or None, self.delivered or None, start, end)

    def as_args(self) -> dict[str, str]:
        """The filter as query arguments (for links) and as the audit record of an export."""
        out = {"place": self.place, "service": self.service, "delivered": self.delivered,
               "from": self.start.isoformat() if self.start else "", "to": self.end.isoformat() if self.end else ""}
        return {k: v for k, v in out.items() if v}


# --------------------------------------------------------------------------- charts


@dataclass
class Bar:
    label: str
    count: int
    width: float  # SVG units, 0..BAR_WIDTH
    y: int = 0


BAR_LEFT, BAR_WIDTH, BAR_HEIGHT, BAR_GAP = 170, 250, 22, 6


def bars(counts: Counter[str], other_label: str) -> list[Bar]:
    """Horizontal bars, biggest first; the tail summed into one bar."""
    ranked = counts.most_common()
    if len(ranked) > TOP_BARS:
        rest = ranked[TOP_BARS - 1:]
        ranked = ranked[:TOP_BARS - 1] + [(f"{other_label} ({len(rest)})", sum(n for _, n in rest))]
    top = max((n for _, n in ranked), default=0) or 1
    return [Bar(label, n, round(n / top * BAR_WIDTH, 1), i * (BAR_HEIGHT + BAR_GAP))
            for i, (label, n) in enumerate(ranked)]


@dataclass
class Week:
    year: int
    week: int
    monday: date
    counts: Counter[str]
    x: int = 0
    height: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def total(self) -> int:
        return sum(self.counts.values())


WEEK_CHART_WIDTH, WEEK_CHART_HEIGHT = 560, 120


def trend(found: list[WeekCount]) -> list[Week]:
    """The weeks to chart: empty weeks filled in so gaps show, at most MAX_WEEKS, with bar geometry."""
    if not found:
        return []
    by_monday = {w.monday: w.counts for w in found}
    last = found[-1].monday
    monday = max(found[0].monday, last - timedelta(weeks=MAX_WEEKS - 1))
    weeks = []
    while monday <= last:
        iso = monday.isocalendar()
        weeks.append(Week(iso.year, iso.week, monday, by_monday.get(monday, Counter())))
        monday += timedelta(weeks=1)
    top = max(w.total for w in weeks) or 1
    step = week_step(len(weeks))
    for i, w in enumerate(weeks):
        w.x, w.height = i * step, round(w.total / top * WEEK_CHART_HEIGHT, 1)
    return weeks


def week_step(count: int) -> int:
    """SVG units per week: wide bars for a few weeks, thin ones for years."""
    return max(6, min(40, WEEK_CHART_WIDTH // max(count, 1)))


# --------------------------------------------------------------------------- pages


def _choices(session: Any) -> dict[str, list[str]]:
    places = session.scalars(select(Report.place).where(Report.place.is_not(None)).distinct()).all()
    services = session.scalars(select(Report.service).distinct()).all()
    supporters = session.scalars(select(Contact.place).where(Contact.place.is_not(None)).distinct()).all()
    return {"place": sorted(places), "service": sorted(services), "delivered": list(DELIVERED),
            "brief_place": sorted(set(places) | set(supporters))}


@bp.get("/reports")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """The filtered reports, counts by place and service, and the weekly trend."""
    s = get_session()
    f = FilterForm.from_args(request.args)
    which = f.filter
    # By day, then by reference: the order within a day must not tell which report came first.
    page = paginate(s, which.apply(select(Report)).order_by(func.date(Report.created_at).desc(), Report.ref))

    reporters: dict[int, str] = {}
    if accounts.can(current_user, "organizer"):
        ids = {r.contact_id for r in page.items if r.contact_id and not r.anonymous}
        if ids:
            reporters = {cid: name or _("supporter #%(id)s", id=cid) for cid, name in
                         s.execute(select(Contact.id, Contact.name).where(Contact.id.in_(ids)))}

    counted = reports.counts(s, which)
    by_place: Counter[str] = Counter()
    cross: dict[str, Counter[str]] = {}
    for (place, service), n in counted.by_place_and_service.items():
        place = place or _("(no place)")
        by_place[place] += n
        cross.setdefault(place, Counter())[service] += n
    by_service = counted.by_service
    services_seen = [name for name, _n in by_service.most_common()]
    weeks = trend(reports.weekly(s, which))
    # Silent places: supporters, and no report (or checks nobody answered) in the filter's dates, else 30 days.
    now = utcnow()
    quiet_from, quiet_to = which.start or now - timedelta(days=SILENT_DAYS), which.end or now
    silent = silent_places(s, quiet_from, quiet_to, f.place or None)
    delivered: Counter[str] = Counter()
    for w in weeks:
        delivered.update(w.counts)
    # The week chart scales to the page width: text grows with the number of weeks so it stays readable.
    step = week_step(len(weeks))
    width = max(len(weeks) * step, WEEK_CHART_WIDTH // 2)
    font = max(15, round(width / 36))
    week_chart = {"width": width + 2 * font, "height": WEEK_CHART_HEIGHT + font + 8, "font": font,
                  "every": max(1, math.ceil(2.6 * font / step)), "base": WEEK_CHART_HEIGHT,
                  "label_y": WEEK_CHART_HEIGHT + font + 2, "bar": max(step - 2, 4)}
    return render_template(
        "reports_index.html", f=f, args=f.as_args(), page=page, choices=_choices(s), reporters=reporters,
        place_bars=bars(by_place, _("other places")), service_bars=bars(by_service, _("other services")),
        cross=sorted(cross.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])), services=services_seen,
        weeks=weeks, week_chart=week_chart, silent=silent, quiet_from=quiet_from.date(),
        quiet_to=(quiet_to - timedelta(seconds=1)).date(), brief_month=now.strftime("%Y-%m"),
        delivered=delivered, labels=DELIVERED_LABELS,
        chart={"left": BAR_LEFT, "width": BAR_WIDTH, "bar": BAR_HEIGHT, "gap": BAR_GAP})


@bp.get("/reports/export")
@role_required("viewer")
def export_csv() -> ResponseReturnValue:
    """The filtered reports as CSV (never a phone number); the export is written to the audit log."""
    s = get_session()
    f = FilterForm.from_args(request.args)
    out = io.StringIO()
    writer = csvio.writer(out)  # every text cell safe from formula injection
    writer.writerow(csvio.REPORT_COLUMNS)
    count = 0
    for r, due_on in s.execute(csvio.reports_with_due_dates(f.filter.apply(select(Report)))
                               .order_by(func.date(Report.created_at), Report.ref)):
        writer.writerow(csvio.report_row(r, due_on))
        count += 1
    audit.record(s, current_user.email, "export.reports", filter=f.as_args(), count=count)
    s.commit()
    return csv_response(out.getvalue(), f"reports-{utcnow().date().isoformat()}.csv")
