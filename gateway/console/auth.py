"""Log in and out."""
from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from gateway import accounts, audit
from gateway.console import db

bp = Blueprint("auth", __name__, template_folder="templates")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


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


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The login form; five wrong passwords lock an account for 15 minutes."""
    if current_user.is_authenticated:
        return redirect(url_for("pages.dashboard"))
    form = LoginForm()
    if form.validate_on_submit():
        s = db()
        user = accounts.authenticate(s, form.email.data or "", form.password.data or "")
        audit.record(s, user.email if user else (form.email.data or "")[:254],
                     "login" if user else "login.failed", ip=request.remote_addr)
        s.commit()
        if user is not None:
            session.clear()  # a fresh session on login: no fixation
            session.permanent = True
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong email or password, or the account is locked for a while.", "error")
        return render_template("login.html", form=form), 401
    return render_template("login.html", form=form), 400 if form.is_submitted() else 200


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session."""
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
