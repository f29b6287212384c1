"""Console: the one-page brief of a place for a month, or of one case: the page to print, or the PDF.

Viewers may make it (it is an export of counts and scrubbed words, never a reporter); each one is
recorded in the audit log. A bad place, month or language is a 400 page that says what to give.
"""
from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from gateway import services
from gateway.core.brief import BadInput
from gateway.db import get_session
from gateway.evidence import briefs, render
from gateway.web.console import role_required

bp = Blueprint("brief", __name__, template_folder="templates")


@bp.get("/brief.css")
@role_required("viewer")
def stylesheet() -> ResponseReturnValue:
    """The brief's stylesheet: the console's CSP allows no inline style, so the page links it."""
    return Response(render.css(), mimetype="text/css", headers={"Cache-Control": "max-age=300"})


@bp.get("/brief")
@role_required("viewer")
def show() -> ResponseReturnValue:
    """?place=Zomba&month=2026-11&lang=es (or ?case=REF), format=html (the default) or pdf."""
    svc = services()
    s = get_session()
    fmt = request.args.get("format", "html").strip().lower()
    try:
        if fmt not in ("html", "pdf"):
            raise BadInput(f"format {fmt[:10]!r}: html or pdf")
        language = briefs.check_language(request.args.get("lang"))
        ref = request.args.get("case", "").strip()
        if ref:
            made = briefs.for_case(s, ref)
        else:
            made = briefs.for_place(s, request.args.get("place", ""), request.args.get("month", ""),
                                    list(svc.flows.gazetteers.values()), svc.settings.default_country)
    except BadInput as exc:
        return render_template("brief_bad.html", problem=str(exc), args=request.args), 400
    briefs.record_export(s, current_user.email, made, fmt, language, via="console")
    s.commit()
    if fmt == "pdf":
        return Response(render.pdf(made, language, svc.settings.org_name), mimetype="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="brief-{made.fingerprint}.pdf"'})
    query = "&".join(f"{k}={quote(v)}" for k, v in request.args.items() if k in ("place", "month", "case"))
    here = url_for("brief.show")
    other = "es" if language == "en" else "en"
    nav = [(url_for("reports.index"), "← Reports"), (f"{here}?{query}&lang={language}&format=pdf", "PDF"),
           (f"{here}?{query}&lang={other}", "Español" if other == "es" else "English")]
    return render.html(made, language, svc.settings.org_name, stylesheet_url=url_for("brief.stylesheet"), nav=nav)
