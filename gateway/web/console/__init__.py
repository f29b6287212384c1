"""The organizers' web console: accounts, roles, CSRF, and the page blueprints."""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort, current_app, has_request_context, request
from flask import session as flask_session
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect

from gateway import db
from gateway.db import get_session
from gateway.models import User
from gateway.people import accounts
from gateway.web.console.i18n import N_

F = TypeVar("F", bound=Callable[..., Any])
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = N_("Please log in.")
login_manager.localize_callback = gettext  # flashed in the page's language (a lazy string cannot sit in the cookie)
csrf = CSRFProtect()


ABSOLUTE_SESSION_LIFETIME = timedelta(hours=12)  # from login, however active the session is


def clock() -> float:
    """Seconds since the epoch (a seam for tests of session lifetimes)."""
    return time.time()


def mark_login() -> None:
    """Note when this session logged in: the absolute lifetime counts from here."""
    flask_session["login_at"] = int(clock())


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The logged-in user, read fresh on each request: a disabled account, a logout elsewhere or a
    session older than ABSOLUTE_SESSION_LIFETIME is out at once."""
    started = flask_session.get("login_at")
    limit = current_app.config.get("ABSOLUTE_SESSION_LIFETIME", ABSOLUTE_SESSION_LIFETIME).total_seconds()
    if not isinstance(started, int) or not 0 <= clock() - started <= limit:
        return None
    return accounts.user_for_session(get_session(), user_id)


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, also marked Secure when the request came over TLS (directly, or as a
    proxy trusted through PROXY_FIX_HOPS says with X-Forwarded-Proto)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or (has_request_context() and request.is_secure))


def role_required(role: str) -> Callable[[F], F]:
    """Only users whose role includes `role` (viewer < organizer < admin) get in."""
    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not accounts.can(current_user, role):
                abort(403)
            return view(*args, **kwargs)
        wrapped.required_role = role  # type: ignore[attr-defined]  # tests/test_security.py looks for it
        return wrapped  # type: ignore[return-value]
    return decorator


def init_app(app: Flask) -> None:
    """Sessions, CSRF, secure cookies and headers, and the console's blueprints."""
    # Assigned, not setdefault: Flask's own defaults (31-day sessions, no SameSite, cookies sent
    # over plain http) are already in app.config, so a setdefault would never apply.
    https = bool((app.extensions["gateway"].settings.public_base_url or "").startswith("https"))
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=https,
                      REMEMBER_COOKIE_HTTPONLY=True, REMEMBER_COOKIE_SECURE=https,
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=8))
    app.session_interface = _SessionInterface()
    from gateway.web.console import errors, i18n

    i18n.init_app(app)
    errors.init_app(app)
    login_manager.init_app(app)
    csrf.init_app(app)
    db.init_app(app)

    from gateway.web.console import (
        admin,
        auth,
        brief,
        broadcasts,
        cases,
        dashboard,
        flowsview,
        inbox,
        officials,
        reports,
        schedules,
        simulator,
        supporters,
    )

    for module in (auth, dashboard, supporters, broadcasts, reports, cases, officials, schedules, inbox, flowsview,
                   simulator, admin, brief):
        app.register_blueprint(module.bp)
    # Every page's title and header; read per page, as svc.settings may be replaced (tests do).
    app.context_processor(lambda: {"org_name": app.extensions["gateway"].settings.org_name})

    @app.after_request
    def secure_headers(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response
