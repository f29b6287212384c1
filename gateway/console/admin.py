"""Console: accounts (create, change role, deactivate, API tokens) and the read-only audit log."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import EmailField, PasswordField, SelectField
from wtforms.validators import DataRequired, Length

from gateway import accounts, audit as audit_log
from gateway.console import db, role_required
from gateway.console.supporters import paginate
from gateway.models import AuditEvent, User, utcnow

bp = Blueprint("admin", __name__, template_folder="templates")

ROLE_HELP = {
    "viewer": "reads supporters (numbers partly hidden), reports, inbox and flows",
    "organizer": "also imports supporters, answers the inbox and sends broadcasts",
    "admin": "also manages accounts and reads the audit log",
}


class CreateUserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    role = SelectField("Role", choices=list(accounts.ROLES), default="viewer")
    password = PasswordField("Initial password", validators=[
        DataRequired(), Length(min=accounts.MIN_PASSWORD, max=200,
                               message=f"The password needs at least {accounts.MIN_PASSWORD} characters.")])


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=list(accounts.ROLES))


class ActionForm(FlaskForm):
    """Only the CSRF token (deactivate, reactivate, new token)."""


def _users_page(form: CreateUserForm, status: int = 200) -> ResponseReturnValue:
    users = db().scalars(select(User).order_by(User.active.desc(), User.email)).all()
    return render_template("admin_users.html", users=users, form=form, roles=accounts.ROLES,
                           role_help=ROLE_HELP, now=utcnow()), status


def _other_user(user_id: int) -> User:
    """The account to change, or 404."""
    user = db().get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.get("/users")
@role_required("admin")
def users() -> ResponseReturnValue:
    """Every account, and a form to add one."""
    return _users_page(CreateUserForm(formdata=None))


@bp.post("/users")
@role_required("admin")
def create_user() -> ResponseReturnValue:
    """Add an account with an initial password (tell it to the person another way than email)."""
    form = CreateUserForm()
    if not form.validate_on_submit():
        return _users_page(form, 400)
    s = db()
    try:
        user = accounts.create_user(s, form.email.data or "", form.role.data or "", form.password.data or "")
    except accounts.AccountError as exc:
        s.rollback()
        form.email.errors = [*form.email.errors, str(exc)]
        return _users_page(form, 400)
    audit_log.record(s, current_user.email, "user.create", email=user.email, role=user.role)
    s.commit()
    flash(f"{user.email} can now log in as {user.role}.", "ok")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/role")
@role_required("admin")
def change_role(user_id: int) -> ResponseReturnValue:
    form = RoleForm()
    user = _other_user(user_id)
    if not form.validate_on_submit():
        flash("Choose one of the roles.", "error")
    elif user.id == current_user.id:
        flash("You cannot change your own role: ask another admin.", "error")
    elif form.role.data != user.role:
        s = db()
        old, user.role = user.role, form.role.data or user.role
        audit_log.record(s, current_user.email, "user.role", email=user.email, old=old, new=user.role)
        s.commit()
        flash(f"{user.email} is now {user.role} (was {old}).", "ok")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/active")
@role_required("admin")
def set_active(user_id: int) -> ResponseReturnValue:
    """Deactivate (logged out at their next click, API token refused) or reactivate an account."""
    form = ActionForm()
    user = _other_user(user_id)
    activate = request.form.get("active") == "1"
    if not form.validate_on_submit():
        abort(400)
    if user.id == current_user.id:
        flash("You cannot deactivate your own account: ask another admin.", "error")
    elif user.active != activate:
        s = db()
        user.active = activate
        if activate:
            user.failed_logins, user.locked_until = 0, None
        audit_log.record(s, current_user.email, "user.activate" if activate else "user.deactivate",
                         email=user.email)
        s.commit()
        flash(f"{user.email} {'can log in again' if activate else 'can no longer log in'}.", "ok")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/token")
@role_required("admin")
def token(user_id: int) -> ResponseReturnValue:
    """A new API token, shown once on this page only (never flashed or stored in the session)."""
    form = ActionForm()
    user = _other_user(user_id)
    if not form.validate_on_submit():
        abort(400)
    if not user.active:
        flash(f"{user.email} is deactivated: reactivate the account before giving it a token.", "error")
        return redirect(url_for("admin.users"))
    s = db()
    replaced = user.api_token_hash is not None
    new = accounts.new_api_token(user)
    audit_log.record(s, current_user.email, "user.token", email=user.email, replaced=replaced)
    s.commit()
    response = make_response(render_template("admin_token.html", user=user, token=new, replaced=replaced))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/audit")
@role_required("admin")
def audit() -> ResponseReturnValue:
    """The audit log, newest first, optionally one action only. Nothing here edits or deletes it."""
    s = db()
    action = request.args.get("action", "").strip()[:40]
    actor = request.args.get("actor", "").strip()[:254]
    query = select(AuditEvent)
    if action:
        query = query.where(AuditEvent.action == action)
    if actor:
        query = query.where(AuditEvent.actor.icontains(actor, autoescape=True))
    page = paginate(s, query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()))
    actions = sorted(s.scalars(select(AuditEvent.action).distinct()).all())
    return render_template("admin_audit.html", page=page, actions=actions, action=action, actor=actor,
                           details={e.id: _detail(e.detail) for e in page.items})


def _detail(detail: Any) -> list[tuple[str, str]]:
    """An event's detail as readable pairs: a filter shows as 'place=Zomba, service=clinic'."""
    if not isinstance(detail, dict):
        return [("", str(detail))] if detail else []
    out = []
    for key, value in detail.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        out.append((str(key), str(value)))
    return out
