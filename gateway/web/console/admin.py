"""Console: accounts (create, change role, deactivate, API tokens) and the read-only audit log."""
from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import EmailField, PasswordField, SelectField
from wtforms.validators import DataRequired, Length

from gateway import services
from gateway.channels import sender_name
from gateway.core.phones import mask_number
from gateway.db import get_session
from gateway.limits import limiter
from gateway.models import AuditEvent, User, utcnow
from gateway.outbound import oneoff
from gateway.people import accounts
from gateway.people import audit as audit_log
from gateway.web.console import i18n, role_required
from gateway.web.paging import paginate

bp = Blueprint("admin", __name__, template_folder="templates")

ROLE_HELP = {
    "viewer": _l("reads supporters (numbers partly hidden), reports, inbox and flows"),
    "organizer": _l("also imports supporters, answers the inbox and sends broadcasts"),
    "admin": _l("also manages accounts and reads the audit log"),
}



class CreateUserForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    role = SelectField(_l("Role"), choices=list(accounts.ROLES), default="viewer")  # shown by role_name()
    password = PasswordField(_l("Initial password"), validators=[
        DataRequired(), Length(min=accounts.MIN_PASSWORD, max=200,
                               message=_l("The password needs at least %(n)s characters.", n=accounts.MIN_PASSWORD))])


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), choices=list(accounts.ROLES))


class ActionForm(FlaskForm):
    """Only the CSRF token (deactivate, reactivate, new token)."""


def _users_page(form: CreateUserForm, status: int = 200) -> ResponseReturnValue:
    users = get_session().scalars(select(User).order_by(User.active.desc(), User.email)).all()
    return render_template("admin_users.html", users=users, form=form, roles=accounts.ROLES,
                           role_help=ROLE_HELP, now=utcnow()), status


def _other_user(user_id: int) -> User:
    """The account to change, or 404."""
    user = get_session().get(User, user_id)
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
    s = get_session()
    try:
        user = accounts.create_user(s, form.email.data or "", form.role.data or "", form.password.data or "")
    except accounts.AccountError as exc:
        s.rollback()
        form.email.errors = [*form.email.errors, str(exc)]
        return _users_page(form, 400)
    audit_log.record(s, current_user.email, "user.create", email=user.email, role=user.role)
    s.commit()
    flash(_("%(email)s can now log in as %(role)s.", email=user.email, role=i18n.word(user.role)), "ok")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/role")
@role_required("admin")
def change_role(user_id: int) -> ResponseReturnValue:
    form = RoleForm()
    user = _other_user(user_id)
    if not form.validate_on_submit():
        flash(_("Choose one of the roles."), "error")
    elif user.id == current_user.id:
        flash(_("You cannot change your own role: ask another admin."), "error")
    elif form.role.data != user.role:
        s = get_session()
        old, user.role = user.role, form.role.data or user.role
        audit_log.record(s, current_user.email, "user.role", email=user.email, old=old, new=user.role)
        s.commit()
        flash(_("%(email)s is now %(role)s (was %(old)s).", email=user.email, role=i18n.word(user.role),
                old=i18n.word(old)), "ok")
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
        flash(_("You cannot deactivate your own account: ask another admin."), "error")
    elif user.active != activate:
        s = get_session()
        user.active = activate
        if activate:
            user.failed_logins, user.locked_until = 0, None
        audit_log.record(s, current_user.email, "user.activate" if activate else "user.deactivate",
                         email=user.email)
        s.commit()
        flash(_("%(email)s can log in again.", email=user.email) if activate else
              _("%(email)s can no longer log in.", email=user.email), "ok")
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
        flash(_("%(email)s is deactivated: reactivate the account before giving it a token.", email=user.email),
              "error")
        return redirect(url_for("admin.users"))
    s = get_session()
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
    s = get_session()
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
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or _("none")
        elif isinstance(value, bool):
            value = _("yes") if value else _("no")
        out.append((str(key), str(value)))
    return out


# --------------------------------------------------------------------------- my account: my phone

CODE_SENDS = "3/hour;10/day"  # per account: each code is an SMS to a number the user typed
CODE_CHECKS = "10/hour"  # per account, on top of PHONE_CODE_TRIES per code


def _user_key() -> str:
    return f"user:{current_user.get_id()}"


def _code_keys(user_id: int) -> tuple[str, str]:
    return f"gateway-phone-code:{user_id}", f"gateway-phone-code-tries:{user_id}"


def _account_page(status: int = 200) -> ResponseReturnValue:
    user = current_user
    return render_template("account.html", user=user, phone=mask_number(user.phone) if user.phone else None,
                           confirmed=bool(user.phone and user.phone_verified_at),
                           allowed=[mask_number(n) for n in services().settings.test_send_numbers],
                           form=ActionForm(formdata=None)), status


@bp.get("/account")
@role_required("organizer")
def account() -> ResponseReturnValue:
    """My phone: the only phone my broadcast tests go to, once confirmed by a code texted to it."""
    return _account_page()


@bp.post("/account/phone")
@role_required("organizer")
@limiter.limit(CODE_SENDS, key_func=_user_key)
def set_phone() -> ResponseReturnValue:
    """Take a mobile number, text it a code through the outbox; it is unconfirmed until the code comes back."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    s = get_session()
    user = s.get(User, current_user.id)
    assert user is not None  # logged in: load_user has just read this account
    try:
        number = oneoff.mobile_number(request.form.get("phone", ""), services().settings.default_country)
        contact = oneoff.recipient(s, number)
    except oneoff.Refused as exc:
        s.rollback()
        flash(_("Phone not changed: %(why)s.", why=exc), "error")  # never the number: flashes sit in the cookie
        return redirect(url_for("admin.account"))
    code = accounts.new_phone_code()
    accounts.set_phone(user, number)
    body = f"{services().settings.org_name} code: {code}. It confirms this phone for test messages."
    row = oneoff.queue_text(s, contact, body, provider=services().provider.name, sender=sender_name())
    audit_log.record(s, current_user.email, "account.phone", number_digest=oneoff.digest(s, number),
                     message_id=row.id)
    s.commit()
    code_key, tries_key = _code_keys(user.id)
    redis = services().redis
    redis.set(code_key, accounts.phone_code_mac(current_app.config["SECRET_KEY"], user.id, number, code),
              ex=accounts.PHONE_CODE_SECONDS)
    redis.delete(tries_key)
    oneoff.enqueue(redis, [row.id])
    flash(_("A code is on its way to %(phone)s: type it below to confirm the phone.", phone=mask_number(number)), "ok")
    return redirect(url_for("admin.account"))


@bp.post("/account/phone/confirm")
@role_required("organizer")
@limiter.limit(CODE_CHECKS, key_func=_user_key)
def confirm_phone() -> ResponseReturnValue:
    """Check the code texted to the phone; after too many wrong ones a new code must be sent."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    s = get_session()
    user = s.get(User, current_user.id)
    assert user is not None  # logged in: load_user has just read this account
    code_key, tries_key = _code_keys(user.id)
    redis = services().redis
    kept = redis.get(code_key)
    if accounts.confirm_phone(user, current_app.config["SECRET_KEY"], kept.decode() if kept else None,
                              request.form.get("code", "")):
        redis.delete(code_key, tries_key)
        assert user.phone is not None  # confirm_phone is only true for a phone that is set
        audit_log.record(s, current_user.email, "account.phone.confirmed", number_digest=oneoff.digest(s, user.phone))
        s.commit()
        flash(_("Phone confirmed: broadcast tests now go to it."), "ok")
        return redirect(url_for("admin.account"))
    tries = redis.incr(tries_key)
    redis.expire(tries_key, accounts.PHONE_CODE_SECONDS)
    if tries >= accounts.PHONE_CODE_TRIES:
        redis.delete(code_key)
    flash(_("That is not the code texted to your phone, or it expired: send a new code.") if kept else
          _("There is no code waiting: send a new code first."), "error")
    return _account_page(400)
