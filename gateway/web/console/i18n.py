"""The console's languages: Flask-Babel, the locale chosen per account, else by the browser, else English.

The JSON API and SMS texts are not translated here: the API is a contract in English, SMS texts live
in flows/. Catalogues are gateway/translations/<lang>/LC_MESSAGES/messages.po; their .mo files are
compiled from them when the app starts (so a fresh clone needs no extra step).
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, has_request_context, request
from flask import session as flask_session
from flask_babel import Babel, get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user

logger = logging.getLogger(__name__)

# What the console speaks: code -> the language's own name (shown in the switch whatever the locale).
LOCALES = {"en": "English", "es": "Español"}
DEFAULT_LOCALE = "en"
TRANSLATIONS = Path(__file__).resolve().parents[2] / "translations"

# Values the database holds (roles, statuses) shown by their name in the reader's language; the
# stored value never changes, and a value missing here is shown as it is.
WORDS = {
    "viewer": _l("viewer"), "organizer": _l("organizer"), "admin": _l("admin"),
    "active": _l("active"), "stopped": _l("stopped"), "blocked": _l("blocked"), "invalid": _l("invalid"),
    "received": _l("received"), "handled": _l("handled"), "queued": _l("queued"), "sending": _l("sending"),
    "sent": _l("sent"), "delivered": _l("delivered"), "undelivered": _l("undelivered"), "failed": _l("failed"),
    "skipped": _l("skipped"), "cancelled": _l("cancelled"), "draft": _l("draft"), "done": _l("done"),
    "open": _l("open"), "acknowledged": _l("acknowledged"), "promised": _l("promised"),
    "resolved": _l("resolved"), "overdue": _l("overdue"), "disputed": _l("disputed"), "closed": _l("closed"),
    "in": _l("in"), "out": _l("out"), "yes": _l("yes"), "no": _l("no"), "partly": _l("partly"),
    # Corroboration (a report's verification, a check's outcome) and a check's progress.
    "verified": _l("verified"), "contested": _l("contested"), "unverified": _l("unverified"),
    "pending": _l("pending"), "asked": _l("asked"),
}


def word(value: object) -> str:
    """A stored value (a role, a status) in the reader's language."""
    return str(WORDS.get(str(value), value))


def N_(text: str) -> str:
    """Marks text for pybabel (-k N_) where it is translated later, when shown (Flask-Login's flash)."""
    return text


def select_locale() -> str:
    """The account's language, else one picked before logging in (kept in the session), else the browser's."""
    if not has_request_context():
        return DEFAULT_LOCALE
    if current_user and current_user.is_authenticated and getattr(current_user, "locale", None) in LOCALES:
        return str(current_user.locale)
    chosen = flask_session.get("locale")
    if chosen in LOCALES:
        return str(chosen)
    return request.accept_languages.best_match(list(LOCALES), default=DEFAULT_LOCALE)


def select_timezone() -> str:
    """Console times are shown in the default country's zone (see localtime.py)."""
    from gateway.web.console.localtime import zone

    return zone()


def current() -> str:
    """The language of the page being built ('en' outside a request)."""
    locale = get_locale()
    return locale.language if locale is not None else DEFAULT_LOCALE


def brief_language() -> str:
    """The one-page brief's language offered first: the page's, when the brief is written in it."""
    from gateway.evidence.words import LANGUAGES as BRIEF_LANGUAGES

    lang = current()
    return lang if lang in BRIEF_LANGUAGES else DEFAULT_LOCALE


def compile_catalogues(directory: Path = TRANSLATIONS) -> list[Path]:
    """Compile every messages.po whose .mo is missing or older; the .mo files written."""
    written = []
    for po in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as f:
            catalog = read_po(f, locale=po.parent.parent.name)
        # Written aside and renamed: two processes starting at once never read half a file.
        fd, tmp = tempfile.mkstemp(dir=mo.parent, suffix=".mo.tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                write_mo(out, catalog)  # fuzzy entries are left out, as msgfmt does
            os.replace(tmp, mo)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(mo)
    return written


def init_app(app: Flask) -> None:
    """Flask-Babel with the console's selectors; every template gets `_`, `locales` and `locale`."""
    try:
        compile_catalogues()
    except OSError:  # a read-only install: its .mo files were compiled when it was built
        logger.warning("could not compile the console's translations in %s", TRANSLATIONS, exc_info=True)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale, timezone_selector=select_timezone)
    # {% trans %} blocks written over several lines are one msgid with single spaces (pybabel: trimmed=true).
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.context_processor(lambda: {"locales": LOCALES, "locale": current(), "role_name": word,
                                   "brief_lang": brief_language()})

    @app.after_request
    def vary_by_language(response):  # type: ignore[no-untyped-def]
        # A page's words depend on the browser's Accept-Language: a cache must not hand one to another.
        if response.mimetype == "text/html":
            response.vary.add("Accept-Language")
        return response
    app.jinja_env.filters["word"] = word
    from gateway.web.console.localtime import local, local_day, local_month

    app.jinja_env.globals.update(local=local, local_day=local_day, local_month=local_month)
