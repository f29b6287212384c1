"""The console's error pages, in the reader's language; the JSON API and the webhooks keep their own answers."""
from __future__ import annotations

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException

# What a person is told for each status, and what to do about it.
MESSAGES = {
    400: (_l("The request was not understood"),
          _l("The form may have expired. Go back, reload the page and try again.")),
    403: (_l("Not allowed"), _l("Your account's role does not allow this page. Ask an admin if you need it.")),
    404: (_l("Page not found"), _l("There is nothing at this address. Check the link, or start from the dashboard.")),
    405: (_l("Not allowed this way"), _l("This address does not take that kind of request. Use the console's links.")),
    413: (_l("Too large"), _l("What was sent is too large. Send something smaller.")),
    500: (_l("Something went wrong"),
          _l("The gateway could not finish this. Nothing you typed was sent; try again in a moment.")),
}
# The console's blueprints; the JSON API (a contract), webhooks and health checks keep their own answers.
PAGES = {"auth", "pages", "supporters", "broadcasts", "reports", "cases", "officials", "inbox", "flowsview",
         "simulator", "admin"}
MACHINE_PATHS = ("/api/", "/sms/", "/healthz", "/metrics")  # and any route machines call outside a blueprint


def _wants_page() -> bool:
    """A console page, or an unknown address outside the machines' paths, asked for by a browser."""
    ours = request.blueprint in PAGES or (request.blueprint is None and not request.path.startswith(MACHINE_PATHS))
    return ours and request.accept_mimetypes.accept_html


def init_app(app: Flask) -> None:
    """Translated pages for the errors a person can meet in the console."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        if not _wants_page() or exc.code not in MESSAGES:
            return exc
        title, advice = MESSAGES[exc.code]
        return render_template("error.html", code=exc.code, title=title, advice=advice), exc.code
