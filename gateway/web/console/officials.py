"""Console: the officials' directory, its CSV import, and each official's answers and response times.

Viewers read (numbers masked, as supporters' are); organizers see whole numbers and import.
"""
from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, select

from gateway import services
from gateway.db import get_session
from gateway.models import Case, Contact, Official
from gateway.people import audit, officials
from gateway.web import casedata
from gateway.web.console import role_required, uploads
from gateway.web.console.supporters import full_numbers, shown_number
from gateway.web.paging import paginate

bp = Blueprint("officials", __name__, template_folder="templates")

COLUMNS = ("number", "name", "role", "language", "places", "services", "level")


@bp.get("/officials")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """The directory by rung then name, with each official's answers and response times."""
    s = get_session()
    page = paginate(s, select(Official, Contact).join(Contact, Contact.id == Official.contact_id)
                    .order_by(Official.level, Official.name, Official.id), scalars=False)
    ids = [o.id for o, _c in page.items]
    open_cases = dict(s.execute(select(Case.official_id, func.count()).where(
        Case.official_id.in_(ids), Case.status.not_in(("resolved", "closed"))).group_by(Case.official_id))
        .tuples().all()) if ids else {}
    return render_template("officials_index.html", page=page, numbers={o.id: shown_number(c) for o, c in page.items},
                           records=casedata.records(s, ids), open_cases=open_cases, masked=not full_numbers())


@bp.route("/officials/import", methods=["GET", "POST"])
@role_required("organizer")
def import_csv() -> ResponseReturnValue:
    """Upload a CSV of officials: good lines are saved, bad lines listed by line number."""
    form = uploads.ImportForm()
    imported: int | None = None
    errors: list[str] = []
    notice: str | None = None
    if form.validate_on_submit():
        upload = form.file.data
        text, notice = uploads.decode(upload.read())
        s = get_session()
        imported, errors = officials.import_csv(s, text, default_country=services().settings.default_country,
                                                gazetteers=list(uploads.gazetteers()), languages=uploads.languages())
        audit.record(s, current_user.email, "officials.import", file=(upload.filename or "")[:200],
                     imported=imported, errors=len(errors))
        s.commit()
    status = 400 if form.is_submitted() and imported is None else 200
    return render_template("officials_import.html", form=form, imported=imported, errors=errors, notice=notice,
                           columns=COLUMNS), status
