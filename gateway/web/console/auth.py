"""Log in and out."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from limits import parse
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from gateway.db import get_session
from gateway.limits import limiter
from gateway.models import User
from gateway.people import accounts, audit
from gateway.web.console import i18n, mark_login

bp = Blueprint("auth", __name__, template_folder="templates")
logger = logging.getLogger(__name__)

# Login attempts (POSTs) allowed per client address, and from all addresses together; the app config
# keys LOGIN_RATE_PER_ADDRESS and LOGIN_RATE_GLOBAL override them (Flask-Limiter's notation).
PER_ADDRESS = "10 per minute;50 per hour"
OVERALL = "60 per minute"
# Audit rows for attempts on unknown, locked or inactive accounts, all together (LOGIN_AUDIT_UNKNOWN).
AUDIT_UNKNOWN = "30 per hour"


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


def _safe_next(target: str | None) -> str:
    """A path on this site to go to after login; anything else (another host, a scheme) is the dashboard."""
    # Browsers and werkzeug's urlsplit drop tabs and newlines and read "\\" as "/", so "/\t/evil"
    # and "/\\evil" would become "//evil", another host. Check what will actually be sent.
    cleaned = "".join(ch for ch in target or "" if unicodedata.category(ch) not in ("Cc", "Cf"))
    parts = urlsplit(cleaned)
    if (cleaned.startswith("/") and not cleaned.startswith("//") and "\\" not in cleaned
            and not parts.scheme and not parts.netloc):
        return cleaned
    return url_for("pages.dashboard")


def _address() -> str:
    """Who is trying, for the per-address limit: the client address (after ProxyFix), IPv6 by its /64."""
    address = request.remote_addr or "unknown"
    if ":" in address:
        try:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))  # one host holds a whole /64
        except ValueError:
            pass
    return address


def _per_address() -> str:
    return current_app.config.get("LOGIN_RATE_PER_ADDRESS") or PER_ADDRESS


def _overall() -> str:
    return current_app.config.get("LOGIN_RATE_GLOBAL") or OVERALL


@bp.route("/login", methods=["GET", "POST"])
# Both limits are checked before the form is read, so a throttled attempt never reaches an account:
# it neither costs a password hash nor counts towards that account's lockout.
@limiter.limit(_per_address, key_func=_address, methods=["POST"])
@limiter.limit(_overall, key_func=lambda: "all", methods=["POST"], scope="login-overall")
def login() -> ResponseReturnValue:
    """The login form; five wrong passwords lock an account for 15 minutes."""
    if current_user.is_authenticated:
        return redirect(url_for("pages.dashboard"))
    form = LoginForm()
    if form.validate_on_submit():
        s = get_session()
        attempt = accounts.attempt_login(s, form.email.data or "", form.password.data or "")
        user = attempt.user
        if user is not None:
            accounts.start_session(user)
        _audit(s, attempt, form.email.data or "")
        s.commit()
        if user is not None:
            session.clear()  # a fresh session on login: no fixation
            session.permanent = True
            mark_login()
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        flash(_("Wrong email or password, or the account is locked for a while."), "error")
        return render_template("login.html", form=form), 401
    return render_template("login.html", form=form), 400 if form.is_submitted() else 200


def _audit(s: Any, attempt: accounts.LoginAttempt, typed: str) -> None:
    """Logins and failures on real accounts go to the audit log; the rest only sparingly, as digests.

    Wrong passwords on an account are bounded by its lockout (five per 15 minutes). Attempts on
    unknown, locked or inactive accounts are bounded by nothing but the rate limits, so they are
    kept at most LOGIN_AUDIT_UNKNOWN times (all together), and an unknown email, which may be a
    password typed into the wrong box, only as a keyed digest.
    """
    ip = request.remote_addr
    if attempt.outcome == "ok":
        audit.record(s, attempt.account.email, "login", ip=ip)  # type: ignore[union-attr]
    elif attempt.outcome == "wrong":
        extra = {"locked": True} if attempt.locked_now else {}
        audit.record(s, attempt.account.email, "login.failed", ip=ip, **extra)  # type: ignore[union-attr]
    elif _sparingly():
        if attempt.account is not None:
            audit.record(s, attempt.account.email, "login.failed", ip=ip, reason=attempt.outcome)
        else:
            key = current_app.config["SECRET_KEY"]
            key = key if isinstance(key, bytes) else key.encode()
            digest = hmac.new(key, b"login email\0" + typed.strip().lower().encode(), hashlib.sha256).hexdigest()
            audit.record(s, "unknown", "login.failed", ip=ip, reason="unknown", email_digest=digest[:16])


def _sparingly() -> bool:
    """True while the shared budget of audit rows for attempts on no usable account lasts."""
    budget = parse(current_app.config.get("LOGIN_AUDIT_UNKNOWN") or AUDIT_UNKNOWN)
    try:
        return limiter.limiter.hit(budget, "gateway-login-audit")
    except Exception:  # the limits store is away: keep the row rather than lose the trace
        logger.warning("login audit budget unavailable; recording the attempt", exc_info=True)
        return True


@bp.errorhandler(429)
def too_many(_exc: Exception) -> ResponseReturnValue:
    """Throttled: the same form, saying why and for how long, rather than a bare error page."""
    flash(_("Too many login attempts. Wait a minute, then try again."), "error")
    return render_template("login.html", form=LoginForm()), 429


@bp.post("/language")
def language() -> ResponseReturnValue:
    """The console's language: kept on the account when logged in, else in the session; back to the page."""
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    chosen = request.form.get("locale", "")
    if chosen not in i18n.LOCALES:
        abort(400)
    session["locale"] = chosen
    if current_user.is_authenticated:
        s = get_session()
        user = s.get(User, current_user.id)
        if user is not None:
            user.locale = chosen
            s.commit()
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session here and every copy of it elsewhere (the user's session nonce changes)."""
    if current_user.is_authenticated:
        s = get_session()
        user = s.get(User, current_user.id)
        if user is not None:
            accounts.end_sessions(user)
            s.commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
