"""Console: supporters: search and filter, one supporter's page, CSV import and export.

Viewers read (numbers masked), organizers also see full numbers and import.
`shown_number` and `csv_response` are shared with the inbox, reports and admin pages.
"""
from __future__ import annotations

import io
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    render_template,
    request,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.sql import Select

from gateway import services
from gateway.core.phones import InvalidNumber, mask_number, normalise_number
from gateway.db import get_session
from gateway.models import Contact, ContactTag, Message, Report, utcnow
from gateway.people import accounts, audit, contacts, csvio
from gateway.web.console import role_required, uploads
from gateway.web.paging import paginate

bp = Blueprint("supporters", __name__, template_folder="templates")

STATUSES = ("active", "stopped", "blocked")
FILTERS = ("q", "place", "language", "tag", "status")


# --------------------------------------------------------------------------- shared helpers


def full_numbers() -> bool:
    """Organizers and admins see whole phone numbers; viewers see them masked."""
    return accounts.can(current_user, "organizer")


def shown_number(contact: Contact) -> str:
    """A contact's number as the current user may see it."""
    number = contacts.number_of(contact)
    return number if full_numbers() else mask_number(number)


def csv_response(text: str, filename: str) -> Response:
    """A CSV download; the byte-order mark lets spreadsheet programs read accents right."""
    response = Response("\ufeff" + text, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


# --------------------------------------------------------------------------- search


def _filters() -> dict[str, str]:
    return {k: request.args.get(k, "").strip()[:120] for k in FILTERS if request.args.get(k, "").strip()}


def _number_query(q: str) -> str | None:
    """The normalised number a search names, when it is a whole number in any local format.

    Numbers are stored encrypted and found by a keyed digest, so only a whole number is found,
    never a part of one.
    """
    if not any(c.isdigit() for c in q):
        return None
    try:
        return normalise_number(q, services().settings.default_country).value
    except InvalidNumber:
        return None


def contact_query(f: dict[str, str]) -> Select:
    """Contacts matching a filter, newest first."""
    # The name-or-number search is the console's own: the API looks numbers up exactly (`number=`).
    query = select(Contact)
    if q := f.get("q"):
        conditions = [Contact.name.icontains(q, autoescape=True)]
        if number := _number_query(q):
            conditions.append(contacts.number_is(get_session(), number))
        query = query.where(or_(*conditions))
    query = contacts.matching(query, place=f.get("place"), language=f.get("language"), tag=f.get("tag"),
                              status=f.get("status"))
    return query.order_by(Contact.id.desc())


def _choices(session: Any) -> dict[str, list[str]]:
    places = session.scalars(select(Contact.place).where(Contact.place.is_not(None)).distinct()).all()
    languages = session.scalars(select(Contact.language).where(Contact.language.is_not(None)).distinct()).all()
    tags = session.scalars(select(ContactTag.tag).distinct()).all()
    return {"place": sorted(places), "language": sorted(set(languages) | set(uploads.languages())),
            "tag": sorted(tags), "status": list(STATUSES)}


@bp.get("/supporters")
@role_required("viewer")
def index() -> ResponseReturnValue:
    """Supporters, searchable by name or number and filtered by place, language, tag and status."""
    s = get_session()
    f = _filters()
    page = paginate(s, contact_query(f))
    return render_template("supporters_index.html", page=page, f=f, choices=_choices(s),
                           numbers={c.id: shown_number(c) for c in page.items}, masked=not full_numbers())


# --------------------------------------------------------------------------- one supporter


@bp.get("/supporters/<int:contact_id>")
@role_required("viewer")
def contact(contact_id: int) -> ResponseReturnValue:
    """One supporter: details, tags, their named reports and their messages, newest first."""
    s = get_session()
    c = s.get(Contact, contact_id)
    if c is None:
        abort(404)
    history = paginate(s, select(Message).where(Message.contact_id == c.id)
                       .order_by(Message.id.desc()))  # insertion order: a reply always follows its text
    reports = s.scalars(select(Report).where(Report.contact_id == c.id, Report.anonymous.is_(False))
                        .order_by(Report.created_at.desc(), Report.ref).limit(20)).all()
    return render_template("supporters_contact.html", c=c, number=shown_number(c), history=history,
                           reports=reports, masked=not full_numbers())


# --------------------------------------------------------------------------- import


@bp.route("/supporters/import", methods=["GET", "POST"])
@role_required("organizer")
def import_csv() -> ResponseReturnValue:
    """Upload a CSV of supporters: good rows are saved, bad rows listed by line number."""
    form = uploads.ImportForm()
    result, notice = None, None
    errors: list[str] = []
    if form.validate_on_submit():
        upload = form.file.data
        text, notice = uploads.decode(upload.read())
        rows, errors = csvio.parse_contacts(text, services().settings.default_country, uploads.gazetteers(),
                                            uploads.languages())
        s = get_session()
        result = csvio.apply_contacts(s, rows, utcnow())
        audit.record(s, current_user.email, "contacts.import", file=(upload.filename or "")[:200],
                     created=result.created, updated=result.updated, errors=len(errors))
        s.commit()
    status = 400 if form.is_submitted() and result is None else 200
    return render_template("supporters_import.html", form=form, result=result, errors=errors, notice=notice,
                           columns=csvio.CONTACT_COLUMNS,
                           limit_kb=(current_app.config.get("MAX_CONTENT_LENGTH") or 0) // 1024), status


@bp.errorhandler(413)
def too_large(_exc: Exception) -> ResponseReturnValue:
    """An upload over the server's limit: say so plainly instead of a bare error page."""
    limit_kb = (current_app.config.get("MAX_CONTENT_LENGTH") or 0) // 1024
    return render_template("supporters_import.html", form=uploads.ImportForm(formdata=None), result=None, errors=[
        _("The file is too large: the limit is %(kb)s KB. Split it into smaller files and import each.", kb=limit_kb)],
        notice=None, columns=csvio.CONTACT_COLUMNS, limit_kb=limit_kb), 413


# --------------------------------------------------------------------------- export


@bp.get("/supporters/export")
@role_required("viewer")
def export_csv() -> ResponseReturnValue:
    """The supporters matching the current filter as CSV (numbers masked for viewers)."""
    s = get_session()
    f = _filters()
    out = io.StringIO()
    writer = csvio.writer(out)  # every text cell safe from formula injection
    writer.writerow([*csvio.CONTACT_COLUMNS, "status"])
    count = 0
    for c in s.scalars(contact_query(f).order_by(None).order_by(Contact.id)).all():
        writer.writerow([shown_number(c), csvio._safe(c.name), c.language or "", c.place or "",
                         ";".join(c.tags), c.status])
        count += 1
    audit.record(s, current_user.email, "export.contacts", filter=f, count=count, masked=not full_numbers())
    s.commit()
    return csv_response(out.getvalue(), f"supporters-{utcnow().date().isoformat()}.csv")
