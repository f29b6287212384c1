"""/api/v1/brief: the one-page evidence brief of a place for a month (or of one case), as PDF or JSON figures."""
from __future__ import annotations

from flask import Response, jsonify
from flask.typing import ResponseReturnValue

from gateway import services
from gateway.core.brief import BadInput
from gateway.db import get_session
from gateway.evidence import briefs, render
from gateway.web.api.auth import caller, requires
from gateway.web.api.blueprint import bp
from gateway.web.api.errors import ApiError
from gateway.web.api.inputs import query_args

API_FORMATS = ("pdf", "json")


def _field(message: str) -> str:
    """The query parameter a BadInput sentence is about (its first word)."""
    first = message.split(" ", 1)[0]
    return {"month": "month", "place": "place", "lang": "lang", "case": "case"}.get(first, "place")


@bp.get("/brief")
@requires("viewer")
def get_brief() -> ResponseReturnValue:
    """The brief as application/pdf (format=pdf, the default) or its figures as JSON (format=json); audited."""
    args = query_args(("place", "month", "lang", "format", "case"))
    fmt = args.get("format", "pdf").lower()
    if fmt not in API_FORMATS:
        raise ApiError(400, "invalid_field", f"format: expected {' or '.join(API_FORMATS)}", field="format")
    svc = services()
    session = get_session()
    try:
        language = briefs.check_language(args.get("lang"))
        if "case" in args:
            made = briefs.for_case(session, args["case"])
        else:
            for key in ("place", "month"):
                if key not in args:
                    raise BadInput(f"{key} is required (e.g. place=Zomba&month=2026-11), or give case=REF")
            made = briefs.for_place(session, args["place"], args["month"], list(svc.flows.gazetteers.values()),
                                    svc.settings.default_country)
    except BadInput as exc:
        status = 404 if str(exc).startswith("case") else 400
        raise ApiError(status, "invalid_field" if status == 400 else "not_found", str(exc),
                       field=_field(str(exc))) from None
    briefs.record_export(session, caller().actor, made, fmt, language, via="api")
    session.commit()
    if fmt == "json":
        return jsonify(made.as_json())
    name = f"brief-{made.fingerprint}.pdf"
    return Response(render.pdf(made, language, svc.settings.org_name), mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
