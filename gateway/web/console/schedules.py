"""Console: promised services (schedules) with their checks, and "Tell supporters" for a place.

Organizers record, change, stop and restart schedules (the same checks as the API and the CLI:
gateway/evidence/schedules.py). "Tell supporters" drafts the one-SMS summary of a place's figures in
each language and opens the normal broadcast form with it, so it goes through preview and launch.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import pgettext
from flask_login import current_user
from sqlalchemy import func, select

from gateway import services
from gateway.core.brief import BadInput
from gateway.core.places import find_place
from gateway.core.schedule import local_day
from gateway.db import get_session
from gateway.evidence import schedules, summary
from gateway.models import Check, ServiceSchedule, utcnow
from gateway.web.console import broadcast_form, localtime, role_required
from gateway.web.console import broadcasts as broadcasts_page
from gateway.web.console.i18n import N_
from gateway.web.console.localtime import zone

bp = Blueprint("schedules", __name__, template_folder="templates")
# The shared checks' messages, marked here for the console's catalogue (their params are filled in when shown).
PROBLEMS = (
    N_("is required: a date like 2026-11-03"), N_("expected a date like 2026-11-03, got %(got)s"),
    N_("expected a whole number from %(low)d to %(high)d"),
    N_("expected a whole number from %(low)d to %(high)d, got %(got)d"),
    N_("is required: a place the gazetteers know, e.g. Zomba"),
    N_("%(place)s is not in the gazetteers (flows/places): check the spelling"),
    N_("is required: one word as reports spell it, e.g. clinic or water"),
    N_("%(lang)s is not a language of the flows (%(languages)s)"),
    N_("the %(lang)s label is longer than %(max)d characters"),
    N_("is before starts_on"), N_("expected a local time like 16:00, got %(got)s"),
    N_("is more than the sample size (%(sample)d): no check could reach it"),
    N_("the %(lang)s question would be longer than one SMS: shorten the label (%(start)s...)"),
)
FORM_FIELDS = ("place", "service", "starts_on", "every_days", "ends_on", "check_at", "sample_size", "no_threshold")


def _raw(form: Any) -> dict[str, Any]:
    """The form's values as values_from takes them (labels per language from label_<lang>)."""
    raw: dict[str, Any] = {f: (form.get(f) or "").strip()[:120] for f in FORM_FIELDS}
    raw["labels"] = {lang: (form.get(f"label_{lang}") or "").strip()[:120] for lang in services().flows.languages}
    return raw


def problem(exc: schedules.ScheduleError) -> str:
    """A check's complaint in the page's language, naming the field as the form does."""
    said = _(exc.template, **exc.params) if exc.template in PROBLEMS else exc.message
    return _("%(field)s: %(problem)s", field=_field_names().get(exc.field, exc.field), problem=said)


def _field_names() -> dict[str, str]:
    """The fields the shared checks name, as the API does: English keeps those names (starts_on), another
    language says the form's label for each."""
    return {
        "place": pgettext("schedule field", "place"), "service": pgettext("schedule field", "service"),
        "labels": pgettext("schedule field", "labels"), "starts_on": pgettext("schedule field", "starts_on"),
        "every_days": pgettext("schedule field", "every_days"), "ends_on": pgettext("schedule field", "ends_on"),
        "check_at": pgettext("schedule field", "check_at"),
        "sample_size": pgettext("schedule field", "sample_size"),
        "no_threshold": pgettext("schedule field", "no_threshold"),
    }


def _form_values(row: ServiceSchedule | None) -> dict[str, Any]:
    if row is None:
        return {"place": "", "service": "", "starts_on": "", "every_days": "", "ends_on": "", "check_at": "16:00",
                "sample_size": "5", "no_threshold": "3", "labels": {}}
    return {"place": row.place, "service": row.service, "starts_on": row.starts_on.isoformat(),
            "every_days": row.every_days or "", "ends_on": row.ends_on.isoformat() if row.ends_on else "",
            "check_at": row.check_at.strftime("%H:%M"), "sample_size": row.sample_size,
            "no_threshold": row.no_threshold, "labels": dict(row.labels or {})}


def _render(values: dict[str, Any], errors: list[str], editing: ServiceSchedule | None = None,
            status: int = 200) -> ResponseReturnValue:
    s = get_session()
    rows = schedules.listing(s)
    counts: dict[int, dict[str, int]] = {}
    for schedule_id, outcome, n in s.execute(select(Check.schedule_id, Check.outcome, func.count())
                                             .where(Check.schedule_id.in_([r.id for r in rows]))
                                             .group_by(Check.schedule_id, Check.outcome)):
        counts.setdefault(schedule_id, {})[outcome or "open"] = n
    return render_template("schedules_index.html", rows=rows, counts=counts, values=values, errors=errors,
                           editing=editing, languages=broadcast_form.languages(),
                           language_names=broadcast_form.LANGUAGES, place_groups=broadcast_form.place_groups(),
                           can_organize=current_user.role in ("organizer", "admin")), status


@bp.get("/schedules")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """Every schedule with its checks' outcomes, and the form for a new one."""
    return _render(_form_values(None), [])


@bp.post("/schedules")
@role_required("organizer")
def create() -> ResponseReturnValue:
    """Record a schedule; the form comes back with what to fix."""
    raw = _raw(request.form)
    s = get_session()
    try:
        row = schedules.create(s, schedules.values_from(s, raw), actor=current_user.email)
    except schedules.ScheduleError as exc:
        s.rollback()
        return _render({**raw, "labels": raw["labels"]}, [problem(exc)], status=400)
    s.commit()
    flash(_("Schedule saved: %(service)s in %(place)s from %(day)s.", service=row.service, place=row.place,
            day=localtime.local_day(row.starts_on)))
    return redirect(url_for(".index"))


@bp.route("/schedules/<int:schedule_id>/edit", methods=["GET", "POST"])
@role_required("organizer")
def edit(schedule_id: int) -> ResponseReturnValue:
    """Change a schedule (its checks so far keep their dates)."""
    s = get_session()
    row = s.get(ServiceSchedule, schedule_id)
    if row is None:
        abort(404)
    if request.method == "GET":
        return _render(_form_values(row), [], editing=row)
    raw = _raw(request.form)
    try:
        schedules.update(s, row, schedules.values_from(s, raw, before=row), actor=current_user.email)
    except schedules.ScheduleError as exc:
        s.rollback()
        return _render(raw, [problem(exc)], editing=row, status=400)
    s.commit()
    flash(_("Schedule %(id)d changed.", id=row.id))
    return redirect(url_for(".index"))


@bp.post("/schedules/<int:schedule_id>/active")
@role_required("organizer")
def toggle(schedule_id: int) -> ResponseReturnValue:
    """Stop a schedule (no more checks) or start it again."""
    s = get_session()
    row = s.get(ServiceSchedule, schedule_id, with_for_update=True)
    if row is None:
        abort(404)
    active = request.form.get("active") == "1"
    try:
        schedules.update(s, row, schedules.values_from(s, {"active": active}, before=row), actor=current_user.email)
    except schedules.ScheduleError as exc:  # starting again is checked like any change (stopping never fails)
        s.rollback()
        return _render(_form_values(None), [problem(exc)], status=400)
    s.commit()
    flash(_("Schedule %(id)d started again.", id=row.id) if active else _("Schedule %(id)d stopped.", id=row.id))
    return redirect(url_for(".index"))


@bp.get("/schedules/tell")
@role_required("organizer")
def tell() -> ResponseReturnValue:
    """The broadcast form, prefilled with the place's summary in each language and the place as audience."""
    s = get_session()
    place = (request.args.get("place") or "").strip()[:80]
    found = find_place(place, services().flows.gazetteers.values()) if place else None
    if found is None:
        flash(_("Choose a place the gazetteers know to tell its supporters."))
        return redirect(url_for(".index"))
    today = local_day(utcnow(), zone())
    try:
        month = summary.month_of(request.args.get("month"), today)
    except BadInput:
        return _render(_form_values(None), [_("%(month)s is not a month like 2026-11 (year-month)",
                                              month=repr((request.args.get("month") or "")[:20]))], status=400)
    f = summary.figures(s, found.name, (request.args.get("service") or "").strip().lower()[:40] or None, month)
    values = broadcast_form.blank_values()
    values["texts"].update(summary.drafts(s, f))
    values["place"] = found.name
    return broadcasts_page._render_compose(values, [])  # the broadcasts page's own form, preview and launch
