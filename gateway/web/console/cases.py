"""Console: cases: a filtered list, one case's timeline, reports and officials' texts, and organizers' moves.

Viewers read; organizers send, escalate, close (with a note), open by hand, merge and split. Every
move goes through the domain (gateway/cases), which refuses a move the ladder does not allow with a
sentence (cases.CaseError) that is flashed as it is; the domain writes each move to the timeline
and the audit log.
A case page never shows who reported: reports are ref, answer, date and details only.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from gateway import cases as domain
from gateway.db import get_session
from gateway.evidence import checks
from gateway.models import Case, Official, Report, utcnow
from gateway.people import accounts
from gateway.web import casedata
from gateway.web.console import role_required
from gateway.web.console.localtime import console_zone, local
from gateway.web.paging import PAGE_SIZE, paginate

bp = Blueprint("cases", __name__, template_folder="templates")

MAX_NOTE = 1000
PER_PAGE = PAGE_SIZE
DELIVERED_LABELS = {"yes": _l("arrived"), "no": _l("did not arrive"), "partly": _l("partly arrived")}


@dataclass
class FilterForm:
    """The filter above the list, forgiving: a bad value is ignored and said so."""

    status: str = ""
    place: str = ""
    service: str = ""
    official: int | None = None
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> FilterForm:
        f = cls(place=args.get("place", "").strip()[:80], service=args.get("service", "").strip()[:40])
        status = args.get("status", "").strip().lower()
        if status in casedata.STATUSES:
            f.status = status
        elif status:
            f.problems.append(_("There is no status %(value)s; showing every status.", value=repr(status[:20])))
        official = args.get("official", "").strip()
        if official.isdigit() and len(official) < 10:
            f.official = int(official)
        elif official:
            f.problems.append(_("The official filter was not understood; showing every official."))
        return f

    @property
    def filter(self) -> casedata.CaseFilter:
        return casedata.CaseFilter(self.status or None, self.place or None, self.service or None, self.official)

    def as_args(self) -> dict[str, str]:
        out = {"status": self.status, "place": self.place, "service": self.service,
               "official": str(self.official) if self.official is not None else ""}
        return {k: v for k, v in out.items() if v}


def _can_organize() -> bool:
    return accounts.can(current_user, "organizer")


def _choices(s: Any) -> dict[str, Any]:
    return {"status": list(casedata.STATUSES),
            "place": sorted(s.scalars(select(Case.place).distinct()).all()),
            "service": sorted(s.scalars(select(Case.service).distinct()).all()),
            "official": list(s.execute(select(Official.id, Official.name, Official.role).order_by(Official.name)))}


def _get(case_id: int, *, lock: bool = False) -> Case:
    query = select(Case).where(Case.id == case_id)
    if lock:
        query = query.with_for_update()
    case = get_session().scalars(query).first() if 0 < case_id < 2**31 else None
    if case is None:
        abort(404)
    return case


@bp.get("/cases")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """Cases, filtered by status (overdue included), place, service and official, newest first."""
    s = get_session()
    f = FilterForm.from_args(request.args)
    now = utcnow()
    page = paginate(s, casedata.ordered(f.filter.apply(select(Case), now)), size=PER_PAGE)
    officials = casedata.officials_by_id(s, {c.official_id for c in page.items})
    return render_template("cases_index.html", f=f, args=f.as_args(), page=page, choices=_choices(s),
                           officials=officials, overdue={c.id for c in page.items if casedata.is_overdue(c, now)},
                           local=local, zone=console_zone()[1], can_organize=_can_organize())


@bp.get("/cases/<int:case_id>")
@role_required("viewer")
def show(case_id: int) -> ResponseReturnValue:
    """One case: its timeline, its reports (without reporters) and the texts to and from its officials."""
    s = get_session()
    case = _get(case_id)
    events = casedata.timeline(s, case)
    officials = casedata.officials_by_id(s, {e.official_id for e in events} | {case.official_id})
    others = []
    if _can_organize():
        others = list(s.execute(select(Case.id, Case.ref).where(
            Case.id != case.id, Case.place == case.place, Case.service == case.service).order_by(Case.ref)))
    return render_template("cases_show.html", case=case, events=events, officials=officials,
                           official=officials.get(case.official_id) if case.official_id else None,
                           reports=casedata.case_reports(s, case),
                           messages=casedata.official_messages(s, case, events),
                           overdue=casedata.is_overdue(case, utcnow()), others=others, local=local,
                           labels=DELIVERED_LABELS, can_organize=_can_organize(), max_note=MAX_NOTE,
                           corroboration=checks.corroboration_of(s, case.id))


# --------------------------------------------------------------------------- organizers' moves


def _act(case_id: int, move: Callable[[Any, Case], Any], done: str) -> ResponseReturnValue:
    """Run one domain move on a case and commit (the domain audits it); a refused move is flashed."""
    s = get_session()
    case = _get(case_id, lock=True)
    back = redirect(url_for(".show", case_id=case_id))
    try:
        result = move(s, case)
    except domain.CaseError as exc:
        s.rollback()
        flash(_("Not done: %(why)s", why=exc), "error")
        return back
    if result is None:  # send: no official answers at this rung (the timeline says so)
        s.commit()
        flash(_("Not sent: no official at rung %(level)s answers for %(service)s in %(place)s, or their "
                "phone cannot be texted. Import one on the Officials page.", level=case.level, service=case.service,
                place=case.place), "error")
        return back
    s.commit()  # the domain wrote the timeline line and its audit entry
    flash(done, "ok")
    return back


def _note(required: bool) -> str | None:
    note = (request.form.get("note") or "").strip()
    if len(note) > MAX_NOTE:
        return None
    return note or ("" if required else None)


@bp.post("/cases/<int:case_id>/send")
@role_required("organizer")
def send(case_id: int) -> ResponseReturnValue:
    """Send the case to its official (one SMS)."""
    return _act(case_id, lambda s, c: domain.send(s, c, actor=current_user.email, now=utcnow()),
                _("Sent to the official."))


@bp.post("/cases/<int:case_id>/escalate")
@role_required("organizer")
def escalate(case_id: int) -> ResponseReturnValue:
    """Send the case up one rung of the ladder now, with an optional note."""
    note = _note(required=False)
    if note is None and request.form.get("note"):
        flash(_("Not escalated: the note is longer than %(most)s characters.", most=MAX_NOTE), "error")
        return redirect(url_for(".show", case_id=case_id))
    return _act(case_id, lambda s, c: domain.escalate(s, c, actor=current_user.email, now=utcnow(), note=note),
                _("Escalated to the next rung."))


@bp.post("/cases/<int:case_id>/close")
@role_required("organizer")
def close(case_id: int) -> ResponseReturnValue:
    """Close the case by hand; a note saying why is required."""
    note = _note(required=True)
    if not note:
        flash(_("Not closed: write a note saying why the case is closed (at most %(most)s characters).",
                most=MAX_NOTE) if note is None else _("Not closed: write a note saying why the case is closed."),
              "error")
        return redirect(url_for(".show", case_id=case_id))
    resolved = request.form.get("resolved") == "yes"
    return _act(case_id, lambda s, c: domain.close(s, c, actor=current_user.email, note=note, now=utcnow(),
                                                   resolved=resolved),
                _("Case closed as resolved.") if resolved else _("Case closed."))


def _report_ids(s: Any, raw: str) -> tuple[list[int], list[str]]:
    """Report ids from refs typed or ticked (spaces or commas between them), and the refs not found."""
    refs = [r.strip().upper() for r in raw.replace(",", " ").split() if r.strip()][:200]
    found = dict(s.execute(select(Report.ref, Report.id).where(Report.ref.in_(refs))).tuples().all()) if refs else {}
    return [found[r] for r in refs if r in found], [r for r in refs if r not in found]


@bp.post("/cases/<int:case_id>/split")
@role_required("organizer")
def split(case_id: int) -> ResponseReturnValue:
    """Move the ticked reports out of this case into a new one."""
    s = get_session()
    ids, missing = _report_ids(s, " ".join(request.form.getlist("report")))
    if not ids or missing:
        flash(_("Not split: tick the reports to move into a new case."), "error")
        return redirect(url_for(".show", case_id=case_id))
    case = _get(case_id, lock=True)
    try:
        new = domain.split(s, case, ids, actor=current_user.email, now=utcnow())
    except domain.CaseError as exc:
        s.rollback()
        flash(_("Not split: %(why)s", why=exc), "error")
        return redirect(url_for(".show", case_id=case_id))
    s.commit()
    flash(_("%(n)s report(s) moved to the new case %(ref)s.", n=len(ids), ref=new.ref), "ok")
    return redirect(url_for(".show", case_id=new.id))


@bp.post("/cases/<int:case_id>/merge")
@role_required("organizer")
def merge(case_id: int) -> ResponseReturnValue:
    """Merge another case (chosen by id) into this one."""
    s = get_session()
    other_id = request.form.get("other", "")
    if not other_id.isdigit() or int(other_id) == case_id or len(other_id) > 9:
        flash(_("Not merged: choose the other case to merge into this one."), "error")
        return redirect(url_for(".show", case_id=case_id))
    case = _get(case_id, lock=True)
    other = _get(int(other_id), lock=True)
    other_ref = other.ref
    try:
        domain.merge(s, case, other, actor=current_user.email, now=utcnow())
    except domain.CaseError as exc:
        s.rollback()
        flash(_("Not merged: %(why)s", why=exc), "error")
        return redirect(url_for(".show", case_id=case_id))
    s.commit()
    flash(_("Case %(ref)s merged into this one.", ref=other_ref), "ok")
    return redirect(url_for(".show", case_id=case_id))


@bp.post("/cases/new")
@role_required("organizer")
def open_by_hand() -> ResponseReturnValue:
    """Open a case by hand from report references (place and service as the reports give them)."""
    s = get_session()
    place = (request.form.get("place") or "").strip()[:80]
    service = (request.form.get("service") or "").strip().lower()[:40]
    ids, missing = _report_ids(s, request.form.get("reports") or "")
    if missing or not ids or not place or not service:
        problem = (_("no report has the reference %(ref)s", ref=missing[0]) if missing else
                   _("give the place, the service and at least one report reference"))
        flash(_("No case opened: %(why)s.", why=problem), "error")
        return redirect(url_for(".index"))
    try:
        case = domain.open_by_hand(s, place=place, service=service, report_ids=ids, actor=current_user.email,
                                   now=utcnow())
    except domain.CaseError as exc:
        s.rollback()
        flash(_("No case opened: %(why)s", why=exc), "error")
        return redirect(url_for(".index"))
    s.commit()
    flash(_("Case %(ref)s opened.", ref=case.ref), "ok")
    return redirect(url_for(".show", case_id=case.id))
